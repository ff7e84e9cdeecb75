"""SARIF 2.1.0 output (``-f sarif``): every document validates against the official schema
(committed as tests/data/sarif-schema-2.1.0.json; no network), levels follow severities, locations
name the file and line inside the package, the verdict is a result, errors are notifications.

Packages are small inert archives built in tmp_path (payloads decode to ``print(1)``)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from conftest import realistic_clean_sdist, sdist
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
from pkgvet.report.base import get_format
from pkgvet.report.sarif import VERDICT_RULE, artifact_uri, level

SCHEMA_PATH = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
MAL_SETUP = 'import base64\nexec(base64.b64decode("cHJpbnQoMSk="))\n'


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")  # the final 2.1.0 (errata 01)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture
def pkgs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # relative targets; no pyproject.toml here
    (tmp_path / "zzmal-1.0.tar.gz").write_bytes(sdist("zzmal", "1.0", {"setup.py": MAL_SETUP}))
    (tmp_path / "zzclean-1.0.tar.gz").write_bytes(realistic_clean_sdist())
    (tmp_path / "zzbad-1.0.tar.gz").write_bytes(b"\x1f\x8b" + b"not really gzip" * 20)
    return tmp_path


def sarif(*args: str, validator: jsonschema.protocols.Validator) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["scan", "-f", "sarif", "--no-model", "--no-config", *args], catch_exceptions=False
    )
    doc = json.loads(result.stdout)
    validator.validate(doc)
    return result, doc


def run_of(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["version"] == "2.1.0"
    (run,) = doc["runs"]
    return run


def test_malicious_package(pkgs: Path, validator: jsonschema.protocols.Validator) -> None:
    result, doc = sarif("zzmal-1.0.tar.gz", validator=validator)
    assert result.exit_code == 1
    run = run_of(doc)
    driver = run["tool"]["driver"]
    assert driver["name"] == "pkgvet" and driver["version"] and driver["informationUri"]
    rules = {r["id"]: r for r in driver["rules"]}
    assert rules["PV201"]["defaultConfiguration"]["level"] == "error"
    assert rules["PV201"]["properties"]["category"] == "code_execution"
    assert "security" in rules["PV201"]["properties"]["tags"]
    assert rules["PV201"]["shortDescription"]["text"]
    assert VERDICT_RULE in rules
    for r in run["results"]:  # ruleIndex points at the rule of the same id
        assert driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
    verdict, *findings = run["results"]
    assert verdict["ruleId"] == VERDICT_RULE and verdict["level"] == "error"
    assert verdict["properties"]["verdict"] == "malicious"
    assert "PV201" in verdict["message"]["text"]
    loc = verdict["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "zzmal-1.0.tar.gz"
    pv201 = next(r for r in findings if r["ruleId"] == "PV201")
    assert pv201["level"] == "error"
    assert "print(1)" in pv201["message"]["text"]  # the decoded payload
    loc = pv201["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "zzmal-1.0.tar.gz/zzmal-1.0/setup.py"
    assert loc["region"]["startLine"] == 2
    props = pv201["properties"]
    assert props["package"] == "zzmal" and props["version"] == "1.0"
    assert props["trigger"] == "install" and props["category"] == "code_execution"
    assert props["verdict"] == "malicious" and props["score"] > 0
    pv601 = next(r for r in findings if r["ruleId"] == "PV601")
    assert pv601["level"] == "warning"  # medium
    fps = [r["partialFingerprints"]["pkgvet/v1"] for r in run["results"]]
    assert len(set(fps)) == len(fps)
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["invocations"][0]["toolExecutionNotifications"] == []


def test_clean_package_has_no_verdict_or_error(
    pkgs: Path, validator: jsonschema.protocols.Validator
) -> None:
    result, doc = sarif("zzclean-1.0.tar.gz", validator=validator)
    assert result.exit_code == 0
    run = run_of(doc)
    assert all(r["ruleId"] != VERDICT_RULE for r in run["results"])
    assert all(r["level"] != "error" for r in run["results"])
    assert run["invocations"][0]["executionSuccessful"] is True


def test_zero_findings(pkgs: Path, validator: jsonschema.protocols.Validator) -> None:
    result, doc = sarif("--select", "PV201", "zzclean-1.0.tar.gz", validator=validator)
    assert result.exit_code == 0
    run = run_of(doc)
    assert run["results"] == []
    assert len(run["tool"]["driver"]["rules"]) > 30  # every rule is still declared


def test_corrupt_archive_is_a_notification(
    pkgs: Path, validator: jsonschema.protocols.Validator
) -> None:
    result, doc = sarif("zzbad-1.0.tar.gz", "zzmal-1.0.tar.gz", validator=validator)
    assert result.exit_code == 2
    run = run_of(doc)
    (inv,) = run["invocations"]
    assert inv["executionSuccessful"] is False
    (note,) = inv["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert "zzbad-1.0.tar.gz" in note["message"]["text"]
    uri = note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "zzbad-1.0.tar.gz"
    assert any(r["ruleId"] == "PV201" for r in run["results"])  # the others are still scanned


def test_output_is_deterministic(pkgs: Path, validator: jsonschema.protocols.Validator) -> None:
    args = ["scan", "-f", "sarif", "--no-model", "--no-config"]
    args += ["zzmal-1.0.tar.gz", "zzbad-1.0.tar.gz"]
    first = CliRunner().invoke(cli, [*args, "-o", "a.sarif"])
    second = CliRunner().invoke(cli, [*args, "-o", "b.sarif"])
    assert first.exit_code == second.exit_code == 2
    assert Path("a.sarif").read_bytes() == Path("b.sarif").read_bytes()
    validator.validate(json.loads(Path("a.sarif").read_text(encoding="utf-8")))


def _finding(rule: str, severity: Severity, line: int = 3, path: str = "p-1.0/p/__init__.py"):
    return Finding(
        rule_id=rule,
        title="t",
        severity=severity,
        confidence=Confidence.HIGH,
        category=Category.CODE_EXECUTION,
        trigger=Trigger.IMPORT,
        path=path,
        line=line,
        message="m",
        evidence="print(1)",
    )


def test_levels_and_model_verdict(validator: jsonschema.protocols.Validator) -> None:
    assert [level(s) for s in Severity] == ["note", "note", "warning", "error", "error"]
    r = ScanResult(
        target="dist/p-1.0.tar.gz",
        kind="sdist",
        package=PackageInfo(name="p", version="1.0"),
        findings=[
            _finding("PV201", Severity.CRITICAL),
            _finding("PV201", Severity.CRITICAL),  # the same twice: fingerprints stay unique
            _finding("PV804", Severity.LOW, line=0, path="p-1.0/PKG-INFO"),
        ],
        verdict=Verdict.SUSPICIOUS,
        score=0.61,
        model_probability=0.61,
        model_version="abc123",
        reasons=["model probability 0.610 (model abc123)", "PV201 t"],
    )
    out = io.StringIO()
    get_format("sarif").finish([r], out)
    doc = json.loads(out.getvalue())
    validator.validate(doc)
    verdict, *results = run_of(doc)["results"]
    assert verdict["level"] == "warning"  # suspicious
    assert "model probability 0.610" in verdict["message"]["text"]
    assert verdict["properties"]["model_probability"] == 0.61
    assert [x["level"] for x in results] == ["error", "error", "note"]
    assert "region" not in results[2]["locations"][0]["physicalLocation"]  # no line known
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "dist/p-1.0.tar.gz/p-1.0/p/__init__.py"
    )
    fps = [x["partialFingerprints"]["pkgvet/v1"] for x in results]
    assert len(set(fps)) == 3


def test_artifact_uris_are_relative_and_encoded() -> None:
    assert artifact_uri("/abs/dir/p-1.0.whl", "p/x.py") == "p-1.0.whl/p/x.py"
    fetched = "requests==2.32.3 (requests-2.32.3.tar.gz)"
    assert artifact_uri(fetched, "requests-2.32.3/setup.py") == (
        "requests-2.32.3.tar.gz/requests-2.32.3/setup.py"
    )
    assert artifact_uri("six-1.16.0 (installed)", "six.py") == "six-1.16.0/six.py"
    nested = artifact_uri("a.zip", "outer.tar.gz!p-1.0/setup.py")
    assert nested == "a.zip/outer.tar.gz/p-1.0/setup.py"
    assert artifact_uri("../up/p dir", "a b.py") == "up/p%20dir/a%20b.py"
    assert artifact_uri("name==1.0") == "name==1.0"


def test_descriptors_cover_diff_and_known_rules() -> None:
    from pkgvet.diff import DIFF_REGISTRY
    from pkgvet.report.sarif import _rule_descriptors

    ids = [r["id"] for r in _rule_descriptors()]
    assert len(ids) == len(set(ids))
    assert "PV000" in ids and set(DIFF_REGISTRY) <= set(ids) and "PV101" in ids
