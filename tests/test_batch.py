"""``pkgvet batch``: directory, manifest and names sources into the results store, resuming,
killed runs, hung and oversized packages, and the Dask engine on a loopback LocalCluster.

Every corpus is small and inert (payloads decode to ``print(1)``); no network but loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("sqlalchemy")

from conftest import REPO, realistic_clean_sdist, sdist
from pkgvet.batch.tasks import package_digest
from pkgvet.cli import cli
from pkgvet.collect.manifest import ManifestRow, cached_path, write_manifest
from pkgvet.config import Limits, ScanConfig
from pkgvet.pipeline import scan_target
from pkgvet.store import ResultStore, make_key
from test_collect import FakeIndex, cache, index  # noqa: F401  (fixtures)

_PAYLOAD = base64.b64encode(b"print(1)").decode()
DROPPER = sdist(
    "zzdrop", "1.0", {"setup.py": f"import base64\nexec(base64.b64decode('{_PAYLOAD}'))\n"}
)
FAST = ["--no-model", "--no-known", "--no-progress", "--jobs", "2"]


def make_corpus(root: Path, n: int) -> list[str]:
    """``n`` inert packages in the name/version/file layout (one is a dropper, one an unpacked
    directory); returns their labels (paths relative to ``root``)."""
    labels = []
    for i in range(n):
        name = f"zzpkg{i:03d}"
        d = root / name / "1.0"
        d.mkdir(parents=True)
        if i == 1:
            (d / f"{name}-1.0.tar.gz").write_bytes(DROPPER)
            labels.append(f"{name}/1.0/{name}-1.0.tar.gz")
        elif i == 2:
            pkg = d / f"{name}-1.0"
            pkg.mkdir()
            (pkg / "setup.py").write_text("from setuptools import setup\nsetup(name='x')\n")
            labels.append(f"{name}/1.0/{name}-1.0")
        else:
            body = sdist(name, "1.0", {f"{name}/__init__.py": f"VALUE = {i}\n"})
            (d / f"{name}-1.0.tar.gz").write_bytes(body)
            labels.append(f"{name}/1.0/{name}-1.0.tar.gz")
    return labels


def batch(*args: str) -> Result:
    res = CliRunner().invoke(cli, ["batch", *args], catch_exceptions=False)
    return res


def stored(db: Path | str) -> list[tuple[str, str, str]]:
    """(key, job, verdict) of every row, read as another process would: a SQLite file with the
    standard library, a database URL with SQLAlchemy."""
    query = "select key, job, verdict from scans"
    if isinstance(db, Path):
        with sqlite3.connect(db) as conn:
            return sorted(conn.execute(query).fetchall())
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return sorted((k, j, v) for k, j, v in conn.execute(sa.text(query)))
    finally:
        engine.dispose()


def summary_value(output: str, label: str) -> str:
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 4 and cells[1].startswith(label):
            return cells[2]
    raise AssertionError(f"{label!r} not in {output}")


def test_directory_source_one_result_per_package(tmp_path: Path) -> None:
    labels = make_corpus(tmp_path / "corpus", 6)
    db = tmp_path / "r.db"
    res = batch(str(tmp_path / "corpus"), "--db", str(db), "--no-known", "--no-progress",
                "--jobs", "2", "--max-tasks-per-worker", "2")
    assert res.exit_code == 0, res.output
    rows = stored(db)
    assert sorted(job for _k, job, _v in rows) == sorted(labels)
    assert len({k for k, _j, _v in rows}) == 6
    by_job = {job: verdict for _k, job, verdict in rows}
    assert by_job["zzpkg001/1.0/zzpkg001-1.0.tar.gz"] == "malicious"
    assert summary_value(res.output, "scanned") == "6"
    assert summary_value(res.output, "malicious") == "1"
    assert summary_value(res.output, "in the store") == "6"

    with ResultStore(str(db)) as store:
        label = "zzpkg003/1.0/zzpkg003-1.0.tar.gz"
        digest = hashlib.sha256((tmp_path / "corpus" / label).read_bytes()).hexdigest()
        doc = store.get(make_key(digest, label))
        assert doc is not None and doc["sha256"] == digest
        assert doc["model_probability"] is not None  # the model ran in the workers
        assert doc["target"] == str(tmp_path / "corpus" / label)
        directory = next(store.iter_results(name=None, verdict=None, after=None))
        assert directory["key"].split(" ", 1)[0] != "-"

    out = tmp_path / "all.jsonl"
    res = batch("--db", str(db), "--export", str(out))
    assert res.exit_code == 0
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["key"] for d in docs] == sorted(d["key"] for d in docs)
    assert sorted(d["job"] for d in docs) == sorted(labels)


def test_resume_skips_what_is_stored(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    labels = make_corpus(root, 8)
    db = tmp_path / "r.db"
    with ResultStore(str(db)) as store:  # a previous run stored three of them
        for label in labels[:3]:
            path = root / label
            result = scan_target(path, ScanConfig(use_model=False))
            store.add(result, key=make_key(package_digest(path, Limits()), label), job=label)
    res = batch(str(root), "--db", str(db), *FAST)
    assert res.exit_code == 0, res.output
    assert summary_value(res.output, "skipped") == "3"
    assert summary_value(res.output, "scanned") == "5"
    rows = stored(db)
    assert sorted(job for _k, job, _v in rows) == sorted(labels)  # exactly one each

    res = batch(str(root), "--db", str(db), *FAST)  # everything done: nothing scanned
    assert summary_value(res.output, "skipped") == "8"
    assert summary_value(res.output, "scanned") == "0"
    assert len(stored(db)) == 8


def test_manifest_source_reads_the_collector_cache(tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    bodies = {
        "zzclean": realistic_clean_sdist(),
        "zzdrop": DROPPER,
        "zzmissing": sdist("zzmissing", "1.0", {"m.py": "x = 1\n"}),
        "zztampered": sdist("zztampered", "1.0", {"t.py": "x = 1\n"}),
    }
    rows = []
    for name, body in bodies.items():
        row = ManifestRow(name, "1.0", f"{name}-1.0.tar.gz", hashlib.sha256(body).hexdigest(),
                          len(body), "2020-01-02T03:04:05", "popular", None)
        rows.append(row)
        if name == "zzmissing":
            continue
        path = cached_path(row, cache_root)
        path.parent.mkdir(parents=True)
        path.write_bytes(body + b"x" if name == "zztampered" else body)
    manifest = tmp_path / "m.tsv"
    write_manifest(manifest, rows)
    db = tmp_path / "r.db"
    res = batch(str(manifest), "--db", str(db), "--cache", str(cache_root), *FAST)
    assert res.exit_code == 0, res.output
    with ResultStore(str(db)) as store:
        docs = {d["job"]: d for d in store.iter_results()}
    assert set(docs) == {f"{n}==1.0 ({n}-1.0.tar.gz)" for n in bodies}
    assert docs["zzdrop==1.0 (zzdrop-1.0.tar.gz)"]["verdict"] == "malicious"
    assert docs["zzclean==1.0 (zzclean-1.0.tar.gz)"]["target"] == (
        "zzclean==1.0 (zzclean-1.0.tar.gz)"
    )
    missing = docs["zzmissing==1.0 (zzmissing-1.0.tar.gz)"]
    assert missing["verdict"] == "error" and "not in the collector's cache" in missing["error"]
    assert missing["key"] == make_key(rows[2].sha256, missing["job"])
    tampered = docs["zztampered==1.0 (zztampered-1.0.tar.gz)"]
    assert tampered["verdict"] == "error" and "the manifest pins" in tampered["error"]

    # the missing file is collected later: --retry-errors scans it, replacing the error row
    path = cached_path(rows[2], cache_root)
    path.parent.mkdir(parents=True)
    path.write_bytes(bodies["zzmissing"])
    res = batch(str(manifest), "--db", str(db), "--cache", str(cache_root), "--retry-errors",
                *FAST)
    assert res.exit_code == 0, res.output
    rows_now = stored(db)
    assert len(rows_now) == 4 and len({j for _k, j, _v in rows_now}) == 4
    verdicts = {j.split("==")[0]: v for _k, j, v in rows_now}
    assert verdicts["zzmissing"] != "error" and verdicts["zztampered"] == "error"


def test_names_are_fetched_and_resumed_by_entry(
    tmp_path: Path,
    index: FakeIndex,  # noqa: F811
    cache: Path,  # noqa: F811
) -> None:
    index.add("zzdrop", "1.0", "zzdrop-1.0.tar.gz", body=DROPPER)
    clean = index.add("zzclean", "1.0", "zzclean-1.0.tar.gz", body=realistic_clean_sdist())
    names = tmp_path / "names.txt"
    names.write_text("# to vet\nzzdrop==1.0\nzzclean\n\nzznone\nnot a name!\nzzclean>=2\n")
    db = tmp_path / "r.db"
    args = ["--names", str(names), "--db", str(db), "--index-url", index.index_url, *FAST]
    res = batch(*args)
    assert res.exit_code == 0, res.output
    with ResultStore(str(db)) as store:
        docs = {d["job"]: d for d in store.iter_results()}
    assert set(docs) == {"zzdrop==1.0", "zzclean", "zznone", "not a name!", "zzclean>=2"}
    assert docs["zzdrop==1.0"]["verdict"] == "malicious"
    assert docs["zzdrop==1.0"]["target"] == "zzdrop==1.0 (zzdrop-1.0.tar.gz)"
    assert docs["zzclean"]["target"] == "zzclean==1.0 (zzclean-1.0.tar.gz)"
    assert docs["zzclean"]["key"] == make_key(
        hashlib.sha256(clean).hexdigest(), "zzclean==1.0 (zzclean-1.0.tar.gz)"
    )
    assert docs["zznone"]["verdict"] == "error"
    assert "no resolver" in docs["zzclean>=2"]["error"]
    hits = sum(index.hits.values())
    res = batch(*args)
    assert summary_value(res.output, "skipped") == "5"
    assert sum(index.hits.values()) == hits  # nothing fetched again
    assert len(stored(db)) == 5


def test_hung_and_oversized_packages_become_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "corpus"
    labels = make_corpus(root, 6)
    # test-only hooks: the worker sleeps on zzpkg003, and allocates past its limit on zzpkg004
    monkeypatch.setenv("PKGVET_TESTING_HANG", "zzpkg003")
    monkeypatch.setenv("PKGVET_TESTING_OOM", "zzpkg004")
    db = tmp_path / "r.db"
    res = batch(str(root), "--db", str(db), "--timeout", "3", "--max-memory", "512", *FAST)
    assert res.exit_code == 0, res.output
    with ResultStore(str(db)) as store:
        docs = {d["job"]: d for d in store.iter_results()}
    assert sorted(docs) == sorted(labels)
    hung = docs["zzpkg003/1.0/zzpkg003-1.0.tar.gz"]
    assert hung["verdict"] == "error" and hung["error"].startswith("hard timeout")
    oom = docs["zzpkg004/1.0/zzpkg004-1.0.tar.gz"]
    assert oom["verdict"] == "error" and "memory limit of 512 MB" in oom["error"]
    others = [d for j, d in docs.items() if "zzpkg003" not in j and "zzpkg004" not in j]
    assert all(d["verdict"] != "error" for d in others)  # the run went on
    assert summary_value(res.output, "of the errors: hard timeouts") == "1"
    assert int(summary_value(res.output, "workers replaced")) >= 2


def test_killed_run_restarts_with_exactly_one_result_per_package(
    tmp_path: Path, db_url: str
) -> None:
    """On SQLite and on PostgreSQL (``db_url`` in conftest)."""
    import sqlalchemy as sa

    root = tmp_path / "corpus"
    labels = make_corpus(root, 60)
    db: Path | str = db_url if "://" in db_url else Path(db_url)
    cmd = [sys.executable, "-m", "pkgvet", "batch", str(root), "--db", str(db), *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    # the last package hangs (test-only hook), so the first run cannot finish before the kill
    proc = subprocess.Popen(
        cmd,
        env={**env, "PKGVET_TESTING_HANG": "zzpkg059"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        count = 0
        while count < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if not isinstance(db, Path) or db.exists():
                try:
                    count = len(stored(db))
                except (sqlite3.OperationalError, sa.exc.SQLAlchemyError):  # no tables yet
                    count = 0
        assert count >= 20, "the first run stored nothing to resume from"
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup runs in the parent
        proc.wait(30)
    before = stored(db)
    assert len(before) < 60 and len({k for k, _j, _v in before}) == len(before)

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert summary_value(done.stdout, "skipped") == str(len(before))
    after = stored(db)
    assert sorted(j for _k, j, _v in after) == sorted(labels)
    assert len({k for k, _j, _v in after}) == 60
    assert set(before) <= set(after)


def test_without_sqlalchemy_batch_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # import sqlalchemy: ImportError
    res = CliRunner().invoke(cli, ["batch", str(tmp_path), "--db", str(tmp_path / "r.db")])
    assert res.exit_code == 2
    assert "pip install 'pkgvet[store]'" in res.output


def test_scan_does_not_import_the_store_or_dask() -> None:
    code = (
        "import sys, click\n"
        "from pkgvet.cli import cli\n"
        "import pkgvet.commands.scan\n"
        "cli.get_command(click.Context(cli), 'batch')\n"
        "heavy = [m for m in ('sqlalchemy', 'distributed', 'dask') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_dask_local_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    root = tmp_path / "corpus"
    labels = make_corpus(root, 8)
    db = tmp_path / "r.db"
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        res = batch(str(root), "--db", str(db), "--engine", "dask", "--address", address,
                    "--no-model", "--no-known", "--no-progress")
        assert res.exit_code == 0, res.output
        rows = stored(db)
        assert sorted(j for _k, j, _v in rows) == sorted(labels)
        assert len({k for k, _j, _v in rows}) == 8
        assert {j: v for _k, j, v in rows}["zzpkg001/1.0/zzpkg001-1.0.tar.gz"] == "malicious"

        res = batch(str(root), "--db", str(db), "--engine", "dask", "--address", address,
                    "--no-model", "--no-known", "--no-progress")
        assert summary_value(res.output, "skipped") == "8"
        assert len(stored(db)) == 8


def test_worker_task_turns_memory_errors_into_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pkgvet.known
    from pkgvet.batch.tasks import Task
    from pkgvet.batch.worker import WorkerOptions, run_task
    from pkgvet.pipeline import error_result

    def exhausted(path: Path, config: object, store: object) -> object:
        return error_result(str(path), "sdist", "internal error, please report: MemoryError: ")

    monkeypatch.setattr(pkgvet.known, "scan_with_known", exhausted)
    options = WorkerOptions(config=ScanConfig(use_model=False), known=False, max_memory_mb=64)
    out = run_task(Task("path", job="a/1.0/a.tar.gz", key="k a", path=str(tmp_path)), options)
    assert out.recycle  # the worker process is replaced after a MemoryError
    [o] = out.outcomes
    assert o.key == "k a" and o.result.error is not None
    assert o.result.error.startswith("out of memory") and "64 MB" in o.result.error

    out = run_task(Task("invalid", job="bad line", label="bad line", error="not a NAME"), options)
    assert not out.recycle and out.outcomes[0].result.error == "not a NAME"
    assert out.outcomes[0].key == "- bad line" and out.outcomes[0].result.kind == "remote"
