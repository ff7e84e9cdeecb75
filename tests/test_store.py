"""The results store (pkgvet.store): idempotent writes, reading back, schema version, retries;
on SQLite and on PostgreSQL (a throwaway cluster, see ``postgres_admin`` in conftest)."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from conftest import realistic_clean_sdist, sdist
from pkgvet.config import ScanConfig
from pkgvet.pipeline import error_result, scan_bytes
from pkgvet.store import ResultStore, StoreError, database_url, make_key

_PAYLOAD = base64.b64encode(b"print(1)").decode()
DROPPER = sdist(
    "zzdrop", "1.0", {"setup.py": f"import base64\nexec(base64.b64decode('{_PAYLOAD}'))\n"}
)
RULES_ONLY = ScanConfig(use_model=False)


@pytest.fixture
def store(db_url: str) -> Iterator[ResultStore]:
    """A results store on SQLite and on PostgreSQL (``db_url`` in conftest)."""
    s = ResultStore(db_url)
    yield s
    s.close()


def test_add_is_idempotent_and_reads_back(store: ResultStore) -> None:
    dropper = scan_bytes(DROPPER, "zzdrop-1.0.tar.gz", RULES_ONLY, target="zzdrop/1.0/x.tar.gz")
    clean = scan_bytes(realistic_clean_sdist(), "zzclean-1.0.tar.gz", RULES_ONLY)
    assert dropper.findings and dropper.sha256
    first = store.add(dropper)
    assert first.inserted and first.key == make_key(dropper.sha256, "zzdrop/1.0/x.tar.gz")
    assert not store.add(dropper).inserted  # the same key again: ignored
    assert store.add(clean, key="k-clean", job="clean-job").inserted
    assert store.has(first.key) and store.has("k-clean") and not store.has("nope")

    doc = store.get(first.key)
    assert doc is not None
    assert doc["verdict"] == dropper.verdict.value and doc["target"] == "zzdrop/1.0/x.tar.gz"
    assert doc["key"] == first.key and doc["job"] == "zzdrop/1.0/x.tar.gz"
    assert doc["scanned_at"].endswith("+00:00")
    assert [f["rule_id"] for f in doc["findings"]] == [f.rule_id for f in dropper.findings]
    rows = store.findings_of(first.key)
    assert [r["rule_id"] for r in rows] == [f.rule_id for f in dropper.findings]
    assert any(r["evidence"] for r in rows)  # the decoded payload is kept
    assert store.get("nope") is None

    counts = store.counts()
    assert counts["total"] == 2 and sum(counts[v] for v in ("malicious", "suspicious",
                                                            "clean", "error")) == 2
    assert store.done([first.key, "k-clean", "nope"]) == {first.key, "k-clean"}
    assert store.done(["clean-job", "other"], by="job") == {"clean-job"}


def test_one_row_per_key_in_the_database(store: ResultStore) -> None:
    import sqlalchemy as sa

    clean = scan_bytes(realistic_clean_sdist(), "zzclean-1.0.tar.gz", RULES_ONLY)
    added = store.add_many([(clean, "a", None), (clean, "a", None), (clean, "b", None)])
    assert [a.inserted for a in added] == [True, False, True]
    with store.engine.connect() as db:
        q = "select count(*), count(distinct key) from scans"
        assert tuple(db.execute(sa.text(q)).one()) == (2, 2)
        q = "select value from pkgvet_meta where name='schema_version'"
        assert db.execute(sa.text(q)).scalar()


def test_iter_results_pages_filters_and_orders(store: ResultStore) -> None:
    clean = scan_bytes(realistic_clean_sdist(), "zzclean-1.0.tar.gz", RULES_ONLY)
    for i in (5, 3, 1, 4, 2):
        store.add(clean, key=f"k{i}")
    store.add(error_result("broken.tar.gz", "sdist", "corrupt"), key="k0")
    keys = [d["key"] for d in store.iter_results(batch_size=2)]
    assert keys == ["k0", "k1", "k2", "k3", "k4", "k5"]
    assert [d["key"] for d in store.iter_results(order_by="id")] == [
        "k5", "k3", "k1", "k4", "k2", "k0"
    ]
    assert [d["key"] for d in store.iter_results(verdict="error")] == ["k0"]
    assert [d["key"] for d in store.iter_results(after="k3", limit=2, batch_size=1)] == [
        "k4", "k5"
    ]
    assert [d["key"] for d in store.iter_results(name="zzclean", limit=1)] == ["k1"]
    assert all(json.dumps(d) for d in store.iter_results())  # plain JSON documents


def test_done_checks_many_keys_in_chunks(store: ResultStore) -> None:
    clean = scan_bytes(realistic_clean_sdist(), "zzclean-1.0.tar.gz", RULES_ONLY)
    store.add_many([(clean, f"k{i}", None) for i in range(0, 1200, 2)])
    found = store.done(f"k{i}" for i in range(1200))
    assert found == {f"k{i}" for i in range(0, 1200, 2)}


def test_errors_are_retried_only_when_asked(store: ResultStore) -> None:
    store.add(error_result("zz==1.0", "remote", "index unreachable"), key="- zz", job="zz")
    assert store.done(["- zz"]) == {"- zz"}
    assert store.done(["- zz"], errors=False) == set()
    assert store.done(["zz"], by="job", errors=False) == set()
    clean = scan_bytes(realistic_clean_sdist(), "zzclean-1.0.tar.gz", RULES_ONLY)
    assert store.add(clean, key="abc zz==1.0 (f)", job="zz", replace_errors=True).inserted
    assert [d["key"] for d in store.iter_results()] == ["abc zz==1.0 (f)"]  # the error is gone
    assert store.counts()["error"] == 0


def test_reopening_keeps_rows_and_other_schema_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with ResultStore(str(path)) as s:
        s.add(error_result("x", "sdist", "corrupt"), key="k")
    with ResultStore(database_url(str(path))) as s:  # the same file, as a URL
        assert s.has("k")
    with sqlite3.connect(path) as db:
        db.execute("update pkgvet_meta set value='99' where name='schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        ResultStore(str(path))


def test_database_url() -> None:
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("results.db").startswith("sqlite:////")
    with pytest.raises(StoreError):
        ResultStore("nosuchdialect://x/y")


def test_undecodable_names_and_nul_are_stored_as_text(store: ResultStore) -> None:
    target = "zz\udcff/1.0/zz\x00.tar.gz"  # a non-UTF-8 file name, and a NUL
    result = error_result(target, "sdist", "corrupt: \udcff")
    added = store.add(result, key=make_key(None, target), job=target)
    assert added.inserted and added.key == "- zz?/1.0/zz\\x00.tar.gz"
    assert store.done([make_key(None, target)]) == {added.key}
    assert store.done([target], by="job") == {"zz?/1.0/zz\\x00.tar.gz"}
    doc = store.get(make_key(None, target))
    assert doc is not None and doc["error"] == "corrupt: ?"
