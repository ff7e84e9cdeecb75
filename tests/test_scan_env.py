"""``pkgvet scan --env``: an installed environment read through each distribution's RECORD
(as bytes, nothing imported), every top-level .pth scanned on its own, files outside the
prefix refused, broken distributions reported as errors while the scan goes on."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pkgvet.cli import cli
from pkgvet.config import Limits, ScanConfig
from pkgvet.environment import (
    Installed,
    PthFile,
    environment_jobs,
    prefix_of,
    scan_installed,
    site_packages,
)

PTH = "import base64;exec(base64.b64decode('cHJpbnQoMSk='))\n"  # decodes to print(1)


def _dist(site: Path, name: str, version: str, files: dict[str, str], extra: list[str]) -> None:
    """A dist-info with METADATA and a RECORD listing ``files`` (written below ``site``) and
    ``extra`` names (written by the caller, or absent)."""
    info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        "Summary: test package\nAuthor: Test\n",
    }
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text, encoding="utf-8")
    rows = [f"{rel},sha256=x,{len(text)}" for rel, text in files.items()]
    rows += [f"{rel},," for rel in extra] + [f"{info}/RECORD,,"]
    (site / info / "RECORD").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A fake virtualenv: one inert "malicious" dist with a .pth, one clean dist with a console
    script in bin/, one dist without RECORD, one egg-info."""
    root = tmp_path / "venv"
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "bin").mkdir()
    (root / "bin" / "zzclean-cli").write_text("#!python\nfrom zzclean import main\nmain()\n")
    (tmp_path / "outside.py").write_text(PTH)  # would be found if it were read
    _dist(
        site,
        "zzdrop",
        "1.0",
        {"zzdrop/__init__.py": "VALUE = 1\n", "zzdrop_hook.pth": PTH, "zzdrop/big.txt": "x" * 1000},
        ["../../../../outside.py", "/etc/zz-absolute-outside.py", "zzdrop/gone.py", "zzdrop/ln.py"],
    )
    _dist(
        site,
        "zzclean",
        "2.0",
        {"zzclean/__init__.py": "def main():\n    return 'hello'\n"},
        ["../../../bin/zzclean-cli", "zzclean/__pycache__/x.cpython-311.pyc"],
    )
    os.symlink(tmp_path / "outside.py", site / "zzdrop" / "ln.py")
    (site / "zzbroken-3.0.dist-info").mkdir()
    (site / "zzbroken-3.0.dist-info" / "METADATA").write_text("Name: zzbroken\nVersion: 3.0\n")
    egg = site / "zzegg-0.5-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: zzegg\nVersion: 0.5\n")
    (egg / "installed-files.txt").write_text("../zzegg.py\nPKG-INFO\n")
    (site / "zzegg.py").write_text("X = 1\n")
    (site / "zzclean.pth").write_text("/some/path/entry\n")  # a plain path line: inert
    return root


