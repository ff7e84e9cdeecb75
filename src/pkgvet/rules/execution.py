"""Command and code execution: processes, shell one-liners, exec of decoded or downloaded code,
droppers."""

from __future__ import annotations

import ast
import base64
import binascii
import re
from collections.abc import Iterator

from pkgvet.analysis.apis import Cap, capability_of, network_call, program_name
from pkgvet.analysis.context import (
    CallSite,
    FileContext,
    PackageContext,
    decode_blob,
    program_file_name,
)
from pkgvet.analysis.fold import DECODER_NAMES
from pkgvet.models import Category, Confidence, Finding, Severity, Trigger
from pkgvet.rules.base import RuleMeta, eager, rule, started_by_code, writes_file
from pkgvet.rules.indicators import (
    EXFIL_SERVICE,
    PASTE_SHARE,
    SHELL_HIGH,
    URL_IP,
    first_string_match,
    public_ip,
    search_strings,
)

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

    Reported once per file: medium in install- or import-time code (a build that shells out is
    unusual enough to read), low elsewhere and where only maintainer commands start programs
    (``if sys.argv[-1] == "publish":``). High when code that runs on install or import
    starts a program, named by a constant, that is not a build tool (compilers, build systems,
    version control, pkg-config, the interpreter, pip...): ``dir``, ``env``, ``whoami``,
    ``echo``, a binary in a temp folder (``clear``, ``cls``, ``color`` and ``title`` only redraw
    the terminal, and ``rm`` of files inside the source tree cleans a build: they stay
    medium). Command strings that look like droppers or shells are PV102.
    """
    for f in pkg.all_files():
        if Cap.PROCESS not in f.caps:
            continue
        sites = [c for c in f.calls if _is_process(c.qualname)]
        foreign = next(
            (
                (c, cmd)
                for c in sites
                if eager(f, c.line) and (cmd := _constant_command(f, c)) and _foreign(cmd)
            ),
            None,
        )
        if foreign is not None:
            call, cmd = foreign
            yield meta.at(
                f,
                call.line,
                f"{call.qualname} runs {program_name(cmd)!r} on install or import",
                severity=Severity.HIGH,
                evidence="" if f.depth else cmd,
            )
            continue
        names = sorted({c.qualname for c in sites})
        dormant = bool(sites) and all(f.dormant(c.line) for c in sites)
        yield meta.at(
            f,
            f.caps[Cap.PROCESS],
            f"calls {', '.join(names[:4])}",
            severity=Severity.LOW if dormant else _PROCESS_SEVERITY.get(f.trigger, Severity.LOW),
        )


def _foreign(cmd: str) -> bool:
    """A command no build runs: not a build tool, not a terminal redraw, and not ``rm`` of
    files inside the source tree (``rm -rf build dist *.egg-info``)."""
    program = program_name(cmd)
    if program in _BUILD_TOOLS or program in _TERMINAL_COMMANDS:
        return False
    return not (
        program == "rm"
        and not any(c in cmd for c in ";&|<>`$\n")  # one command, nothing chained
        and _inside_tree(cmd.split()[1:])
    )


def _inside_tree(args: list[str]) -> bool:
    """Command-line arguments that name only paths inside the current folder: options, and
    relative paths with no ``..``, home, variable or drive part (``./build``, ``*.pyc``)."""
    paths = [a.strip("\"'") for a in args if not a.startswith("-")]
    return bool(paths) and all(
        p
        and not p.startswith(("/", "~", "$", "%", "\\"))
        and ":" not in p
        and ".." not in p.replace("\\", "/").split("/")
        and p.strip("./*") != ""
        for p in paths
    )


# Commands that only redraw the terminal or its window (a console program clearing the screen
# or setting its colours and title on import).
_TERMINAL_COMMANDS = frozenset({"clear", "cls", "color", "title"})

# Programs a build legitimately runs from setup.py or a package's __init__.
_BUILD_TOOLS = frozenset(
    {
        "git",
        "hg",
        "svn",
        "bzr",
        "cmake",
        "make",
        "gmake",
        "nmake",
        "ninja",
        "meson",
        "scons",
        "gcc",
        "g++",
        "cc",
        "c++",
        "clang",
        "clang++",
        "cl",
        "cl.exe",
        "ld",
        "ar",
        "nvcc",
        "hipcc",
        "gfortran",
        "ifort",
        "icc",
        "mpicc",
        "swig",
        "cython",
        "pkg-config",
        "pkgconf",
        "protoc",
        "npm",
        "yarn",
        "pnpm",
        "node",
        "go",
        "cargo",
        "rustc",
        "javac",
        "java",
        "mvn",
        "ant",
        "autoreconf",
        "autoconf",
        "automake",
        "configure",
        "./configure",
        "xcrun",
        "xcode-select",
        "uname",
        "which",
        "where",
        "lsb_release",
        "sw_vers",
        "ldconfig",
        "brew",
        "nm",
        "otool",
        "install_name_tool",
        "patchelf",
        "strip",
        "llvm-config",
        "nproc",
        "sysctl",
        "getconf",
        "python",
        "python3",
        "python2",
        "py",
        "pytest",
        "sphinx-build",
        "doxygen",
        "pandoc",
        "msgfmt",
        "pyrcc5",
        "pyuic5",
        "rcc",
        "moc",
        "qmake",
        "bison",
        "flex",
        "yacc",
        "lex",
        "perl",
        "tar",
        "unzip",
        "cp",
        "mkdir",
        "mv",
        "ln",
        "chmod",
        "touch",
        "true",
        "sh",
        "bash",
        "cmd",
        "powershell",
        "nvidia-smi",
        "rocm-smi",
        "hl-smi",
        "lscpu",
        "ldd",
        "rocminfo",
        "hipconfig",
        "mysql_config",
        "pg_config",
        "gdal-config",
        "geos-config",
        "curl-config",
        "xml2-config",
        "freetype-config",
        "pip",
        "pip3",
        "dpkg",
        "rpm",
        "ccache",
        "sccache",
        "conda",
        "dotnet",
        "msbuild",
        "vcvarsall.bat",
    }
)


def _constant_command(f: FileContext, call: CallSite) -> str | None:
    """The command of a process call when it is a constant (string or list of strings)."""
    args = f.const_args(call)
    first = args[0] if args else None
    if isinstance(first, list | tuple) and first and all(isinstance(x, str) for x in first):
        return " ".join(first)
    return first if isinstance(first, str) and first.strip() else None


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
        for line, text in search_strings(f, SHELL_HIGH):
            # lines of process calls: only wanted once a command string matched (rarely)
            run_lines = {c.line for c in f.calls if _is_process(c.qualname)}
            live = eager(f, line) or line in run_lines or _points_outside(text)
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
            started = started_by_code(pkg, member.rel.rsplit("/", 1)[-1], member.rel)
            yield meta.on_package(
                member.path,
                "shipped script fetches and runs code"
                + (", and code that runs on install or import starts it" if started else ""),
                evidence=m.group(0),
                line=line,
                severity=Severity.HIGH if started else Severity.MEDIUM,
            )


def _points_outside(text: str) -> bool:
    """A command line that talks to a raw public IP or an exfiltration host."""
    m = URL_IP.pattern.search(text) or _BARE_IP_PORT.search(text)
    if m and public_ip(m.group(1)):
        return True
    return EXFIL_SERVICE.search(text) is not None


_BARE_IP_PORT = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}):\d{2,5}\b")


@rule(
    "PV103",
    "decoded-command",
    "Runs a command it decodes at run time",
    Severity.HIGH,
    Confidence.HIGH,
    Category.COMMAND_EXECUTION,
    "CWE-78",
)
def decoded_command(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A process call (``os.system``, ``subprocess``...) whose command is the output of
    base64/hex/zlib/rot13/``chr``-list decoding: a shell command hidden from readers. The
    decoded command is shown when it can be computed statically."""
    for f in pkg.all_files():
        for c in f.calls:
            if c.node is None or not c.node.args or not _is_process(c.qualname):
                continue
            arg = c.node.args[0]
            inner = {f.qualname(n.func) for n in ast.walk(arg) if isinstance(n, ast.Call)}
            value = f.folder.fold(arg)
            if value is None:  # a helper of its own decoding a literal: b64d("cGlw...")
                value = next(
                    (
                        text
                        for n in ast.walk(arg)
                        if isinstance(n, ast.Constant)
                        and isinstance(n.value, str)
                        and (text := _readable_decoding(n.value, f.limits.max_decoded_bytes))
                    ),
                    None,
                )
                decoded = value is not None
            else:
                decoded = f.folder.decoded
            if inner & DECODER_NAMES or decoded:
                shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                yield meta.at(
                    f,
                    c.line,
                    f"{c.qualname}() of a decoded command",
                    evidence=shown if isinstance(shown, str) else ", ".join(sorted(inner)),
                )
                break


