"""JSON output, schema ``pkgvet-scan`` version 1 (documented in docs/json-schema.md).

``json`` writes one document for the run; ``jsonl`` writes one result object per line as
results arrive (for very large scans and pipelines)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from pkgvet import __version__
from pkgvet.models import Finding, ScanResult
from pkgvet.report.base import register

SCHEMA = "https://pkgvet.invalid/schema/scan/1"
SCHEMA_VERSION = 1


def _finding(f: Finding) -> dict[str, Any]:
    return {
        **asdict(f),
        "severity": f.severity.value,
        "confidence": f.confidence.value,
        "category": f.category.value,
        "trigger": f.trigger.value,
    }


def result_to_dict(r: ScanResult) -> dict[str, Any]:
    return {
        "target": r.target,
        "kind": r.kind,
        "sha256": r.sha256,
        "size": r.size,
        "package": asdict(r.package),
        "verdict": r.verdict.value,
        "score": r.score,
        "model_probability": r.model_probability,
        "model_version": r.model_version,
        "max_severity": r.max_severity.value if r.max_severity else None,
        "categories": r.categories,
        "triggers": r.triggers,
        "reasons": r.reasons,
        "findings": [
            {
                **asdict(f),
                "severity": f.severity.value,
                "confidence": f.confidence.value,
                "category": f.category.value,
                "trigger": f.trigger.value,
            }
            for f in r.findings
        ],
        "suppressed": [{**_finding(s.finding), "reason": s.reason} for s in r.suppressed],
        "allowlisted": r.allowlisted,
        "skips": [asdict(s) for s in r.skips],
        "error": r.error,
        "stats": r.stats,
        "duration_s": round(r.duration_s, 4),
    }


@register
class JsonFormat:
    name = "json"

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        """One document for the run: written by :meth:`finish`."""

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        doc = {
            "$schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "pkgvet", "version": __version__},
            "results": [result_to_dict(r) for r in results],
        }
        json.dump(doc, out, indent=2, ensure_ascii=False)
        out.write("\n")


@register
class JsonLinesFormat:
    name = "jsonl"

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        out.write(json.dumps(result_to_dict(result), ensure_ascii=False) + "\n")

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        """Every line was written as it arrived."""