def _scan(*args: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    res = CliRunner().invoke(cli, ["scan", "--no-model", "-f", "json", *args])
    doc = json.loads(res.stdout)
    return res.exit_code, {r["target"]: r for r in doc["results"]}, res.stderr


def test_site_packages_and_prefix(venv: Path) -> None:
    site = venv / "lib" / "python3.11" / "site-packages"
    assert site_packages(venv) == [site]
    assert site_packages(site) == [site]
    assert prefix_of(site) == venv
    jobs = environment_jobs(venv)
    names = [j.meta.name if isinstance(j, Installed) else j.path.name for j in jobs]
    assert names == [
        "zzbroken-3.0.dist-info",
        "zzclean-2.0.dist-info",
        "zzdrop-1.0.dist-info",
        "zzegg-0.5-py3.11.egg-info",
        "zzclean.pth",
        "zzdrop_hook.pth",
    ]
    owners = {j.path.name: j.owner for j in jobs if isinstance(j, PthFile)}
    assert owners == {"zzclean.pth": None, "zzdrop_hook.pth": "zzdrop-1.0 (installed)"}


def test_scan_env(venv: Path) -> None:
    code, results, _err = _scan("--env", str(venv))
    assert code == 2  # the broken distribution is an error; the others are scanned
    assert set(results) == {
        "zzbroken-3.0 (installed)",
        "zzclean-2.0 (installed)",
        "zzdrop-1.0 (installed)",
        "zzegg-0.5 (installed)",
        str(venv / "lib/python3.11/site-packages/zzclean.pth"),
        str(venv / "lib/python3.11/site-packages/zzdrop_hook.pth"),
    }
    assert "no RECORD" in results["zzbroken-3.0 (installed)"]["error"]
    assert results["zzbroken-3.0 (installed)"]["verdict"] == "error"

    drop = results["zzdrop-1.0 (installed)"]
    assert drop["kind"] == "installed" and drop["verdict"] == "malicious"
    assert drop["package"]["name"] == "zzdrop" and drop["package"]["version"] == "1.0"
    pth = [f for f in drop["findings"] if f["path"] == "zzdrop_hook.pth"]
    assert pth and any("print(1)" in (f["evidence"] or "") for f in pth)
    assert not any("outside" in f["path"] and f["rule_id"] != "PV806" for f in drop["findings"])
    refused = {s["path"]: s["reason"] for s in drop["skips"]}
    assert refused["../../../../outside.py"] == "not read: outside the environment"
    assert refused["/etc/zz-absolute-outside.py"] == "not read: outside the environment"
    assert any("missing" in r and "zzdrop/gone.py" in r for r in refused.values())
    assert any(f["rule_id"] == "PV806" for f in drop["findings"])  # RECORD escapes the prefix
    assert refused["zzdrop/ln.py"] == "not followed: symbolic link"

    clean = results["zzclean-2.0 (installed)"]
    assert clean["verdict"] == "clean" and clean["error"] is None
    assert clean["stats"]["files"] == 4  # module, bin script, METADATA, RECORD; no .pyc

    egg = results["zzegg-0.5 (installed)"]
    assert egg["error"] is None and egg["stats"]["files"] == 3  # zzegg.py, PKG-INFO, list

    hook = results[str(venv / "lib/python3.11/site-packages/zzdrop_hook.pth")]
    assert hook["verdict"] == "malicious"  # a .pth's import line runs at every start-up
    assert any("installed by zzdrop-1.0 (installed)" in r for r in hook["reasons"])
    assert results[str(venv / "lib/python3.11/site-packages/zzclean.pth")]["verdict"] == "clean"
    assert "zzdrop" not in sys.modules and "zzclean" not in sys.modules  # nothing imported


def test_scan_env_site_packages_and_summary(venv: Path) -> None:
    site = venv / "lib" / "python3.11" / "site-packages"
    res = CliRunner().invoke(cli, ["scan", "--no-model", "--env", str(site)])
    assert res.exit_code == 2
    assert "malicious" in res.stdout and "zzdrop-1.0 (installed)" in res.stdout
    assert "6 packages" in res.stdout  # auto format: summary lines and the verdict table


def test_scan_env_without_path_is_the_running_interpreter(
    venv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = venv / "lib" / "python3.11" / "site-packages"
    monkeypatch.setattr(
        "pkgvet.environment.sysconfig.get_paths",
        lambda: {"purelib": str(site), "platlib": str(site)},
    )
    _code, results, _err = _scan("--env")
    assert "zzdrop-1.0 (installed)" in results and len(results) == 6  # purelib == platlib


def test_limits_apply_to_installed_files(venv: Path) -> None:
    site = venv / "lib" / "python3.11" / "site-packages"
    dist = Installed(site, site / "zzdrop-1.0.dist-info", venv)
    config = ScanConfig(limits=Limits(max_members=2), use_model=False)
    result = scan_installed(dist, config)
    assert result.verdict.value == "error" and "more than 2 members" in str(result.error)
    small = ScanConfig(limits=Limits(max_member_bytes=600), use_model=False)
    result = scan_installed(dist, small)
    assert result.error is None
    assert any(
        s.path == "zzdrop/big.txt" and "over the member limit" in s.reason for s in result.skips
    )
    tiny = ScanConfig(limits=Limits(max_member_bytes=20), use_model=False)
    assert "RECORD of" in str(scan_installed(dist, tiny).error)  # the list itself is too big


def test_not_an_environment(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["scan", "--no-model", "--env", str(tmp_path)])
    assert res.exit_code == 2 and "no site-packages found" in res.output
    res = CliRunner().invoke(cli, ["scan", "--no-model", "--env", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a directory" in res.output


def test_a_lone_pth_is_judged_by_the_rules(venv: Path) -> None:
    """The model is trained on whole packages: a lone .pth gets the rules-only verdict, so
    setuptools' distutils-precedence.pth is not called malicious, while a decoded exec is."""
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "distutils-precedence.pth").write_text(
        "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') "
        "== 'local'; enabled and __import__('_distutils_hack').add_shim(); \n"
    )
    shim = scan_installed(PthFile(site / "distutils-precedence.pth", None), ScanConfig())
    assert shim.model_probability is None and shim.verdict.value != "malicious"
    assert any("no RECORD lists it" in r for r in shim.reasons)
    hook = scan_installed(PthFile(site / "zzdrop_hook.pth", "zzdrop"), ScanConfig())
    assert hook.model_probability is None and hook.verdict.value == "malicious"