def _readable_decoding(literal: str, limit: int) -> str | None:
    """The text a base64/hex literal decodes to, if it is mostly printable."""
    if len(literal) < 16:
        return None
    text = decode_blob(literal, limit)
    if not text:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in text[:4096])
    return text if printable >= 0.95 * min(len(text), 4096) else None


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
    lzma/rot13/``chr``-list/reversed-string decoding, or of a character decoder written out
    (``chr(ord(c) ^ k)`` loops, alphabet substitution through ``str.index``, ``translate``),
    directly or through a name the same function assigns so (``z += "eJx..."``,
    ``z = zlib.decompress(b64decode(z))``, ``exec(z)``): code hidden from readers and
    scanners. When the payload can be decoded statically it is shown as evidence and analysed
    like any other source (findings inside it point at this line).
    """
    for f in pkg.all_files():
        for site in f.exec_sites:
            if site.via_decoder:
                evidence = site.payload or ", ".join(sorted(site.arg_calls | site.source_calls))
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
    ``exec(urlopen(u).read())``, or through a name: ``code = requests.get(u).text`` then
    ``exec(code)``), or a file that downloads and calls ``exec`` on a variable it cannot trace
    (medium): a second-stage payload the package itself does not contain."""
    for f in pkg.all_files():
        for site in f.exec_sites:
            if any(
                network_call(n.split("(")[0].removesuffix("."))
                or "urlopen" in n
                or n.startswith(("requests.", "httpx."))
                for n in site.arg_calls | site.source_calls
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
    ``requests.get`` + ``open(..., "wb")`` or ``open("x.py", "w")`` + ``subprocess.Popen``,
    ``git.Repo.clone_from`` + a process). High in install- or
    import-time code, or when the file comes from a raw IP, a paste/file-sharing or tunnel host,
    or is started with ``os.startfile``; medium otherwise (updaters and driver managers
    download and run binaries too)."""
    for f in pkg.all_files():
        fetches = Cap.DOWNLOAD in f.caps or (Cap.NETWORK in f.caps and writes_file(f))
        runs = Cap.PROCESS in f.caps or Cap.CHMOD in f.caps
        if fetches and runs:
            line = f.caps.get(Cap.DOWNLOAD) or f.caps[Cap.NETWORK]
            shady = (
                any(
                    public_ip(m.group(1))
                    for _, t in search_strings(f, URL_IP)
                    if (m := URL_IP.pattern.match(t))
                )
                or first_string_match(f, PASTE_SHARE) is not None
                or first_string_match(f, EXFIL_SERVICE) is not None
                or any(c.qualname == "os.startfile" for c in f.calls)
            )
            live = eager(f, line) or shady
            yield meta.at(
                f,
                line,
                "fetches a file, writes it and runs a program",
                severity=Severity.HIGH if live else Severity.MEDIUM,
            )


@rule(
    "PV206",
    "write-and-run",
    "Writes a script or program and starts it",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.CODE_EXECUTION,
    "CWE-506",
)
def write_and_run(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A file named like a script or program (``.py``, ``.pyw``, ``.bat``, ``.ps1``, ``.vbs``,
    ``.exe``...) is written and the same path, held in the same variable or spelled the same
    way, is started: ``open(p, "w").write(code)`` then ``subprocess.Popen([sys.executable, p])``
    or ``os.startfile(p)``. A dropper that carries its second stage instead of downloading it.
    High when the start runs on install or import, medium otherwise. A directory shared by the
    written file and the started command (``cwd=``) is not the same path."""
    for f in pkg.all_files():
        if Cap.PROCESS not in f.caps:
            continue
        written = [key for node in _written_paths(f) if (key := _written_key(node, f))]
        if not written:
            continue
        for c in f.calls:
            if c.node is None or capability_of(c.qualname) is not Cap.PROCESS:
                continue
            args = (*c.node.args, *(k.value for k in c.node.keywords if k.arg not in _NOT_RUN))
            used = {key for arg in args for n in ast.walk(arg) if (key := _used_key(n, f))}
            if used.intersection(written):
                yield meta.at(
                    f,
                    c.line,
                    f"writes a script or program and starts it with {c.qualname}()",
                    severity=Severity.HIGH if eager(f, c.line) else Severity.MEDIUM,
                )
                break


