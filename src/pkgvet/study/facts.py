"""Per-package facts of the study, from one *record*: a scan result as its JSON dict
(:func:`pkgvet.report.json_format.result_to_dict`, one line of ``pkgvet scan -f jsonl``) plus
the dataset's identity and date for it and, when the package could be read, its code attributes
(:mod:`pkgvet.study.attrs`). Pure functions: no I/O.

How each fact is derived from the findings (``docs/study.md``):

- **behaviours**: the categories of the *counted* findings (severity medium or more) among the
  five of Guo et al.: command execution, information stealing, file operation, code execution,
  remote control. The **capability view** derives the same five from the APIs the code calls
  (the capabilities of the AST walk), closer to the paper's API-based reading;
- **trigger point and location**: of the counted behaviour/obfuscation findings with the highest
  severity, the earliest trigger (install, then import, then run time) and that finding's file:
  ``setup.py``, ``__init__.py`` or another file;
- **anti-detection techniques**: mapped from rule ids (:data:`TECHNIQUES`); behaviour overlap and
  sandbox escape have no rule and are reported as not measured;
- **attack vectors**: typosquatting (the popular project the name is one edit away from,
  :func:`pkgvet.typosquat.closest_popular`) and dependency confusion (rule PV803).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BEHAVIOURS = (
    "command_execution",
    "information_stealing",
    "file_operation",
    "code_execution",
    "remote_control",
)
BEHAVIOUR_LABELS = {
    "command_execution": "Command execution",
    "information_stealing": "Information stealing",
    "file_operation": "File operation",
    "code_execution": "Code execution",
    "remote_control": "Remote control",
}
TRIGGERS = ("install", "import", "runtime")
TRIGGER_LABELS = {"install": "Install time", "import": "Import time", "runtime": "Run time"}
LOCATIONS = ("setup.py", "__init__.py", "other")
LOCATION_LABELS = {"setup.py": "setup.py", "__init__.py": "__init__.py", "other": "Other files"}

_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_TRIGGER_ORDER = {"install": 0, "import": 1, "runtime": 2}
MIN_SEVERITY = "medium"


@dataclass(frozen=True, slots=True)
class Technique:
    key: str
    label: str
    rules: frozenset[str]  # rule ids whose counted findings show it; empty: not measured
    how: str


TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "code_obfuscation",
        "Code obfuscation",
        frozenset({"PV103", "PV201", "PV205", "PV601", "PV603", "PV604"}),
        "encoded or compressed code run by exec/eval (PV201, PV103), encoded Python payloads "
        "(PV601), marshalled bytecode (PV205), obfuscator markers (PV603), code hidden by "
        "whitespace (PV604)",
    ),
    Technique(
        "external_payload",
        "External payload",
        frozenset({"PV202", "PV203"}),
        "the malicious payload is not in the package: it executes code fetched from the network "
        "(PV202) or downloads a file and runs it (PV203)",
    ),
    Technique(
        "multi_stage_request",
        "Multi-stage request",
        frozenset({"PV202"}),
        "the package executes Python code it fetches (PV202): it is the first stage of a chain "
        "whose later stages live on a server (the later stages themselves are not visible)",
    ),
    Technique(
        "behaviour_overlap",
        "Behaviour overlap",
        frozenset(),
        "not measured: no rule tells malicious code mixed into a working project apart from "
        "other malicious code (see the malicious-code density instead)",
    ),
    Technique(
        "indirect_import",
        "Indirect import",
        frozenset({"PV605"}),
        "modules imported by a computed name (PV605), or a counted finding on a line that "
        "imports through __import__()/importlib",
    ),
    Technique(
        "image_steganography",
        "Image steganography",
        frozenset({"PV606"}),
        "image pixels read in the same code that executes or decodes code (PV606)",
    ),
    Technique(
        "sandbox_escape",
        "Sandbox escape",
        frozenset(),
        "not measured: pkgvet has no rule for sandbox, VM or debugger detection",
    ),
)
MEASURED_TECHNIQUES = tuple(t for t in TECHNIQUES if t.rules)
_INDIRECT_RE = re.compile(r"__import__\s*\(|importlib\s*\.\s*(?:import_module|__import__)")

# Capability view: the five behaviours from the APIs the code uses (pkgvet.analysis.apis.Cap).
_CAP_COMMAND = frozenset({"process"})
_CAP_STEAL_DATA = frozenset({"env", "fingerprint", "clipboard", "keylog", "screenshot", "decrypt"})
_CAP_NET = frozenset({"network", "socket", "dns", "download"})
_CAP_FILE = frozenset({"file_write", "file_delete", "chmod", "download", "registry"})
_CAP_CODE = frozenset({"exec", "marshal", "ctypes"})


def capability_behaviours(caps: frozenset[str]) -> frozenset[str]:
    """The five behaviours read off capabilities: command execution = runs a program; information
    stealing = reads environment, host facts, clipboard, keys, screen or decrypts stores *and*
    uses the network; file operation = writes, deletes or chmods files, downloads to disk or
    writes the registry; code execution = exec/eval, marshal or native calls; remote control =
    rewires descriptors (dup2) or has a raw socket next to process execution."""
    out = set()
    if caps & _CAP_COMMAND:
        out.add("command_execution")
    if caps & _CAP_STEAL_DATA and caps & _CAP_NET:
        out.add("information_stealing")
    if caps & _CAP_FILE:
        out.add("file_operation")
    if caps & _CAP_CODE:
        out.add("code_execution")
    if "dup2" in caps or ("socket" in caps and "process" in caps):
        out.add("remote_control")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class PackageFacts:
    id: str
    name: str
    version: str
    date: str | None  # YYYY-MM-DD
    verdict: str
    error: str | None
    behaviours: frozenset[str]
    cap_behaviours: frozenset[str] | None  # None: attributes not available
    trigger: str | None  # install/import/runtime; None: no located finding
    location: str | None  # setup.py/__init__.py/other
    techniques: frozenset[str]
    rules: frozenset[str]  # rule ids of counted findings
    typosquat_target: str | None
    dependency_confusion: bool
    files: int | None
    depth: int | None
    loc: int | None
    malicious_lines: int | None
    density: float | None
    endpoints: tuple[tuple[str, str], ...]
    fingerprint: tuple[int, ...] | None

    @property
    def analysed(self) -> bool:
        return self.error is None


def _counted(findings: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    floor = _SEVERITY_RANK[MIN_SEVERITY]
    return [
        f
        for f in findings
        if _SEVERITY_RANK.get(str(f.get("severity")), 0) >= floor
        and f.get("category") != "metadata"
    ]


def location_of(path: str) -> str:
    """``setup.py``, ``__init__.py`` or ``other`` for a finding's path (inner archives
    included: the part after the last ``!``)."""
    base = posixpath.basename(path.rsplit("!", 1)[-1])
    if base == "setup.py":
        return "setup.py"
    if base == "__init__.py":
        return "__init__.py"
    return "other"


def trigger_and_location(findings: list[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """Where the package's highest counted findings sit (see the module docstring)."""
    located = [
        f for f in _counted(findings) if f.get("trigger") in _TRIGGER_ORDER and f.get("path")
    ]
    if not located:
        return None, None
    top = max(_SEVERITY_RANK.get(str(f["severity"]), 0) for f in located)
    best = min(
        (f for f in located if _SEVERITY_RANK.get(str(f["severity"]), 0) == top),
        key=lambda f: (_TRIGGER_ORDER[str(f["trigger"])], str(f["path"]), int(f.get("line", 0))),
    )
    return str(best["trigger"]), location_of(str(best["path"]))


