"""Scan an installed Python environment without importing anything from it.

``pkgvet scan --env [PATH]``: PATH is a virtualenv (or any prefix holding
``lib/pythonX.Y/site-packages`` or ``Lib/site-packages``), a ``site-packages`` directory, or
omitted for the running interpreter's ``purelib``/``platlib``. Each ``*.dist-info`` is one
package: the files its ``RECORD`` lists are read as bytes (only those inside the
environment's prefix; no links followed; the archive limits apply) and scanned like an
unpacked wheel, named ``<name>-<version> (installed)``. ``*.egg-info`` directories use
``installed-files.txt``, else ``SOURCES.txt`` (best effort). Every top-level ``*.pth`` file
is scanned on its own too: its ``import`` lines run at every interpreter start.

Metadata is read as text (``RECORD`` with :mod:`csv`, the headers of ``METADATA``); nothing
of the environment is imported and :mod:`importlib.metadata` is not used on it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from pkgvet.archive import MISSING, Archive, read_listed
from pkgvet.config import Limits, ScanConfig
from pkgvet.errors import PkgvetError, SourceError
from pkgvet.models import ScanResult, Skip

KIND = "installed"
_SITE_NAMES = ("site-packages", "dist-packages")
_META_SUFFIXES = (".dist-info", ".egg-info")
_METADATA_CAP = 1024 * 1024  # METADATA headers are read from at most this many bytes


class InstalledError(PkgvetError):
    """An installed distribution that cannot be read (no RECORD, unreadable file list)."""


@dataclass(frozen=True, slots=True)
class Installed:
    """One installed distribution: its metadata directory in a site-packages directory."""

    site: Path  # the site-packages directory holding ``meta``
    meta: Path  # the ``*.dist-info`` or ``*.egg-info`` directory
    prefix: Path  # the environment's prefix: listed files outside it are not read

    def __str__(self) -> str:
        return str(self.meta)


@dataclass(frozen=True, slots=True)
class PthFile:
    """A top-level ``.pth`` file of a site-packages directory, scanned on its own."""

    path: Path
    owner: str | None  # the distribution whose RECORD lists it; None: no installer wrote it

    def __str__(self) -> str:
        return str(self.path)


EnvJob = Installed | PthFile


def site_packages(path: Path | None) -> list[Path]:
    """The site-packages directories of ``path`` (a prefix or a site-packages directory), or
    of the running interpreter when ``path`` is None."""
    if path is None:
        paths = sysconfig.get_paths()
        found = [Path(paths[k]) for k in ("purelib", "platlib") if k in paths]
        dirs = _unique(p for p in found if p.is_dir())
        if not dirs:
            raise SourceError("the running interpreter has no site-packages directory")
        return dirs
    if not path.is_dir():
        raise SourceError(f"{path}: not a directory (give a virtualenv or a site-packages)")
    if path.name in _SITE_NAMES or _has_distributions(path):
        return [path]
    candidates = [
        *sorted(path.glob("lib/python*/site-packages")),
        *sorted(path.glob("lib64/python*/site-packages")),
        *sorted(path.glob("lib/python*/dist-packages")),
        path / "Lib" / "site-packages",
    ]
    dirs = _unique(c for c in candidates if c.is_dir())
    if not dirs:
        raise SourceError(
            f"{path}: no site-packages found (give a virtualenv root or a site-packages directory)"
        )
    return dirs


def _unique(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    seen: set[str] = set()
    for p in paths:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _has_distributions(path: Path) -> bool:
    try:
        return any(e.name.endswith(_META_SUFFIXES) for e in os.scandir(path))
    except OSError:
        return False


def prefix_of(site: Path) -> Path:
    """The prefix a site-packages directory belongs to (``<prefix>/lib/pythonX.Y/site-packages``
    or ``<prefix>/Lib/site-packages``); the directory itself when its layout is unknown."""
    parent = site.parent
    if parent.name.startswith("python") and parent.parent.name in ("lib", "lib64"):
        return parent.parent.parent
    if parent.name.lower() == "lib":
        return parent.parent
    return site


def environment_jobs(path: Path | None) -> list[EnvJob]:
    """Every installed distribution, then every top-level ``.pth`` file, of the environment."""
    dists: list[EnvJob] = []
    pths: list[EnvJob] = []
    for site in site_packages(path):
        prefix = prefix_of(site)
        try:
            entries = sorted(os.scandir(site), key=lambda e: e.name.lower())
        except OSError as exc:
            raise SourceError(f"{site}: cannot list: {exc.strerror or exc}") from exc
        here = [Installed(site, Path(e.path), prefix) for e in entries]
        here = [d for d in here if d.meta.name.endswith(_META_SUFFIXES)]
        owners = _top_level_owners(here)
        dists.extend(here)
        for e in entries:
            if e.name.endswith(".pth") and e.is_file(follow_symlinks=False):
                pths.append(PthFile(Path(e.path), owners.get(e.name)))
    return dists + pths


def _top_level_owners(dists: list[Installed]) -> dict[str, str]:
    """Top-level file name -> the distribution whose RECORD lists it (best effort: a RECORD
    that cannot be read owns nothing)."""
    owners: dict[str, str] = {}
    for d in dists:
        record = d.meta / "RECORD"
        try:
            if record.is_symlink() or record.stat().st_size > Limits().max_member_bytes:
                continue
            text = record.read_bytes().decode("utf-8", "replace")
            rows = list(csv.reader(io.StringIO(text)))
        except (OSError, csv.Error):
            continue
        for row in rows:
            if row and "/" not in row[0] and row[0].endswith(".pth"):
                owners.setdefault(row[0], label(d))
    return owners


def label(dist: Installed) -> str:
    """``<name>-<version> (installed)``, from METADATA, else from the directory name."""
    name, version = _name_version(dist)
    return f"{name}-{version} (installed)" if version else f"{name} (installed)"


def _name_version(dist: Installed) -> tuple[str, str]:
    stem = dist.meta.name.rsplit(".", 1)[0]
    name, _, rest = stem.partition("-")
    version = rest.split("-", 1)[0]
    for meta_name in ("METADATA", "PKG-INFO"):
        headers = _headers(dist.meta / meta_name)
        if headers is not None:
            return headers.get("Name") or name, headers.get("Version") or version
    return name, version


def _headers(path: Path) -> dict[str, str] | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as fh:
            raw = fh.read(_METADATA_CAP)
    except OSError:
        return None
    msg = HeaderParser().parsestr(raw.decode("utf-8", "replace"), headersonly=True)
    return {k: str(v).strip() for k, v in msg.items() if k in ("Name", "Version")}


def _listed_files(dist: Installed, limits: Limits) -> tuple[Path, list[str], str]:
    """The file names a distribution lists, the directory they are relative to, and where the
    list came from. Raises :class:`InstalledError` when there is no readable list."""
    meta = dist.meta
    if not meta.is_dir() or meta.is_symlink():
        raise InstalledError(f"{meta}: not a metadata directory: no list of installed files")
    if meta.name.endswith(".dist-info"):
        text = _read_list(meta / "RECORD", limits)
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            raise InstalledError(f"{meta}: RECORD is not valid CSV: {exc}") from exc
        return dist.site, [row[0] for row in rows if row and row[0].strip()], "RECORD"
    own = sorted(f"{meta.name}/{e.name}" for e in os.scandir(meta) if e.is_file())
    installed = meta / "installed-files.txt"
    if installed.is_file():
        names = _read_list(installed, limits).splitlines()
        rel = [os.path.join(meta.name, n.strip()) for n in names if n.strip()]
        return dist.site, own + rel, "installed-files.txt"
    sources = meta / "SOURCES.txt"
    if sources.is_file():
        names = [n.strip() for n in _read_list(sources, limits).splitlines() if n.strip()]
        present = [n for n in names if os.path.lexists(dist.site / n)]  # best effort
        return dist.site, own + present, "SOURCES.txt"
    raise InstalledError(
        f"{meta}: no installed-files.txt or SOURCES.txt: the installed files are unknown"
    )


def _read_list(path: Path, limits: Limits) -> str:
    what = path.name
    try:
        if path.is_symlink():
            raise InstalledError(f"{path}: {what} is a symbolic link: not followed")
        size = path.stat().st_size
        if size > limits.max_member_bytes:
            raise InstalledError(f"{path}: {what} of {size} bytes is over the member limit")
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError as exc:
        raise InstalledError(
            f"{path.parent}: no {what}: the installed files are unknown (a broken or "
            "hand-made installation)"
        ) from exc
    except OSError as exc:
        raise InstalledError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc


def read_installed(dist: Installed, limits: Limits) -> Archive:
    """The files of one installed distribution as an :class:`Archive` laid out like a wheel
    (``pkg/__init__.py``, ``pkg-1.0.dist-info/METADATA``). Compiled ``__pycache__`` files are
    left out: pip writes them from the listed sources."""
    base, names, source = _listed_files(dist, limits)
    names = [n for n in names if not (n.endswith(".pyc") and "__pycache__" in n)]
    archive = read_listed(base, names, dist.prefix, limits, kind="wheel", filename=dist.meta.name)
    if not archive.members:
        raise InstalledError(f"{dist.meta}: none of the files its {source} lists can be read")
    missing = [s for s in archive.skips if s.reason == MISSING]
    if missing:
        archive.skips = [s for s in archive.skips if s not in missing]
        archive.skips.append(
            Skip(
                str(dist.meta),
                f"{len(missing)} files listed in {source} are missing (first: {missing[0].path})",
            )
        )
    return archive


def scan_installed(job: EnvJob, config: ScanConfig) -> ScanResult:
    """Scan one installed distribution (a broken one is an error result) or one ``.pth``."""
    from pkgvet.pipeline import error_result, scan_archive, scan_target

    if isinstance(job, PthFile):
        # judged by the rules: the model is trained on whole packages, and a lone few-line
        # file (setuptools' distutils-precedence.pth) is outside what it has seen
        result = scan_target(job.path, dataclasses.replace(config, use_model=False))
        result.reasons.append(
            f"a .pth file: its import lines run at every interpreter start; installed by "
            f"{job.owner}"
            if job.owner
            else "a .pth file: its import lines run at every interpreter start; no RECORD "
            "lists it (not written by an installer: by a setup.py, or by hand)"
        )
        return result
    target = label(job)
    try:
        archive = read_installed(job, config.limits)
    except PkgvetError as exc:
        return error_result(target, KIND, exc.diagnostics())
    except OSError as exc:
        return error_result(target, KIND, f"{job.meta}: cannot read: {exc}")
    return scan_archive(archive, target, config, kind=KIND)
