"""Tests for pkgvet.collect against a fake JSON API served on 127.0.0.1 (no internet)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pkgvet.collect import (
    CollectError,
    FetchTimeoutError,
    FileTooLargeError,
    HashMismatchError,
    IndexClient,
    ManifestError,
    ManifestRow,
    NoFilesError,
    ProjectNotFoundError,
    SpecError,
    append_row,
    cached_path,
    collect_command,
    iter_manifest,
    load_popular,
    pending_targets,
    read_manifest,
    run_collection,
    select_targets,
    write_manifest,
)
from pkgvet.collect.index import (
    DistFile,
    api_base,
    choose_file,
    choose_version,
    dist_path,
    parse_project,
    resolve_index_url,
)
from pkgvet.collect.manifest import HEADER
from pkgvet.collect.sampling import LONG_TAIL, NAMED, POPULAR

# --------------------------------------------------------------------------- fake index


def make_sdist(name: str, version: str) -> bytes:
    """An inert sdist: a tar.gz holding a one-line setup.py."""
    buffer = io.BytesIO()
    # gzip with a fixed timestamp: the same bytes, and so the same sha256, on every run
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as archive,
    ):
        payload = b"print(1)\n"
        info = tarfile.TarInfo(f"{name}-{version}/setup.py")
        info.size = len(payload)
        info.mtime = 0
        archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def make_wheel(name: str, version: str) -> bytes:
    """An inert wheel-shaped zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, text in (
            (f"{name}/__init__.py", "print(1)\n"),
            (f"{name}-{version}.dist-info/METADATA", f"Name: {name}\n"),
        ):
            archive.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 2, 3, 4, 6)), text)
    return buffer.getvalue()


