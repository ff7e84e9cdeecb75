"""Read lock files and ``pyproject.toml`` into the packages to scan, without running anything.

The format is chosen by the file name (:func:`parse_any`):

- ``pylock.toml`` / ``pylock.<name>.toml`` (PEP 751): ``[[packages]]`` with ``version``,
  ``sdist``/``wheels`` and their ``hashes.sha256``; ``marker`` is evaluated for this
  interpreter (every extra and dependency group of the lock counts as selected);
- ``poetry.lock``: ``[[package]]`` with ``files = [{file, hash}]`` (or the older
  ``[metadata.files]``); ``source.type`` git, directory, file or url is skipped;
- ``uv.lock``: ``[[package]]`` with ``sdist.hash`` and ``wheels[].hash``; the project itself
  (``source`` editable, virtual, directory, path) and git or URL sources are skipped;
- ``pyproject.toml``: ``[project].dependencies``, ``[project.optional-dependencies]``,
  ``[dependency-groups]`` (PEP 735) and ``[tool.poetry]`` dependencies and groups. Only exact
  pins are fetched; a range is an error entry (pkgvet runs no resolver), a bare name is the
  latest release, as in a requirements file;
- any other name: a pip requirements file (:mod:`pkgvet.requirements`).

Lock-file entries carry the sha256 digests the lock records, so only those files are fetched,
and the index the lock records for each package (``index`` of ``pylock.toml``, a ``legacy``
source's ``url`` in ``poetry.lock``, ``source.registry`` in ``uv.lock``), which the scan
fetches from unless ``--index-url`` is given.
The lock file is data: no build backend, resolver or installer runs.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pkgvet.requirements import Entry, Parsed, RequirementsError, named_index, parse_file

NOT_PINNED = "not pinned: pkgvet runs no resolver; pin it or scan a lock file"
_PYLOCK = re.compile(r"^pylock\.([^.]+\.)?toml$")
_MARKER_ERRORS = (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName, TypeError)


def file_format(path: Path) -> str:
    """``pylock``, ``poetry``, ``uv``, ``pyproject`` or ``requirements``, from the file name."""
    name = path.name
    if _PYLOCK.match(name):
        return "pylock"
    return {"poetry.lock": "poetry", "uv.lock": "uv", "pyproject.toml": "pyproject"}.get(
        name, "requirements"
    )


def parse_any(path: Path) -> Parsed:
    """The packages named by a requirements file, a lock file or a ``pyproject.toml``."""
    fmt = file_format(path)
    if fmt == "requirements":
        return parse_file(path)
    text, doc = _load(path)
    parser: Callable[[Path, str, dict[str, Any]], Parsed] = {
        "pylock": parse_pylock,
        "poetry": parse_poetry_lock,
        "uv": parse_uv_lock,
        "pyproject": parse_pyproject,
    }[fmt]
    return parser(path, text, doc)


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementsError(f"{path}: cannot read: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsError(f"{path}: not valid TOML: {exc}") from exc


# --------------------------------------------------------------------------- helpers


class _Lines:
    """Line numbers for origins (``file:line``): the n-th ``[[table]]`` header, or the first
    line quoting a string. TOML parsers keep no positions; this is for messages only."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def table(self, header: str, index: int) -> str:
        pattern = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]")
        seen = 0
        for n, line in enumerate(self.lines, 1):
            if pattern.match(line):
                if seen == index:
                    return f"{self.path}:{n}"
                seen += 1
        return f"{self.path}:{header}[{index}]"  # an inline array of tables

    def quoted(self, value: str, where: str) -> str:
        for quote in ('"', "'"):
            needle = f"{quote}{value}{quote}"
            for n, line in enumerate(self.lines, 1):
                if needle in line:
                    return f"{self.path}:{n}"
        return f"{self.path}:{where}"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tables(value: object) -> list[dict[str, Any]]:
    """The tables of an array of tables; anything else is an empty list."""
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def _sha256(hash_text: object) -> str | None:
    """``sha256:HEX`` (poetry, uv) as lowercase hex; other algorithms are not used."""
    if isinstance(hash_text, str) and hash_text.lower().startswith("sha256:"):
        return hash_text.split(":", 1)[1].strip().lower() or None
    return None


