"""Release diffs: what a new release of a package adds compared with an older one.

Both releases are read statically (archive reader + :func:`~pkgvet.analysis.builder.build_context`,
never installed or run) and compared fact by fact: install hooks (setup.py ``cmdclass``, ``.pth``
files, in-tree build backends), install-time calls, capabilities per file and trigger point, exec
sites, decoded payloads and encoded blobs, credential paths, native binaries, files that run at
install or import time, and the author / maintainer / home-page metadata. Each difference is a
:class:`~pkgvet.models.Finding` on the **new** release, with a stable ``PD`` id.

Diff checks live in their own small registry (:data:`DIFF_REGISTRY`), separate from the rule
registry: a rule reads one :class:`PackageContext`, a diff check reads two, and the rule
registry's contract (one must-fire and one must-not-fire fixture tree per rule, run through the
scan pipeline) does not fit a pair of releases. The ids share the rule namespace for
``--select`` / ``--ignore`` (``--ignore PD`` drops them all). The ``pkgvet diff`` command and
``pkgvet scan --compare-previous`` are thin shells over :func:`diff_packages` /
:func:`diff_archives` / :func:`diff_paths`, so a service can share them.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import posixpath
import re
import stat
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pkgvet.analysis.apis import Cap
from pkgvet.analysis.builder import build_context
from pkgvet.analysis.context import SCRIPT_SUFFIXES, FileContext, PackageContext
from pkgvet.archive import (
    EXECUTABLE_PREFIXES,
    Archive,
    is_archive_name,
    read_archive,
    read_directory,
)
from pkgvet.config import ScanConfig
from pkgvet.errors import ArchiveError, PkgvetError, ScanBudgetExceeded, SourceError
from pkgvet.models import (
    Category,
    Confidence,
    Finding,
    ScanResult,
    Severity,
    Skip,
    Trigger,
    Verdict,
)
from pkgvet.rules.base import RuleMeta, eager, trigger_at
from pkgvet.scoring import apply_verdict

DiffCheck = Callable[[PackageContext, PackageContext, RuleMeta], Iterable[Finding]]


@dataclass(frozen=True, slots=True)
class DiffRule:
    meta: RuleMeta
    check: DiffCheck

    def run(self, old: PackageContext, new: PackageContext) -> Iterator[Finding]:
        yield from self.check(old, new, self.meta)


DIFF_REGISTRY: dict[str, DiffRule] = {}


def diff_rule(
    id: str,
    name: str,
    title: str,
    severity: Severity,
    confidence: Confidence,
    category: Category,
    cwe: str | None = None,
) -> Callable[[DiffCheck], DiffCheck]:
    """Register a diff check; its docstring is its documentation."""

    def deco(fn: DiffCheck) -> DiffCheck:
        if not re.fullmatch(r"PD\d{3}", id) or id in DIFF_REGISTRY:
            raise ValueError(f"bad or duplicate diff rule id {id}")
        doc = inspect.cleandoc(fn.__doc__ or "")
        DIFF_REGISTRY[id] = DiffRule(
            RuleMeta(id, name, title, severity, confidence, category, doc, cwe), fn
        )
        return fn

    return deco


def selected(rule_id: str, select: frozenset[str], ignore: frozenset[str]) -> bool:
    """The ``--select`` / ``--ignore`` prefix logic of the rule registry, for one id."""
    if select and not any(rule_id.startswith(s) for s in select):
        return False
    return not any(rule_id.startswith(i) for i in ignore)


# -- helpers ------------------------------------------------------------------------------------

_EAGER_TRIGGERS = (Trigger.INSTALL, Trigger.IMPORT)


def _roots(pkg: PackageContext) -> dict[str, FileContext]:
    return {f.rel: f for f in pkg.files}


def _setup(pkg: PackageContext) -> FileContext | None:
    return next((f for f in pkg.files if f.rel == "setup.py"), None)


def _eager_trigger(file: FileContext, line: int) -> Trigger:
    """The trigger of code at ``line``: install/import when it runs merely by installing or
    importing the package, else run time."""
    trig = trigger_at(file, line)
    if trig in _EAGER_TRIGGERS and eager(file, line):
        return trig
    return Trigger.RUNTIME


def _sev(trigger: Trigger, eager_sev: Severity, lazy_sev: Severity) -> Severity:
    return eager_sev if trigger in _EAGER_TRIGGERS else lazy_sev


def _when(trigger: Trigger) -> str:
    return {
        Trigger.INSTALL: "at install time",
        Trigger.IMPORT: "at import time",
        Trigger.RUNTIME: "at run time",
    }.get(trigger, "")


def _kw_line(pkg: PackageContext, key: str) -> int:
    node = pkg.setup_kwargs.get(key)
    return getattr(node, "lineno", 0) if isinstance(node, ast.AST) else 0


# -- PD001: install hooks -----------------------------------------------------------------------


@diff_rule(
    "PD001",
    "new-install-hook",
    "New install hook",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.CODE_EXECUTION,
    "CWE-506",
)
def new_install_hook(old: PackageContext, new: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """The new release adds a way to run its code when it is installed: a setup.py ``cmdclass``
    entry (or one now pointing at another class), a ``.pth`` file (run by every Python start),
    or an in-tree build backend (``[build-system] backend-path``). High; a changed
    ``build-backend`` is medium. A release that gains an install hook is the classic shape of
    an account takeover or a malicious update."""
    setup = _setup(new)
    for command, cls in sorted(new.cmdclass.items()):
        before = old.cmdclass.get(command)
        if before == cls:
            continue
        what = "new" if before is None else f"changed from {before or '?'} to"
        msg = f"cmdclass[{command!r}] {what} {cls or '?'}: runs when the package is installed"
        if setup is not None:
            yield meta.at(setup, _kw_line(new, "cmdclass"), msg)
        else:
            yield meta.on_package(new.metadata_path, msg, trigger=Trigger.INSTALL)
    old_pth = {m.rel for m in old.archive.members if m.rel.lower().endswith(".pth")}
    for m in new.archive.members:
        if m.rel.lower().endswith(".pth") and m.rel not in old_pth:
            code = any(
                line.startswith(("import ", "import\t"))
                for line in m.data.decode("utf-8", "replace").splitlines()
            )
            yield meta.on_package(
                m.path,
                "new .pth file"
                + (
                    " with import lines: Python runs them at every start"
                    if code
                    else ": read by site at every Python start"
                ),
                severity=Severity.HIGH if code else Severity.MEDIUM,
                trigger=Trigger.INSTALL,
            )
    ob, nb = _build_system(old), _build_system(new)
    if nb is not None:
        path, backend, backend_path = nb
        old_backend, old_path = (ob[1], ob[2]) if ob is not None else (None, None)
        if backend_path and backend_path != old_path:
            yield meta.on_package(
                path,
                f"new in-tree build backend (backend-path {backend_path}, {backend or '?'}): "
                "its code runs when the package is built",
                trigger=Trigger.INSTALL,
            )
        elif backend and old_backend and backend != old_backend:
            yield meta.on_package(
                path,
                f"build backend changed from {old_backend} to {backend}",
                severity=Severity.MEDIUM,
                trigger=Trigger.INSTALL,
            )


def _build_system(pkg: PackageContext) -> tuple[str, str | None, str | None] | None:
    member = next((m for m in pkg.archive.members if m.rel == "pyproject.toml"), None)
    if member is None:
        return None
    try:
        doc = tomllib.loads(member.data.decode("utf-8", "replace"))
    except (tomllib.TOMLDecodeError, ValueError):
        return None
    bs = doc.get("build-system")
    if not isinstance(bs, dict):
        return None
    backend = bs.get("build-backend")
    path = bs.get("backend-path")
    paths = ",".join(str(p) for p in path) if isinstance(path, list) else None
    return member.path, backend if isinstance(backend, str) else None, paths or None


# -- PD002: install-time calls ------------------------------------------------------------------

# Calls every setup.py makes: reading a README or a version file, building paths.
_BENIGN_CALL = re.compile(
    r"^(?:setuptools|distutils|os\.path|pathlib|io|codecs|re|json|tomllib|toml|sys|glob|"
    r"fnmatch|warnings|versioneer|platform\.python_version)\.|"
    r"^(?:open|len|dict|list|tuple|set|str|int|bool|print|sorted|format|isinstance|range|"
    r"enumerate|zip|map|filter|any|all|getattr|hasattr|max|min|super|Path)$|"
    r"(?:^|\.)(?:read|readlines|read_text|strip|rstrip|lstrip|split|join|format|replace|"
    r"startswith|endswith|lower|upper|get|items|keys|values|append|extend|splitlines|group|"
    r"search|match|findall|sub|exists|is_file|update|copy|setdefault|pop|__init__)$"
)


def _install_calls(pkg: PackageContext) -> dict[str, dict[str, int]]:
    """Per install-time file: calls that run on load, by qualified name (first line)."""
    out: dict[str, dict[str, int]] = {}
    for f in pkg.files:
        if f.trigger is not Trigger.INSTALL or f.rel.lower().endswith(".pth"):
            continue
        calls = out.setdefault(f.rel, {})
        for c in f.calls:
            if c.qualname and f.runs_on_load(c.line):
                calls.setdefault(c.qualname, c.line)
    return out


@diff_rule(
    "PD002",
    "new-install-time-call",
    "New code runs at install time",
    Severity.MEDIUM,
    Confidence.LOW,
    Category.CODE_EXECUTION,
)
def new_install_time_call(
    old: PackageContext, new: PackageContext, meta: RuleMeta
) -> Iterator[Finding]:
    """Calls that run when setup.py (or a module it imports) is executed and that the old
    release did not make: new code on the install path deserves a look even when no capability
    rule recognises it. Calls to setuptools/distutils and the usual README/version-file
    plumbing are ignored, as are calls to functions the file defines (their bodies are compared
    call by call). File writes and deletions are reported here; network, process and the other
    PD003 capabilities by PD003, exec/eval by PD004. Medium."""
    from pkgvet.analysis.apis import capability_of

    before = _install_calls(old)
    before_any = {q for calls in before.values() for q in calls}
    roots = _roots(new)
    for rel, calls in sorted(_install_calls(new).items()):
        fc = roots[rel]
        old_calls = before.get(rel, before_any if rel == "setup.py" else {})
        fresh = [
            (q, line)
            for q, line in calls.items()
            if q not in old_calls
            and not _BENIGN_CALL.search(q)
            and q.split("(")[0] not in fc.function_defs
            and capability_of(q) not in _CAP_CATEGORY
            and q not in ("exec", "eval", "compile")
        ]
        if not fresh:
            continue
        fresh.sort(key=lambda ql: ql[1])
        names = ", ".join(q for q, _ in fresh[:8]) + (" …" if len(fresh) > 8 else "")
        yield meta.at(
            fc, fresh[0][1], f"{len(fresh)} new call(s) at install time: {names}", evidence=names
        )


# -- PD003: capabilities ------------------------------------------------------------------------

_CAP_CATEGORY: dict[Cap, Category] = {
    Cap.PROCESS: Category.COMMAND_EXECUTION,
    Cap.NETWORK: Category.REMOTE_CONTROL,
    Cap.DOWNLOAD: Category.REMOTE_CONTROL,
    Cap.SOCKET: Category.REMOTE_CONTROL,
    Cap.DNS: Category.REMOTE_CONTROL,
    Cap.DUP2: Category.REMOTE_CONTROL,
    Cap.MARSHAL: Category.CODE_EXECUTION,
    Cap.CTYPES: Category.CODE_EXECUTION,
    Cap.DECRYPT: Category.INFORMATION_STEALING,
    Cap.KEYLOG: Category.INFORMATION_STEALING,
    Cap.CLIPBOARD: Category.INFORMATION_STEALING,
    Cap.SCREENSHOT: Category.INFORMATION_STEALING,
    Cap.FINGERPRINT: Category.INFORMATION_STEALING,
    Cap.REGISTRY: Category.FILE_OPERATION,
}

CapKey = tuple[str, Trigger, Cap]


def _caps(pkg: PackageContext) -> dict[CapKey, tuple[FileContext, int]]:
    """(file, trigger, capability) -> where it first appears, over files and decoded payloads."""
    out: dict[CapKey, tuple[FileContext, int]] = {}
    for fc in pkg.all_files():
        for cap, line in sorted(fc.caps.items(), key=lambda cl: cl[1]):
            if cap not in _CAP_CATEGORY:
                continue
            key = (fc.rel, _eager_trigger(fc, line), cap)
            if key not in out:
                out[key] = (fc, line)
    return out


@diff_rule(
    "PD003",
    "new-capability",
    "New capability",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.REMOTE_CONTROL,
    "CWE-506",
)
def new_capability(old: PackageContext, new: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A file gains a network, process, native-code, code-loading or credential-access
    capability (``caps`` of the file and its decoded payloads, per trigger point) that it did
    not have in the old release. High when the code runs at install or import time and no file
    of the old release had that capability at that trigger point; medium when it only runs on
    demand and the old release never had it; low when it looks moved (another file of the old
    release had it at the same trigger point). The category follows the capability: process →
    command execution, network/sockets/DNS → remote control, keylogging/clipboard/screenshots/
    decryption/fingerprinting → information stealing, marshal/ctypes → code execution."""
    before = _caps(old)
    had = {(t, c) for (_r, t, c) in before}
    had_cap = {c for (_r, _t, c) in before}
    for (rel, trig, cap), (fc, line) in sorted(
        _caps(new).items(), key=lambda kv: (kv[0][0], kv[1][1], kv[0][2])
    ):
        if (rel, trig, cap) in before:
            continue
        if (trig, cap) in had:
            sev, why = Severity.LOW, " (present in another file of the old release)"
        elif trig in _EAGER_TRIGGERS:
            sev, why = Severity.HIGH, ""
        elif cap in had_cap:
            sev, why = Severity.LOW, " (the old release used it elsewhere)"
        else:
            sev, why = Severity.MEDIUM, ""
        where = " in decoded code" if fc.depth else ""
        yield meta.at(
            fc,
            line,
            f"new {cap.value} capability {_when(trig)}{where}{why}",
            severity=sev,
            category=_CAP_CATEGORY[cap],
        )


