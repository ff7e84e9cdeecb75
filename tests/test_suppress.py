"""Suppressions, the allowlist and ``[tool.pkgvet]``: parsing (every mistake is a usage error
naming the file and entry), matching (normalised names, versions, rule prefixes, path globs),
what happens to verdicts and exit codes, and the JSON / SARIF records of what was suppressed.

Packages are small inert archives built in tmp_path; every test runs in its own directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from conftest import sdist
from pkgvet.cli import cli
from pkgvet.models import (
    Category,
    Confidence,
    Finding,
    PackageInfo,
    ScanResult,
    Severity,
    Trigger,
    Verdict,
)
from pkgvet.settings import SettingsError, load_config, load_suppressions
from pkgvet.suppress import Suppression, apply_suppressions, identify, path_matches

MAL_SETUP = 'import base64\nexec(base64.b64decode("cHJpbnQoMSk="))\n'  # PV201 high, PV601
SHELL_SETUP = "import os\nos.system('make -C native')\n"  # PV101: medium


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zzmal-1.0.tar.gz").write_bytes(sdist("zzmal", "1.0", {"setup.py": MAL_SETUP}))
    (tmp_path / "zz_shell-1.0.tar.gz").write_bytes(
        sdist("zz_shell", "1.0", {"setup.py": SHELL_SETUP})
    )
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["scan", "--no-model", *args], catch_exceptions=False)


def scan_json(*args: str) -> tuple[Result, dict[str, Any]]:
    result = run("-f", "json", *args)
    return result, json.loads(result.stdout)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- rule suppressions -------------------------------------------------------------------


def test_rule_suppression_drops_findings_and_recomputes_rules_only_verdict(work: Path) -> None:
    before = run("--fail-on", "medium", "zz_shell-1.0.tar.gz")
    assert before.exit_code == 1
    write(
        work / "sup.toml",
        '[[suppress]]\npackage = "ZZ.Shell"\nrule = "pv101"\n'
        'reason = "builds its C extension with make"\n',
    )
    result, doc = scan_json(
        "--fail-on", "medium", "--suppressions", "sup.toml", "zz_shell-1.0.tar.gz"
    )
    assert result.exit_code == 0, result.output
    (r,) = doc["results"]
    assert all(f["rule_id"] != "PV101" for f in r["findings"])
    (s,) = [s for s in r["suppressed"] if s["rule_id"] == "PV101"]
    assert s["reason"] == "builds its C extension with make"
    assert s["path"] == "zz_shell-1.0/setup.py" and s["line"] == 2
    assert r["verdict"] == "clean"  # rules only: recomputed from what is left
    assert r["allowlisted"] is None
    assert any("suppressed" in x for x in r["reasons"])


def test_path_glob_version_and_prefix(work: Path) -> None:
    write(
        work / "pyproject.toml",
        "[tool.pkgvet]\n"
        '[[tool.pkgvet.suppress]]\npackage = "zzmal"\nversion = "2.0"\n'
        'reason = "another version"\n'
        '[[tool.pkgvet.suppress]]\npackage = "zzmal"\nrule = "PV6"\npath = "setup.py"\n'
        'reason = "known packer"\n',
    )
    result, doc = scan_json("zzmal-1.0.tar.gz")
    (r,) = doc["results"]
    assert result.exit_code == 1  # PV201 (high) still there; version 2.0 entry does not apply
    assert r["verdict"] == "malicious" and r["allowlisted"] is None
    assert {f["rule_id"] for f in r["suppressed"]} == {"PV601"}
    assert all(not f["rule_id"].startswith("PV6") for f in r["findings"])


def test_path_matches() -> None:
    assert path_matches("setup.py", "pkg-1.0/setup.py")
    assert path_matches("pkg-1.0/setup.py", "pkg-1.0/setup.py")
    assert path_matches("pkg/tests/*", "pkg-1.0/pkg/tests/a/b.py")
    assert path_matches("setup.py", "wrap.zip!pkg-1.0/setup.py")
    assert not path_matches("setup.py", "pkg-1.0/sub/setup.py")
    assert not path_matches("*.txt", "pkg-1.0/setup.py")


# --- the allowlist -----------------------------------------------------------------------


def test_allowlisted_package_is_clean_and_never_fails(work: Path) -> None:
    write(
        work / "sup.toml",
        '[[suppress]]\npackage = "zzmal"\nversion = "1.0"\nreason = "our own test fixture"\n',
    )
    result, doc = scan_json("--fail-on", "info", "--suppressions", "sup.toml", "zzmal-1.0.tar.gz")
    assert result.exit_code == 0, result.output
    (r,) = doc["results"]
    assert r["verdict"] == "clean"
    assert r["allowlisted"] == "our own test fixture"
    assert r["reasons"][0] == "allowlisted: our own test fixture (verdict was malicious)"
    assert r["findings"] == [] and r["max_severity"] is None
    assert {f["rule_id"] for f in r["suppressed"]} >= {"PV201", "PV601"}
    assert all(f["reason"] == "allowlisted: our own test fixture" for f in r["suppressed"])


def test_sarif_marks_suppressed_results(work: Path) -> None:
    write(
        work / "sup.toml",
        '[[suppress]]\npackage = "zzmal"\nrule = "PV601"\nreason = "packer is expected"\n',
    )
    result = run("-f", "sarif", "--suppressions", "sup.toml", "zzmal-1.0.tar.gz")
    run_ = json.loads(result.stdout)["runs"][0]
    pv601 = next(x for x in run_["results"] if x["ruleId"] == "PV601")
    assert pv601["suppressions"] == [{"kind": "external", "justification": "packer is expected"}]
    pv201 = next(x for x in run_["results"] if x["ruleId"] == "PV201")
    assert "suppressions" not in pv201
    assert run_["results"][0]["ruleId"] == "PKGVET-VERDICT"  # still malicious: PV201 stays
    write(work / "sup.toml", '[[suppress]]\npackage = "zzmal"\nreason = "vetted by hand"\n')
    result = run("-f", "sarif", "--suppressions", "sup.toml", "zzmal-1.0.tar.gz")
    assert result.exit_code == 0
    results = json.loads(result.stdout)["runs"][0]["results"]
    assert results and all(x["ruleId"] != "PKGVET-VERDICT" for x in results)
    assert all(x["suppressions"][0]["justification"] == "allowlisted: vetted by hand"
               for x in results)


def _result(model: float | None) -> ScanResult:
    f = Finding(
        rule_id="PV201",
        title="t",
        severity=Severity.HIGH,
        confidence=Confidence.HIGH,
        category=Category.CODE_EXECUTION,
        trigger=Trigger.INSTALL,
        path="p-1.0/setup.py",
        line=2,
        message="m",
    )
    return ScanResult(
        target="p-1.0.tar.gz",
        kind="sdist",
        package=PackageInfo(name="P", version="1.0.0"),
        findings=[f],
        verdict=Verdict.MALICIOUS,
        score=0.97 if model else 0.7,
        model_probability=model,
    )


def test_model_verdict_is_not_recomputed_but_allowlist_overrides() -> None:
    rule = Suppression(package="p", rule="PV2", reason="r")
    r = apply_suppressions(_result(0.97), [rule])
    assert r.findings == [] and len(r.suppressed) == 1
    assert r.verdict is Verdict.MALICIOUS and r.score == 0.97  # the model saw every finding
    allow = Suppression(package="p", version="1.0", reason="ok")  # 1.0 == 1.0.0
    r = apply_suppressions(_result(0.97), [allow])
    assert r.verdict is Verdict.CLEAN and r.allowlisted == "ok" and r.model_probability == 0.97
    other = Suppression(package="p", version="1.1", reason="ok")
    assert apply_suppressions(_result(0.97), [other]).verdict is Verdict.MALICIOUS


def test_errors_are_never_suppressed() -> None:
    r = ScanResult(target="p-1.0.tar.gz", kind="sdist", error="corrupt", verdict=Verdict.ERROR)
    apply_suppressions(r, [Suppression(package="p", reason="ok")])
    assert r.verdict is Verdict.ERROR and r.allowlisted is None


def test_identify_from_metadata_or_target() -> None:
    assert identify(_result(None)) == ("p", "1.0.0")
    bare = ScanResult(target="dist/Foo_Bar-2.0-py3-none-any.whl", kind="wheel")
    assert identify(bare) == ("foo-bar", "2.0")
    assert identify(ScanResult(target="Foo.Bar==3 (x.tar.gz)", kind="remote")) == ("foo-bar", "3")
    assert identify(ScanResult(target="weird", kind="file")) == (None, None)


# --- [tool.pkgvet] and --config ----------------------------------------------------------


def test_pyproject_options_apply_and_command_line_wins(work: Path) -> None:
    write(work / "pyproject.toml", '[tool.pkgvet]\nformat = "json"\nfail-on = "critical"\n')
    result = run("zzmal-1.0.tar.gz")
    assert json.loads(result.stdout)["results"][0]["verdict"] == "malicious"  # format = json
    assert result.exit_code == 0  # high < critical; rules-only malicious does not force 1
    result = run("--fail-on", "high", "-f", "summary", "zzmal-1.0.tar.gz")
    assert result.exit_code == 1 and result.stdout.startswith("malicious")
    result = run("--no-config", "zzmal-1.0.tar.gz")
    assert result.exit_code == 1 and "MALICIOUS" in result.stdout  # text, default fail-on


def test_config_select_ignore_model_and_budget(work: Path) -> None:
    write(
        work / "pkgvet.toml",
        'select = ["PV1", "PV2"]\nignore = "PV201"\nmodel = false\ntime-budget = 30\n'
        'min-severity = "info"\ndist = "sdist"\nindex-url = "https://pypi.example.invalid/simple"\n',
    )
    result = CliRunner().invoke(
        cli, ["scan", "--config", "pkgvet.toml", "-f", "json", "zzmal-1.0.tar.gz"]
    )
    (r,) = json.loads(result.stdout)["results"]
    assert {f["rule_id"] for f in r["findings"]} <= {"PV101", "PV102", "PV103", "PV202", "PV203"}
    assert r["model_probability"] is None  # model = false
    assert result.exit_code == 0


def test_config_and_no_config_conflict(work: Path) -> None:
    write(work / "pkgvet.toml", "")
    result = run("--config", "pkgvet.toml", "--no-config", "zzmal-1.0.tar.gz")
    assert result.exit_code == 2 and "exclude each other" in result.stderr


def test_explicit_pyproject_without_table_is_an_error(work: Path) -> None:
    write(work / "pyproject.toml", '[project]\nname = "x"\n')
    assert run("zzmal-1.0.tar.gz").exit_code == 1  # implicit: no [tool.pkgvet], no settings
    result = run("--config", "pyproject.toml", "zzmal-1.0.tar.gz")
    assert result.exit_code == 2 and "no [tool.pkgvet] table" in result.stderr


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[tool.pkgvet]\nfail_on = "high"\n', "'fail_on' (did you mean 'fail-on'?)"),
        ('[tool.pkgvet]\nformat = "yaml"\n', "unknown format 'yaml'"),
        ('[tool.pkgvet]\nfail-on = "severe"\n', "fail-on = 'severe'"),
        ("[tool.pkgvet]\ntime-budget = -1\n", "time-budget must be a positive number"),
        ('[tool.pkgvet]\nmodel = "no"\n', "model must be true or false"),
        ("[tool.pkgvet]\nselect = [1]\n", "select must be a rule id or prefix"),
        ("[tool.pkgvet]\nsuppress = 3\n", "suppress must be an array of tables"),
        (
            '[tool.pkgvet]\n[[tool.pkgvet.suppress]]\npackage = "six"\nrule = "PV201"\n',
            "[[tool.pkgvet.suppress]] entry 1 (package = 'six'): reason is required",
        ),
        (
            '[[tool.pkgvet.suppress]]\npackage = "a"\nreason = "x"\n'
            '[[tool.pkgvet.suppress]]\npackage = "six"\nreason = "  "\n',
            "entry 2 (package = 'six'): reason must be a non-empty string",
        ),
        (
            '[[tool.pkgvet.suppress]]\npackage = "six"\nreason = "x"\nrules = "PV2"\n',
            "entry 1 (package = 'six'): unknown key 'rules'",
        ),
        (
            '[[tool.pkgvet.suppress]]\npackage = "six"\nreason = "x"\nversion = 1.0\n',
            "version must be a non-empty string, not 1.0",
        ),
        ('[[tool.pkgvet.suppress]]\nreason = "x"\n', "entry 1: package is required"),
        (
            '[[tool.pkgvet.suppress]]\npackage = "not a name!"\nreason = "x"\n',
            "is not a package name",
        ),
        (
            '[[tool.pkgvet.suppress]]\npackage = "six"\nreason = "x"\nrule = "XX9"\n',
            "rule 'XX9' is no rule id or prefix",
        ),
        ("[tool.pkgvet\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error_naming_the_file(work: Path, text: str, needle: str) -> None:
    write(work / "pyproject.toml", text)
    result = run("zzmal-1.0.tar.gz")
    assert result.exit_code == 2, result.output
    assert "pyproject.toml" in result.stderr
    assert needle in " ".join(result.stderr.split()), result.stderr
    assert result.stdout == ""
    with pytest.raises(SettingsError):
        load_config(work / "pyproject.toml")


def test_suppressions_file_holds_only_entries(work: Path) -> None:
    write(work / "sup.toml", 'fail-on = "low"\n')
    result = run("--suppressions", "sup.toml", "zzmal-1.0.tar.gz")
    assert result.exit_code == 2
    assert "sup.toml: a suppressions file holds only [[suppress]] entries" in result.stderr
    write(work / "sup.toml", '[[suppress]]\npackage = "Six"\nversion = "1.16.0"\nreason = "ok"\n')
    (entry,) = load_suppressions(work / "sup.toml")
    assert (entry.package, entry.version, entry.rule, entry.allowlists) == (
        "six", "1.16.0", None, True
    )


def test_config_and_suppressions_file_combine(work: Path) -> None:
    write(
        work / "pyproject.toml",
        '[[tool.pkgvet.suppress]]\npackage = "zzmal"\nrule = "PV601"\nreason = "a"\n',
    )
    write(work / "sup.toml", '[[suppress]]\npackage = "zzmal"\nrule = "PV201"\nreason = "b"\n')
    _, doc = scan_json("--suppressions", "sup.toml", "zzmal-1.0.tar.gz")
    (r,) = doc["results"]
    got = {(f["rule_id"], f["reason"]) for f in r["suppressed"]}
    assert got >= {("PV601", "a"), ("PV201", "b")}
    _, doc = scan_json("--no-config", "--suppressions", "sup.toml", "zzmal-1.0.tar.gz")
    assert {f["rule_id"] for f in doc["results"][0]["suppressed"]} == {"PV201"}
