"""Information stealing: browsers, chat tokens, wallets, credential files, environment dumps,
system fingerprinting sent out, clipboard, keys and screens."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from pkgvet.analysis.apis import Cap, capability_of, reference_capability
from pkgvet.analysis.context import FileContext, PackageContext, runs_transfer_tool
from pkgvet.models import Category, Confidence, Finding, Severity
from pkgvet.rules.base import RuleMeta, eager, rule
from pkgvet.rules.indicators import (
    BROWSER,
    CREDENTIALS,
    DISCORD_TELEGRAM,
    DISCORD_TOKEN_CHECK,
    IP_SERVICES,
    WALLETS,
    Indicator,
    first_string_match,
)

_SENDS = (Cap.NETWORK, Cap.SOCKET, Cap.DNS, Cap.DOWNLOAD)
# The attribute references of a file include its callees (``socket.gethostbyname`` of a call);
# DNS lookups are judged by their calls, whose argument says whose name is looked up.
_SENDS_BY_REFERENCE = (Cap.NETWORK, Cap.SOCKET, Cap.DOWNLOAD)


def sends(f: FileContext) -> bool:
    """The code can send data out (HTTP, sockets, DNS, a ``curl``/``wget`` process)."""
    return any(c in f.caps for c in _SENDS)


def sends_on_load(f: FileContext) -> bool:
    """Some call that can send data out runs by merely installing or importing the package
    (:func:`~pkgvet.rules.base.eager`), not only when a function is called on demand."""
    for c in f.calls:
        cap = capability_of(c.qualname)
        if cap is Cap.DNS and _resolves_own_host(f, c.node):
            continue
        if (cap in _SENDS or (cap is Cap.PROCESS and runs_transfer_tool(c.node))) and eager(
            f, c.line
        ):
            return True
    return any(
        reference_capability(r) in _SENDS_BY_REFERENCE and eager(f, line)
        for r, line in f.refs.items()
    )


def _resolves_own_host(f: FileContext, node: ast.Call | None) -> bool:
    """A DNS lookup of this machine's own name (``gethostbyname(gethostname())``,
    ``"localhost"``, a ``.local`` name): it finds the local address and sends nothing out."""
    if node is None or not node.args:
        return False
    arg = node.args[0]
    if isinstance(arg, ast.Call):
        return capability_of(f.qualname(arg.func)) is Cap.FINGERPRINT
    value = f.folder.fold(arg)
    return isinstance(value, str) and (
        "." not in value.strip(".") or value.lower().rstrip(".").endswith(".local")
    )


def _indicator_rule(
    pkg: PackageContext,
    meta: RuleMeta,
    pattern: Indicator,
    what: str,
    alone: Severity,
) -> Iterator[Finding]:
    for f in pkg.all_files():
        found = _indicator_finding(f, meta, pattern, what, alone)
        if found is not None:
            yield found


def _indicator_finding(
    f: FileContext, meta: RuleMeta, pattern: Indicator, what: str, alone: Severity
) -> Finding | None:
    """The file names ``pattern``: the rule's severity when it can also send data out or
    decrypt, ``alone`` otherwise."""
    hit = first_string_match(f, pattern)
    if hit is None:
        return None
    exfil = sends(f) or Cap.DECRYPT in f.caps
    return meta.at(
        f,
        hit[0],
        f"reads {what}" + (" and can send data out" if exfil else ""),
        severity=meta.severity if exfil else alone,
        evidence=hit[1],
    )


@rule(
    "PV301",
    "browser-data-theft",
    "Reads browser password and cookie stores",
    Severity.HIGH,
    Confidence.HIGH,
    Category.INFORMATION_STEALING,
    "CWE-522",
)
def browser_data_theft(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Paths of browser profiles and their secret stores (Chrome/Edge/Brave ``User Data``,
    ``Login Data``, ``Local State``, Firefox ``key4.db``/``logins.json``/``cookies.sqlite``).
    High when the package can also send data out or decrypt (DPAPI, AES-GCM)."""
    yield from _indicator_rule(pkg, meta, BROWSER, "browser profile data", Severity.MEDIUM)


