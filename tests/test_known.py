"""Known-malicious lookup: OSV ``MAL-`` advisories imported from a tree and a zip of small
hand-written files (fake names ``zz...``), hostile zips refused, and ``pkgvet scan`` flagging a
stored name/version and a stored sha256 (PV000). No network."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import realistic_clean_sdist, sdist
from pkgvet.cli import cli
from pkgvet.known import (
    ImportLimits,
    KnownError,
    KnownStore,
    default_store_path,
    import_osv,
    name_version_from_filename,
    open_store_if_present,
    parse_osv,
)

HASHED = sdist("zzinnocent", "9.9", {"zzinnocent/__init__.py": "X = 1\n"})
HASHED_SHA = hashlib.sha256(HASHED).hexdigest()


def _osv(
    adv_id: str | None,
    name: str,
    *,
    versions: list[str] | None = None,
    ranges: list[dict[str, Any]] | None = None,
    ecosystem: str = "PyPI",
    withdrawn: str | None = None,
    database_specific: dict[str, Any] | None = None,
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"name": name, "ecosystem": ecosystem}}
    if versions is not None:
        affected["versions"] = versions
    if ranges is not None:
        affected["ranges"] = ranges
    if database_specific is not None:
        affected["database_specific"] = database_specific
    doc: dict[str, Any] = {
        "schema_version": "1.5.0",
        "modified": "2024-01-02T03:04:05Z",
        "summary": f"Malicious code in {name} ({ecosystem})",
        "affected": [affected],
        "database_specific": {
            "malicious-packages-origins": [
                {"source": "test", "sha256": "ab" * 32, "versions": versions or []}
            ]
        },
    }
    if adv_id is not None:
        doc["id"] = adv_id
    if withdrawn:
        doc["withdrawn"] = withdrawn
    return doc


ALL_VERSIONS = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
ADVISORIES: dict[str, dict[str, Any]] = {
    "osv/malicious/pypi/zzmal/MAL-2099-1.json": _osv("MAL-2099-1", "zzmal", ranges=ALL_VERSIONS),
    "osv/malicious/pypi/zz-pin/MAL-2099-2.json": _osv("MAL-2099-2", "ZZ_Pin", versions=["1.0"]),
    "osv/malicious/pypi/zzrange/MAL-2099-3.json": _osv(
        "MAL-2099-3",
        "zzrange",
        ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "2.0"}]}],
    ),
    "osv/malicious/pypi/zzinnocent/MAL-2099-4.json": _osv(
        "MAL-2099-4",
        "zzinnocent",
        versions=["0.1"],
        database_specific={
            "indicators": {
                "package_integrity": [
                    {"filename": "zzinnocent-9.9.tar.gz", "hashes": {"sha256": HASHED_SHA}}
                ]
            }
        },
    ),
    "osv/withdrawn/pypi/zzgone/MAL-2099-5.json": _osv(
        "MAL-2099-5", "zzgone", ranges=ALL_VERSIONS, withdrawn="2024-02-01T00:00:00Z"
    ),
    "osv/malicious/pypi/zznoid/MAL-0000-test-abc.json": _osv(None, "zznoid", versions=["3.0"]),
    "osv/malicious/npm/zznpm/MAL-2099-6.json": _osv(
        "MAL-2099-6", "zznpm", ranges=ALL_VERSIONS, ecosystem="npm"
    ),
    "misc/zzpypi-elsewhere.json": _osv("MAL-2099-7", "zznpm2", ranges=ALL_VERSIONS),
    "misc/not-json.txt": "ignored",
    "misc/broken.json": "{not json",
}


def _tree(root: Path, docs: dict[str, Any] = ADVISORIES) -> Path:
    for rel, doc in docs.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def _zip(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _zip_of_tree() -> dict[str, str | bytes]:
    return {
        f"malicious-packages-main/{k}": v if isinstance(v, str) else json.dumps(v)
        for k, v in ADVISORIES.items()
    }


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "known.sqlite"
    stats = import_osv(_tree(tmp_path / "osv-tree"), path)
    assert stats.advisories == 6  # zzmal, zz-pin, zzrange, zzinnocent, zznoid, zznpm2
    assert stats.withdrawn == 1 and stats.invalid == 1
    assert stats.other_ecosystems == 1  # the npm folder is not even read
    return path


def test_import_tree_and_lookups(store: Path) -> None:
    with KnownStore.open(store) as db:
        assert [m.advisory_id for m in db.check("zzmal", "7.7")] == ["MAL-2099-1"]
        assert db.check("zzmal", None)[0].how == "name (all versions)"
        assert db.check("zz.pin", "1.0")[0].advisory_id == "MAL-2099-2"  # canonical name
        assert db.check("zz-pin", "1.0.0")  # version equality, not text equality
        assert not db.check("zz-pin", "1.1") and not db.check("zz-pin", None)
        assert db.check("zzrange", "1.5") and not db.check("zzrange", "2.0")
        assert not db.check("zzrange", "0.9")
        assert not db.check("zzgone", "1.0")  # withdrawn
        assert not db.check("zznpm", "1.0")  # another ecosystem
        assert db.check("zznoid", "3.0")[0].advisory_id == "MAL-0000-test-abc"  # id from name
        hits = db.by_sha256(HASHED_SHA.upper())
        assert [(h.advisory_id, h.name) for h in hits] == [("MAL-2099-4", "zzinnocent")]
        assert not db.by_sha256("ab" * 32)  # a report digest, not a package's
        stats = db.stats()
    assert stats["advisories"] == 6 and stats["archive_sha256"] == 1


def test_import_zip_matches_tree(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "mal.zip", _zip_of_tree())
    stats = import_osv(archive, tmp_path / "z.sqlite")
    assert stats.advisories == 6 and stats.withdrawn == 1 and stats.other_ecosystems == 1
    with KnownStore.open(tmp_path / "z.sqlite") as db:
        assert db.check("zzmal", "1.0")


def test_withdrawn_later_removes_the_entry(tmp_path: Path, store: Path) -> None:
    late = _osv("MAL-2099-1", "zzmal", ranges=ALL_VERSIONS, withdrawn="2024-03-01T00:00:00Z")
    import_osv(_tree(tmp_path / "update", {"MAL-2099-1.json": late}), store)
    with KnownStore.open(store) as db:
        assert not db.check("zzmal", "1.0")
        assert db.check("zz-pin", "1.0")  # the rest is kept


@pytest.mark.parametrize(
    "members",
    [
        {"../evil.json": "{}"},
        {"osv/../../evil.json": "{}"},
        {"/abs/evil.json": "{}"},
        {"big.json": '{"id": "MAL-1", "pad": "' + "x" * (1024 * 1024 + 10) + '"}'},
    ],
    ids=["traversal", "nested-traversal", "absolute", "oversize"],
)
def test_hostile_zip_is_refused_whole(tmp_path: Path, members: dict[str, str | bytes]) -> None:
    good = {"MAL-2099-1.json": json.dumps(ADVISORIES["osv/malicious/pypi/zzmal/MAL-2099-1.json"])}
    archive = _zip(tmp_path / "bad.zip", {**good, **members})
    with pytest.raises(KnownError, match="refused"):
        import_osv(archive, tmp_path / "s.sqlite")
    with KnownStore.open(tmp_path / "s.sqlite") as db:  # nothing half-imported
        assert db.stats()["advisories"] == 0


def test_zip_member_count_and_symlink_limits(tmp_path: Path) -> None:
    many = _zip(tmp_path / "many.zip", {f"{i}.json": "{}" for i in range(5)})
    with pytest.raises(KnownError, match="members"):
        import_osv(many, tmp_path / "s.sqlite", ImportLimits(max_entries=4))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("link.json")
        info.external_attr = (0o120777 << 16)  # a symbolic link
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "link.zip").write_bytes(buf.getvalue())
    with pytest.raises(KnownError, match="symbolic link"):
        import_osv(tmp_path / "link.zip", tmp_path / "s.sqlite")


def test_tree_skips_links_and_big_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t", {"a/MAL-2099-1.json": ADVISORIES[
        "osv/malicious/pypi/zzmal/MAL-2099-1.json"]})
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(_osv("MAL-2099-9", "zzlinked", ranges=ALL_VERSIONS)))
    (root / "a" / "link.json").symlink_to(outside)
    (root / "big.json").write_text("[" + "0," * 400 + "0]")
    stats = import_osv(root, tmp_path / "s.sqlite", ImportLimits(max_file_bytes=500))
    assert stats.advisories == 1
    assert any("symbolic link" in s for s in stats.skipped)
    assert any("over the file limit" in s for s in stats.skipped)


def test_parse_osv_hashes_and_filters() -> None:
    doc = _osv("MAL-2099-8", "zzh", versions=["1"], database_specific={
        "indicators": {"evidence_files": [{"path": "zzh/__init__.py", "sha256": "cd" * 32}]},
        "other": {"sha256": "not-hex"},
    })
    adv = parse_osv(doc, "test")
    assert adv is not None
    assert adv.hashes == [("cd" * 32, "zzh", "zzh/__init__.py", "file")]
    assert parse_osv({"id": "../x", "affected": []}, "t") is None
    assert parse_osv(_osv("MAL-1", "zz", ecosystem="npm"), "t") is None
    assert parse_osv(["not", "a", "dict"], "t") is None


def test_name_version_from_filename() -> None:
    assert name_version_from_filename("zz_pin-1.0.tar.gz") == ("zz-pin", "1.0")
    assert name_version_from_filename("zz_pin-1.0-py3-none-any.whl") == ("zz-pin", "1.0")
    assert name_version_from_filename("zz_pin-1.0-py3.8.egg") == ("zz-pin", "1.0")
    assert name_version_from_filename("setup.py") is None


def test_default_store_follows_the_collector_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pkgvet.collect.index import cache_dir

    monkeypatch.setenv("PKGVET_CACHE_DIR", str(tmp_path / "c"))
    assert default_store_path() == cache_dir() / "known.sqlite"
    monkeypatch.delenv("PKGVET_CACHE_DIR")
    assert default_store_path() == cache_dir() / "known.sqlite"
    assert open_store_if_present(tmp_path / "absent.sqlite") is None


# -- the commands -------------------------------------------------------------------------------


def _scan(*args: str) -> tuple[int, list[dict[str, Any]]]:
    res = CliRunner().invoke(cli, ["scan", "-f", "json", "--no-model", *args])
    return res.exit_code, json.loads(res.stdout)["results"]


def _pv000(result: dict[str, Any]) -> bool:
    return any(f["rule_id"] == "PV000" for f in result["findings"])


def test_scan_flags_stored_name_version(tmp_path: Path, store: Path) -> None:
    bad = tmp_path / "zz_pin-1.0.tar.gz"
    bad.write_bytes(realistic_clean_sdist())  # clean code: only the advisory says otherwise
    ok = tmp_path / "zz_pin-1.1.tar.gz"
    ok.write_bytes(realistic_clean_sdist())
    code, results = _scan("--known-store", str(store), str(bad))
    assert code == 1
    (r,) = results
    top = r["findings"][0]
    assert (top["rule_id"], top["severity"], top["category"]) == ("PV000", "critical", "metadata")
    assert "MAL-2099-2" in top["message"] and "Malicious code in ZZ_Pin" in top["message"]
    assert r["verdict"] == "malicious" and r["reasons"][0].startswith("PV000")
    assert r["stats"].get("files")  # analysed as well (a name match is not the bytes)
    code, results = _scan("--known-store", str(store), str(ok))
    assert code == 0 and not any(f["rule_id"] == "PV000" for f in results[0]["findings"])


def test_scan_matches_metadata_name(tmp_path: Path, store: Path) -> None:
    d = tmp_path / "unpacked"
    (d / "zzmal").mkdir(parents=True)
    (d / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: zzmal\nVersion: 5.0\n")
    (d / "zzmal" / "__init__.py").write_text("X = 1\n")
    code, results = _scan("--known-store", str(store), str(d))
    assert code == 1 and results[0]["findings"][0]["rule_id"] == "PV000"


def test_scan_flags_stored_sha256_without_analysis(tmp_path: Path, store: Path) -> None:
    renamed = tmp_path / "renamed-0.0.tar.gz"
    renamed.write_bytes(HASHED)
    code, results = _scan("--known-store", str(store), str(renamed))
    assert code == 1
    (r,) = results
    assert [f["rule_id"] for f in r["findings"]] == ["PV000"]
    assert "MAL-2099-4" in r["findings"][0]["message"] and "sha256" in r["findings"][0]["message"]
    assert r["sha256"] == HASHED_SHA and r["stats"] == {"known_sha256_match": 1}
    assert any("not analysed" in x for x in r["reasons"])
    for opt in ("--no-known", "--ignore=PV000"):
        code, results = _scan("--known-store", str(store), opt, str(renamed))
        assert code == 0 and not _pv000(results[0]), opt
        assert results[0]["stats"].get("files")  # analysed


def test_default_store_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKGVET_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    res = runner.invoke(cli, ["known", "stats"])
    assert res.exit_code == 2 and "pkgvet known import" in res.output
    pkg = tmp_path / "zzmal-0.1.tar.gz"
    pkg.write_bytes(realistic_clean_sdist())
    code, results = _scan(str(pkg))  # no store yet: scanned as usual
    assert code == 0 and not _pv000(results[0])
    res = runner.invoke(cli, ["known", "import", str(_zip(tmp_path / "m.zip", _zip_of_tree()))])
    assert res.exit_code == 0 and "6 PyPI advisories" in res.output
    assert (tmp_path / "cache" / "known.sqlite").is_file()
    code, results = _scan(str(pkg))
    assert code == 1 and results[0]["findings"][0]["rule_id"] == "PV000"
    res = runner.invoke(cli, ["known", "check", "zzmal"])
    assert res.exit_code == 1 and "MAL-2099-1" in res.output
    res = runner.invoke(cli, ["known", "check", "--json", "zz-pin==1.0"])
    assert res.exit_code == 1 and json.loads(res.output)["matches"][0]["advisory"] == "MAL-2099-2"
    assert runner.invoke(cli, ["known", "check", "zz-pin==2.0"]).exit_code == 0
    assert runner.invoke(cli, ["known", "check", HASHED_SHA]).exit_code == 1
    assert runner.invoke(cli, ["known", "check", "zzclean"]).exit_code == 0
    res = runner.invoke(cli, ["known", "stats", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["advisories"] == 6
    res = runner.invoke(cli, ["scan", "--known-store", str(tmp_path / "nope"), str(pkg)])
    assert res.exit_code == 2
    bad = _zip(tmp_path / "bad.zip", {"../x.json": "{}"})
    res = runner.invoke(cli, ["known", "import", str(bad)])
    assert res.exit_code == 2 and "path traversal" in res.output


def test_corrupt_store_is_a_usage_error(tmp_path: Path) -> None:
    bogus = tmp_path / "known.sqlite"
    bogus.write_bytes(b"not a database at all" * 10)
    res = CliRunner().invoke(cli, ["scan", "--no-model", "--known-store", str(bogus), str(bogus)])
    assert res.exit_code == 2 and "not a usable" in res.output


def test_scan_env_looks_installed_dists_up(tmp_path: Path, store: Path) -> None:
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "zz_pin").mkdir(parents=True)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (site / "zz_pin" / "__init__.py").write_text("X = 1\n")
    info = site / "zz_pin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zz_pin\nVersion: 1.0\n")
    (info / "RECORD").write_text(
        "zz_pin/__init__.py,,\nzz_pin-1.0.dist-info/METADATA,,\nzz_pin-1.0.dist-info/RECORD,,\n"
    )
    env = str(tmp_path / "venv")
    code, results = _scan("--known-store", str(store), "--env", env)
    (r,) = results
    assert code == 1 and _pv000(r) and r["verdict"] == "malicious"
    code, results = _scan("--no-known", "--known-store", str(store), "--env", env)
    assert code == 0 and not _pv000(results[0])