def _marker_applies(
    marker: str, environment: Mapping[str, str | frozenset[str]] | None = None
) -> bool:
    """Whether ``marker`` holds for this interpreter, with every extra it names counted as
    selected (an optional dependency can be installed). A marker that cannot be evaluated
    counts as true: scanning a package that is not installed costs less than missing one."""
    try:
        parsed = Marker(marker)
    except InvalidMarker:
        return True
    if environment:
        return _evaluate(parsed, dict(environment), "lock_file")
    extras = ["", *_EXTRA.findall(marker)]
    return any(_evaluate(parsed, {"extra": extra}, "metadata") for extra in extras)


_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _evaluate(
    marker: Marker, env: dict[str, str | frozenset[str]], context: Literal["metadata", "lock_file"]
) -> bool:
    try:
        try:
            return marker.evaluate(env, context)
        except TypeError:  # packaging < 25 has no evaluation context
            return marker.evaluate(env)
    except _MARKER_ERRORS:
        return True


def _check_version(path: Path, doc: dict[str, Any], key: str, supported: int) -> None:
    raw = doc.get(key)
    if raw is None:
        return
    major = str(raw).split(".", 1)[0]
    if major.isdigit() and int(major) > supported:
        raise RequirementsError(
            f"{path}: {key} {raw} is newer than pkgvet understands (major {supported})"
        )


def _lock_entry(
    origin: str,
    name: object,
    version: object,
    hashes: Iterable[str | None],
    index_url: object = None,
) -> Entry | str:
    """The entry of one locked package, or why it is skipped. ``index_url`` is the index the
    lock says the package came from (fetched from there unless ``--index-url`` is given)."""
    if not isinstance(name, str) or not name:
        return Entry(origin, "?", problem="a locked package without a name")
    if not isinstance(version, str) or not version:
        return f"{name}: no version in the lock file (not from an index): not fetched"
    digests = frozenset(h for h in hashes if h)
    return Entry(
        origin,
        f"{name}=={version}",
        name=name,
        version=version,
        hashes=digests,
        index_url=named_index(index_url),
    )


def _add(parsed: Parsed, origin: str, entry: Entry | str) -> None:
    if isinstance(entry, str):
        parsed.skipped.append(f"{origin}: {entry}")
    else:
        parsed.entries.append(entry)


# --------------------------------------------------------------------------- PEP 751


def parse_pylock(path: Path, text: str, doc: dict[str, Any]) -> Parsed:
    """``pylock.toml`` (PEP 751)."""
    _check_version(path, doc, "lock-version", 1)
    lines = _Lines(path, text)
    parsed = Parsed()
    env: dict[str, str | frozenset[str]] = {
        "extras": frozenset(str(x) for x in doc.get("extras", []) if isinstance(x, str)),
        "dependency_groups": frozenset(
            str(x) for x in doc.get("dependency-groups", []) if isinstance(x, str)
        ),
    }
    for i, pkg in enumerate(_tables(doc.get("packages"))):
        origin = lines.table("packages", i)
        name = pkg.get("name")
        marker = _str(pkg.get("marker"))
        if marker and not _marker_applies(marker, env):
            parsed.skipped.append(f"{origin}: {name}: marker is false for this interpreter")
            continue
        source = next((k for k in ("vcs", "directory", "archive") if k in pkg), None)
        if source is not None:
            parsed.skipped.append(
                f"{origin}: {name}: {source} source, not on an index: not fetched"
            )
            continue
        files = [*_tables([pkg.get("sdist")]), *_tables(pkg.get("wheels"))]
        hashes = [
            str(f["hashes"]["sha256"]).lower()
            for f in files
            if isinstance(f.get("hashes"), dict) and isinstance(f["hashes"].get("sha256"), str)
        ]
        entry = _lock_entry(origin, name, pkg.get("version"), hashes, pkg.get("index"))
        _add(parsed, origin, entry)
    return parsed


# --------------------------------------------------------------------------- poetry.lock

_POETRY_SKIP = {"git", "directory", "file", "url"}


