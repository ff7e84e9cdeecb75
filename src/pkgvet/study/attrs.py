"""Code attributes of one parsed package, read in the scanning worker and returned as plain JSON.

Nothing here runs package code: it reads the :class:`~pkgvet.analysis.context.PackageContext`
the pipeline already built (the files as text, the statically decoded payloads, the string
literals and the capabilities found by the AST walk).

Definitions (``docs/study.md``):

- ``files``: regular files in the package; ``depth``: the deepest file's number of directories
  below the package root (the sdist's top folder is not counted);
- ``loc``: non-blank lines of the package's Python files as shipped (``.py``/``.pyw``/``.pyi``
  and the code lines of ``.pth`` files);
- ``malicious_lines``: the distinct (file, line) places that *counted findings* (severity medium
  or more, any category but ``metadata``) point at in those files, plus the non-blank lines of
  every statically decoded payload a counted finding sits in, each payload counted once;
- ``density``: ``malicious_lines / (loc + decoded payload lines counted)``, in [0, 1].
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pkgvet.models import Category, Finding, Severity

if TYPE_CHECKING:
    from pkgvet.analysis.context import PackageContext

MAX_ENDPOINTS = 50
_MAX_SHINGLES = 1000  # bottom-k line hashes (a consistent sample; the pipeline keeps 4000)
_MAX_BLOB = 400_000  # string-literal text searched for endpoints, per file

_URL_RE = re.compile(r"(?i)\b(?:https?|ftp|wss?)://[^\s'\"<>\\`{}|^]{3,300}")
_IP_LOOSE_RE = re.compile(r"(?<![\d.])((?:\d{1,3}\.){3}\d{1,3})(?![\d.])")
_IP_ANY_RE = re.compile(r"(?<![\d.])((?:\d{1,3}\.){3}\d{1,3})(?::(\d{1,5}))(?![\d.])")
_WEBHOOK_RE = re.compile(
    r"(?i)(discord(?:app)?\.com/api/webhooks/\d+|api\.telegram\.org/bot\d+|"
    r"hooks\.slack\.com/services/[A-Z0-9]+)"
)
_HOST_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z][a-z0-9-]{1,62}$")

# Hosts that appear in package metadata and code of every kind and are not payload endpoints
# unless the path says so (raw content, release downloads, pastes).
_PROJECT_HOSTS = frozenset(
    {
        "github.com",
        "www.github.com",
        "gitlab.com",
        "bitbucket.org",
        "pypi.org",
        "pypi.python.org",
        "test.pypi.org",
        "python.org",
        "www.python.org",
        "docs.python.org",
        "packaging.python.org",
        "setuptools.readthedocs.io",
        "setuptools.pypa.io",
        "readthedocs.org",
        "opensource.org",
        "www.apache.org",
        "www.gnu.org",
        "creativecommons.org",
        "json-schema.org",
        "www.w3.org",
        "schemas.microsoft.com",
        "example.com",
        "www.example.com",
        "localhost",
    }
)
_IP_RULES = frozenset({"PV402", "PV403", "PV404", "PV407"})
_PAYLOAD_PATH = re.compile(r"/(?:raw|releases/download|archive|files|uploads)/", re.I)


def counts(f: Finding) -> bool:
    """Findings that locate malicious code: severity medium or more, not metadata."""
    return f.severity >= Severity.MEDIUM and f.category is not Category.METADATA


def _nonblank(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def context_attrs(pkg: PackageContext, findings: Sequence[Finding]) -> dict[str, Any]:
    """The study's attributes of one package (see the module docstring), JSON-ready."""
    from pkgvet.ml.campaigns import line_shingles, minhash

    members = pkg.archive.members
    depth = max((m.rel.count("/") for m in members if m.rel), default=0)
    py_paths = {f.path for f in pkg.files}
    loc = sum(_nonblank(f.text) for f in pkg.files)
    counted = [f for f in findings if counts(f)]
    places = {(f.path, f.line) for f in counted if f.line > 0 and f.path in py_paths}
    decoded_keys = {(f.path, f.line, f.decoded_depth) for f in counted if f.decoded_depth > 0}
    decoded_lines = 0
    caps: set[str] = set()
    for fc in pkg.all_files():
        caps.update(c.value for c in fc.caps)
        if fc.depth and (fc.path, fc.report_line(1), fc.depth) in decoded_keys:
            decoded_lines += _nonblank(fc.text)
    malicious = len(places) + decoded_lines
    total = loc + decoded_lines
    shingles = line_shingles(f.text for f in pkg.files)
    fingerprint = minhash(set(sorted(shingles)[:_MAX_SHINGLES]))
    texts: list[str] = [fc.string_blob_lower[:_MAX_BLOB] for fc in pkg.all_files()]
    texts.extend(text[:_MAX_BLOB] for _m, text in pkg.scripts)
    texts.extend(f"{f.evidence}\n{f.snippet}" for f in counted)
    ip_texts = [f"{f.evidence}\n{f.snippet}" for f in counted if f.rule_id in _IP_RULES]
    return {
        "files": len(members),
        "python_files": len(pkg.files),
        "depth": depth,
        "loc": loc,
        "decoded_lines": decoded_lines,
        "malicious_lines": malicious,
        "density": round(min(1.0, malicious / total), 6) if total else None,
        "caps": sorted(caps),
        "endpoints": [list(e) for e in endpoints(texts, ip_texts)],
        "fingerprint": list(fingerprint),
    }


