"""Package-level signals: install hooks, .pth code, shipped binaries, archive anomalies and
metadata anomalies (placeholder metadata, dependency-confusion versions, name mismatches,
typosquatting)."""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Iterator

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pkgvet.analysis.apis import Cap, capability_of
from pkgvet.analysis.context import PackageContext
from pkgvet.archive import EXECUTABLE_MAGIC
from pkgvet.models import Category, Confidence, Finding, Severity, Trigger
from pkgvet.rules.base import RuleMeta, rule, started_by_code
from pkgvet.typosquat import closest_popular

_HOOK_COMMANDS = frozenset(
    {
        "install",
        "develop",
        "egg_info",
        "bdist_egg",
        "easy_install",
        "install_lib",
        "install_scripts",
        "bdist_wheel",
        "sdist",
    }
)
# Extensions that promise data or text: an executable behind one is hiding.
_INNOCENT_EXTENSIONS = frozenset(
    {
        "png",
        "jpg",
        "jpeg",
        "gif",
        "ico",
        "bmp",
        "svg",
        "webp",
        "txt",
        "md",
        "rst",
        "json",
        "xml",
        "yaml",
        "yml",
        "csv",
        "py",
        "pyw",
        "html",
        "htm",
        "css",
        "js",
        "dat",
        "log",
        "cfg",
        "ini",
        "toml",
        "pdf",
        "mp3",
        "wav",
        "mp4",
        "ttf",
        "woff",
        "doc",
        "docx",
        "xls",
        "xlsx",
        "zip",
        "gz",
    }
)
_PLACEHOLDERS = re.compile(
    r"^(?:|a small example package|unknown|none|test|todo|"
    r"add your description here|description|my package|\.|-)$",
    re.I,
)
_CONFUSION_VERSION = re.compile(r"^(?:9{2,}|1337|6{3,})(?:\.|$)")


_SENDS = (Cap.NETWORK, Cap.SOCKET, Cap.DNS, Cap.DOWNLOAD)


