"""Obfuscation and anti-detection: decoded payloads, encoded blobs, obfuscator markers, code
pushed out of sight, computed imports, steganography."""

from __future__ import annotations

import ast
import base64
import binascii
import re
from collections.abc import Iterator

from pkgvet.analysis.apis import Cap
from pkgvet.analysis.context import PackageContext, entropy, evaluated_name
from pkgvet.analysis.keywords import KeywordHits
from pkgvet.archive import EXECUTABLE_MAGIC
from pkgvet.models import Category, Confidence, Finding, Severity, Trigger
from pkgvet.rules.base import RuleMeta, eager, rule, trigger_at, writes_file
from pkgvet.rules.indicators import (
    HIDDEN_BY_WHITESPACE,
    OBFUSCATOR_COMMERCIAL,
    OBFUSCATOR_MALWARE,
    Indicator,
)

_DANGEROUS_MODULES = frozenset(
    {
        "os",
        "subprocess",
        "socket",
        "builtins",
        "base64",
        "marshal",
        "zlib",
        "urllib",
        "urllib.request",
        "requests",
        "ctypes",
        "pty",
        "__builtin__",
        "importlib",
        "codecs",
    }
)
_BUILTINS = frozenset({"__builtins__", "builtins", "__builtin__"})
_HEX_HEAD = re.compile(r"[0-9a-fA-F]{16}")
_ACTIVE = (Cap.PROCESS, Cap.NETWORK, Cap.SOCKET, Cap.DOWNLOAD, Cap.EXEC, Cap.DNS, Cap.MARSHAL)


