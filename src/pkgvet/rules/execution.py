"""Command and code execution: processes, shell one-liners, exec of decoded or downloaded code,
droppers."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator

from pkgvet.analysis.apis import Cap, capability_of, network_call
from pkgvet.analysis.context import FileContext, PackageContext
from pkgvet.models import Category, Confidence, Finding, Severity, Trigger
from pkgvet.rules.base import RuleMeta, rule
from pkgvet.rules.indicators import SHELL_HIGH, search_strings

_PROCESS_SEVERITY = {
    Trigger.INSTALL: Severity.MEDIUM,
    Trigger.IMPORT: Severity.MEDIUM,
    Trigger.RUNTIME: Severity.LOW,
}


@rule(
    "PV101",
    "process-execution",
    "Runs another program",
    Severity.MEDIUM,
    Confidence.MEDIUM,
    Category.COMMAND_EXECUTION,
    "CWE-78",
)
def process_execution(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Code starts another program (``os.system``, ``subprocess``, ``os.exec*``, ``pty.spawn``,
    ``os.startfile``...), including through ``__import__``/``getattr`` with computed names.

    Reported once per file, at the first call: medium in install- or import-time code (a build
    that shells out is unusual enough to read), low elsewhere. Command strings that look like
    droppers or shells are PV102.
    """
    for f in pkg.all_files():
        if Cap.PROCESS in f.caps:
            names = sorted({c.qualname for c in f.calls if _is_process(c.qualname)})
            yield meta.at(
                f,
                f.caps[Cap.PROCESS],
                f"calls {', '.join(names[:4])}",
                severity=_PROCESS_SEVERITY.get(f.trigger, Severity.LOW),
            )


def _is_process(name: str) -> bool:
    return capability_of(name) is Cap.PROCESS