@dataclass
class FakeIndex:
    """Serves ``/pypi/<name>/json`` documents and ``/files/<filename>`` bytes."""

    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    slow: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def index_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(
        self,
        name: str,
        version: str,
        filename: str,
        *,
        packagetype: str = "sdist",
        url: str | None = None,
        yanked: bool = False,
        body: bytes | None = None,
        sha256: str | None = None,
    ) -> bytes:
        """Publish one file of a release; return its bytes."""
        if body is None:
            body = (
                make_sdist(name, version) if packagetype == "sdist" else make_wheel(name, version)
            )
        self.blobs[filename] = body
        entry = {
            "filename": filename,
            "url": url if url is not None else f"../../files/{filename}",
            "digests": {"sha256": sha256 or hashlib.sha256(body).hexdigest()},
            "size": len(body),
            "upload_time_iso_8601": "2020-01-02T03:04:05.000000Z",
            "packagetype": packagetype,
            "yanked": yanked,
        }
        releases = self.projects.setdefault(name, {"releases": {}})["releases"]
        releases.setdefault(version, []).append(entry)
        return body

    def empty_release(self, name: str, version: str) -> None:
        self.projects.setdefault(name, {"releases": {}})["releases"][version] = []

    def handle(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            self.hits[path] += 1
        parts = path.strip("/").split("/")
        if parts[0] in self.slow:
            time.sleep(1.0)
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
            project = self.projects.get(parts[1])
            if project is not None:
                return 200, json.dumps(project).encode()
        if len(parts) == 2 and parts[0] == "files" and parts[1] in self.blobs:
            return 200, self.blobs[parts[1]]
        return 404, b"not found"


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    fake = FakeIndex()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = fake.handle(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            """Clients that time out on purpose leave broken pipes behind: ignore them."""

    server = Server(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PKGVET_CACHE_DIR", str(root))
    return root


@pytest.fixture
def client(index: FakeIndex) -> Iterator[IndexClient]:
    with IndexClient(index.index_url, timeout=5.0, retries=0) as api:
        yield api


def populate(index: FakeIndex) -> None:
    """alpha: mixed releases; beta: wheels only; gamma: bad digest."""
    index.add("alpha", "0.9", "alpha-0.9.tar.gz")
    index.add("alpha", "1.0", "alpha-1.0-py3-none-any.whl", packagetype="bdist_wheel")
    index.add("alpha", "1.0", "alpha-1.0.tar.gz")
    index.add("alpha", "1.1", "alpha-1.1.tar.gz", yanked=True)
    index.add("alpha", "2.0rc1", "alpha-2.0rc1.tar.gz")
    index.add("alpha", "not a version", "alpha-bogus.tar.gz")
    index.empty_release("alpha", "3.0")
    index.add(
        "beta",
        "1.0",
        "beta-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        packagetype="bdist_wheel",
    )
    index.add("beta", "1.0", "beta-1.0-py3-none-any.whl", packagetype="bdist_wheel")
    index.add("gamma", "1.0", "gamma-1.0.tar.gz", sha256="0" * 64)


# --------------------------------------------------------------------------- index client


def test_api_base_and_index_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert api_base("https://pypi.org/simple") == "https://pypi.org"
    assert api_base("https://pypi.org/simple/") == "https://pypi.org"
    assert api_base("http://mirror.test/root/") == "http://mirror.test/root"
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert resolve_index_url() == "https://pypi.org/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "http://mirror.test/simple/")
    assert resolve_index_url() == "http://mirror.test/simple/"
    assert resolve_index_url("http://other.test/simple") == "http://other.test/simple"
    with IndexClient() as api:
        assert api.json_url("foo") == "http://mirror.test/pypi/foo/json"


def test_latest_policy_skips_yanked_prereleases_and_bad_versions(
    index: FakeIndex, client: IndexClient
) -> None:
    populate(index)
    project = client.project("alpha")
    assert choose_version(project, "latest", random.Random(0)) == "1.0"


def test_prereleases_used_when_nothing_else_exists(index: FakeIndex, client: IndexClient) -> None:
    index.add("pre", "1.0a1", "pre-1.0a1.tar.gz")
    index.add("pre", "1.0b2", "pre-1.0b2.tar.gz")
    assert choose_version(client.project("pre"), "latest", random.Random(0)) == "1.0b2"


def test_random_policy_is_seeded_and_spreads(
    index: FakeIndex, client: IndexClient, cache: Path
) -> None:
    for minor in range(10):
        index.add("many", f"1.{minor}", f"many-1.{minor}.tar.gz")
    index.add("many", "2.0", "many-2.0.tar.gz", yanked=True)
    project = client.project("many")
    picks = {choose_version(project, "random", random.Random(seed)) for seed in range(30)}
    assert len(picks) > 3
    assert "2.0" not in picks
    assert choose_version(project, "random", random.Random(7)) == choose_version(
        project, "random", random.Random(7)
    )
    first = client.fetch("many", policy="random", seed=3, cache=cache)
    again = client.project("many")
    assert first.version == choose_version(again, "random", random.Random("3:many"))


def test_sdist_chosen_before_wheel_and_relative_url_resolved(
    index: FakeIndex, client: IndexClient, cache: Path
) -> None:
    populate(index)
    download = client.fetch("alpha", policy="latest", seed=0, cache=cache)
    assert download.version == "1.0"
    assert download.file.filename == "alpha-1.0.tar.gz"
    assert download.file.url == f"http://127.0.0.1:{index.port}/files/alpha-1.0.tar.gz"
    assert download.path == dist_path(cache, download.file.sha256, "alpha-1.0.tar.gz")
    assert download.path.read_bytes() == index.blobs["alpha-1.0.tar.gz"]
    assert not download.from_cache
    assert index.hits["/files/alpha-1.0.tar.gz"] == 1


def test_pure_py3_wheel_preferred_when_no_sdist(
    index: FakeIndex, client: IndexClient, cache: Path
) -> None:
    populate(index)
    download = client.fetch("beta", policy="latest", seed=0, cache=cache)
    assert download.file.filename == "beta-1.0-py3-none-any.whl"


def test_relative_urls_resolve_against_json_url() -> None:
    entry = {
        "filename": "x-1.tar.gz",
        "digests": {"sha256": "a" * 64},
        "packagetype": "sdist",
    }
    document = {
        "releases": {
            "1": [
                {**entry, "url": "../../files/x-1.tar.gz"},
                {**entry, "url": "/abs/x-1.tar.gz"},
                {**entry, "url": "https://files.test/x-1.tar.gz"},
            ]
        }
    }
    project = parse_project("x", "http://h.test/pypi/x/json", document)
    assert [f.url for f in project.releases["1"]] == [
        "http://h.test/files/x-1.tar.gz",
        "http://h.test/abs/x-1.tar.gz",
        "https://files.test/x-1.tar.gz",
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"filename": "../evil.tar.gz"},
        {"filename": ".hidden"},
        {"url": "file:///etc/passwd"},
        {"digests": {"sha256": "../../x"}},
        {"digests": {}},
    ],
)
def test_untrustworthy_file_entries_rejected(change: dict[str, Any]) -> None:
    entry = {
        "filename": "x-1.tar.gz",
        "url": "x-1.tar.gz",
        "digests": {"sha256": "a" * 64},
        "packagetype": "sdist",
        **change,
    }
    with pytest.raises(CollectError):
        parse_project("x", "http://h.test/pypi/x/json", {"releases": {"1": [entry]}})


def _file(filename: str, packagetype: str, size: int) -> DistFile:
    return DistFile(filename, f"http://h.test/{filename}", "a" * 64, size, "", packagetype, False)


def test_size_cap_skips_big_files() -> None:
    big_sdist = _file("x-1.tar.gz", "sdist", 5000)
    wheel = _file("x-1-py3-none-any.whl", "bdist_wheel", 100)
    assert choose_file("x", (big_sdist, wheel), max_bytes=1000) == wheel
    with pytest.raises(FileTooLargeError, match="over the cap"):
        choose_file("x", (big_sdist,), max_bytes=1000)


def test_download_cap_enforced_without_declared_size(
    index: FakeIndex, client: IndexClient, cache: Path
) -> None:
    body = index.add("sneaky", "1.0", "sneaky-1.0.tar.gz")
    del index.projects["sneaky"]["releases"]["1.0"][0]["size"]
    with pytest.raises(FileTooLargeError):
        client.fetch("sneaky", policy="latest", seed=0, cache=cache, max_bytes=len(body) - 1)
    assert not (cache / "dists").exists()


def test_no_files_errors(index: FakeIndex, client: IndexClient) -> None:
    index.empty_release("empty", "1.0")
    index.add("eggs", "1.0", "eggs-1.0-py2.7.egg", packagetype="bdist_egg")
    for name in ("empty", "eggs"):
        with pytest.raises(NoFilesError):
            choose_version(client.project(name), "latest", random.Random(0))


def test_hash_mismatch_rejected_and_not_cached(
    index: FakeIndex, client: IndexClient, cache: Path
) -> None:
    populate(index)
    with pytest.raises(HashMismatchError, match=r"gamma-1\.0\.tar\.gz"):
        client.fetch("gamma", policy="latest", seed=0, cache=cache)
    assert list(cache.rglob("*")) == []


def test_cache_reused_and_corrupt_cache_replaced(
    index: FakeIndex, client: IndexClient, cache: Path
) -> None:
    populate(index)
    first = client.fetch("alpha", policy="latest", seed=0, cache=cache)
    second = client.fetch("alpha", policy="latest", seed=0, cache=cache)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert index.hits["/files/alpha-1.0.tar.gz"] == 1
    first.path.write_bytes(b"corrupted")
    third = client.fetch("alpha", policy="latest", seed=0, cache=cache)
    assert not third.from_cache
    assert third.path.read_bytes() == index.blobs["alpha-1.0.tar.gz"]
    assert index.hits["/files/alpha-1.0.tar.gz"] == 2
    assert [p.name for p in third.path.parent.iterdir()] == ["alpha-1.0.tar.gz"]


def test_project_404_and_timeout(index: FakeIndex, cache: Path) -> None:
    index.add("slowpoke", "1.0", "slowpoke-1.0.tar.gz")
    index.slow.add("files")
    with IndexClient(index.index_url, timeout=0.2, retries=0) as api:
        with pytest.raises(ProjectNotFoundError, match="nosuch"):
            api.project("nosuch")
        with pytest.raises(FetchTimeoutError):
            api.fetch("slowpoke", policy="latest", seed=0, cache=cache)


# --------------------------------------------------------------------------- manifest


def _row(name: str, rank: int | None = None) -> ManifestRow:
    return ManifestRow(name, "1.0", f"{name}-1.0.tar.gz", "b" * 64, 10, "2020", NAMED, rank)


def test_manifest_roundtrip_append_and_cached_path(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "m.tsv"
    append_row(path, _row("a", 3))
    append_row(path, _row("b"))
    assert path.read_text().startswith(HEADER)
    assert read_manifest(path) == [_row("a", 3), _row("b")]
    write_manifest(path, [_row("c")])
    assert [r.name for r in iter_manifest(path)] == ["c"]
    assert path.read_text().splitlines()[1].endswith("\tnamed\t")
    assert cached_path(_row("c")) == cache / "dists" / "bb" / ("b" * 64) / "c-1.0.tar.gz"


def test_manifest_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text("name\tversion\n")
    with pytest.raises(ManifestError, match="header"):
        read_manifest(path)
    path.write_text(HEADER + "a\t1\n")
    with pytest.raises(ManifestError, match=":2:"):
        read_manifest(path)
    path.write_text(HEADER + "a\t1\t../x\t" + "b" * 64 + "\t1\t\tnamed\t\n")
    with pytest.raises(ManifestError, match="filename"):
        read_manifest(path)


# --------------------------------------------------------------------------- sampling


def test_shipped_popular_list() -> None:
    lines = (files("pkgvet") / "data" / "popular.tsv").read_text().splitlines()
    assert lines[0] == "# source: PyPI download ranks, snapshot 2026-11; columns: name rank"
    ranks = [int(line.split("\t")[1]) for line in lines[1:]]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks) > 10_000
    assert len(load_popular()) == len(ranks)


def test_top_and_named_specs() -> None:
    popular = {"boto3": 1, "packaging": 2, "urllib3": 3}
    targets = select_targets(["top:2", "names:Foo_Bar,urllib3,BOTO3"], popular=popular)
    assert [(t.name, t.stratum, t.rank) for t in targets] == [
        ("boto3", POPULAR, 1),
        ("packaging", POPULAR, 2),
        ("foo-bar", NAMED, None),
        ("urllib3", NAMED, 3),
    ]
    assert [t.name for t in select_targets(["top:3"], exclude=["Packaging"], popular=popular)] == [
        "boto3",
        "urllib3",
    ]


def test_names_file_spec(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("# comment\nFoo.Bar\n\nbaz\nfoo-bar\n")
    targets = select_targets([str(names)], popular={"baz": 9})
    assert [(t.name, t.rank) for t in targets] == [("foo-bar", None), ("baz", 9)]


def test_tail_spec(tmp_path: Path) -> None:
    names = tmp_path / "pypi.tsv"
    rows = ["name\tversion\tmonth\trank\tsummary"]
    rows += [f"proj{i}\t1.0\t2020-01\t\tsummary" for i in range(50)]
    rows += ["famous\t1.0\t2020-01\t1\tsummary"]
    names.write_text("\n".join(rows) + "\n")
    popular = {"famous": 1, "proj0": 2}
    tail = select_targets(["tail:49"], names_file=names, seed=1, popular=popular)
    assert {t.stratum for t in tail} == {LONG_TAIL}
    assert {t.rank for t in tail} == {None}
    assert sorted(t.name for t in tail) == sorted(f"proj{i}" for i in range(1, 50))
    one = select_targets(["tail:5"], names_file=names, seed=1, popular=popular)
    two = select_targets(["tail:5"], names_file=names, seed=2, popular=popular)
    assert one == select_targets(["tail:5"], names_file=names, seed=1, popular=popular)
    assert one != two
    excluded = select_targets(
        ["tail:5"], names_file=names, seed=1, popular=popular, exclude=[t.name for t in one]
    )
    assert len(excluded) == 5
    assert not {t.name for t in excluded} & {t.name for t in one}
    with pytest.raises(SpecError, match="only 49 eligible"):
        select_targets(["tail:50"], names_file=names, popular=popular)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tail:5", "--names-file"),
        ("top:0", "positive integer"),
        ("top:x", "positive integer"),
        ("names:bad/name", "invalid project name"),
        ("no-such-file.txt", "unknown spec"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        select_targets([spec], popular={})


# --------------------------------------------------------------------------- runs and CLI


def test_run_collection_reports_failures_per_package(
    index: FakeIndex, client: IndexClient, cache: Path, tmp_path: Path
) -> None:
    populate(index)
    out = tmp_path / "m.tsv"
    targets = select_targets(["names:alpha,missing,gamma,beta"], popular={"beta": 5})
    seen: list[str] = []
    summary = run_collection(
        targets, out, client, jobs=3, on_outcome=lambda o: seen.append(o.target.name)
    )
    assert sorted(seen) == ["alpha", "beta", "gamma", "missing"]
    assert summary.collected == 2
    assert summary.failures == Counter({"not found": 1, "hash mismatch": 1})
    rows = {r.name: r for r in read_manifest(out)}
    assert set(rows) == {"alpha", "beta"}
    assert rows["beta"].rank == 5
    assert rows["alpha"].upload_time == "2020-01-02T03:04:05.000000Z"
    for row in rows.values():
        path = cached_path(row)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        assert path.stat().st_size == row.size
    assert pending_targets(targets, out) == [t for t in targets if t.name in ("missing", "gamma")]


def test_cli_collects_and_resumes(index: FakeIndex, cache: Path, tmp_path: Path) -> None:
    populate(index)
    out = tmp_path / "benign" / "manifest.tsv"
    args = ["names:alpha,beta,missing", "--out", str(out), "--index-url", index.index_url]
    args += ["--jobs", "2"]
    runner = CliRunner()
    first = runner.invoke(collect_command, args)
    assert first.exit_code == 0, first.output
    assert "collected 2 (2 downloaded, 0 cached), 0 already in manifest, failed 1" in first.output
    assert "(not found 1)" in first.output
    before = out.read_text()
    json_hits = index.hits["/pypi/alpha/json"]

    second = runner.invoke(collect_command, args)
    assert second.exit_code == 0, second.output
    assert "collected 0 (0 downloaded, 0 cached), 2 already in manifest, failed 1" in second.output
    assert out.read_text() == before
    assert index.hits["/pypi/alpha/json"] == json_hits

    other = tmp_path / "other.tsv"
    third = runner.invoke(collect_command, [args[0], "--out", str(other), *args[3:]])
    assert third.exit_code == 0, third.output
    assert "collected 2 (0 downloaded, 2 cached)" in third.output
    assert index.hits["/files/alpha-1.0.tar.gz"] == 1


def test_cli_exclude_manifest_and_usage_errors(
    index: FakeIndex, cache: Path, tmp_path: Path
) -> None:
    populate(index)
    excluded = tmp_path / "exclude.tsv"
    append_row(excluded, _row("alpha"))
    out = tmp_path / "m.tsv"
    runner = CliRunner()
    result = runner.invoke(
        collect_command,
        [
            *("names:alpha,beta", "--out", str(out), "--index-url", index.index_url),
            *("--exclude-manifest", str(excluded)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r.name for r in read_manifest(out)] == ["beta"]
    result = runner.invoke(collect_command, ["tail:3", "--out", str(out)])
    assert result.exit_code == 2
    assert "--names-file" in result.output


# --------------------------------------------------------------------------- --from-manifest


def _pinned(name: str, version: str, filename: str, body: bytes) -> ManifestRow:
    sha = hashlib.sha256(body).hexdigest()
    return ManifestRow(name, version, filename, sha, len(body), "2020", NAMED, None)


def test_from_manifest_skips_cached_fetches_missing_and_refuses_mismatch(
    index: FakeIndex, cache: Path, tmp_path: Path
) -> None:
    cached_body = index.add("cached", "1.0", "cached-1.0.tar.gz")
    index.add("missing", "1.0", "missing-1.0.tar.gz")
    # The pinned file is an older release, not the one the latest policy would pick.
    old_body = index.add(
        "missing", "0.5", "missing-0.5-py3-none-any.whl", packagetype="bdist_wheel"
    )
    index.add("changed", "1.0", "changed-1.0.tar.gz")
    cached_row = _pinned("cached", "1.0", "cached-1.0.tar.gz", cached_body)
    missing_row = _pinned("missing", "0.5", "missing-0.5-py3-none-any.whl", old_body)
    changed_row = _pinned("changed", "1.0", "changed-1.0.tar.gz", b"what we pinned")
    path = cached_path(cached_row)
    path.parent.mkdir(parents=True)
    path.write_bytes(cached_body)
    manifest = tmp_path / "pinned.tsv"
    write_manifest(manifest, [cached_row, missing_row, changed_row])
    before = manifest.read_text()

    args = ["--from-manifest", str(manifest), "--index-url", index.index_url, "--jobs", "2"]
    result = CliRunner().invoke(collect_command, args)
    assert result.exit_code == 1, result.output
    assert "present 2 (1 downloaded, 1 cached), failed 1 (pin mismatch 1)" in result.output
    assert "changed-1.0.tar.gz is published with sha256" in result.output
    assert manifest.read_text() == before
    # The cached row cost no request at all; the missing one is verified and written.
    assert index.hits["/pypi/cached/json"] == 0
    assert index.hits["/files/cached-1.0.tar.gz"] == 0
    assert cached_path(missing_row).read_bytes() == old_body
    assert index.hits["/files/missing-1.0.tar.gz"] == 0
    # The mismatching row is refused before any download and nothing is written.
    assert index.hits["/files/changed-1.0.tar.gz"] == 0
    assert not cached_path(changed_row).exists()
    # (not the two-character fan-out directory: another row's hash may share it)
    assert not cached_path(changed_row).parent.exists()

    write_manifest(manifest, [cached_row, missing_row])
    again = CliRunner().invoke(collect_command, args)
    assert again.exit_code == 0, again.output
    assert "present 2 (0 downloaded, 2 cached), failed 0" in again.output
    assert index.hits["/pypi/missing/json"] == 1


def test_from_manifest_usage_errors(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    write_manifest(manifest, [_row("a")])
    runner = CliRunner()
    result = runner.invoke(collect_command, [])
    assert result.exit_code == 2
    assert "--from-manifest" in result.output
    result = runner.invoke(collect_command, ["names:a", "--from-manifest", str(manifest)])
    assert result.exit_code == 2
    assert "no SPEC" in result.output
    result = runner.invoke(collect_command, ["names:a"])
    assert result.exit_code == 2
    assert "--out is required" in result.output


def test_committed_benign_manifests_pin_disjoint_projects() -> None:
    """The manifests the detector trains and is evaluated on: each parses, no project sits in
    two of them (a release in two sources could train and test at once), every file is pinned
    once, and together they hold at least 4,000 releases, half or more from the long tail. The
    fresh check set (``fresh-manifest``, never trained on) shares no project with them either."""
    from packaging.utils import canonicalize_name

    from conftest import REPO
    from pkgvet.commands.train import EVAL_BENIGN

    owner: dict[str, str] = {}
    hashes: set[str] = set()
    strata: Counter[str] = Counter()
    for path in (*EVAL_BENIGN, Path("data/benign/fresh-manifest.tsv")):
        for row in read_manifest(REPO / path):
            name = canonicalize_name(row.name)
            assert owner.setdefault(name, path.name) == path.name, (name, owner[name], path.name)
            assert row.sha256 not in hashes
            hashes.add(row.sha256)
            if path in EVAL_BENIGN:
                strata[row.stratum] += 1
    assert sum(strata.values()) >= 4000
    assert strata["long_tail"] * 2 >= sum(strata.values())
