"""Exfiltration and command-and-control endpoints: webhooks, tunnels and request catchers, raw
IP addresses, reverse shells, DNS exfiltration, network access during installation."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from pkgvet.analysis.apis import Cap
from pkgvet.analysis.context import CallSite, FileContext, PackageContext
from pkgvet.models import Category, Confidence, Finding, Severity, Trigger
from pkgvet.rules.base import RuleMeta, eager, rule, trigger_at
from pkgvet.rules.indicators import (
    EXFIL_SERVICE,
    PASTE_SHARE,
    URL_IP,
    WEBHOOK,
    WEBHOOK_WITH_ID,
    first_string_match,
    public_ip,
    search_strings,
)
from pkgvet.rules.stealing import sends


@rule(
    "PV401",
    "webhook-endpoint",
    "Posts to a chat webhook",
    Severity.HIGH,
    Confidence.HIGH,
    Category.INFORMATION_STEALING,
    "CWE-200",
)
def webhook_endpoint(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Discord and Slack webhooks, Telegram bot API URLs and webhook.site: the cheapest
    exfiltration channel of stealers, almost never in library code."""
    for f in pkg.all_files():
        for line, text in search_strings(f, WEBHOOK):
            full = any(WEBHOOK_WITH_ID.search(s) for s, ln in f.strings if ln == line)
            live = full or eager(f, line)
            yield meta.at(
                f,
                line,
                "chat webhook endpoint" + (" with its token" if full else ""),
                evidence=defang(text),
                severity=Severity.HIGH if live else Severity.MEDIUM,
            )
            break