@rule(
    "PV102",
    "suspicious-shell-command",
    "Shell command typical of droppers and shells",
    Severity.HIGH,
    Confidence.HIGH,
    Category.COMMAND_EXECUTION,
    "CWE-78",
)
def suspicious_shell_command(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A string (in code, decoded code or a shipped script) holds a command line that downloads
    and runs something or opens a shell: ``curl … | sh``, ``powershell -EncodedCommand`` /
    ``-w hidden`` / ``IEX`` / ``DownloadString``, ``certutil -urlcache``, ``bitsadmin
    /transfer``, ``mshta http…``, ``/dev/tcp/``, ``nc -e``, ``bash -i >&``, ``cmd /c start``.
    """
    for f in pkg.all_files():
        run_lines = {c.line for c in f.calls if _is_process(c.qualname)}
        for line, text in search_strings(f, SHELL_HIGH):
            live = f.trigger is not Trigger.RUNTIME or f.depth > 0 or line in run_lines
            yield meta.at(
                f,
                line,
                "shell command that fetches and runs code or opens a shell",
                evidence=_decode_powershell(text),
                severity=Severity.HIGH if live else Severity.MEDIUM,
            )
            break
    for member, text in pkg.scripts:
        m = SHELL_HIGH.search(text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            yield meta.on_package(
                member.path, "shipped script fetches and runs code", evidence=m.group(0), line=line
            )


_PS_ENCODED = re.compile(r"-e(?:nc(?:odedcommand)?)?\s+([A-Za-z0-9+/=]{16,})", re.I)


def _decode_powershell(text: str) -> str:
    """Show what ``powershell -EncodedCommand <base64 UTF-16LE>`` runs."""
    m = _PS_ENCODED.search(text)
    if not m:
        return text
    try:
        raw = base64.b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4))
        return f"{text} → {raw.decode('utf-16-le', 'replace')}"
    except (ValueError, binascii.Error):
        return text


@rule(
    "PV201",
    "exec-decoded-payload",
    "Executes code it decodes at run time",
    Severity.HIGH,
    Confidence.HIGH,
    Category.CODE_EXECUTION,
    "CWE-506",
)
def exec_decoded_payload(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``exec``/``eval``/``compile`` is handed the output of base64/base32/hex/zlib/gzip/bz2/
    lzma/rot13/``chr``-list/reversed-string decoding: code hidden from readers and scanners.
    When the payload can be decoded statically it is shown as evidence and analysed like any
    other source (findings inside it point at this line).
    """
    for f in pkg.all_files():
        for site in f.exec_sites:
            if site.via_decoder:
                evidence = site.payload or ", ".join(sorted(site.arg_calls))
                yield meta.at(f, site.line, f"{site.qualname}() of decoded data", evidence=evidence)


@rule(
    "PV202",
    "exec-downloaded-code",
    "Executes code fetched from the network",
    Severity.HIGH,
    Confidence.HIGH,
    Category.CODE_EXECUTION,
    "CWE-494",
)
def exec_downloaded_code(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``exec``/``eval`` of what an HTTP request returned (``exec(requests.get(u).text)``,
    ``exec(urlopen(u).read())``), or a file that downloads and calls ``exec`` on a variable:
    a second-stage payload the package itself does not contain."""
    for f in pkg.all_files():
        for site in f.exec_sites:
            if any(
                network_call(n.split("(")[0].removesuffix("."))
                or "urlopen" in n
                or n.startswith(("requests.", "httpx."))
                for n in site.arg_calls
            ):
                yield meta.at(f, site.line, f"{site.qualname}() of a network response")
                break
        else:
            if (
                (Cap.NETWORK in f.caps or Cap.DOWNLOAD in f.caps)
                and any(
                    not s.literal
                    and not s.via_decoder
                    and s.qualname in ("exec", "eval")
                    and not _reads_local_file(s.arg_calls)
                    for s in f.exec_sites
                )
                and f.trigger is not Trigger.RUNTIME
            ):
                site = next(
                    s for s in f.exec_sites if s.qualname in ("exec", "eval") and not s.literal
                )
                yield meta.at(
                    f,
                    site.line,
                    "downloads data and executes a computed string",
                    severity=Severity.MEDIUM,
                    confidence=Confidence.MEDIUM,
                )


def _reads_local_file(calls: frozenset[str]) -> bool:
    return "open" in calls or any(c.endswith((".read_text", "open().read")) for c in calls)


@rule(
    "PV203",
    "download-and-run",
    "Downloads a file and runs it (dropper)",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.CODE_EXECUTION,
    "CWE-494",
)
def download_and_run(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """The same code fetches something from the network, writes it to disk and starts a
    process or makes a file executable: the dropper pattern (``urlretrieve`` + ``os.startfile``,
    ``requests.get`` + ``open(..., "wb")`` + ``subprocess.Popen``)."""
    for f in pkg.all_files():
        fetches = Cap.DOWNLOAD in f.caps or (Cap.NETWORK in f.caps and _writes_binary(f))
        runs = Cap.PROCESS in f.caps or Cap.CHMOD in f.caps
        if fetches and runs:
            line = f.caps.get(Cap.DOWNLOAD) or f.caps[Cap.NETWORK]
            severity = Severity.HIGH if f.trigger is not Trigger.RUNTIME else Severity.MEDIUM
            yield meta.at(
                f, line, "fetches a file, writes it and runs a program", severity=severity
            )


def _writes_binary(f: FileContext) -> bool:
    for c in f.calls_matching("open", "io.open", "builtins.open"):
        args = f.const_args(c)
        if any(isinstance(a, str) and "w" in a and "b" in a for a in args[1:]):
            return True
    return any(c.qualname.endswith(".write_bytes") for c in f.calls)


@rule(
    "PV204",
    "dynamic-exec-at-install",
    "Executes a computed string at install or import",
    Severity.LOW,
    Confidence.LOW,
    Category.CODE_EXECUTION,
    "CWE-95",
)
def dynamic_exec_at_install(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``exec``/``eval`` of something other than a literal in setup.py, a .pth file or a
    package ``__init__``. Common and harmless for reading a version file; shown so that a
    reviewer can check what is executed."""
    for f in pkg.all_files():
        if f.trigger in (Trigger.INSTALL, Trigger.IMPORT):
            for site in f.exec_sites:
                if not site.literal and not site.via_decoder and site.qualname != "compile":
                    yield meta.at(f, site.line, f"{site.qualname}() of a computed value")
                    break


@rule(
    "PV205",
    "marshal-code",
    "Loads marshalled bytecode",
    Severity.HIGH,
    Confidence.HIGH,
    Category.CODE_EXECUTION,
    "CWE-506",
)
def marshal_code(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``marshal.loads`` turns bytes into code objects: used to ship pre-compiled, unreadable
    payloads (``exec(marshal.loads(...))``). pkgvet never unmarshals; printable strings of the
    blob are shown as evidence."""
    for f in pkg.all_files():
        execs = any(
            "marshal.loads" in s.arg_calls or "marshal.load" in s.arg_calls for s in f.exec_sites
        )
        for c in f.calls_matching("marshal.loads", "marshal.load"):
            args = f.const_args(c)
            evidence = _printable_runs(args[0]) if args and isinstance(args[0], bytes) else ""
            live = execs or f.trigger is not Trigger.RUNTIME or f.depth > 0
            yield meta.at(
                f,
                c.line,
                "loads code objects from bytes",
                evidence=evidence,
                severity=Severity.HIGH if live else Severity.MEDIUM,
            )
            break


def _printable_runs(data: bytes) -> str:
    return " ".join(m.decode("ascii") for m in re.findall(rb"[ -~]{6,}", data[:65536])[:40])
