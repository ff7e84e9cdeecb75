"""Batch sources expanded lazily into tasks, one per package, each with its store identity.

Keys (see :func:`pkgvet.store.make_key`, repeated here so workers never import SQLAlchemy) are
``"<sha256> <label>"``, computed in the parent before a task is submitted so that a rerun can
skip it without scanning:

- a file below a directory SOURCE: the sha256 of its bytes (read once, in 1 MiB chunks) and its
  path relative to the SOURCE (``name/version/file``), so the same tree at another place resumes;
- an unpacked package directory: a digest of its file names and contents (see
  :func:`tree_digest`) and its relative path;
- a manifest row: the sha256 the manifest pins (nothing is read) and ``name==version
  (filename)``, the label ``pkgvet scan NAME==VERSION`` gives the same file; the worker checks
  the cached file's bytes against it;
- a ``NAME`` / ``NAME==VERSION`` line: the key is only known after fetching, so such tasks are
  skipped by their ``job`` (the line's text) instead.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pkgvet.config import Limits
from pkgvet.errors import PkgvetError

TaskKind = Literal["path", "manifest", "name", "invalid"]

_CHUNK = 1024 * 1024


def make_key(sha256: str | None, label: str) -> str:
    """A package's identity in the store: its sha256 (``-`` when unknown) and its label, as
    text any database takes (an undecodable byte of a file name is ``?``, NUL ``\\x00``)."""
    text = label.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\x00")
    return f"{sha256 or '-'} {text}"


@dataclass(frozen=True, slots=True)
class Task:
    """One package to scan (or one names-file entry to fetch and scan)."""

    kind: TaskKind
    job: str  # the input entry: a path label, a manifest label or a NAME==VERSION line
    key: str | None = None  # the store key when known before scanning (paths, manifest rows)
    path: str | None = None  # the file or directory to read (paths, manifest rows)
    label: str | None = None  # the result's target when it is not the path (manifest rows)
    sha256: str | None = None  # the sha256 the manifest pins
    name: str | None = None  # names: NAME, and VERSION when pinned
    version: str | None = None
    error: str | None = None  # an entry that cannot be scanned: its error result


class Source:
    """A SOURCE of ``pkgvet batch``: :meth:`tasks` expands it lazily; :meth:`count` counts its
    entries without reading any package (for the progress bar's total)."""

    def tasks(self) -> Iterator[Task]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class TreeSource(Source):
    """A file, a package directory, or a tree of packages (anything ``iter_targets`` expands,
    such as the ``name/version/file`` layout of the malware dataset)."""

    root: Path
    limits: Limits = field(default_factory=Limits)

    def _targets(self) -> Iterator[tuple[Path, str]]:
        from pkgvet.pipeline import iter_targets

        for target in iter_targets(self.root):
            if target == self.root:
                label = self.root.name or str(self.root)
            else:
                label = target.relative_to(self.root).as_posix()
            yield target, label

    def count(self) -> int:
        return sum(1 for _ in self._targets())

    def tasks(self) -> Iterator[Task]:
        for target, label in self._targets():
            digest = package_digest(target, self.limits)
            yield Task("path", job=label, key=make_key(digest, label), path=str(target))


@dataclass(frozen=True, slots=True)
class ManifestSource(Source):
    """A manifest TSV written by ``pkgvet collect``: each row's file is read from the
    collector's cache (``dists/<sha[:2]>/<sha>/<filename>`` below ``cache``, default
    ``$PKGVET_CACHE_DIR`` or ``~/.cache/pkgvet``); a row whose file is not cached is an error
    result."""

    path: Path
    cache: Path | None = None

    def count(self) -> int:
        from pkgvet.collect.manifest import iter_manifest

        return sum(1 for _ in iter_manifest(self.path))

    def tasks(self) -> Iterator[Task]:
        from pkgvet.collect.manifest import cached_path, iter_manifest

        for row in iter_manifest(self.path):
            label = f"{row.name}=={row.version} ({row.filename})"
            key = make_key(row.sha256, label)
            cached = cached_path(row, self.cache)
            if not cached.is_file():
                yield Task(
                    "invalid",
                    job=label,
                    key=key,
                    label=label,
                    sha256=row.sha256,
                    error=f"{cached}: not in the collector's cache (run 'pkgvet collect "
                    f"--from-manifest {self.path}' first, then 'pkgvet batch --retry-errors')",
                )
                continue
            yield Task(
                "manifest",
                job=label,
                key=key,
                path=str(cached),
                label=label,
                sha256=row.sha256,
                name=row.name,
                version=row.version,
            )


@dataclass(frozen=True, slots=True)
class NamesSource(Source):
    """A text file of ``NAME`` or ``NAME==VERSION`` lines (``#`` comments and blank lines are
    ignored), fetched from the index as ``pkgvet scan NAME`` does."""

    path: Path

    def _lines(self) -> Iterator[str]:
        with self.path.open(encoding="utf-8") as fh:
            for raw in fh:
                line = raw.split("#", 1)[0].strip()
                if line:
                    yield line

    def count(self) -> int:
        return sum(1 for _ in self._lines())

    def tasks(self) -> Iterator[Task]:
        from pkgvet.remote import parse_spec

        for line in self._lines():
            try:
                spec = parse_spec(line)
            except PkgvetError as exc:
                yield Task("invalid", job=line, label=line, error=exc.diagnostics())
                continue
            if spec is None:
                yield Task("invalid", job=line, label=line, error="not a NAME or NAME==VERSION")
                continue
            yield Task("name", job=line, name=spec.name, version=spec.version)


def package_digest(path: Path, limits: Limits) -> str | None:
    """The sha256 of a regular file's bytes, :func:`tree_digest` of a directory, None for
    anything else or what cannot be read (the worker reports why)."""
    try:
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            return tree_digest(path, limits)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the parent: never opened
            return None
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def tree_digest(root: Path, limits: Limits) -> str:
    """A digest of an unpacked package: for every entry below ``root`` in name order (links
    not followed), its relative path and type, and for regular files the sha256 of their
    bytes (only their size past ``limits.max_member_bytes``, and only names and sizes once
    ``limits.max_total_bytes`` were read or past ``limits.max_members`` entries)."""
    digest = hashlib.sha256(b"pkgvet-tree-1\0")
    read = 0
    seen = 0
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for e in entries:
            seen += 1
            rel = os.path.relpath(e.path, root).replace(os.sep, "/")
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                digest.update(f"d {rel}\0".encode("utf-8", "surrogateescape"))
                if seen <= limits.max_members:
                    stack.append(Path(e.path))
                continue
            if not stat.S_ISREG(st.st_mode):
                digest.update(f"o {rel}\0".encode("utf-8", "surrogateescape"))
                continue
            head = f"f {rel} {st.st_size}\0".encode("utf-8", "surrogateescape")
            digest.update(head)
            if (
                seen > limits.max_members
                or st.st_size > limits.max_member_bytes
                or read + st.st_size > limits.max_total_bytes
            ):
                continue
            try:
                with open(e.path, "rb") as fh:
                    digest.update(hashlib.sha256(fh.read()).digest())
                read += st.st_size
            except OSError:
                continue
    return digest.hexdigest()


def is_manifest(path: Path) -> bool:
    """Whether ``path`` is a collector manifest (its first line is the manifest header)."""
    from pkgvet.collect.manifest import HEADER

    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return fh.readline(len(HEADER) + 1) == HEADER
    except (OSError, UnicodeDecodeError):
        return False
