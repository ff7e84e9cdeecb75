"""The command line: ``pkgvet scan`` exit codes and formats, ``pkgvet rules``, ``python -m``.

Packages are built in tmp_path; the only subprocess runs pkgvet's own CLI, never package code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from conftest import make_zip, realistic_clean_sdist, sdist
from pkgvet.cli import cli

CLEAN_SETUP = "from setuptools import setup\n\nsetup(name='zzclean', version='1.0')\n"
# exec of a base64 payload that decodes to print(1): inert, but the canonical dropper shape
MAL_SETUP = 'import base64\nexec(base64.b64decode("cHJpbnQoMSk="))\n'
SHELL_SETUP = "import os\nos.system('make -C native')\n"  # PV101: build tool, medium


@pytest.fixture
def pkgs(tmp_path: Path) -> Path:
    d = tmp_path / "pkgs"
    d.mkdir()
    (d / "zzclean-1.0.tar.gz").write_bytes(realistic_clean_sdist())
    (d / "zzmal-1.0.tar.gz").write_bytes(sdist("zzmal", "1.0", {"setup.py": MAL_SETUP}))
    (d / "zzshell-1.0.tar.gz").write_bytes(sdist("zzshell", "1.0", {"setup.py": SHELL_SETUP}))
    return d


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def scan_json(*args: str | Path) -> tuple[Result, dict]:
    result = run("scan", "--format", "json", *args)
    return result, json.loads(result.stdout)


def test_scan_clean_package_exits_0(pkgs: Path) -> None:
    result = run("scan", pkgs / "zzclean-1.0.tar.gz")
    assert result.exit_code == 0, result.output
    assert "CLEAN" in result.stdout
    assert "zzclean" in result.stdout


def test_scan_malicious_package_exits_1(pkgs: Path) -> None:
    result = run("scan", pkgs / "zzmal-1.0.tar.gz")
    assert result.exit_code == 1, result.output
    assert "MALICIOUS" in result.stdout
    assert "PV201" in result.stdout
    assert "print(1)" in result.stdout  # the decoded payload is shown


def test_scan_missing_path_gives_a_clear_message(tmp_path: Path) -> None:
    result = run("scan", tmp_path / "nope.tar.gz")
    assert result.exit_code != 0
    assert "nope.tar.gz: no such file or directory" in result.stderr
    assert result.stdout == ""


def test_scan_missing_path_exits_2(tmp_path: Path) -> None:
    # Regression: a missing target exited 1 (= 'finding at or above --fail-on'), not 2 (= error).
    assert run("scan", tmp_path / "nope.tar.gz").exit_code == 2


def test_scan_unreadable_archive_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "zzbad-1.0.zip"
    bad.write_bytes(b"PK\x03\x04" + b"garbage" * 50)
    result = run("scan", bad)
    assert result.exit_code == 2
    assert "corrupt or truncated zip" in result.stdout


def test_json_format(pkgs: Path) -> None:
    result, doc = scan_json(pkgs / "zzmal-1.0.tar.gz")
    assert result.exit_code == 1
    assert doc["schema_version"] == 1
    assert doc["tool"]["name"] == "pkgvet"
    (r,) = doc["results"]
    assert r["verdict"] == "malicious"
    assert r["package"]["name"] == "zzmal"
    assert r["error"] is None
    assert r["findings"]
    for f in r["findings"]:
        assert {"rule_id", "line", "path", "severity", "category", "trigger"} <= set(f)
    pv201 = next(f for f in r["findings"] if f["rule_id"] == "PV201")
    assert pv201["line"] == 2
    assert pv201["path"] == "zzmal-1.0/setup.py"
    assert pv201["evidence"] == "print(1)"


def test_jsonl_format_streams_one_object_per_package(pkgs: Path) -> None:
    result = run("scan", "--format", "jsonl", pkgs)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["target"]).name for r in lines) == [
        "zzclean-1.0.tar.gz", "zzmal-1.0.tar.gz", "zzshell-1.0.tar.gz"]


def test_output_file(pkgs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run("scan", "--format", "json", "-o", out, pkgs / "zzmal-1.0.tar.gz")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(out.read_text())["results"][0]["verdict"] == "malicious"


def _rule_ids(doc: dict) -> set[str]:
    return {f["rule_id"] for r in doc["results"] for f in r["findings"]}


def test_select(pkgs: Path) -> None:
    _, doc = scan_json("--select", "PV201", pkgs / "zzmal-1.0.tar.gz")
    assert _rule_ids(doc) == {"PV201"}
    _, doc = scan_json("--select", "pv6", pkgs / "zzmal-1.0.tar.gz")  # prefix, any case
    assert _rule_ids(doc) and all(r.startswith("PV6") for r in _rule_ids(doc))
    _, doc = scan_json("--select", "PV101,PV201", pkgs / "zzmal-1.0.tar.gz")
    assert _rule_ids(doc) == {"PV201"}


def test_ignore(pkgs: Path) -> None:
    _, everything = scan_json(pkgs / "zzmal-1.0.tar.gz")
    assert "PV201" in _rule_ids(everything)
    _, doc = scan_json("--ignore", "PV201", "--ignore", "PV6",
                            pkgs / "zzmal-1.0.tar.gz")
    assert "PV201" not in _rule_ids(doc)
    assert not any(r.startswith("PV6") for r in _rule_ids(doc))
    assert _rule_ids(doc) == {r for r in _rule_ids(everything)
                              if r != "PV201" and not r.startswith("PV6")}


def test_ignoring_the_only_high_finding_changes_the_exit_code(pkgs: Path) -> None:
    assert run("scan", pkgs / "zzmal-1.0.tar.gz").exit_code == 1
    ignored = run("scan", "--no-model", "--ignore", "PV2,PV6", pkgs / "zzmal-1.0.tar.gz")
    assert ignored.exit_code == 0


def test_fail_on(pkgs: Path) -> None:
    mal = pkgs / "zzmal-1.0.tar.gz"
    assert run("scan", mal).exit_code == 1  # default: high
    assert run("scan", "--no-model", "--fail-on", "critical", mal).exit_code == 0
    # the model's malicious verdict fails whatever --fail-on says
    assert run("scan", "--fail-on", "critical", mal).exit_code == 1
    # rules only: a lone setup.py running a program is medium for the rules (the model, which
    # sees a package with no code of its own doing it at install time, calls it malicious)
    shell = pkgs / "zzshell-1.0.tar.gz"
    assert run("scan", "--no-model", shell).exit_code == 0  # medium only
    assert run("scan", "--no-model", "--fail-on", "medium", shell).exit_code == 1


def test_fail_on_rejects_unknown_severity(pkgs: Path) -> None:
    result = run("scan", "--fail-on", "catastrophic", pkgs)
    assert result.exit_code == 2
    assert "catastrophic" in result.stderr


def test_min_severity_hides_findings(pkgs: Path) -> None:
    _, doc = scan_json("--min-severity", "high", pkgs / "zzmal-1.0.tar.gz")
    severities = {f["severity"] for r in doc["results"] for f in r["findings"]}
    assert severities <= {"high", "critical"}


def test_summary_for_a_directory_of_packages(pkgs: Path) -> None:
    (pkgs / "zzbad-1.0.zip").write_bytes(b"PK\x03\x04broken")
    result = run("scan", "--format", "summary", pkgs)
    assert result.exit_code == 2  # one package could not be read
    lines = [line for line in result.stdout.splitlines() if ".tar.gz" in line or ".zip" in line]
    by_name = {Path(line.split()[3]).name: line for line in lines}
    assert set(by_name) == {"zzclean-1.0.tar.gz", "zzmal-1.0.tar.gz", "zzshell-1.0.tar.gz",
                            "zzbad-1.0.zip"}
    assert by_name["zzmal-1.0.tar.gz"].startswith("malicious")
    assert "PV201" in by_name["zzmal-1.0.tar.gz"]
    assert by_name["zzclean-1.0.tar.gz"].startswith("clean")
    assert by_name["zzbad-1.0.zip"].startswith("error")
    assert "error: corrupt or truncated zip" in by_name["zzbad-1.0.zip"]
    assert "4 packages" in result.stdout


def test_auto_format_is_summary_for_many(pkgs: Path) -> None:
    result = run("scan", pkgs)
    assert result.exit_code == 1
    assert "3 packages" in result.stdout


def test_text_format_for_many(pkgs: Path) -> None:
    result = run("scan", "--format", "text", pkgs)
    assert result.stdout.count("zzmal") >= 1 and "3 packages" in result.stdout


def test_password_option(tmp_path: Path) -> None:
    from hostile_archives import encrypted_zip

    inner = sdist("zzwrapped", "1.0", {"setup.py": MAL_SETUP})
    target = tmp_path / "zzwrapped-1.0.zip"
    target.write_bytes(encrypted_zip({"zzwrapped-1.0.tar.gz": inner}, b"s3cret"))
    result, doc = scan_json(target)
    assert result.exit_code == 2
    assert "password does not fit" in doc["results"][0]["error"]
    result, doc = scan_json("--password", "s3cret", target)
    assert result.exit_code == 1
    assert doc["results"][0]["package"]["name"] == "zzwrapped"


def test_time_budget_option(pkgs: Path) -> None:
    result, doc = scan_json("--time-budget", "0", pkgs / "zzclean-1.0.tar.gz")
    assert result.exit_code == 2
    assert "time budget" in doc["results"][0]["error"]


def test_no_packages_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("scan", tmp_path / "empty")
    assert result.exit_code != 0
    assert "no packages found" in result.stderr


def test_scan_several_targets(tmp_path: Path, pkgs: Path) -> None:
    whl = tmp_path / "zzwheel-1.0-py3-none-any.whl"
    whl.write_bytes(make_zip({"zzwheel/__init__.py": MAL_SETUP.encode()}))
    result, doc = scan_json(whl, pkgs / "zzclean-1.0.tar.gz")
    assert result.exit_code == 1
    assert [r["kind"] for r in doc["results"]] == ["wheel", "sdist"]


def test_scan_lone_setup_py(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text(MAL_SETUP)
    result, doc = scan_json(tmp_path / "setup.py")
    assert result.exit_code == 1
    assert doc["results"][0]["kind"] == "file"


def test_scan_unpacked_package_directory(tmp_path: Path) -> None:
    # Regression: iter_targets never yielded the root itself, so an unpacked package directory
    # given as a target was 'no packages found'.
    unpacked = tmp_path / "zzdir-1.0"
    unpacked.mkdir()
    (unpacked / "setup.py").write_text(MAL_SETUP)
    result = run("scan", "--format", "json", unpacked)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["results"][0]["kind"] == "directory"


def test_text_report_does_not_pass_terminal_escapes(tmp_path: Path) -> None:
    # Regression: snippets (and evidence/messages) from package code were printed verbatim, so
    # ESC sequences reached the terminal (rich only strips BEL/BS/VT/FF/CR).
    setup = "import os\nos.system('echo hi')  # \x1b]0;pwned\x07\x1b[2J\x1b[8m\n"
    target = tmp_path / "zzesc-1.0.tar.gz"
    target.write_bytes(sdist("zzesc", "1.0", {"setup.py": setup}))
    result = run("scan", "--format", "text", "--fail-on", "critical", target)
    assert "os.system" in result.stdout
    assert "\x1b" not in result.stdout


def test_member_names_cannot_inject_terminal_escapes(tmp_path: Path) -> None:
    target = tmp_path / "zzesc-1.0.tar.gz"
    target.write_bytes(sdist("zzesc", "1.0", {"zzesc/\x1b[2J.py": "import os\nos.system('x')\n"}))
    result = run("scan", "--format", "text", target)
    assert "\\x1b[2J.py" in result.stdout


# -- rules ----------------------------------------------------------------------------------


def test_rules_lists_every_rule() -> None:
    result = run("rules")
    assert result.exit_code == 0
    for rid in ("PV101", "PV201", "PV601", "PV806"):
        assert rid in result.stdout


def test_rules_shows_one_rules_documentation() -> None:
    result = run("rules", "PV201")
    assert result.exit_code == 0
    assert "PV201 exec-decoded-payload" in result.stdout
    assert "severity up to high" in result.stdout
    assert "base64" in result.stdout  # from the rule's docstring
    assert run("rules", "pv201").stdout == result.stdout


def test_rules_unknown_id() -> None:
    result = run("rules", "PV999")
    assert result.exit_code != 0
    assert "no rule 'PV999'" in result.stderr


# -- entry points ---------------------------------------------------------------------------


def test_help_and_version() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for cmd in ("scan", "rules", "collect"):
        assert cmd in result.stdout
    assert "0." in run("--version").stdout


def test_python_dash_m_pkgvet_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "pkgvet", "--help"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "pkgvet" in proc.stdout and "scan" in proc.stdout


def test_python_dash_m_pkgvet_scan(pkgs: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pkgvet", "scan", "--format", "json",
                           str(pkgs / "zzmal-1.0.tar.gz")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["verdict"] == "malicious"
