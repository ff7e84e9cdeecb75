"""Tests for ``pkgvet mirror-audit`` against real HTTP index servers on 127.0.0.1: a static
PEP 503 + PEP 691 tree (content negotiation on ``Accept``), a PEP 503-only one, one without
digests, and a PyPI-style JSON API. Packages are inert and named like known-malicious ones
(``zzmal-*``); nothing reaches the network."""

from __future__ import annotations

import hashlib
import html
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import sdist
from pkgvet.cli import cli
from pkgvet.known import import_osv
from pkgvet.mirror import (
    BY_SHA256,
    IndexFile,
    KnownRelease,
    ProjectPage,
    audit_project,
    from_dataset,
    from_known_store,
    from_manifest,
    parse_pep503,
    parse_pep691,
    run_audit,
)

PEP691 = "application/vnd.pypi.simple.v1+json"


def inert(name: str, version: str, marker: str = "") -> bytes:
    return sdist(name, version, {"setup.py": f"print(1)  # {marker}\n"})


@dataclass
class StaticIndex:
    """A static index tree served from memory: ``/simple/<name>/`` as PEP 691 JSON or PEP 503
    HTML, ``/pypi/<name>/json`` (JSON API) and ``/files/<filename>``."""

    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # project -> name -> bytes
    pep691: bool = True
    digests: bool = True
    fail_first: set[str] = field(default_factory=set)  # paths answered 503 once
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def add(self, project: str, filename: str, body: bytes) -> str:
        self.files.setdefault(project, {})[filename] = body
        return hashlib.sha256(body).hexdigest()

    def page(self, project: str, as_json: bool) -> tuple[str, bytes]:
        files = self.files[project]
        if as_json:
            doc = {
                "meta": {"api-version": "1.0"},
                "name": project,
                "files": [
                    {
                        "filename": fn,
                        "url": f"../../files/{fn}",
                        "hashes": {"sha256": hashlib.sha256(b).hexdigest()} if self.digests else {},
                    }
                    for fn, b in sorted(files.items())
                ],
            }
            return PEP691, json.dumps(doc).encode()
        links = []
        for fn, b in sorted(files.items()):
            frag = f"#sha256={hashlib.sha256(b).hexdigest()}" if self.digests else ""
            yanked = ' data-yanked=""' if fn.startswith("zzmal-yank") else ""
            links.append(
                f'<a href="../../files/{html.escape(fn)}{frag}"{yanked}>{html.escape(fn)}</a><br>'
            )
        body = f"<!DOCTYPE html><html><body><h1>{project}</h1>{''.join(links)}</body></html>"
        return "text/html", body.encode()

    def json_api(self, project: str) -> bytes:
        releases: dict[str, list[dict[str, Any]]] = {}
        for fn, b in sorted(self.files[project].items()):
            version = fn[len(project) + 1 :].removesuffix(".tar.gz")
            releases.setdefault(version, []).append(
                {
                    "filename": fn,
                    "url": f"/files/{fn}",
                    "digests": {"sha256": hashlib.sha256(b).hexdigest()},
                    "packagetype": "sdist",
                }
            )
        return json.dumps({"info": {"name": project}, "releases": releases}).encode()