_NOT_RUN = frozenset({"cwd", "env", "stdin", "stdout", "stderr"})


def _written_paths(f: FileContext) -> Iterator[ast.expr]:
    """Path expressions of the file's writes: ``open(path, "w"/"wb"/"a"/"x")`` and
    ``Path(...).write_text/write_bytes``."""
    for c in f.calls_matching("open", "io.open", "builtins.open"):
        if c.node is None or not c.node.args:
            continue
        given = [k.value for k in c.node.keywords if k.arg == "mode"] or c.node.args[1:2]
        mode = f.folder.fold(given[0]) if given else None
        if isinstance(mode, str) and any(ch in mode for ch in "wax"):
            yield c.node.args[0]
    for c in f.calls:
        if (
            c.node is not None
            and c.qualname.endswith((".write_text", ".write_bytes"))
            and isinstance(c.node.func, ast.Attribute)
        ):
            target = c.node.func.value
            yield target.args[0] if isinstance(target, ast.Call) and target.args else target


def _written_key(node: ast.expr, f: FileContext) -> str | None:
    """The written path's identity when it is named like a script or program: the name that
    holds it (assigned such a path), or the file name of its last constant piece."""
    if isinstance(node, ast.Name):
        return node.id if node.id in f.program_paths else None
    base = None
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and (name := program_file_name(n.value)) is not None:
            base = name
    return None if base is None else f"file:{base}"