def parse_poetry_lock(path: Path, text: str, doc: dict[str, Any]) -> Parsed:
    """``poetry.lock`` (lock-version 1.x and 2.x)."""
    metadata = _table(doc.get("metadata"))
    _check_version(path, metadata, "lock-version", 2)
    old_files = _table(metadata.get("files"))
    old_by_name = {canonicalize_name(str(k)): v for k, v in old_files.items()}
    lines = _Lines(path, text)
    parsed = Parsed()
    for i, pkg in enumerate(_tables(doc.get("package"))):
        origin = lines.table("package", i)
        name = pkg.get("name")
        source = _table(pkg.get("source"))
        kind = source.get("type")
        if kind in _POETRY_SKIP:
            parsed.skipped.append(f"{origin}: {name}: {kind} source, not on an index: not fetched")
            continue
        if not _poetry_markers_apply(pkg.get("markers")):
            parsed.skipped.append(f"{origin}: {name}: marker is false for this interpreter")
            continue
        files = _tables(pkg.get("files"))
        if not files and isinstance(name, str):
            files = _tables(old_by_name.get(canonicalize_name(name)))
        hashes = [_sha256(f.get("hash")) for f in files]
        index = source.get("url") if kind == "legacy" else None  # a PEP 503 index
        _add(parsed, origin, _lock_entry(origin, name, pkg.get("version"), hashes, index))
    return parsed


def _poetry_markers_apply(markers: object) -> bool:
    """Poetry 2 records ``markers`` as a string, or a table of them by dependency group."""
    if isinstance(markers, str) and markers:
        return _marker_applies(markers)
    if isinstance(markers, dict) and markers:
        return any(_marker_applies(m) for m in markers.values() if isinstance(m, str))
    return True


# --------------------------------------------------------------------------- uv.lock

_UV_PROJECT = ("editable", "virtual", "directory", "path")


def parse_uv_lock(path: Path, text: str, doc: dict[str, Any]) -> Parsed:
    """``uv.lock``."""
    _check_version(path, doc, "version", 1)
    lines = _Lines(path, text)
    parsed = Parsed()
    for i, pkg in enumerate(_tables(doc.get("package"))):
        origin = lines.table("package", i)
        name = pkg.get("name")
        source = _table(pkg.get("source"))
        local = next((k for k in _UV_PROJECT if k in source), None)
        if local is not None:
            parsed.skipped.append(
                f"{origin}: {name}: {local} source (a local project): not fetched; "
                "scan its directory as a target"
            )
            continue
        remote = next((k for k in ("git", "url") if k in source), None)
        if remote is not None:
            parsed.skipped.append(
                f"{origin}: {name}: {remote} source, not on an index: not fetched"
            )
            continue
        forks = [m for m in pkg.get("resolution-markers", []) if isinstance(m, str)]
        if forks and not any(_marker_applies(m) for m in forks):
            parsed.skipped.append(f"{origin}: {name}: marker is false for this interpreter")
            continue
        files = [*_tables([pkg.get("sdist")]), *_tables(pkg.get("wheels"))]
        hashes = [_sha256(f.get("hash")) for f in files]
        entry = _lock_entry(origin, name, pkg.get("version"), hashes, source.get("registry"))
        _add(parsed, origin, entry)
    return parsed


# --------------------------------------------------------------------------- pyproject.toml


