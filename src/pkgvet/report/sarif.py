"""SARIF 2.1.0 output, for GitHub code scanning and other SARIF consumers (docs/ci.md).

One run: ``tool.driver`` is pkgvet with every registered rule plus ``PKGVET-VERDICT`` (the
package-level verdict). Each finding is a result at its file and line inside the package, the
location written as ``<artifact>/<path inside it>`` (``dist/pkg-1.0.tar.gz/pkg-1.0/setup.py``):
a relative URI, as code scanning wants, that names the scanned file and the member. Suppressed
findings are results with a ``suppressions`` entry (``kind: external``, the reason as
``justification``) rather than being left out. A malicious or suspicious package also gets a
``PKGVET-VERDICT`` result carrying the score, the model's probability and the reasons. Packages
that could not be scanned are ``toolExecutionNotifications`` of the invocation, whose
``executionSuccessful`` is then false.

The document holds no times or durations and everything is in a fixed order, so the same scan
gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, TextIO
from urllib.parse import quote

from pkgvet import __version__
from pkgvet.models import Finding, ScanResult, Severity, Suppressed, Verdict
from pkgvet.report.base import register

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://pkgvet.invalid/"  # the project has no public home yet
VERDICT_RULE = "PKGVET-VERDICT"
FINGERPRINT_KEY = "pkgvet/v1"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning's security-severity (0-10): critical > 9, high 7-8.9, medium 4-6.9.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}
_CWE = re.compile(r"^CWE-(\d+)$", re.IGNORECASE)
_MAX_MESSAGE = 2000


def level(severity: Severity) -> str:
    return _LEVEL[severity]


def _rule_descriptors() -> list[dict[str, Any]]:
    from pkgvet.diff import DIFF_REGISTRY
    from pkgvet.known import known_rule_meta
    from pkgvet.rules.registry import load_rules

    metas = [r.meta for r in load_rules().values()] + [r.meta for r in DIFF_REGISTRY.values()]
    metas.append(known_rule_meta())
    rules = []
    for m in sorted(metas, key=lambda m: m.id):
        rid = m.id
        tags = ["security", "supply-chain", m.category.value]
        if m.cwe:
            cwe = _CWE.match(m.cwe)
            tags.append(f"external/cwe/cwe-{cwe.group(1)}" if cwe else m.cwe)
        doc = _unwrap(m.description) or m.title
        rules.append(
            {
                "id": rid,
                "name": m.name,
                "shortDescription": {"text": m.title},
                "fullDescription": {"text": doc},
                "help": {"text": f"{m.title}\n\n{doc}\n\nDocumentation: `pkgvet rules {rid}`."},
                "defaultConfiguration": {"level": level(m.severity)},
                "properties": {
                    "category": m.category.value,
                    "cwe": m.cwe,
                    "severity": m.severity.value,
                    "confidence": m.confidence.value,
                    "precision": m.confidence.value,
                    "security-severity": _SECURITY_SEVERITY[m.severity],
                    "tags": tags,
                },
            }
        )
    rules.append(
        {
            "id": VERDICT_RULE,
            "name": "package-verdict",
            "shortDescription": {"text": "Package judged malicious or suspicious"},
            "fullDescription": {
                "text": "The package-level verdict of pkgvet: the trained detector's calibrated "
                "probability combined with the rule findings (rules only with --no-model). "
                "Malicious packages are errors, suspicious ones warnings; the message gives "
                "the score, the model's probability and the reasons."
            },
            "help": {
                "text": "See docs/model.md and docs/ci.md; the findings of the package are "
                "reported as separate results."
            },
            "defaultConfiguration": {"level": "error"},
            "properties": {
                "category": "verdict",
                "cwe": "CWE-506",
                "security-severity": _SECURITY_SEVERITY[Severity.CRITICAL],
                "tags": ["security", "supply-chain", "malicious-package", "external/cwe/cwe-506"],
            },
        }
    )
    return rules


def artifact_uri(target: str, path: str = "") -> str:
    """A relative URI for ``path`` inside the scanned ``target``: the target as given (a
    relative path, the file name of a fetched package, ``name-version`` of an installed one),
    then the member path, nested archives (``outer!inner``) as folders."""
    base = target.strip()
    m = re.fullmatch(r"(.*?) \((.*)\)", base)  # "name==1.0 (file.tar.gz)", "x-1.0 (installed)"
    if m:
        base = m.group(2) if m.group(2) != "installed" else m.group(1)
    if base.startswith(("/", "\\")) or PureWindowsPath(base).drive:
        base = PureWindowsPath(base).name if "\\" in base else PurePosixPath(base).name
    parts = [*base.split("/"), *path.replace("!", "/").split("/")]
    # no empty, "." or ".." segments: the URI stays below the directory it is resolved against
    joined = "/".join(p for p in parts if p not in ("", ".", "..")) or "."
    return quote(joined, safe="/-._~=+@,")


def _error_text(target: str, error: str) -> str:
    return error if error.startswith(target) else f"{target}: {error}"


def _unwrap(doc: str) -> str:
    """A docstring's hard-wrapped lines joined; paragraphs kept."""
    return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", doc) if p.strip())


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _package(r: ScanResult) -> tuple[str, str | None]:
    return (r.package.name or r.target), r.package.version


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class _Builder:
    def __init__(self) -> None:
        rules = _rule_descriptors()
        self.rules = rules
        self.index = {r["id"]: i for i, r in enumerate(rules)}
        self.results: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}

    def _unique(self, fp: str) -> str:
        n = self.seen.get(fp, 0)
        self.seen[fp] = n + 1
        return fp if n == 0 else _fingerprint(fp, str(n))

    def add(self, r: ScanResult) -> None:
        if r.error is not None:
            self.notifications.append(
                {
                    "level": "error",
                    "message": {"text": _clip(_error_text(r.target, r.error))},
                    "locations": [
                        {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(r.target)}}}
                    ],
                    "descriptor": {"id": "PKGVET-ERROR"},
                    "properties": {"target": r.target, "kind": r.kind},
                }
            )
            return
        if r.verdict in (Verdict.MALICIOUS, Verdict.SUSPICIOUS):
            self.results.append(self._verdict(r))
        for f in r.findings:
            self.results.append(self._finding(r, f, None))
        for s in r.suppressed:
            self.results.append(self._finding(r, s.finding, s))

    def _props(self, r: ScanResult) -> dict[str, Any]:
        name, version = _package(r)
        return {
            "package": name,
            "version": version,
            "target": r.target,
            "sha256": r.sha256,
            "verdict": r.verdict.value,
            "score": r.score,
        }

    def _verdict(self, r: ScanResult) -> dict[str, Any]:
        name, version = _package(r)
        label = f"{name} {version}" if version else name
        prob = (
            f", model probability {r.model_probability:.3f}"
            if r.model_probability is not None
            else " (rules only)"
        )
        text = f"{label} is {r.verdict.value}: score {r.score:.2f}{prob}."
        if r.reasons:
            text += " Reasons: " + "; ".join(r.reasons)
        fp = _fingerprint(VERDICT_RULE, name, version or "")
        return {
            "ruleId": VERDICT_RULE,
            "ruleIndex": self.index[VERDICT_RULE],
            "level": "error" if r.verdict is Verdict.MALICIOUS else "warning",
            "message": {"text": _clip(text)},
            "locations": [
                {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(r.target)}}}
            ],
            "partialFingerprints": {FINGERPRINT_KEY: self._unique(fp)},
            "properties": {
                **self._props(r),
                "model_probability": r.model_probability,
                "model_version": r.model_version,
                "max_severity": r.max_severity.value if r.max_severity else None,
                "categories": r.categories,
                "triggers": r.triggers,
                "reasons": r.reasons,
            },
        }

    def _finding(self, r: ScanResult, f: Finding, sup: Suppressed | None) -> dict[str, Any]:
        name, version = _package(r)
        label = f"{name} {version}" if version else name
        text = f"{label}: {f.message}"
        if f.evidence:
            kind = f"decoded (x{f.decoded_depth})" if f.decoded_depth else "evidence"
            text += f"\n{kind}: {f.evidence}"
        region: dict[str, Any] = {}
        if f.line > 0:
            region["startLine"] = f.line
            if f.snippet:
                region["snippet"] = {"text": f.snippet}
        physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(r.target, f.path)}}
        if region:
            physical["region"] = region
        fp = _fingerprint(f.rule_id, name, version or "", f.path, f.evidence or f.snippet)
        out: dict[str, Any] = {
            "ruleId": f.rule_id,
            **({"ruleIndex": self.index[f.rule_id]} if f.rule_id in self.index else {}),
            "level": level(f.severity),
            "message": {"text": _clip(text)},
            "locations": [{"physicalLocation": physical}],
            "partialFingerprints": {FINGERPRINT_KEY: self._unique(fp)},
            "properties": {
                **self._props(r),
                "severity": f.severity.value,
                "confidence": f.confidence.value,
                "category": f.category.value,
                "trigger": f.trigger.value,
                "decoded_depth": f.decoded_depth,
                "path": f.path,
            },
        }
        if sup is not None:
            out["suppressions"] = [{"kind": "external", "justification": sup.reason}]
        return out

    def document(self) -> dict[str, Any]:
        return {
            "$schema": SARIF_SCHEMA,
            "version": SARIF_VERSION,
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "pkgvet",
                            "version": __version__,
                            "semanticVersion": __version__,
                            "informationUri": INFORMATION_URI,
                            "rules": self.rules,
                        }
                    },
                    "invocations": [
                        {
                            "executionSuccessful": not self.notifications,
                            "toolExecutionNotifications": self.notifications,
                        }
                    ],
                    "results": self.results,
                }
            ],
        }


@register
class SarifFormat:
    name = "sarif"

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        """One document for the run: written by :meth:`finish`."""

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        b = _Builder()
        for r in results:
            b.add(r)
        json.dump(b.document(), out, indent=2, ensure_ascii=False)
        out.write("\n")