def techniques_of(findings: list[Mapping[str, Any]]) -> frozenset[str]:
    counted = _counted(findings)
    rules = {str(f.get("rule_id")) for f in counted}
    out = {t.key for t in MEASURED_TECHNIQUES if rules & t.rules}
    if any(
        _INDIRECT_RE.search(f"{f.get('snippet', '')}\n{f.get('evidence', '')}") for f in counted
    ):
        out.add("indirect_import")
    return frozenset(out)


def _name_version(record: Mapping[str, Any], result: Mapping[str, Any]) -> tuple[str, str]:
    name = record.get("name")
    version = record.get("version")
    pkg = result.get("package") or {}
    return (
        str(name or pkg.get("name") or result.get("target") or "?"),
        str(version or pkg.get("version") or "?"),
    )


def package_facts(record: Mapping[str, Any]) -> PackageFacts:
    """The study's facts of one record ``{"id", "name", "version", "date", "result",
    "attrs"}``; ``result`` is a scan result's JSON dict, ``attrs`` the code attributes or None.
    A bare result dict (a JSONL line) is accepted as well."""
    from pkgvet.typosquat import closest_popular

    result: Mapping[str, Any] = record.get("result", record)
    attrs: Mapping[str, Any] | None = record.get("attrs")
    findings = [f for f in result.get("findings") or [] if isinstance(f, Mapping)]
    counted = _counted(findings)
    behaviours = frozenset(
        str(f["category"]) for f in counted if str(f.get("category")) in BEHAVIOURS
    )
    trigger, location = trigger_and_location(findings)
    name, version = _name_version(record, result)
    all_rules = {str(f.get("rule_id")) for f in findings}
    fp = attrs.get("fingerprint") if attrs else None
    return PackageFacts(
        id=str(record.get("id") or result.get("target") or name),
        name=name,
        version=version,
        date=record.get("date") or None,
        verdict=str(result.get("verdict") or "unknown"),
        error=result.get("error"),
        behaviours=behaviours,
        cap_behaviours=capability_behaviours(frozenset(attrs.get("caps") or ())) if attrs else None,
        trigger=trigger,
        location=location,
        techniques=techniques_of(findings),
        rules=frozenset(str(f.get("rule_id")) for f in counted),
        typosquat_target=closest_popular(name) if name != "?" else None,
        dependency_confusion="PV803" in all_rules,
        files=_int(attrs, "files"),
        depth=_int(attrs, "depth"),
        loc=_int(attrs, "loc"),
        malicious_lines=_int(attrs, "malicious_lines"),
        density=float(attrs["density"]) if attrs and attrs.get("density") is not None else None,
        endpoints=tuple(
            (str(e[0]), str(e[1])) for e in (attrs.get("endpoints") or []) if len(e) == 2
        )
        if attrs
        else _finding_endpoints(counted),
        fingerprint=tuple(int(x) for x in fp) if fp else None,
    )


def _int(attrs: Mapping[str, Any] | None, key: str) -> int | None:
    if not attrs or attrs.get(key) is None:
        return None
    return int(attrs[key])


def _finding_endpoints(counted: list[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Endpoints in the findings' evidence and snippets, when the package itself is not at hand
    (a JSONL of results whose targets are gone)."""
    from pkgvet.study.attrs import endpoints

    texts = [f"{f.get('evidence', '')}\n{f.get('snippet', '')}" for f in counted]
    ip_texts = [t for f, t in zip(counted, texts, strict=True) if f.get("rule_id") in _IP_RULES]
    return tuple(endpoints(texts, ip_texts))


_IP_RULES = frozenset({"PV402", "PV403", "PV404", "PV407"})