def parse_pyproject(path: Path, text: str, doc: dict[str, Any]) -> Parsed:
    """The dependencies a ``pyproject.toml`` declares (PEP 621, PEP 735, Poetry)."""
    lines = _Lines(path, text)
    parsed = Parsed()
    seen: set[tuple[str, str | None]] = set()

    def add(origin: str, entry: Entry | str) -> None:
        if isinstance(entry, Entry) and entry.problem is None and entry.name is not None:
            key = (canonicalize_name(entry.name), entry.version)
            if key in seen:  # the same pin in several groups is scanned once
                return
            seen.add(key)
        _add(parsed, origin, entry)

    project = _table(doc.get("project"))
    for req in _strings(project.get("dependencies")):
        origin = lines.quoted(req, "project.dependencies")
        add(origin, _pep508_entry(origin, req))
    optional = project.get("optional-dependencies")
    if isinstance(optional, dict):
        for extra, reqs in optional.items():
            for req in _strings(reqs):
                origin = lines.quoted(req, f"project.optional-dependencies.{extra}")
                add(origin, _pep508_entry(origin, req))
    groups = doc.get("dependency-groups")
    if isinstance(groups, dict):
        for group, reqs in groups.items():
            # {include-group = "x"} tables name another group, itself read here
            for req in _strings(reqs):
                origin = lines.quoted(req, f"dependency-groups.{group}")
                add(origin, _pep508_entry(origin, req))
    tool = _table(doc.get("tool"))
    poetry = tool.get("poetry")
    if isinstance(poetry, dict):
        for section, deps in _poetry_sections(poetry):
            for name, constraint in deps.items():
                if name.lower() == "python":
                    continue
                for item in constraint if isinstance(constraint, list) else [constraint]:
                    origin = _poetry_origin(lines, path, section, name)
                    add(origin, _poetry_entry(origin, name, item))
    return parsed


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _pep508_entry(origin: str, text: str) -> Entry | str:
    """A PEP 508 dependency: a pin is fetched, a bare name is the latest release, a range or
    a URL is an error entry."""
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return Entry(origin, text, problem=f"not a requirement: {exc}")
    if req.url:
        return Entry(origin, text, name=req.name, problem="URL requirements are not fetched")
    if req.marker is not None and not _marker_applies(str(req.marker)):
        return f"{req.name}: marker is false for this interpreter (not installed here)"
    specs = list(req.specifier)
    if not specs:
        return Entry(origin, text, name=req.name)  # the latest release, as in requirements
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return Entry(origin, text, name=req.name, version=specs[0].version)
    return Entry(origin, text, name=req.name, problem=NOT_PINNED)


def _poetry_sections(poetry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for key in ("dependencies", "dev-dependencies"):
        if isinstance(poetry.get(key), dict):
            out.append((f"tool.poetry.{key}", poetry[key]))
    groups = poetry.get("group")
    if isinstance(groups, dict):
        for group, table in groups.items():
            if isinstance(table, dict) and isinstance(table.get("dependencies"), dict):
                out.append((f"tool.poetry.group.{group}.dependencies", table["dependencies"]))
    return out


def _poetry_origin(lines: _Lines, path: Path, section: str, name: str) -> str:
    header = re.compile(r"^\s*\[\s*" + re.escape(section) + r"\s*\]")
    key = re.compile(r"^\s*[\"']?" + re.escape(name) + r"[\"']?\s*=")
    inside = False
    for n, line in enumerate(lines.lines, 1):
        if line.lstrip().startswith("["):
            inside = bool(header.match(line))
        elif inside and key.match(line):
            return f"{path}:{n}"
    return f"{path}:{section}.{name}"


_POETRY_EXACT = re.compile(r"^\s*(?:==?\s*)?(\d[\w.!+-]*)\s*$")


def _poetry_entry(origin: str, name: str, item: object) -> Entry | str:
    """One Poetry dependency: ``"1.2.3"``/``"==1.2.3"`` is a pin, ``"*"`` the latest release,
    ``^``/``~``/ranges are not pinned; git, url and path dependencies are not fetched."""
    if isinstance(item, dict):
        for kind in ("git", "url"):
            if kind in item:
                return Entry(
                    origin,
                    f"{name} ({kind})",
                    name=name,
                    problem="URL requirements are not fetched",
                )
        if "path" in item:
            return f"{name}: a local path dependency: not fetched; scan its directory as a target"
        markers = item.get("markers")
        if isinstance(markers, str) and markers and not _marker_applies(markers):
            return f"{name}: marker is false for this interpreter (not installed here)"
        constraint: object = item.get("version", "*")
    else:
        constraint = item
    if not isinstance(constraint, str):
        return Entry(origin, name, name=name, problem="not a version constraint")
    text = f"{name} {constraint}".strip()
    if constraint.strip() in ("", "*"):
        return Entry(origin, text, name=name)  # the latest release, as in requirements
    exact = _POETRY_EXACT.match(constraint)
    if exact and "*" not in constraint:
        return Entry(origin, text, name=name, version=exact.group(1))
    return Entry(origin, text, name=name, problem=NOT_PINNED)