@rule(
    "PV302",
    "chat-token-theft",
    "Reads Discord or Telegram session tokens",
    Severity.HIGH,
    Confidence.HIGH,
    Category.INFORMATION_STEALING,
    "CWE-522",
)
def chat_token_theft(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Discord ``Local Storage/leveldb``, token regular expressions and the encrypted-token
    prefix ``dQw4w9WgXcQ:``, Telegram Desktop ``tdata``: high. A file whose only evidence is
    Discord's ``/users/@me`` token check is medium: grabbers validate stolen tokens with it,
    but so does every Discord client library given a token by its user."""
    for f in pkg.all_files():
        found = _indicator_finding(f, meta, DISCORD_TELEGRAM, "chat session tokens", Severity.HIGH)
        if found is not None:
            yield found
            continue
        hit = first_string_match(f, DISCORD_TOKEN_CHECK)
        if hit is not None:
            yield meta.at(
                f,
                hit[0],
                "checks a Discord token (/users/@me)",
                severity=Severity.MEDIUM,
                evidence=hit[1],
            )


@rule(
    "PV303",
    "wallet-theft",
    "Reads cryptocurrency wallets",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-522",
)
def wallet_theft(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Wallet files and extension ids: Exodus, Electrum, Atomic, Coinomi, ``wallet.dat``,
    MetaMask's extension id, Ethereum keystores. High with a way to send data out."""
    yield from _indicator_rule(pkg, meta, WALLETS, "cryptocurrency wallets", Severity.MEDIUM)


def _credential_rule(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    for f in pkg.all_files():
        hit = first_string_match(f, CREDENTIALS)
        if hit is None:
            continue
        live = eager(f, hit[0]) and sends(f)
        yield meta.at(
            f,
            hit[0],
            "reads credential files" + (" and can send data out" if sends(f) else ""),
            severity=Severity.HIGH if live else Severity.MEDIUM,
            evidence=hit[1],
        )


@rule(
    "PV304",
    "credential-file-access",
    "Reads SSH, cloud or developer credentials",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-522",
)
def credential_file_access(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Private keys and tokens: ``~/.ssh/id_*``, ``~/.aws/credentials``, ``~/.kube/config``,
    gcloud credentials, ``~/.docker/config.json``, ``.git-credentials``, ``.pypirc``,
    ``.npmrc``, shell histories, ``/etc/shadow``. High in install- or import-time (or
    decoded) code that can send data out: developer tools name these files legitimately."""
    yield from _credential_rule(pkg, meta)


_SERIALIZERS = frozenset(
    {
        "json.dumps",
        "str",
        "repr",
        "base64.b64encode",
        "urllib.parse.urlencode",
        "pickle.dumps",
        "marshal.dumps",
        "zlib.compress",
        "dict",
    }
)


def _whole_environ(f: FileContext) -> int | None:
    """Line where the whole environment is serialised, sent or walked variable by variable
    (not one variable read)."""
    if f.environ_loop is not None:
        return f.environ_loop
    for c in f.calls:
        if c.node is None:
            continue
        to_network = capability_of(c.qualname) in _SENDS
        if c.qualname not in _SERIALIZERS and not to_network:
            continue
        values = [*c.node.args, *(k.value for k in c.node.keywords if to_network)]
        for a in values:
            if isinstance(a, ast.Name | ast.Attribute) and f.qualname(a) == "os.environ":
                return c.line
            if isinstance(a, ast.Call) and (
                f.qualname(a.func) == "os.environ.copy"
                or (
                    f.qualname(a.func) == "dict"
                    and any(
                        isinstance(x, ast.Name | ast.Attribute) and f.qualname(x) == "os.environ"
                        for x in a.args
                    )
                )
            ):
                return c.line
    return None


@rule(
    "PV305",
    "environment-exfiltration",
    "Sends the whole environment out",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-526",
)
def environment_exfiltration(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """The entire ``os.environ`` (tokens, CI secrets, cloud keys) is read as a whole
    (``json.dumps(os.environ)``, ``str(dict(os.environ))``, ``requests.post(u,
    json=dict(os.environ))``, a loop over ``os.environ`` or its ``items()``) in code that can
    also send data out (an HTTP library, sockets, DNS, or ``curl``/``wget`` run as a process).
    High in install-time code or import-time module-level code, medium when it runs only on
    demand."""
    for f in pkg.all_files():
        if not sends(f):  # the cheap half first
            continue
        line = _whole_environ(f)
        if line is not None:
            sev = Severity.HIGH if eager(f, line) else Severity.MEDIUM
            yield meta.at(f, line, "reads the whole environment and can send it out", severity=sev)


_FINGERPRINT_ENV = re.compile(
    r"^(?:USER|USERNAME|LOGNAME|COMPUTERNAME|HOSTNAME|USERDOMAIN|"
    r"HOME|USERPROFILE)$"
)


_RECON_COMMANDS = re.compile(
    r"^\s*(?:whoami|hostname|id|uname|pwd|ipconfig|ifconfig|systeminfo|ip\s+a|net\s+user|"
    r"cat\s+/etc/passwd|echo\s+%USERNAME%)\b"
)


def _fingerprint_line(f: FileContext) -> int | None:
    if Cap.FINGERPRINT in f.caps:
        return f.caps[Cap.FINGERPRINT]
    for c in f.calls:
        if capability_of(c.qualname) is Cap.PROCESS:
            args = f.const_args(c)
            first = args[0] if args else None
            if isinstance(first, list) and first:
                first = " ".join(str(x) for x in first)
            if isinstance(first, str) and _RECON_COMMANDS.match(first):
                return c.line
    for s, line in f.strings:
        if (_FINGERPRINT_ENV.match(s) and Cap.ENV in f.caps) or s == "/etc/passwd":
            return line
    hit = first_string_match(f, IP_SERVICES)
    return hit[0] if hit else None


@rule(
    "PV306",
    "recon-exfiltration",
    "Collects system details and sends them out",
    Severity.HIGH,
    Confidence.HIGH,
    Category.INFORMATION_STEALING,
    "CWE-200",
)
def recon_exfiltration(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Install- or import-time code that collects the user name, host name, platform, working
    directory, the account list (``/etc/passwd``) or public IP (calling the functions or
    handing them over, as in ``safe(os.uname)``) and sends data over HTTP, sockets, DNS or
    ``curl`` at install or import time too: the dependency-confusion beacon. Medium when the
    collecting or the sending runs only on demand (a client library that reads the user name
    on import and sends it with its first request)."""
    for f in pkg.all_files():
        if not sends(f):  # the cheap half first
            continue
        line = _fingerprint_line(f)
        if line is None:
            continue
        sev = Severity.HIGH if eager(f, line) and sends_on_load(f) else Severity.MEDIUM
        yield meta.at(f, line, "collects system details and can send them out", severity=sev)


@rule(
    "PV307",
    "spyware-capability",
    "Reads the clipboard, keystrokes or the screen",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-200",
)
def spyware_capability(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Clipboard (``pyperclip.paste``, ``win32clipboard``), keyloggers (``pynput``,
    ``keyboard.on_press``), screenshots (``ImageGrab.grab``, ``pyautogui.screenshot``,
    ``mss``). High with a way to send data out, medium otherwise."""
    for f in pkg.all_files():
        for cap in (Cap.KEYLOG, Cap.CLIPBOARD, Cap.SCREENSHOT):
            if cap in f.caps:
                sev = Severity.HIGH if sends(f) else Severity.MEDIUM
                yield meta.at(f, f.caps[cap], f"{cap.value} capability", severity=sev)
                break
