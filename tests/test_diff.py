"""Release diffs (``pkgvet diff``, ``scan --compare-previous``): every PD check has a must-fire
and a must-not-fire pair of inert releases; the CLI is driven on local archives and against the
loopback fake index. Payloads decode to ``print(1)``; hosts are on ``example.invalid``."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import sdist
from pkgvet.analysis.builder import build_context
from pkgvet.archive import read_archive
from pkgvet.cli import cli
from pkgvet.collect.index import DistFile, Project
from pkgvet.config import Limits
from pkgvet.diff import DIFF_REGISTRY, diff_packages
from pkgvet.models import Finding, Severity
from pkgvet.remote import previous_version
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)

SETUP = "from setuptools import setup\nsetup(name='zzpkg', version='1.0', packages=['zzpkg'])\n"
INIT = "def hello():\n    return 'hi'\n"
BASE: dict[str, str | bytes] = {"setup.py": SETUP, "zzpkg/__init__.py": INIT}
ELF = b"\x7fELF" + b"\x00" * 200
_B64 = base64.b64encode(b"print(1)").decode()
BLOB = base64.b64encode(b"print(1)\n" * 16).decode()  # long enough to be a blob
PKG_INFO = (
    "Metadata-Version: 2.1\nName: zzpkg\nVersion: {v}\nSummary: test package\n"
    "Author: Test Author\nAuthor-email: {email}\nHome-page: https://example.invalid/zzpkg\n"
)


def _pkg(files: dict[str, str | bytes], version: str = "1.0") -> bytes:
    return sdist("zzpkg", version, files)


def _ctx(data: bytes, name: str):  # type: ignore[no-untyped-def]
    archive = read_archive(data, name, Limits())
    return build_context(archive, Limits(), float("inf"))


def _diff(old: dict[str, str | bytes], new: dict[str, str | bytes]) -> list[Finding]:
    a = _ctx(_pkg(old), "zzpkg-1.0.tar.gz")
    b = _ctx(_pkg(new, "1.1"), "zzpkg-1.1.tar.gz")
    findings, skips = diff_packages(a, b)
    assert not skips
    return findings


@dataclass(frozen=True)
class Case:
    old: dict[str, str | bytes]
    fire: dict[str, str | bytes]  # the new release that must fire
    quiet: dict[str, str | bytes]  # a new release that must not
    severity: Severity  # of the fire finding


CASES: dict[str, Case] = {
    "PD001": Case(
        BASE,
        {
            **BASE,
            "setup.py": "from setuptools import setup\n"
            "from setuptools.command.install import install\n"
            "class PostInstall(install):\n    def run(self):\n        install.run(self)\n"
            "setup(name='zzpkg', version='1.1', cmdclass={'install': PostInstall})\n",
        },
        {**BASE, "setup.py": SETUP.replace("1.0", "1.1")},
        Severity.HIGH,
    ),
    "PD002": Case(
        BASE,
        {**BASE, "setup.py": "import shutil\nshutil.copyfile('zzpkg/a.txt', 'zzpkg/b.txt')\n"
         + SETUP},
        {
            **BASE,
            "setup.py": "import os\nhere = os.path.abspath(os.path.dirname(__file__))\n"
            "long = open(os.path.join(here, 'README.md')).read().strip()\n" + SETUP,
        },
        Severity.MEDIUM,
    ),
    "PD003": Case(
        BASE,
        {
            **BASE,
            "zzpkg/__init__.py": "import urllib.request\n"
            "urllib.request.urlopen('https://example.invalid/x')\n" + INIT,
        },
        {**BASE, "zzpkg/__init__.py": INIT + "def bye():\n    return 'bye'\n"},
        Severity.HIGH,
    ),
    "PD004": Case(
        {**BASE, "zzpkg/cfg.py": "def load(p):\n    exec(compile(open(p).read(), p, 'exec'))\n"},
        {**BASE, "setup.py": f"import base64\nexec(base64.b64decode('{_B64}'))\n" + SETUP},
        {
            **BASE,
            "zzpkg/cfg.py": "def load(p):\n    x = 1\n"
            "    exec(compile(open(p).read(), p, 'exec'))\n",
        },
        Severity.HIGH,
    ),
    "PD005": Case(
        {**BASE, "zzpkg/data.py": f"BLOB = '{BLOB}'\n"},
        {**BASE, "zzpkg/__init__.py": f"_D = '{BLOB}'\n" + INIT},
        {**BASE, "zzpkg/data.py": f"# moved nothing\nBLOB = '{BLOB}'\n"},
        Severity.HIGH,
    ),
    "PD006": Case(
        BASE,
        {**BASE, "zzpkg/bin/tool": ELF},
        {**BASE, "zzpkg/data/readme.txt": "plain text\n"},
        Severity.MEDIUM,
    ),
    "PD007": Case(
        BASE,
        {**BASE, "setup.py": "import build_helpers\n" + SETUP, "build_helpers.py": "X = 1\n"},
        {**BASE, "zzpkg/util.py": "def twice(x):\n    return 2 * x\n"},
        Severity.MEDIUM,
    ),
    "PD008": Case(
        {**BASE, "PKG-INFO": PKG_INFO.format(v="1.0", email="dev@example.invalid")},
        {**BASE, "PKG-INFO": PKG_INFO.format(v="1.1", email="new-owner@example.invalid")},
        {**BASE, "PKG-INFO": PKG_INFO.format(v="1.1", email=" DEV@example.invalid")},
        Severity.MEDIUM,
    ),
    "PD009": Case(
        {**BASE, "zzpkg/doc.py": "HELP = 'credentials live in ~/.netrc'\n"},
        {
            **BASE,
            "zzpkg/__init__.py": "import os\n"
            "T = open(os.path.expanduser('~/.aws/credentials')).read()\n" + INIT,
        },
        {**BASE, "zzpkg/doc.py": "HELP = 'credentials live in ~/.netrc (see docs)'\n"},
        Severity.HIGH,
    ),
}


def test_every_diff_check_has_a_case() -> None:
    assert sorted(CASES) == sorted(DIFF_REGISTRY)
    for rid, rule in DIFF_REGISTRY.items():
        assert rule.meta.description, f"{rid} has no documentation"


@pytest.mark.parametrize("rid", sorted(CASES))
def test_diff_check_fires(rid: str) -> None:
    case = CASES[rid]
    hits = [f for f in _diff(case.old, case.fire) if f.rule_id == rid]
    assert hits, f"{rid} did not fire"
    assert max(f.severity for f in hits) == case.severity, hits


@pytest.mark.parametrize("rid", sorted(CASES))
def test_diff_check_stays_quiet(rid: str) -> None:
    case = CASES[rid]
    hits = [f for f in _diff(case.old, case.quiet) if f.rule_id == rid]
    assert not hits, hits


def test_identical_releases_have_no_diff_findings() -> None:
    files = CASES["PD003"].fire
    assert _diff(files, files) == []


def test_capability_severity_follows_trigger_and_history() -> None:
    lazy = {**BASE, "zzpkg/net.py": "import socket\ndef ping():\n    socket.create_connection("
            "('example.invalid', 80))\n"}
    found = [f for f in _diff(BASE, lazy) if f.rule_id == "PD003"]
    assert [(f.severity, f.trigger.value) for f in found] == [(Severity.MEDIUM, "runtime")]
    moved = {**BASE, "zzpkg/other.py": lazy["zzpkg/net.py"]}
    found = [f for f in _diff(lazy, moved) if f.rule_id == "PD003"]
    assert found and all(f.severity is Severity.LOW for f in found)


def test_decoded_payload_is_evidence() -> None:
    found = [f for f in _diff(BASE, CASES["PD004"].fire) if f.rule_id == "PD005"]
    assert found and "print(1)" in found[0].evidence
    assert found[0].path.endswith("setup.py") and found[0].line == 2


def test_new_pth_file_is_an_install_hook() -> None:
    new = {**BASE, "zz_hook.pth": "import os; os.getcwd()\n"}
    found = [f for f in _diff(BASE, new) if f.rule_id == "PD001"]
    assert found and found[0].severity is Severity.HIGH and found[0].trigger.value == "install"


# -- the command --------------------------------------------------------------------------------


def _write(tmp_path: Path, files: dict[str, str | bytes], version: str) -> Path:
    p = tmp_path / f"zzpkg-{version}.tar.gz"
    p.write_bytes(_pkg(files, version))
    return p


def test_diff_command_on_local_archives(tmp_path: Path) -> None:
    old = _write(tmp_path, BASE, "1.0")
    new = _write(tmp_path, CASES["PD004"].fire, "1.1")
    res = CliRunner().invoke(cli, ["diff", str(old), str(new), "-f", "json"])
    assert res.exit_code == 1, res.output
    result = json.loads(res.stdout)["results"][0]
    assert "→" in result["target"] and result["target"].endswith("zzpkg-1.1.tar.gz")
    assert {"PD004", "PD005"} <= {f["rule_id"] for f in result["findings"]}
    assert result["verdict"] == "suspicious"  # a change is a reason to look, not proof
    assert result["reasons"][0] == "diff 1.0 → 1.1"
    text = CliRunner().invoke(cli, ["diff", str(old), str(new)])
    assert text.exit_code == 1 and text.stdout.startswith("pkgvet diff: ")
    quiet = CliRunner().invoke(cli, ["diff", str(old), str(old), "-f", "markdown"])
    assert quiet.exit_code == 0 and "pkgvet diff" in quiet.stdout
    ignored = CliRunner().invoke(cli, ["diff", str(old), str(new), "--ignore", "PD", "-f", "json"])
    assert ignored.exit_code == 0 and json.loads(ignored.stdout)["results"][0]["findings"] == []


def test_diff_command_errors(tmp_path: Path) -> None:
    old = _write(tmp_path, BASE, "1.0")
    bad = tmp_path / "broken-1.1.tar.gz"
    bad.write_bytes(b"\x1f\x8bnot really gzip")
    res = CliRunner().invoke(cli, ["diff", str(old), str(bad), "-f", "json"])
    assert res.exit_code == 2 and json.loads(res.stdout)["results"][0]["error"]
    assert CliRunner().invoke(cli, ["diff", str(old)]).exit_code == 2
    assert CliRunner().invoke(cli, ["diff", str(old), str(tmp_path / "nope.tar.gz")]).exit_code == 2


def test_diff_command_by_name(index: FakeIndex, cache: Path) -> None:  # noqa: F811
    index.add("zzpkg", "1.0", "zzpkg-1.0.tar.gz", body=_pkg(BASE))
    index.add("zzpkg", "1.1", "zzpkg-1.1.tar.gz", body=_pkg(CASES["PD001"].fire, "1.1"))
    res = CliRunner().invoke(
        cli, ["diff", "--index-url", index.index_url, "-f", "json", "zzpkg", "1.0", "1.1"]
    )
    assert res.exit_code == 1, res.output
    result = json.loads(res.stdout)["results"][0]
    assert result["target"] == "zzpkg==1.0 (zzpkg-1.0.tar.gz) → zzpkg==1.1 (zzpkg-1.1.tar.gz)"
    assert "PD001" in {f["rule_id"] for f in result["findings"]}
    missing = CliRunner().invoke(
        cli, ["diff", "--index-url", index.index_url, "-f", "json", "zzpkg", "0.1", "1.1"]
    )
    assert missing.exit_code == 2 and "no release 0.1" in missing.stdout


def _file(version: str, yanked: bool = False, kind: str = "sdist") -> DistFile:
    return DistFile(f"zz-{version}.tar.gz", "https://example.invalid/f", "0" * 64, 1, "", kind,
                    yanked)


def test_previous_version_ordering() -> None:
    project = Project(
        "zz",
        {
            "1.0": (_file("1.0"),),
            "1.2": (_file("1.2", yanked=True),),
            "1.10": (_file("1.10"),),
            "1.9": (_file("1.9"),),
            "2.0rc1": (_file("2.0rc1"),),
            "bogus": (_file("bogus"),),
            "0.5": (),
        },
    )
    assert previous_version(project, "1.10") == "1.9"  # version order, not text order
    assert previous_version(project, "1.9") == "1.0"  # 1.2 is yanked
    assert previous_version(project, "2.0") == "2.0rc1"
    assert previous_version(project, "1.0") is None  # 0.5 has no files
    assert previous_version(project, "bogus") is None


def test_scan_compare_previous(index: FakeIndex, cache: Path) -> None:  # noqa: F811
    index.add("zzpkg", "1.0", "zzpkg-1.0.tar.gz", body=_pkg(BASE))
    index.add("zzpkg", "1.1", "zzpkg-1.1.tar.gz", yanked=True, body=_pkg(BASE, "1.1"))
    index.add("zzpkg", "1.2", "zzpkg-1.2.tar.gz", body=_pkg(CASES["PD003"].fire, "1.2"))
    args = ["scan", "--index-url", index.index_url, "-f", "json", "--no-model",
            "--compare-previous"]
    res = CliRunner().invoke(cli, [*args, "zzpkg"])
    result = json.loads(res.stdout)["results"][0]
    assert result["target"] == "zzpkg==1.2 (zzpkg-1.2.tar.gz)"
    pd = [f for f in result["findings"] if f["rule_id"].startswith("PD")]
    assert [f["rule_id"] for f in pd] == ["PD003"] and pd[0]["severity"] == "high"
    assert any("compared with zzpkg==1.0 (zzpkg-1.0.tar.gz)" in r for r in result["reasons"])
    assert res.exit_code == 1
    first = json.loads(CliRunner().invoke(cli, [*args, "zzpkg==1.0"]).stdout)["results"][0]
    assert not [f for f in first["findings"] if f["rule_id"].startswith("PD")]
    assert any("no previous release" in s["reason"] for s in first["skips"])
    plain = json.loads(CliRunner().invoke(cli, [*args[:-1], "zzpkg"]).stdout)["results"][0]
    assert not [f for f in plain["findings"] if f["rule_id"].startswith("PD")]