# -- endpoints ------------------------------------------------------------------------------------


def _public_ip(text: str) -> str | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if not ip.is_global or ip.is_multicast:
        return None
    return str(ip)


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host
    return host.split(":", 1)[0].strip(".").lower()


def endpoints(texts: Iterable[str], ip_texts: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(kind, value)`` pairs: ``webhook`` (service and channel id, never the token), ``ip``
    (public IPv4 addresses in URLs or as ``ip:port`` in ``texts``, anywhere in ``ip_texts``: the
    evidence of the rules that report hard-coded addresses) and ``domain`` (URL hosts, less
    project and documentation hosts unless the URL fetches a file from them). Sorted, at most
    :data:`MAX_ENDPOINTS`. A bare dotted quad elsewhere is not taken: versions look the same."""
    found: set[tuple[str, str]] = set()
    for text in ip_texts:
        for m in _IP_LOOSE_RE.finditer(text):
            ip = _public_ip(m.group(1))
            if ip is not None:
                found.add(("ip", ip))
    for text in texts:
        if not text:
            continue
        low = text.lower()
        for m in _WEBHOOK_RE.finditer(low):
            found.add(("webhook", m.group(1).replace("discordapp.com", "discord.com")))
        if "://" in low:
            for m in _URL_RE.finditer(low):
                url = m.group(0)
                if _WEBHOOK_RE.search(url):
                    continue  # counted as a webhook, not as its service's domain
                host = _host_of(url)
                if not host:
                    continue
                ip = _public_ip(host)
                if ip is not None:
                    found.add(("ip", ip))
                    continue
                if not _HOST_RE.match(host):
                    continue
                if host in _PROJECT_HOSTS and not _PAYLOAD_PATH.search(url):
                    continue
                if host.endswith((".readthedocs.io", ".readthedocs.org", ".github.io")):
                    continue
                found.add(("domain", host))
        if ":" in low:
            for m in _IP_ANY_RE.finditer(low):
                ip = _public_ip(m.group(1))
                if ip is not None and int(m.group(2)) < 65536:
                    found.add(("ip", ip))
        if len(found) >= MAX_ENDPOINTS * 2:
            break
    return sorted(found)[:MAX_ENDPOINTS]


def defang(kind: str, value: str) -> str:
    """An endpoint written so that it is not a live link: ``evil[.]example``, ``1[.]2[.]3[.]4``,
    ``hxxps://discord[.]com/api/webhooks/123``."""
    shown = value.replace(".", "[.]")
    if kind == "webhook":
        return "hxxps://" + shown
    return shown