# -- PD004: exec sites --------------------------------------------------------------------------


def _exec_sig(fc: FileContext) -> Iterator[tuple[tuple[str, str, str], int, bool]]:
    for s in fc.exec_sites:
        body = (s.payload or "")[:2000]
        yield (fc.rel, s.qualname, body or ",".join(sorted(s.arg_calls))), s.line, s.via_decoder


@diff_rule(
    "PD004",
    "new-exec-site",
    "New exec/eval of dynamic code",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.CODE_EXECUTION,
    "CWE-95",
)
def new_exec_site(old: PackageContext, new: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A call to ``exec``/``eval``/``compile`` that the old release did not have (compared by
    file, function and the statically decoded argument). High when it runs at install or import
    time or its argument passes through a decoder; medium otherwise."""
    before = {sig for fc in old.all_files() for sig, _l, _v in _exec_sig(fc)}
    seen: set[tuple[str, str, str]] = set()
    for fc in new.all_files():
        for sig, line, via in _exec_sig(fc):
            if sig in before or sig in seen:
                continue
            seen.add(sig)
            trig = _eager_trigger(fc, line)
            sev = Severity.HIGH if via or trig in _EAGER_TRIGGERS else Severity.MEDIUM
            how = "decoded " if via else ""
            yield meta.at(
                fc,
                line,
                f"new {sig[1]}() of {how}dynamic code {_when(trig)}",
                severity=sev,
                evidence=sig[2][:400] if fc.depth == 0 else "",
            )


# -- PD005: encoded payloads and blobs ----------------------------------------------------------

_BLOB = re.compile(r"^[A-Za-z0-9+/=_\-\s]{120,}$|^(?:[0-9a-fA-F]{2}){60,}$")


def _payloads(pkg: PackageContext) -> set[tuple[str, Trigger]]:
    return {
        (fc.text, _eager_trigger(fc.parent, fc.origin_line))
        for fc in pkg.all_files()
        if fc.depth and fc.encoded and fc.parent is not None
    }


def _blobs(pkg: PackageContext) -> set[str]:
    return {s for f in pkg.files for s, _l in f.strings if len(s) >= 120 and _BLOB.match(s[:4096])}


@diff_rule(
    "PD005",
    "new-encoded-payload",
    "New encoded payload",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.OBFUSCATION,
    "CWE-506",
)
def new_encoded_payload(
    old: PackageContext, new: PackageContext, meta: RuleMeta
) -> Iterator[Finding]:
    """Code the new release hides in an encoded literal (base64, hex, compressed, reversed) and
    that static decoding recovers, when the old release had no such payload at that trigger
    point (a payload moved from run-time code into an ``__init__`` counts as new): high in a
    file that runs at install or import time, medium otherwise, with the decoded text as
    evidence. A
    new long encoded blob that does not decode to code is low (medium at install/import time):
    releases rarely gain opaque blobs for a good reason."""
    old_payloads = _payloads(old)
    old_blobs = _blobs(old)
    decoded_from: set[tuple[str, int]] = set()
    for fc in new.all_files():
        if not fc.depth or not fc.encoded or fc.parent is None:
            continue
        parent = fc.parent
        decoded_from.add((parent.rel, fc.origin_line))
        trig = _eager_trigger(parent, fc.origin_line)
        if (fc.text, trig) in old_payloads:
            continue
        yield meta.at(
            fc,
            1,
            f"new encoded payload, decoded statically ({fc.depth} layer(s)), {_when(trig)}",
            severity=_sev(trig, Severity.HIGH, Severity.MEDIUM),
            evidence=fc.text,
        )
    for f in new.files:
        reported = 0
        for s, line in f.strings:
            if len(s) < 120 or s in old_blobs or not _BLOB.match(s[:4096]):
                continue
            if (f.rel, line) in decoded_from or reported >= 3:
                continue
            reported += 1
            trig = _eager_trigger(f, line)
            yield meta.at(
                f,
                line,
                f"new encoded blob of {len(s)} characters {_when(trig)} (not decoded to code)",
                severity=_sev(trig, Severity.MEDIUM, Severity.LOW),
                evidence=s[:120],
            )


# -- PD006: binaries ----------------------------------------------------------------------------


def _binaries(archive: Archive) -> dict[str, str]:
    out = {}
    for m in archive.members:
        if not m.data.startswith(EXECUTABLE_PREFIXES):
            continue
        if m.data.startswith(b"MZ") and b"PE\x00\x00" not in m.data[:1024]:
            continue
        out[m.rel] = hashlib.sha256(m.data).hexdigest()
    return out


@diff_rule(
    "PD006",
    "new-binary",
    "New native executable",
    Severity.MEDIUM,
    Confidence.MEDIUM,
    Category.FILE_OPERATION,
    "CWE-506",
)
def new_binary(old: PackageContext, new: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """An ELF, PE or Mach-O file at a path the old release did not have: medium when the old
    release shipped no executable at all, low when it already shipped some (a new extension
    module of a compiled project). An executable whose bytes changed at the same path is info
    (rebuilt extension modules change every release)."""
    before = _binaries(old.archive)
    members = {m.rel: m for m in new.archive.members}
    for rel, digest in sorted(_binaries(new.archive).items()):
        path = members[rel].path
        if rel not in before:
            yield meta.on_package(
                path,
                "new native executable" + ("" if not before else " (the old release had others)"),
                severity=Severity.LOW if before else Severity.MEDIUM,
            )
        elif before[rel] != digest:
            yield meta.on_package(path, "native executable changed", severity=Severity.INFO)


# -- PD007: new files at install / import time --------------------------------------------------


@diff_rule(
    "PD007",
    "new-load-time-file",
    "New file runs at install or import time",
    Severity.MEDIUM,
    Confidence.LOW,
    Category.CODE_EXECUTION,
)
def new_load_time_file(
    old: PackageContext, new: PackageContext, meta: RuleMeta
) -> Iterator[Finding]:
    """A Python file that runs when the package is installed (setup.py where the old release had
    none, a module setup.py imports) is medium; one that runs on import (a top-level package
    ``__init__``, a module it imports at load time) is low; a new shell, batch, PowerShell or
    JavaScript file is low. ``.pth`` files are PD001."""
    before = {m.rel for m in old.archive.members}
    for f in new.files:
        if f.rel in before or f.rel.lower().endswith(".pth"):
            continue
        trig = f.trigger if f.trigger is not Trigger.RUNTIME else (f.reached or Trigger.RUNTIME)
        if trig is Trigger.INSTALL:
            yield meta.on_package(
                f.path, "new file that runs at install time", trigger=Trigger.INSTALL
            )
        elif trig is Trigger.IMPORT:
            yield meta.on_package(
                f.path,
                "new file that runs at import time",
                severity=Severity.LOW,
                trigger=Trigger.IMPORT,
            )
    for m, _text in new.scripts:
        if m.rel not in before and m.rel.lower().endswith(SCRIPT_SUFFIXES):
            ext = posixpath.splitext(m.rel)[1]
            yield meta.on_package(m.path, f"new {ext} script", severity=Severity.LOW)


# -- PD008: metadata ----------------------------------------------------------------------------

_IDENTITY_FIELDS = (
    "author",
    "author_email",
    "maintainer",
    "maintainer_email",
    "home_page",
    "download_url",
)


def _identity(pkg: PackageContext) -> tuple[str, dict[str, str]]:
    """Who the package says it is: core-metadata fields (PKG-INFO/METADATA), else PackageInfo."""
    from pkgvet.analysis import metadata

    out: dict[str, str] = {}
    core = metadata.core_metadata_member(pkg.archive.members)
    path = pkg.metadata_path
    if core is not None:
        from packaging.metadata import parse_email

        raw, _bad = parse_email(core.data)
        path = core.path
        for key in _IDENTITY_FIELDS:
            value = raw.get(key)
            if isinstance(value, str) and value.strip():
                out[key] = value.strip()
        for label, url in sorted((raw.get("project_urls") or {}).items()):
            if label.strip().lower() in ("homepage", "home", "source", "repository", "source code"):
                out.setdefault("home_page", url.strip())
    info = pkg.info
    for key, value in (
        ("author", info.author),
        ("author_email", info.author_email),
        ("home_page", info.home_page),
    ):
        if value and value.strip() and key not in out:
            out[key] = value.strip()
    return path, out


def _norm(value: str) -> str:
    return " ".join(value.casefold().split()).rstrip("/")


@diff_rule(
    "PD008",
    "identity-changed",
    "Author, maintainer or home page changed",
    Severity.MEDIUM,
    Confidence.LOW,
    Category.METADATA,
)
def identity_changed(old: PackageContext, new: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """The author, maintainer, their e-mail addresses, the home page or the download URL differ
    from the old release's (ignoring case and spacing): medium when a value was replaced or
    removed, info when one was added. A new e-mail address or home page is what an account
    takeover or a look-alike fork changes; many are legitimate, so this asks for a look."""
    _old_path, before = _identity(old)
    path, after = _identity(new)
    for key in _IDENTITY_FIELDS:
        a, b = before.get(key), after.get(key)
        if (a is None and b is None) or (a is not None and b is not None and _norm(a) == _norm(b)):
            continue
        label = key.replace("_", "-")
        if a is None:
            yield meta.on_package(
                path, f"{label} added: {b!r}", severity=Severity.INFO, evidence=f"{b}"
            )
        else:
            yield meta.on_package(
                path, f"{label} changed from {a!r} to {b!r}", evidence=f"{a} -> {b}"
            )


# -- PD009: credential access -------------------------------------------------------------------

_CREDENTIAL = re.compile(
    r"\.aws[/\\]credentials|\.ssh[/\\]id_|\.ssh[/\\]|\.netrc|\.pypirc|\.git-credentials|"
    r"\.docker[/\\]config\.json|\.kube[/\\]config|/etc/shadow|/etc/passwd|Login Data|"
    r"Local State|Cookies|leveldb|wallet\.dat|Keychains?|\.npmrc|\.gnupg|"
    r"AWS_SECRET_ACCESS_KEY|GITHUB_TOKEN|PYPI_TOKEN|discord(?:app)?[/\\]",
    re.IGNORECASE,
)


def _credentials(pkg: PackageContext) -> dict[tuple[str, str], tuple[FileContext, int]]:
    out: dict[tuple[str, str], tuple[FileContext, int]] = {}
    for fc in pkg.all_files():
        for s, line in fc.strings:
            if len(s) > 4096:
                continue
            for m in _CREDENTIAL.finditer(s):
                key = (fc.rel, m.group(0).lower().replace("\\", "/"))
                out.setdefault(key, (fc, line))
    return out


@diff_rule(
    "PD009",
    "new-credential-access",
    "New reference to credentials or secrets",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-522",
)
def new_credential_access(
    old: PackageContext, new: PackageContext, meta: RuleMeta
) -> Iterator[Finding]:
    """A file names a credential store the old release did not mention (SSH keys, cloud and
    package-index tokens, ``.netrc``, browser password and cookie databases, wallets, Discord
    tokens, ``/etc/shadow``): high when the code runs at install or import time, medium
    otherwise."""
    before = {k[1] for k in _credentials(old)}
    for (_rel, what), (fc, line) in sorted(
        _credentials(new).items(), key=lambda kv: (kv[0][0], kv[1][1])
    ):
        if what in before:
            continue
        trig = _eager_trigger(fc, line)
        yield meta.at(
            fc,
            line,
            f"new reference to {what!r} {_when(trig)}",
            severity=_sev(trig, Severity.HIGH, Severity.MEDIUM),
        )


# -- running the checks -------------------------------------------------------------------------


def diff_packages(
    old: PackageContext,
    new: PackageContext,
    select: frozenset[str] = frozenset(),
    ignore: frozenset[str] = frozenset(),
) -> tuple[list[Finding], list[Skip]]:
    """The diff findings of ``new`` against ``old`` (sorted worst first) and the checks that
    failed (a bug in one check must not lose the others)."""
    findings: list[Finding] = []
    skips: list[Skip] = []
    for rid in sorted(DIFF_REGISTRY):
        if not selected(rid, select, ignore):
            continue
        try:
            findings.extend(DIFF_REGISTRY[rid].run(old, new))
        except (
            RecursionError,
            MemoryError,
            ValueError,
            TypeError,
            AttributeError,
            KeyError,
            IndexError,
        ) as exc:
            skips.append(Skip("*", f"diff check {rid} failed: {type(exc).__name__}"))
    findings.sort(key=lambda f: (-f.severity.rank, f.path, f.line, f.rule_id))
    return findings, skips


def load_archive(path: Path, config: ScanConfig) -> Archive:
    """An archive file or an unpacked directory, read as bytes (nothing is extracted or run)."""
    if path.is_dir():
        return read_directory(path, config.limits)
    try:
        st = path.stat()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path}: not a regular file")
    if st.st_size > config.limits.max_archive_bytes:
        raise ArchiveError(
            f"{path}: {st.st_size} bytes, over the {config.limits.max_archive_bytes}-byte limit"
        )
    if not is_archive_name(path.name):
        with path.open("rb") as fh:
            head = fh.read(4)
        if not head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zX")):
            raise SourceError(f"{path}: not an archive or a package directory")
    return read_archive(path.read_bytes(), path.name, config.limits, config.password)


def diff_archives(
    old: Archive, new: Archive, config: ScanConfig, target: str, start: float | None = None
) -> ScanResult:
    """The diff of two archives as a :class:`ScanResult` for the new release whose findings
    are the diff findings. Rules-only verdict, at most ``suspicious``: a change is a reason to
    look, not proof."""
    start = time.monotonic() if start is None else start
    result = ScanResult(target=target, kind=new.kind)
    deadline = start + config.limits.time_budget_s
    try:
        old_pkg = build_context(old, config.limits, deadline)
        new_pkg = build_context(new, config.limits, deadline)
    except ScanBudgetExceeded:
        result.error = f"time budget of {config.limits.time_budget_s:g}s exceeded while parsing"
        apply_verdict(result)
        return result
    findings, skips = diff_packages(old_pkg, new_pkg, config.select, config.ignore)
    result.package = new_pkg.info
    result.skips = skips
    result.findings = [f for f in findings if f.severity >= config.min_severity]
    result.stats = {
        "files": len(new.members),
        "old_files": len(old.members),
        "diff_findings": len(findings),
    }
    finish_diff_result(result, old_pkg.info.version, new_pkg.info.version)
    result.duration_s = time.monotonic() - start
    return result


def finish_diff_result(
    result: ScanResult, old_version: str | None, new_version: str | None
) -> None:
    """Rules-only verdict capped at suspicious (a change is a reason to look, not proof), and
    the versions compared as the first reason."""
    apply_verdict(result)
    if result.verdict is Verdict.MALICIOUS and not any(
        f.severity >= Severity.CRITICAL for f in result.findings
    ):
        result.verdict = Verdict.SUSPICIOUS
    result.reasons.insert(0, f"diff {old_version or '?'} → {new_version or '?'}")


def diff_paths(old: Path, new: Path, config: ScanConfig, target: str | None = None) -> ScanResult:
    """Diff two local archives or unpacked directories; unreadable input gives an error result."""
    start = time.monotonic()
    label = target or f"{old} → {new}"
    try:
        a = load_archive(old, config)
        b = load_archive(new, config)
        result = diff_archives(a, b, config, label, start)
    except (PkgvetError, OSError) as exc:
        msg = exc.diagnostics() if isinstance(exc, PkgvetError) else f"cannot read: {exc}"
        result = ScanResult(target=label, kind="diff", error=msg)
        apply_verdict(result)
        result.duration_s = time.monotonic() - start
        return result
    if new.is_file():
        result.sha256 = _sha256(new)
        result.size = new.stat().st_size
    return result


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def attach_diff(result: ScanResult, old: Path, new: Path, config: ScanConfig, label: str) -> None:
    """Add the diff findings of ``new`` against ``old`` to the scan result of ``new`` (``scan
    --compare-previous``). The scan's verdict stands, except that a clean package with a high
    diff finding becomes suspicious; a diff that cannot be computed is a skip, not an error."""
    diff = diff_paths(old, new, config, target=label)
    if diff.error:
        result.skips.append(Skip("*", f"not compared with {label}: {diff.error}"))
        return
    result.findings = sorted(
        [*result.findings, *diff.findings],
        key=lambda f: (-f.severity.rank, f.path, f.line, f.rule_id),
    )
    result.skips.extend(diff.skips)
    result.stats["diff_findings"] = diff.stats.get("diff_findings", 0)
    result.reasons.append(f"compared with {label}: {len(diff.findings)} change finding(s)")
    worst = max((f.severity for f in diff.findings), default=None)
    if result.verdict is Verdict.CLEAN and worst is not None and worst >= Severity.HIGH:
        result.verdict = Verdict.SUSPICIOUS