@rule(
    "PV801",
    "install-hook",
    "Overrides an install command with custom code",
    Severity.MEDIUM,
    Confidence.MEDIUM,
    Category.CODE_EXECUTION,
    "CWE-829",
)
def install_hook(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``setup(cmdclass=...)`` replaces ``install``/``develop``/``egg_info``/... with a class
    from setup.py whose ``run`` does more than call the parent: the usual trigger for
    install-time payloads. Reported when that ``run`` runs programs, uses the network,
    executes or decodes code or writes files."""
    setup = next((f for f in pkg.files if f.rel == "setup.py"), None)
    if setup is None or setup.tree is None or not pkg.cmdclass:
        return
    classes = {n.name: n for n in setup.tree.body if isinstance(n, ast.ClassDef)}
    for command, cls_name in sorted(pkg.cmdclass.items()):
        cls = classes.get(cls_name)
        if command not in _HOOK_COMMANDS or cls is None:
            continue
        lines = {n.lineno for n in ast.walk(cls) if isinstance(n, ast.Call)}
        active = [
            c for c in setup.calls if c.line in lines and c.qualname and _is_active(c.qualname)
        ]
        if active:
            yield meta.at(
                setup,
                cls.lineno,
                f"'{command}' runs {cls_name}",
                evidence=", ".join(sorted({c.qualname for c in active})[:6]),
            )


def _is_active(name: str) -> bool:
    return capability_of(name) in (
        Cap.PROCESS,
        Cap.NETWORK,
        Cap.DOWNLOAD,
        Cap.EXEC,
        Cap.SOCKET,
        Cap.FILE_WRITE,
        Cap.DECODE,
    ) or name in ("open",)


@rule(
    "PV802",
    "pth-code",
    "A .pth file runs code at every interpreter start",
    Severity.MEDIUM,
    Confidence.HIGH,
    Category.CODE_EXECUTION,
    "CWE-829",
)
def pth_code(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Lines of a ``.pth`` file that start with ``import`` are executed by every Python start-up
    once the package is installed. More than a plain import is reported; what the code does is
    analysed by the other rules as install-time code."""
    for f in pkg.files:
        if f.rel.endswith(".pth") and f.calls:
            yield meta.at(
                f, f.calls[0].line, "executable .pth line", evidence=f.line_text(f.calls[0].line)
            )


@rule(
    "PV701",
    "bundled-binary",
    "Ships a native executable",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.FILE_OPERATION,
    "CWE-506",
)
def bundled_binary(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """ELF, PE or Mach-O files: normal inside wheels as extension modules, unusual in sdists.
    High when disguised under a non-binary extension (``.png``, ``.txt``, ``.py``) or when code
    of the package names the file in a process, chmod or exec call; medium for an executable in
    an sdist; low otherwise."""
    wheel = pkg.archive.kind == "wheel"
    for m in pkg.archive.members:
        kind = next((k for magic, k in EXECUTABLE_MAGIC.items() if m.data.startswith(magic)), None)
        if kind is None or (kind == "PE" and b"PE\x00\x00" not in m.data[:1024]):
            continue
        base = posixpath.basename(m.rel.rsplit("!", 1)[-1])
        low = base.lower()
        if wheel and (".so." in low or low.endswith((".so", ".pyd", ".dylib", ".dll"))):
            continue
        disguised = low.rsplit(".", 1)[-1] in _INNOCENT_EXTENSIONS and "." in low
        named = started_by_code(pkg, base, m.rel)
        if disguised or named:
            sev = Severity.HIGH
        else:
            sev = Severity.MEDIUM if not wheel else Severity.LOW
        why = (
            "disguised as " + low.rsplit(".", 1)[-1]
            if disguised
            else ("started by the package's code" if named else "shipped")
        )
        yield meta.on_package(m.path, f"{kind} executable {why}", severity=sev)


@rule(
    "PV806",
    "archive-anomaly",
    "Archive members that escape or link",
    Severity.MEDIUM,
    Confidence.HIGH,
    Category.FILE_OPERATION,
    "CWE-22",
)
def archive_anomaly(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Absolute paths, ``..`` traversal, symbolic and hard links in the archive: harmless to
    pkgvet (it never extracts) but a way to overwrite files on machines that unpack naively."""
    for a in pkg.archive.anomalies:
        yield meta.on_package(a.path, a.reason)


@rule(
    "PV803",
    "dependency-confusion-version",
    "Version typical of dependency confusion",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.METADATA,
)
def dependency_confusion_version(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Versions like 99.0.0, 999.0.4 or 1337.0 make pip prefer a public package over an
    internal one of the same name: the dependency-confusion attack. Medium alone; high when
    install- or import-time code of the package can also reach the network (the beacon that
    tells the attacker where the package landed)."""
    v = pkg.info.version or ""
    if not _CONFUSION_VERSION.match(v):
        return
    beacon = next(
        (
            f
            for f in pkg.all_files()
            if f.trigger is not Trigger.RUNTIME and any(c in f.caps for c in _SENDS)
        ),
        None,
    )
    yield meta.on_package(
        pkg.metadata_path,
        f"version {v}"
        + (f"; {beacon.rel} reaches the network on install or import" if beacon else ""),
        evidence=v,
        severity=Severity.HIGH if beacon else Severity.MEDIUM,
    )


@rule(
    "PV804",
    "placeholder-metadata",
    "Empty or placeholder metadata",
    Severity.INFO,
    Confidence.LOW,
    Category.METADATA,
)
def placeholder_metadata(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """No summary, a template summary, or no author at all: throw-away packages rarely fill
    them in."""
    info = pkg.info
    missing = []
    if _PLACEHOLDERS.match((info.summary or "").strip()):
        missing.append("summary")
    if not (info.author or info.author_email):
        missing.append("author")
    if missing:
        yield meta.on_package(pkg.metadata_path, f"missing or placeholder: {', '.join(missing)}")


@rule(
    "PV805",
    "name-mismatch",
    "Archive name differs from the metadata name",
    Severity.LOW,
    Confidence.MEDIUM,
    Category.METADATA,
)
def name_mismatch(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """The file name says one project, the metadata another: renamed or repackaged code."""
    expected = _name_from_filename(pkg.archive.filename)
    actual = pkg.info.name
    if expected and actual and canonicalize_name(actual) != expected:
        yield meta.on_package(pkg.metadata_path, f"file is {expected!r}, metadata says {actual!r}")


def _name_from_filename(filename: str) -> str | None:
    base = posixpath.basename(filename.replace("\\", "/").rsplit("!", 1)[-1])
    try:
        if base.endswith(".whl"):
            return str(parse_wheel_filename(base)[0])
        if base.endswith((".tar.gz", ".zip")):
            return str(parse_sdist_filename(base)[0])
    except (InvalidSdistFilename, InvalidWheelFilename, ValueError):
        return None
    return None


@rule(
    "PV807",
    "typosquat",
    "Name one typo away from a popular package",
    Severity.MEDIUM,
    Confidence.MEDIUM,
    Category.METADATA,
)
def typosquat(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """The package name is an edit, a transposition, a separator or a ``python-``/``-py`` affix
    away from one of the most downloaded PyPI projects, without being it."""
    name = pkg.info.name or _name_from_filename(pkg.archive.filename)
    if not name:
        return
    target = closest_popular(name)
    if target:
        yield meta.on_package(
            pkg.metadata_path,
            f"{name!r} resembles {target!r}",
            evidence=target,
            trigger=Trigger.NONE,
        )
