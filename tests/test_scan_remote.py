"""``pkgvet scan NAME`` / ``NAME==VERSION`` against a real HTTP index on loopback serving inert
packages (the collector's fake index): fetch, sha256 check, cache, scan, per-entry errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import realistic_clean_sdist, sdist
from pkgvet.cli import cli
from pkgvet.remote import RemoteError, Spec, parse_spec
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)

_PAYLOAD = base64.b64encode(b"print(1)").decode()
DROPPER = sdist(
    "zzdrop", "1.0", {"setup.py": f"import base64\nexec(base64.b64decode('{_PAYLOAD}'))\n"}
)


def _scan(fake: FakeIndex, *args: str) -> tuple[int, list[dict[str, object]]]:
    res = CliRunner().invoke(cli, ["scan", "--index-url", fake.index_url, "-f", "json", *args])
    doc = json.loads(res.stdout)
    return res.exit_code, doc["results"]


def test_parse_spec() -> None:
    assert parse_spec("requests") == Spec("requests", None)
    assert parse_spec("requests==2.31.0") == Spec("requests", "2.31.0")
    assert parse_spec("./no/such/file.tar.gz") is None
    with pytest.raises(RemoteError, match="no resolver"):
        parse_spec("requests>=2")


def test_scan_by_name_and_pin(index: FakeIndex, cache: Path) -> None:  # noqa: F811
    index.add("zzdrop", "1.0", "zzdrop-1.0.tar.gz", body=DROPPER)
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    code, results = _scan(index, "zzdrop==1.0", "zzclean")
    assert code == 1
    by_target = {r["target"]: r for r in results}
    assert by_target["zzdrop==1.0 (zzdrop-1.0.tar.gz)"]["verdict"] == "malicious"
    assert by_target["zzclean==1.0 (zzclean-1.0.tar.gz)"]["verdict"] == "clean"
    assert any(cache.rglob("zzdrop-1.0.tar.gz"))  # cached, sha256-verified by the collector


def test_missing_yanked_and_bad_hash_are_errors_per_entry(
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
) -> None:
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    index.add("zzold", "0.1", "zzold-0.1.tar.gz", yanked=True)
    index.add("zzbad", "1.0", "zzbad-1.0.tar.gz", sha256="0" * 64)
    code, results = _scan(index, "zzclean", "zzold==0.1", "zznone", "zzbad", "zzclean==9.9")
    assert code == 2
    errors = {r["target"]: r["error"] for r in results if r["error"]}
    assert "yanked" in errors["zzold==0.1"]
    assert "zznone" in errors and "zzbad" in errors
    assert "no release 9.9" in errors["zzclean==9.9"]
    assert any(r["verdict"] == "clean" for r in results)  # the good entry is still scanned


def test_all_files_of_a_release(index: FakeIndex, cache: Path) -> None:  # noqa: F811
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    index.add("zzclean", "1.0", "zzclean-1.0-py3-none-any.whl", packagetype="bdist_wheel")
    _code, results = _scan(index, "--dist", "all", "zzclean==1.0")
    assert sorted(r["kind"] for r in results) == ["sdist", "wheel"]


def test_ranges_and_garbage_are_usage_errors() -> None:
    res = CliRunner().invoke(cli, ["scan", "requests>=2"])
    assert res.exit_code == 2 and "no resolver" in res.output
    res = CliRunner().invoke(cli, ["scan", "not a package!"])
    assert res.exit_code == 2 and "not a NAME==VERSION" in res.output


@pytest.mark.network
def test_scan_a_pinned_release_from_pypi() -> None:
    """The one test that reaches the public index (CI has it; deselect with -m 'not network')."""
    res = CliRunner().invoke(cli, ["scan", "-f", "json", "six==1.16.0"])
    if res.exit_code == 2 and "six==1.16.0 (" not in res.stdout:
        pytest.skip(f"the public index is not reachable here: {res.output[-200:]}")
    result = json.loads(res.stdout)["results"][0]
    assert result["target"] == "six==1.16.0 (six-1.16.0.tar.gz)"
    assert result["verdict"] == "clean"


def test_requirements_file_pins_hashes_includes_markers_and_ranges(
    tmp_path: Path,
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
) -> None:
    import hashlib

    drop = index.add("zzdrop", "1.0", "zzdrop-1.0.tar.gz", body=DROPPER)
    clean = realistic_clean_sdist()
    index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=clean)
    index.add("zzclean", "2.0", "zzclean-2.0.tar.gz", body=clean)
    (tmp_path / "more.txt").write_text("zzclean[extra]  # latest release\n")
    (tmp_path / "requirements.txt").write_text(
        "# a comment\n"
        f"zzdrop==1.0 --hash=sha256:{hashlib.sha256(drop).hexdigest()}\n"
        "zzclean==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"  # hash the index does not have
        "-r more.txt\n"
        'zzwin==1.0; sys_platform == "win-never"\n'
        "zzrange>=1.0\n"
        "--index-url https://example.invalid/simple\n"
    )
    res = CliRunner().invoke(
        cli,
        [
            "scan",
            "--index-url",
            index.index_url,
            "-f",
            "json",
            "-r",
            str(tmp_path / "requirements.txt"),
        ],
    )
    results = {r["target"]: r for r in json.loads(res.stdout)["results"]}
    assert results["zzdrop==1.0 (zzdrop-1.0.tar.gz)"]["verdict"] == "malicious"
    assert results["zzclean==2.0 (zzclean-2.0.tar.gz)"]["verdict"] == "clean"  # via -r
    errors = [r["error"] for r in results.values() if r["error"]]
    assert any("matches a --hash" in e for e in errors)
    assert any("no resolver" in e for e in errors)
    assert not any("zzwin" in t for t in results)  # marker false here: skipped, not fetched
    assert "skipped" in res.stderr and "--index-url" in res.stderr
    assert res.exit_code == 2  # entries with errors