@rule(
    "PV402",
    "exfiltration-service",
    "Talks to a tunnel, request catcher or IP logger",
    Severity.HIGH,
    Confidence.HIGH,
    Category.INFORMATION_STEALING,
    "CWE-200",
)
def exfiltration_service(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Out-of-band interaction hosts (Burp Collaborator, oast.*, interact.sh, pipedream,
    requestbin, dnslog, ceye), tunnels (ngrok, trycloudflare, serveo) and IP loggers. Paste and
    file-sharing sites, URL shorteners and Discord attachment links are reported as medium
    (second stages are often parked there, but so are legitimate files)."""
    for f in pkg.all_files():
        for line, text in search_strings(f, EXFIL_SERVICE):
            yield meta.at(f, line, "exfiltration or tunnel host", evidence=defang(text))
            break
        else:
            for line, text in search_strings(f, PASTE_SHARE):
                sev = Severity.HIGH if trigger_at(f, line) is Trigger.INSTALL else Severity.MEDIUM
                yield meta.at(
                    f,
                    line,
                    "paste, file-sharing or shortened URL",
                    severity=sev,
                    confidence=Confidence.MEDIUM,
                    evidence=defang(text),
                )
                break


@rule(
    "PV403",
    "raw-ip-endpoint",
    "Connects to a hard-coded public IP address",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.REMOTE_CONTROL,
    "CWE-200",
)
def raw_ip_endpoint(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A URL or socket address on a literal public IPv4 address (not a resolver, nor an
    address of examples such as 1.2.3.4 or 2.2.2.2). High in install- or import-time code that
    can reach the network, medium otherwise."""
    for f in pkg.all_files():
        hit = _ip_url(f) or _socket_ip(f)
        if hit is None:
            continue
        line, text = hit
        live = eager(f, line) and sends(f)
        yield meta.at(
            f,
            line,
            "hard-coded public IP endpoint",
            evidence=defang(text),
            severity=Severity.HIGH if live else Severity.MEDIUM,
        )


def _ip_url(f: FileContext) -> tuple[int, str] | None:
    for line, text in search_strings(f, URL_IP):
        m = URL_IP.pattern.match(text)
        if m and _attacker_ip(m.group(1)):
            return line, text
    return None


def _attacker_ip(ip: str) -> bool:
    """A public address that is not a well-known resolver (used for connectivity checks)."""
    return public_ip(ip) and ip not in _PUBLIC_RESOLVERS


# Connecting a UDP socket to a public resolver is the usual way to learn the local address.
_PUBLIC_RESOLVERS = frozenset(
    {"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "208.67.222.222"}
)


def _socket_ip(f: FileContext) -> tuple[int, str] | None:
    for c in f.calls:
        if c.qualname.endswith(".connect") or c.qualname == "socket.create_connection":
            args = f.const_args(c)
            addr = args[0] if args else None
            if (
                isinstance(addr, list | tuple)
                and addr
                and isinstance(addr[0], str)
                and _attacker_ip(addr[0])
            ):
                return c.line, f"{addr[0]}:{addr[1] if len(addr) > 1 else ''}"
    return None


@rule(
    "PV404",
    "reverse-shell",
    "Reverse shell: socket wired to a shell",
    Severity.CRITICAL,
    Confidence.HIGH,
    Category.REMOTE_CONTROL,
    "CWE-506",
)
def reverse_shell(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A socket whose file descriptors are duplicated onto stdin/stdout (``os.dup2``) before a
    shell or process starts, or a socket loop that runs what it receives: remote control.
    Medium when a file receives from a socket and starts programs but what it receives is not
    seen reaching the program (a server driving a fixed tool, data flow through attributes)."""
    for f in pkg.all_files():
        if Cap.SOCKET not in f.caps:
            continue
        if Cap.DUP2 in f.caps and (Cap.PROCESS in f.caps or "pty" in f.imports):
            on_socket = any(_dups_socket(f, c) for c in f.calls_matching("os.dup2"))
            yield meta.at(
                f,
                f.caps[Cap.DUP2],
                "socket descriptors handed to a shell"
                if on_socket
                else "descriptors duplicated near sockets and a shell",
                severity=Severity.CRITICAL if on_socket else Severity.MEDIUM,
            )
        elif f.socket_command is not None:
            yield meta.at(
                f, f.socket_command, "runs commands received over a socket", severity=Severity.HIGH
            )
        elif (Cap.PROCESS in f.caps or Cap.EXEC in f.caps) and any(
            c.qualname.endswith(".recv") for c in f.calls
        ):
            yield meta.at(
                f,
                f.caps[Cap.SOCKET],
                "receives from a socket and starts programs in one file",
                severity=Severity.MEDIUM,
            )


def _dups_socket(f: FileContext, call: CallSite) -> bool:
    """``os.dup2(s.fileno(), n)`` where ``s`` comes from ``socket``."""
    if call.node is None or not call.node.args:
        return False
    arg = call.node.args[0]
    if isinstance(arg, ast.Call):
        return f.qualname(arg.func).startswith("socket.")
    return False


@rule(
    "PV405",
    "dns-exfiltration",
    "Encodes data into DNS lookups",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-200",
)
def dns_exfiltration(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """A name lookup (``socket.gethostbyname``, ``getaddrinfo``, dnspython) of a host name built
    at run time (an f-string, concatenation or ``format``) in code that also collects system or
    environment details: data smuggled out in DNS queries."""
    for f in pkg.all_files():
        if Cap.DNS not in f.caps or not (
            Cap.FINGERPRINT in f.caps or Cap.ENV in f.caps or Cap.DECODE in f.caps
        ):
            continue
        for c in f.calls:
            if c.node is None or not c.node.args:
                continue
            if c.qualname.split(".")[-1] in (
                "gethostbyname",
                "getaddrinfo",
                "gethostbyname_ex",
                "resolve",
                "query",
            ):
                arg = c.node.args[0]
                built = isinstance(arg, ast.JoinedStr | ast.BinOp) or (
                    isinstance(arg, ast.Call)
                    and isinstance(arg.func, ast.Attribute)
                    and arg.func.attr in ("format", "join")
                )
                if built:
                    yield meta.at(f, c.line, "looks up a computed host name")
                    break


@rule(
    "PV406",
    "network-at-install",
    "Network access during installation",
    Severity.MEDIUM,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-829",
)
def network_at_install(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """setup.py, a module it imports, or a .pth file makes HTTP, socket or DNS calls. Builds do
    not need the network; payloads do."""
    for f in pkg.all_files():
        if f.trigger is Trigger.INSTALL and sends(f):
            line = min(
                f.caps[c] for c in (Cap.NETWORK, Cap.SOCKET, Cap.DNS, Cap.DOWNLOAD) if c in f.caps
            )
            yield meta.at(f, line, "network call in install-time code")


# Who and where the victim is (platform names alone are in every user agent).
_IDENTITY = frozenset(
    {
        "getpass.getuser",
        "os.getlogin",
        "socket.gethostname",
        "platform.node",
        "uuid.getnode",
        "socket.getfqdn",
    }
)
_ACTIONS = (
    Cap.PROCESS,
    Cap.EXEC,
    Cap.CLIPBOARD,
    Cap.KEYLOG,
    Cap.SCREENSHOT,
    Cap.DECRYPT,
    Cap.MARSHAL,
)


@rule(
    "PV407",
    "suspicious-endpoint-with-payload",
    "Collects data or runs code next to a hard-coded attacker endpoint",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.INFORMATION_STEALING,
    "CWE-506",
)
def suspicious_endpoint_with_payload(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """Code that runs programs, executes code, fingerprints the system or reads the clipboard,
    keys, screen or secrets, and that also holds a destination no library hard-codes: a raw
    public IP address, a tunnel or request-catcher host, a raw paste or chat-attachment link,
    or a webhook with its token. Each signal alone is medium at run time; together they are the
    shape of a backdoor or stealer even when it only runs on demand. The behaviour category
    follows the action: code execution, command execution, or information stealing."""
    for f in pkg.all_files():
        if not sends(f):  # the cheap half first
            continue
        actions = [c for c in _ACTIONS if c in f.caps]
        if any(c.qualname in _IDENTITY for c in f.calls):
            actions.append(Cap.FINGERPRINT)
        if not actions:
            continue
        endpoint = (
            _ip_url(f)
            or _socket_ip(f)
            or first_string_match(f, EXFIL_SERVICE)
            or first_string_match(f, PASTE_SHARE)
            or next(((ln, s) for s, ln in f.strings if WEBHOOK_WITH_ID.search(s)), None)
        )
        if endpoint is None:
            continue
        line, text = endpoint
        yield meta.at(
            f,
            line,
            f"{', '.join(a.value for a in actions)} next to a hard-coded endpoint",
            evidence=defang(text[:200]),
            category=_category_of(actions),
        )


@rule(
    "PV408",
    "hidden-endpoint",
    "Contacts an address hidden by encoding",
    Severity.HIGH,
    Confidence.MEDIUM,
    Category.OBFUSCATION,
    "CWE-506",
)
def hidden_endpoint(pkg: PackageContext, meta: RuleMeta) -> Iterator[Finding]:
    """An HTTP request, socket connect or DNS lookup whose address is decoded from a literal
    (``requests.post(base64.b64decode("aHR0cHM6...").decode(), json=keys)``, a reversed string,
    or a name assigned so in the same function): the host is hidden from readers and from
    indicator lists, which a library has no reason to do. The decoded address is shown. High
    when the code runs on install or import, or when the call sends data there (a POST or PUT,
    ``data=``/``json=``/``files=``/``params=``, a socket send: keys handed to a hidden host are
    stolen whenever the function runs); medium otherwise."""
    for f in pkg.all_files():
        if not f.hidden_endpoints:
            continue
        lines = {line for line, _shown in f.hidden_endpoints}
        sending = {c.line for c in f.calls if c.line in lines and _sends_data(c)}
        # one finding per file: the first endpoint that is sent data, else the first one
        line, shown = next(
            ((ln, sh) for ln, sh in f.hidden_endpoints if ln in sending), f.hidden_endpoints[0]
        )
        sends = line in sending
        yield meta.at(
            f,
            line,
            "data sent to a network address decoded from a literal"
            if sends
            else "network address decoded from a literal",
            evidence=defang(shown[:200]),
            severity=Severity.HIGH if sends or eager(f, line) else Severity.MEDIUM,
        )


_SENDING_METHODS = (".post", ".put", ".patch", ".send", ".sendall", ".sendto")
_PAYLOAD_KEYWORDS = frozenset({"data", "json", "files", "params"})


def _sends_data(call: CallSite) -> bool:
    """A network call that carries data: a POST/PUT/PATCH or socket send, or a payload
    keyword."""
    if call.qualname.endswith(_SENDING_METHODS):
        return True
    return call.node is not None and any(k.arg in _PAYLOAD_KEYWORDS for k in call.node.keywords)


def _category_of(actions: list[Cap]) -> Category:
    if Cap.EXEC in actions or Cap.MARSHAL in actions:
        return Category.CODE_EXECUTION
    if Cap.PROCESS in actions:
        return Category.COMMAND_EXECUTION
    return Category.INFORMATION_STEALING


def defang(text: str) -> str:
    """Make an indicator safe to paste: ``http`` → ``hxxp``, dots of hosts in brackets."""
    return text.replace("http", "hxxp").replace("://", "[://]").replace(".", "[.]")