@rule(
    "PV601",
    "encoded-python-payload",
    "Carries Python code in encoded form",
    Severity.HIGH,
    Confidence.HIGH,
    Category.OBFUSCATION,
    "CWE-506",
)
def encoded_python_payload(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A literal that decodes statically (base64/hex, zlib/gzip/bz2/lzma, reversal, nested) to
    Python source. pkgvet decodes it without running it and analyses the result; this finding
    shows the decoded code. High when the hidden code runs programs, uses the network or
    executes more code, medium otherwise."""
    for f in pkg.files:
        for child in f.walk():
            if child.depth == 0 or not child.encoded:
                continue
            active = any(c in child.caps for c in _ACTIVE)
            layers = "1 layer" if child.depth == 1 else f"{child.depth} layers"
            yield meta.at(
                child,
                1,
                f"decoded Python payload ({layers} deep)",
                severity=Severity.HIGH if active else Severity.MEDIUM,
                evidence=child.text[:400],
            )


@rule(
    "PV602",
    "encoded-blob",
    "Long high-entropy encoded string",
    Severity.LOW,
    Confidence.LOW,
    Category.OBFUSCATION,
)
def encoded_blob(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A string literal of 2,000+ characters of base64/hex alphabet with high entropy that did
    not decode to Python: possibly an embedded binary payload (or an icon)."""
    for f in pkg.all_files():
        decoded_lines = {c.origin_line for c in f.children}
        for s, line in f.strings:
            if line in decoded_lines:
                continue
            if len(s) >= 2000 and " " not in s[:200] and entropy(s[:4096]) > 5.2:
                yield meta.at(f, line, f"{len(s)}-character high-entropy string", evidence=s[:80])
                break


@rule(
    "PV603",
    "obfuscator-marker",
    "Produced by a code obfuscator",
    Severity.HIGH,
    Confidence.HIGH,
    Category.OBFUSCATION,
    "CWE-506",
)
def obfuscator_marker(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Markers of obfuscators favoured by stealers (BlankOBF, Hyperion, pyobfuscate, Kramer,
    Py-Fuscate): high. Commercial protectors (PyArmor, SourceDefender) hide code from review
    too, and are reported as medium; high when they protect setup.py itself, code that only
    builds and installs the package and that the user's machine runs unseen."""
    for f in pkg.files:
        lowered = f.text.lower()  # once per file, for both indicators' keyword prefilters
        hits = OBFUSCATOR_MALWARE.keyword_hits(lowered)  # both indicators' keywords, one pass
        found = _marker(f.text, OBFUSCATOR_MALWARE, lowered, hits)
        if found:
            yield meta.at(f, found[0], "malware obfuscator marker", evidence=found[1])
            continue
        found = _marker(f.text, OBFUSCATOR_COMMERCIAL, lowered, hits)
        if found:
            install = trigger_at(f, found[0]) is Trigger.INSTALL
            yield meta.at(
                f,
                found[0],
                "commercial code protector" + (" in install-time code" if install else ""),
                evidence=found[1],
                severity=Severity.HIGH if install else Severity.MEDIUM,
                confidence=Confidence.MEDIUM,
            )


def _marker(
    text: str, indicator: Indicator, lowered: str, hits: KeywordHits | None
) -> tuple[int, str] | None:
    m = next(indicator.finditer(text, lowered, hits), None)
    if m is None:
        return None
    return text.count("\n", 0, m.start()) + 1, m.group(0)


@rule(
    "PV604",
    "code-hidden-by-whitespace",
    "Code pushed out of view by whitespace",
    Severity.HIGH,
    Confidence.HIGH,
    Category.OBFUSCATION,
    "CWE-506",
)
def code_hidden_by_whitespace(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A statement placed after code and then 150 or more spaces or tabs on the same line, so
    that it sits off the right edge of an editor or a web code view. A line that merely starts
    far right (a continuation aligned under an opening bracket) is layout, not hiding."""
    for f in pkg.files:
        m = HIDDEN_BY_WHITESPACE.search(f.text, f.text)
        if m:
            line = f.text.count("\n", 0, m.start()) + 1
            yield meta.at(
                f,
                line,
                "code hidden far to the right",
                evidence=f.text[m.end() - 1 : m.end() + 200].split("\n", 1)[0],
            )


@rule(
    "PV605",
    "computed-import",
    "Imports a module by a computed name",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.OBFUSCATION,
    "CWE-506",
)
def computed_import(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``__import__``/``importlib.import_module``/``getattr`` whose name is built (reversed,
    joined from ``chr`` codes, decoded) rather than written: hiding ``os``/``subprocess``/
    ``socket`` from text search. High when the computed name is a dangerous module or
    function, or when a built-in is fetched from ``__builtins__`` by a computed name (the
    trick of obfuscators that spell ``chr`` as ``str(oct)[-3] + str(hex)[-4] + ...``)."""
    for f in pkg.all_files():
        for c in f.calls_matching("__import__", "importlib.import_module", "getattr"):
            if c.node is None:
                continue
            idx = 1 if c.qualname == "getattr" else 0
            if len(c.node.args) <= idx or isinstance(c.node.args[idx], ast.Constant):
                continue
            value = f.folder.fold(c.node.args[idx])
            if (
                idx
                and isinstance(c.node.args[0], ast.Name)
                and c.node.args[0].id in _BUILTINS
                and value is not None  # spelled from constants, not looked up from data
            ):
                yield meta.at(
                    f,
                    c.line,
                    "built-in looked up by a computed name",
                    evidence=str(value) if value is not None else "",
                )
                break
            if isinstance(value, str) and (
                value in _DANGEROUS_MODULES or value in ("system", "popen", "exec", "eval")
            ):
                yield meta.at(f, c.line, f"computed name resolves to {value!r}", evidence=value)
                break


@rule(
    "PV606",
    "steganography",
    "Extracts a payload from an image",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.OBFUSCATION,
    "CWE-506",
)
def steganography(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Image reading (Pillow pixels, ``stegano``/``lsb``) in the same code as ``exec``/``eval``
    or decoding: a payload hidden in the pixels of a picture, often downloaded."""
    for f in pkg.all_files():
        image = Cap.IMAGE in f.caps or any(i.startswith(("stegano", "lsb")) for i in f.imports)
        if image and (Cap.EXEC in f.caps or Cap.MARSHAL in f.caps):
            live = eager(f, f.caps.get(Cap.IMAGE, 1))
            yield meta.at(
                f,
                f.caps.get(Cap.IMAGE, 1),
                "reads image data and executes code",
                severity=Severity.HIGH if live else Severity.MEDIUM,
            )


def _encoded_executable(s: str) -> str | None:
    """The format of the native executable (:data:`pkgvet.archive.EXECUTABLE_MAGIC`) whose
    bytes this literal spells in hex or base64 (only its first characters are decoded)."""
    head = s[:16]
    try:
        if _HEX_HEAD.fullmatch(head):
            raw = bytes.fromhex(head)
        else:
            raw = base64.b64decode(head, validate=True)
    except (binascii.Error, ValueError):
        return None
    return next((kind for magic, kind in EXECUTABLE_MAGIC.items() if raw.startswith(magic)), None)


@rule(
    "PV607",
    "encoded-executable",
    "Carries a native executable as encoded text",
    Severity.HIGH,
    Confidence.HIGH,
    Category.OBFUSCATION,
    "CWE-506",
)
def encoded_executable(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A string literal of 256+ characters that is a Windows, ELF or Mach-O executable in
    base64 or hex (``TVqQAAMAAAAEAAAA...``): a program smuggled inside source code, where
    neither a reviewer nor a binary scanner looks. High when the same code writes files or
    starts programs (the dropper writes it out and runs it), medium otherwise."""
    for f in pkg.all_files():
        for s, line in f.strings:
            if len(s) < 256:
                continue
            kind = _encoded_executable(s)
            if kind is None:
                continue
            drops = Cap.PROCESS in f.caps or Cap.CTYPES in f.caps or writes_file(f)
            yield meta.at(
                f,
                line,
                f"an encoded {kind} executable in a {len(s):,}-character string",
                severity=Severity.HIGH if drops else Severity.MEDIUM,
                evidence=s[:80],
            )
            break


@rule(
    "PV608",
    "builtin-by-eval",
    "Looks up exec, eval or a module by evaluating its name",
    Severity.HIGH,
    Confidence.HIGH,
    Category.OBFUSCATION,
    "CWE-506",
)
def builtin_by_eval(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``eval("eval")``, ``eval("\\x65\\x78\\x65\\x63")``, ``eval(compile("exec", ...))`` or
    ``eval("__import__('base64')")``: the name of an exec-family built-in or of a module is
    evaluated instead of written, so that ``exec`` and the decoders never appear in the source
    (BlankOBF-style obfuscators). Nothing but hiding needs it. pkgvet follows the names bound
    this way, so the final ``exec`` of the decoded payload is analysed too."""
    for f in pkg.all_files():
        for site in f.exec_sites:
            if site.payload is None or site.qualname not in _NAME_EVALUATORS:
                continue
            target = evaluated_name(site.payload)
            if target:
                yield meta.at(
                    f,
                    site.line,
                    f"{site.qualname}() of the name {site.payload.strip()[:60]!r}",
                    evidence=site.payload[:200],
                )
                break


_NAME_EVALUATORS = frozenset({"eval", "builtins.eval", "compile", "builtins.compile"})
