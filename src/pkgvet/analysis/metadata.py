"""Package metadata from PKG-INFO/METADATA, pyproject.toml, setup.cfg and setup.py, read
leniently (``packaging.metadata.parse_email`` returns malformed fields instead of raising)."""

from __future__ import annotations

import ast
import configparser
import tomllib
from collections.abc import Iterable, Mapping

from pkgvet.archive import Member
from pkgvet.models import PackageInfo


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def from_core_metadata(data: bytes, source: str) -> PackageInfo:
    from packaging.metadata import parse_email  # costly import: only when metadata is read

    raw, _unparsed = parse_email(data)
    return PackageInfo(
        name=raw.get("name"),
        version=raw.get("version"),
        summary=raw.get("summary"),
        author=raw.get("author") or raw.get("maintainer"),
        author_email=raw.get("author_email") or raw.get("maintainer_email"),
        home_page=raw.get("home_page")
        or next(iter((raw.get("project_urls") or {}).values()), None),
        license=raw.get("license") or raw.get("license_expression"),
        requires=tuple(raw.get("requires_dist") or ()),
        metadata_source=source,
    )


def from_pyproject(data: bytes, source: str = "pyproject.toml") -> PackageInfo | None:
    text = _text(data)
    if not any(k in text for k in ("project", "poetry", "\\u", "\\U")):
        # Neither table can be named without its name written out (or \u-escaped in a
        # quoted key): a build-system-only file, the common case, needs no TOML parse.
        return None
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError):
        return None
    project = doc.get("project")
    if not isinstance(project, dict):
        poetry = doc.get("tool", {}).get("poetry") if isinstance(doc.get("tool"), dict) else None
        if not isinstance(poetry, dict):
            return None
        project = poetry
    authors = project.get("authors") or []
    first = authors[0] if isinstance(authors, list) and authors else {}
    deps = project.get("dependencies") or []
    return PackageInfo(
        name=_str(project.get("name")),
        version=_str(project.get("version")),
        summary=_str(project.get("description")),
        author=_str(first.get("name")) if isinstance(first, dict) else _str(first),
        author_email=_str(first.get("email")) if isinstance(first, dict) else None,
        requires=tuple(str(d) for d in deps) if isinstance(deps, list) else (),
        metadata_source=source,
    )


def from_setup_cfg(data: bytes, source: str = "setup.cfg") -> PackageInfo | None:
    text = _text(data)
    if "[metadata]" not in text:  # most setup.cfg files hold only tool settings
        return None
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_section("metadata"):
        return None
    md = dict(parser.items("metadata"))
    reqs = parser.get("options", "install_requires", fallback="")
    return PackageInfo(
        name=md.get("name"),
        version=md.get("version"),
        summary=md.get("description"),
        author=md.get("author"),
        author_email=md.get("author_email"),
        home_page=md.get("url"),
        license=md.get("license"),
        requires=tuple(r.strip() for r in reqs.splitlines() if r.strip()),
        metadata_source=source,
    )


def setup_call(tree: ast.Module) -> ast.Call | None:
    """The ``setup(...)`` call of a setup.py (``setuptools.setup`` or ``distutils``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            )
            if name == "setup":
                return node
    return None


def from_setup_kwargs(kwargs: Mapping[str, object]) -> PackageInfo:
    reqs = kwargs.get("install_requires")
    return PackageInfo(
        name=_str(kwargs.get("name")),
        version=_str(kwargs.get("version")),
        summary=_str(kwargs.get("description")),
        author=_str(kwargs.get("author")),
        author_email=_str(kwargs.get("author_email")),
        home_page=_str(kwargs.get("url")),
        license=_str(kwargs.get("license")),
        requires=tuple(str(r) for r in reqs) if isinstance(reqs, list | tuple) else (),
        metadata_source="setup.py",
    )


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def merge(infos: Iterable[PackageInfo | None]) -> PackageInfo:
    """First non-empty value of each field, in the order given (most authoritative first)."""
    fields = ("name", "version", "summary", "author", "author_email", "home_page", "license")
    out: dict[str, object] = {}
    requires: tuple[str, ...] = ()
    source = None
    for info in infos:
        if info is None:
            continue
        source = source or info.metadata_source
        for f in fields:
            if not out.get(f) and getattr(info, f):
                out[f] = getattr(info, f)
        requires = requires or info.requires
    return PackageInfo(**out, requires=requires, metadata_source=source)  # type: ignore[arg-type]


def core_metadata_member(members: Iterable[Member]) -> Member | None:
    """The package's own PKG-INFO (sdist root) or METADATA (wheel .dist-info)."""
    best: Member | None = None
    for m in members:
        if m.rel == "PKG-INFO" or (m.rel.endswith(".dist-info/METADATA") and m.rel.count("/") == 1):
            return m
        if best is None and m.rel.endswith(("EGG-INFO/PKG-INFO", ".egg-info/PKG-INFO")):
            best = m
    return best