@pytest.fixture
def index() -> Iterator[StaticIndex]:
    state = StaticIndex()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def send(self, status: int, ctype: str = "text/plain", body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            state.hits[path] += 1
            if path in state.fail_first and state.hits[path] == 1:
                self.send(503)
                return
            parts = [p for p in path.split("/") if p]
            if len(parts) == 2 and parts[0] == "simple" and path.endswith("/"):
                if parts[1] not in state.files:
                    self.send(404)
                    return
                want_json = state.pep691 and PEP691 in self.headers.get("Accept", "")
                ctype, body = state.page(parts[1], want_json)
                self.send(200, ctype, body)
            elif len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
                if parts[1] not in state.files:
                    self.send(404)
                    return
                self.send(200, "application/json", state.json_api(parts[1]))
            elif len(parts) == 2 and parts[0] == "files":
                for files in state.files.values():
                    if parts[1] in files:
                        self.send(200, "application/octet-stream", files[parts[1]])
                        return
                self.send(404)
            else:
                self.send(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def osv(
    adv_id: str, name: str, versions: list[str] | None = None, sha: str = "", fn: str = ""
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if versions is None:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    else:
        affected["versions"] = versions
    if sha:
        affected["database_specific"] = {
            "indicators": {"package_integrity": [{"file": fn, "hashes": {"sha256": sha}}]}
        }
    return {"id": adv_id, "summary": f"Malicious code in {name} (PyPI)", "affected": [affected]}


@dataclass
class Setup:
    dataset: Path
    store: Path
    manifest: Path
    shas: dict[str, str]


@pytest.fixture
def known(index: StaticIndex, tmp_path: Path) -> Setup:
    """The index serves copies of known-malicious files; the dataset, store and manifest say
    what is known."""
    shas: dict[str, str] = {}
    # served with the exact known bytes
    body = inert("zzmal-one", "1.0")
    shas["one"] = index.add("zzmal-one", "zzmal-one-1.0.tar.gz", body)
    index.add("zzmal-one", "zzmal-one-1.1.tar.gz", inert("zzmal-one", "1.1"))  # not known
    # served, same name and version, other bytes than the known file
    index.add("zzmal-two", "zzmal-two-2.0.tar.gz", inert("zzmal-two", "2.0", "other"))
    # every version listed by an advisory
    index.add("zzmal-three", "zzmal-three-0.1.tar.gz", inert("zzmal-three", "0.1"))
    index.add("zzmal-three", "zzmal-three-0.2.tar.gz", inert("zzmal-three", "0.2"))
    # one version listed by an advisory, another not
    index.add("zzmal-four", "zzmal-four-3.0.tar.gz", inert("zzmal-four", "3.0"))
    index.add("zzmal-four", "zzmal-four-4.0.tar.gz", inert("zzmal-four", "4.0"))
    # known by digest alone (the advisory's file name gives no version)
    shas["five"] = index.add("zzmal-five", "zzmal-five-5.0.tar.gz", inert("zzmal-five", "5.0"))

    ds = tmp_path / "dataset"
    for name, version, data in (
        ("zzmal-one", "1.0", body),
        ("zzmal-two", "2.0", inert("zzmal-two", "2.0")),
        ("zzmal-gone", "1.0", inert("zzmal-gone", "1.0")),  # removed everywhere
    ):
        d = ds / name / version
        d.mkdir(parents=True)
        (d / f"{name}-{version}.tar.gz").write_bytes(data)
    osv_dir = tmp_path / "osv"
    osv_dir.mkdir()
    docs = [
        osv("MAL-0003", "zzmal-three"),
        osv("MAL-0004", "zzmal-four", ["3.0"]),
        osv("MAL-0005", "zzmal-five", ["9.9"], sha=shas["five"], fn="payload.bin"),
    ]
    for d in docs:
        (osv_dir / f"{d['id']}.json").write_text(json.dumps(d), "utf-8")
    store = tmp_path / "known.sqlite"
    import_osv(osv_dir, store)
    manifest = tmp_path / "MANIFEST.tsv"
    manifest.write_text(
        "path\tsha256\tbytes\tadded\n"
        f"zzmal-one/1.0/zzmal-one-1.0.tar.gz\t{shas['one']}\t1\t2024-01-01\n"
        f"zzmal-gone/1.0/zzmal-gone-1.0.tar.gz\t{'a' * 64}\t1\t2024-01-01\n",
        "utf-8",
    )
    return Setup(ds, store, manifest, shas)


def statuses(report: dict[str, Any]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    return {
        (r["name"], r["version"]): sorted((f["filename"], f["status"]) for f in r["files"])
        for r in report["releases"]
    }


EXPECTED = {
    ("zzmal-one", "1.0"): [("zzmal-one-1.0.tar.gz", "sha256-match")],
    ("zzmal-two", "2.0"): [("zzmal-two-2.0.tar.gz", "hash-differs")],
    ("zzmal-gone", "1.0"): [],
    ("zzmal-three", "*"): [
        ("zzmal-three-0.1.tar.gz", "listed-all-versions"),
        ("zzmal-three-0.2.tar.gz", "listed-all-versions"),
    ],
    ("zzmal-four", "3.0"): [("zzmal-four-3.0.tar.gz", "listed-version")],
    ("zzmal-five", "9.9"): [],
    ("zzmal-five", BY_SHA256): [("zzmal-five-5.0.tar.gz", "sha256-match")],
}


def run(args: list[str]) -> Any:
    return CliRunner().invoke(cli, ["mirror-audit", *args, "--no-progress"])


@pytest.mark.parametrize("pep691", [True, False], ids=["pep691-json", "pep503-html"])
def test_audit_against_a_static_index(
    index: StaticIndex, known: Setup, tmp_path: Path, pep691: bool
) -> None:
    index.pep691 = pep691
    out = tmp_path / "audit"
    res = run(
        [
            index.url,
            "--known-store",
            str(known.store),
            "--dataset",
            str(known.dataset),
            "--out",
            str(out),
        ]
    )
    assert res.exit_code == 1, res.output  # known-malicious files are served
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["summary"]["api"] == "simple"
    assert statuses(report) == EXPECTED
    by_key = {(r["name"], r["version"]): r for r in report["releases"]}
    assert by_key[("zzmal-gone", "1.0")]["project"] == "not-found"
    assert by_key[("zzmal-one", "1.0")]["files"][0]["hash_source"] == "index"
    s = report["summary"]
    assert s["known_releases"] == 7 and s["releases_served"] == 5
    assert s["releases_served_pct"] == round(100 * 5 / 7, 2)
    assert s["files_to_purge"] == 5 and s["files_by_status"]["hash-differs"] == 1
    purge = (out / "purge-list.txt").read_text("utf-8").splitlines()
    listed = sorted(line.split("\t")[0] for line in purge if not line.startswith("#"))
    assert listed == [
        "zzmal-five-5.0.tar.gz",
        "zzmal-four-3.0.tar.gz",
        "zzmal-one-1.0.tar.gz",
        "zzmal-three-0.1.tar.gz",
        "zzmal-three-0.2.tar.gz",
    ]
    md = (out / "report.md").read_text("utf-8")
    assert "5 releases still served" in md and "zzmal-two-2.0.tar.gz" in md
    assert not any(p.startswith("/files/") for p in index.hits)  # nothing downloaded
    assert index.hits["/simple/zzmal-one/"] == 1  # one request per project


def test_audit_from_a_manifest(index: StaticIndex, known: Setup, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    res = run([index.url, "--manifest", str(known.manifest), "--out", str(out), "-c", "2"])
    assert res.exit_code == 1, res.output
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert statuses(report) == {
        ("zzmal-gone", "1.0"): [],
        ("zzmal-one", "1.0"): [("zzmal-one-1.0.tar.gz", "sha256-match")],
    }


def test_verify_hashes_downloads_only_what_it_must(
    index: StaticIndex, known: Setup, tmp_path: Path
) -> None:
    index.digests = False
    out = tmp_path / "audit"
    res = run([index.url, "--dataset", str(known.dataset), "--out", str(out)])
    assert res.exit_code == 1
    plain = statuses(json.loads((out / "report.json").read_text("utf-8")))
    assert plain[("zzmal-one", "1.0")] == [("zzmal-one-1.0.tar.gz", "listed-version")]
    assert not any(p.startswith("/files/") for p in index.hits)
    res = run([index.url, "--dataset", str(known.dataset), "--out", str(out), "--verify-hashes"])
    assert res.exit_code == 1
    report = json.loads((out / "report.json").read_text("utf-8"))
    got = statuses(report)
    assert got[("zzmal-one", "1.0")] == [("zzmal-one-1.0.tar.gz", "sha256-match")]
    assert got[("zzmal-two", "2.0")] == [("zzmal-two-2.0.tar.gz", "hash-differs")]
    one = {(r["name"], r["version"]): r for r in report["releases"]}[("zzmal-one", "1.0")]
    assert one["files"][0]["hash_source"] == "downloaded"
    # only the files of known releases were fetched; zzmal-one 1.1 was not
    fetched = {p for p in index.hits if p.startswith("/files/")}
    assert fetched == {"/files/zzmal-one-1.0.tar.gz", "/files/zzmal-two-2.0.tar.gz"}


def test_audit_through_the_json_api_with_a_retry(
    index: StaticIndex, known: Setup, tmp_path: Path
) -> None:
    index.fail_first = {"/pypi/zzmal-one/json"}
    url = f"http://127.0.0.1:{index.port}/"
    out = tmp_path / "audit"
    res = run(
        [url, "--known-store", str(known.store), "--dataset", str(known.dataset), "--out", str(out)]
    )
    assert res.exit_code == 1, res.output
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["summary"]["api"] == "json"
    assert statuses(report) == EXPECTED
    assert index.hits["/pypi/zzmal-one/json"] == 2  # 503, then served


def test_clean_index_and_unreachable_index(
    index: StaticIndex, known: Setup, tmp_path: Path
) -> None:
    index.files.clear()
    res = run([index.url, "--dataset", str(known.dataset), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "0 of 3 known-malicious releases still served" in res.output
    port = index.port
    res = run(
        [
            f"http://127.0.0.1:{port + 1 if port < 65535 else 1}/simple/",
            "--dataset",
            str(known.dataset),
            "--out",
            str(tmp_path / "b"),
            "--retries",
            "0",
            "--timeout",
            "2",
        ]
    )
    assert res.exit_code == 2, res.output
    report = json.loads((tmp_path / "b" / "report.json").read_text("utf-8"))
    assert report["summary"]["releases_with_errors"] == 3


def test_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    res = run(["http://127.0.0.1:9/simple/", "--known-store", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "no known-malicious store" in res.output


# -- parsers and inputs ------------------------------------------------------------------------


def test_parse_pep503_fragments_yanked_and_hostile_names() -> None:
    page = (
        '<a href="/f/zzmal-a-1.0.tar.gz#sha256='
        + "AB" * 32
        + '" data-yanked="">zzmal-a-1.0.tar.gz</a>'
        '<a href="https://files.example.invalid/p/zzmal-a-1.1.tar.gz#md5=00">zzmal-a-1.1.tar.gz</a>'
        '<a href="../x">../../etc/passwd</a>'
    )
    files = parse_pep503(page, "http://127.0.0.1/simple/zzmal-a/")
    assert files == [
        IndexFile("zzmal-a-1.0.tar.gz", "http://127.0.0.1/f/zzmal-a-1.0.tar.gz", "ab" * 32, True),
        IndexFile(
            "zzmal-a-1.1.tar.gz", "https://files.example.invalid/p/zzmal-a-1.1.tar.gz", None, False
        ),
    ]


def test_parse_pep691() -> None:
    doc = {
        "files": [
            {"filename": "zzmal-a-1.0.tar.gz", "url": "x.tar.gz", "hashes": {"sha256": "c" * 64}},
            {
                "filename": "zzmal-a-1.0-py3-none-any.whl",
                "url": "y.whl",
                "hashes": {"sha256": "bad"},
                "yanked": "reason",
            },
            "junk",
        ]
    }
    files = parse_pep691(doc, "http://127.0.0.1/simple/zzmal-a/")
    assert files[0] == IndexFile(
        "zzmal-a-1.0.tar.gz", "http://127.0.0.1/simple/zzmal-a/x.tar.gz", "c" * 64
    )
    assert files[1].sha256 is None and files[1].yanked


def test_inputs_merge_and_versions_normalise(known: Setup) -> None:
    ds = from_dataset(known.dataset)
    assert [(r.name, r.version) for r in ds] == [
        ("zzmal-gone", "1.0"),
        ("zzmal-one", "1.0"),
        ("zzmal-two", "2.0"),
    ]
    assert ds[1].files == {"zzmal-one-1.0.tar.gz": known.shas["one"]}
    store = {(r.name, r.version): r for r in from_known_store(known.store)}
    assert set(store) == {
        ("zzmal-three", "*"),
        ("zzmal-four", "3.0"),
        ("zzmal-five", "9.9"),
        ("zzmal-five", BY_SHA256),
    }
    assert list(store[("zzmal-five", BY_SHA256)].files.values()) == [known.shas["five"]]
    assert [r.name for r in from_manifest(known.manifest)] == ["zzmal-gone", "zzmal-one"]
    page = ProjectPage(
        "zzmal-x", "served", "pep691", [IndexFile("zzmal_x-1.0.0.tar.gz", "u", None)]
    )
    (audit,) = audit_project(page, [KnownRelease("zzmal-x", "1.0")])
    assert [f.status for f in audit.files] == ["listed-version"]  # 1.0 == 1.0.0


def test_run_audit_api(index: StaticIndex, known: Setup) -> None:
    report = run_audit(index.url, from_dataset(known.dataset), concurrency=3)
    s = report.summary()
    assert s["releases_served"] == 2 and s["projects_queried"] == 3
    assert s["paper_still_served_pct"] == [81.6, 80.5, 66.9]