def _used_key(n: ast.AST, f: FileContext) -> str | None:
    """A name (not a module) or a script file name in a started command's arguments."""
    if isinstance(n, ast.Name) and n.id not in f.imports and "(" in f.aliases.get(n.id, "("):
        return n.id  # a module or its alias names no path; a call's result can
    if isinstance(n, ast.Constant) and (name := program_file_name(n.value)) is not None:
        return f"file:{name}"
    return None


@rule(
    "PV204",
    "dynamic-exec-at-install",
    "Executes a computed string at install or import",
    Severity.HIGH,
    Confidence.LOW,
    Category.CODE_EXECUTION,
    "CWE-95",
)
def dynamic_exec_at_install(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """``exec``/``eval`` of something other than a literal in setup.py, a .pth file or a
    package ``__init__``. Common and harmless for reading a version file (low); high in
    install-time code that also carries an unreadable string literal (XOR or custom-encoded
    payloads that static decoding cannot undo)."""
    for f in pkg.all_files():
        if f.trigger in (Trigger.INSTALL, Trigger.IMPORT):
            for site in f.exec_sites:
                if not site.literal and not site.via_decoder and site.qualname != "compile":
                    scrambled = (
                        f.trigger is Trigger.INSTALL
                        and not _reads_local_file(site.arg_calls)
                        and _scrambled_literal(f)
                    )
                    yield meta.at(
                        f,
                        site.line,
                        f"{site.qualname}() of a computed value"
                        + (" beside a scrambled string literal" if scrambled else ""),
                        severity=Severity.HIGH if scrambled else Severity.LOW,
                    )
                    break


def _scrambled_literal(f: FileContext) -> bool:
    """A long literal that is neither prose, code, nor a standard encoding: mostly control
    characters and punctuation, as XOR-ed payloads are."""
    for s, _ in f.strings:
        if len(s) < 120:
            continue
        sample = s[:2048]
        odd = sum(not (ch.isalnum() or ch in " \n\t.,'\"-_/:=()") for ch in sample)
        if odd > 0.25 * len(sample):
            return True
    return False


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
            live = execs or eager(f, c.line)
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
