"""Scan packages by name: ``NAME`` (the latest release) or ``NAME==VERSION``, fetched from an
index's JSON API (``--index-url``, else ``$PIP_INDEX_URL``, else PyPI) into the collector's
sha256-verified cache, then scanned as bytes like any archive. Only pins and latest versions:
no resolver runs, so no build code runs either."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement

from pkgvet.errors import PkgvetError

if TYPE_CHECKING:  # the collector (httpx) is imported only when something is fetched
    from pkgvet.collect.index import DistFile, IndexClient, Project
    from pkgvet.config import ScanConfig
    from pkgvet.models import ScanResult

DISTS = ("best", "sdist", "wheel", "all")


class RemoteError(PkgvetError):
    """A named package that cannot be fetched: unknown, no such release, yanked, no files."""


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    version: str | None  # None: the latest release
    hashes: frozenset[str] = frozenset()  # allowed sha256 digests (requirements --hash)
    index_url: str | None = None  # where a requirements or lock file says it comes from

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


def parse_spec(text: str) -> Spec | None:
    """``NAME`` or ``NAME==VERSION`` as a :class:`Spec`; None when ``text`` is not a
    requirement at all. Ranges are refused: choosing among them would need a resolver."""
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    if req.url:
        return None
    specs = list(req.specifier)
    if not specs:
        return Spec(req.name, None)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return Spec(req.name, specs[0].version)
    raise RemoteError(f"{text}: give NAME or NAME==VERSION (pkgvet runs no resolver)")


def _pick(spec: Spec, version: str, files: tuple[DistFile, ...], dist: str) -> list[DistFile]:
    from pkgvet.collect.index import DEFAULT_MAX_BYTES, choose_file

    live = [f for f in files if not f.yanked]
    if not live:
        why = "yanked" if files else "has no files"
        raise RemoteError(f"{spec.name}=={version} {why}: nothing to scan")
    if spec.hashes:  # the requirements file pins files: only those may be fetched
        live = [f for f in live if f.sha256.lower() in spec.hashes]
        if not live:
            raise RemoteError(
                f"{spec.name}=={version}: no file on the index matches a --hash of the "
                "requirements file"
            )
    if dist == "best":
        return [choose_file(spec.name, tuple(live), DEFAULT_MAX_BYTES)]
    kinds = {"sdist": ("sdist",), "wheel": ("bdist_wheel",), "all": ("sdist", "bdist_wheel")}
    chosen = [f for f in live if f.packagetype in kinds[dist]]
    if not chosen:
        raise RemoteError(f"{spec.name}=={version} has no {dist} file")
    return chosen


def fetch(
    spec: Spec, client: IndexClient, dist: str = "best", fresh: list[Path] | None = None
) -> list[tuple[str, Path]]:
    """Download the chosen files of a release (sha256-verified, cached); return each with a
    label ``name==version (filename)``; files this call downloaded (not found in the cache)
    are also appended to ``fresh``. Failures raise :class:`RemoteError`."""
    from pkgvet.collect.index import DEFAULT_MAX_BYTES, CollectError, cache_dir, choose_version

    try:
        project = client.project(spec.name)
        version = spec.version or choose_version(project, "latest", random.Random(0))
        if version not in project.releases:
            raise RemoteError(f"{spec.name}: no release {version} on the index")
        out = []
        for f in _pick(spec, version, project.releases[version], dist):
            path, cached = client.download(spec.name, f, cache_dir(), DEFAULT_MAX_BYTES)
            out.append((f"{spec.name}=={version} ({f.filename})", path))
            if fresh is not None and not cached:
                fresh.append(path)
        return out
    except CollectError as exc:
        raise RemoteError(exc.diagnostics()) from exc


def previous_version(project: Project, version: str) -> str | None:
    """The release just before ``version`` in :class:`packaging.version.Version` order, among
    releases with a non-yanked sdist or wheel (pre-releases included: they were uploads too);
    None when there is none or ``version`` does not parse."""
    from packaging.version import InvalidVersion, Version

    try:
        current = Version(version)
    except InvalidVersion:
        return None
    best: tuple[Version, str] | None = None
    for text, files in project.releases.items():
        if not any(not f.yanked and f.packagetype in ("sdist", "bdist_wheel") for f in files):
            continue
        try:
            v = Version(text)
        except InvalidVersion:
            continue
        if v < current and (best is None or v > best[0]):
            best = (v, text)
    return best[1] if best else None


def fetch_previous(spec: Spec, filename: str, client: IndexClient) -> tuple[str, Path] | None:
    """Download the file of the release before ``spec`` (its version, else the latest) that
    matches ``filename``'s kind (sdist for sdist, wheel for wheel, else the best file); None when
    there is no previous release. Failures raise :class:`RemoteError`."""
    from pkgvet.collect.index import DEFAULT_MAX_BYTES, CollectError, cache_dir, choose_version

    try:
        project = client.project(spec.name)
        version = spec.version or choose_version(project, "latest", random.Random(0))
        prev = previous_version(project, version)
        if prev is None:
            return None
        live = tuple(f for f in project.releases[prev] if not f.yanked)
        kind = "bdist_wheel" if filename.lower().endswith(".whl") else "sdist"
        same = tuple(f for f in live if f.packagetype == kind) or live
        from pkgvet.collect.index import choose_file

        chosen = choose_file(spec.name, same, DEFAULT_MAX_BYTES)
        path, _cached = client.download(spec.name, chosen, cache_dir(), DEFAULT_MAX_BYTES)
        return f"{spec.name}=={prev} ({chosen.filename})", path
    except CollectError as exc:
        raise RemoteError(exc.diagnostics()) from exc


def compare_with_previous(
    result: ScanResult, spec: Spec, path: Path, client: IndexClient, config: ScanConfig
) -> None:
    """``scan --compare-previous``: add the diff findings of the scanned file against the
    previous release to ``result`` (see :func:`pkgvet.diff.attach_diff`). No previous release,
    or one that cannot be fetched, is a note (a skip), not an error."""
    from pkgvet.diff import attach_diff
    from pkgvet.models import Skip

    try:
        previous = fetch_previous(spec, path.name, client)
    except RemoteError as exc:
        result.skips.append(Skip("*", f"previous release not compared: {exc.diagnostics()}"))
        return
    if previous is None:
        result.skips.append(Skip("*", f"no previous release of {spec.name} to compare with"))
        return
    label, old_path = previous
    attach_diff(result, old_path, path, config, f"{label} → {result.target}")
