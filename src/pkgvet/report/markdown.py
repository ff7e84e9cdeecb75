"""Markdown summary for pull-request comments and CI job summaries: counts by verdict, then a
table of every package that is not clean (verdict, score, worst severity, reasons), then the
clean ones folded away. Text from packages is escaped so it cannot break the table or inject
markup."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from pkgvet.models import ScanResult, Verdict
from pkgvet.report.base import register

_ORDER = (Verdict.MALICIOUS, Verdict.ERROR, Verdict.SUSPICIOUS, Verdict.CLEAN)
_ICON = {
    Verdict.MALICIOUS: "🔴",
    Verdict.ERROR: "⚠️",
    Verdict.SUSPICIOUS: "🟠",
    Verdict.CLEAN: "🟢",
}


def md(text: str, limit: int = 200) -> str:
    """Package-controlled text made inert inside a Markdown table cell."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    for ch in "\\`*_[]<>|#!":
        text = text.replace(ch, "\\" + ch)
    return text


@register
class MarkdownFormat:
    name = "markdown"

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        """A whole-run document: everything is written by :meth:`finish`."""

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        counts = Counter(r.verdict for r in results)
        out.write("## pkgvet scan\n\n")
        out.write(
            " · ".join(f"{_ICON[v]} {counts[v]} {v.value}" for v in _ORDER if counts[v]) + "\n\n"
        )
        flagged = [r for r in results if r.verdict is not Verdict.CLEAN]
        flagged.sort(key=lambda r: (_ORDER.index(r.verdict), -r.score, r.target))
        if flagged:
            out.write("| package | verdict | score | worst | reasons |\n|---|---|---|---|---|\n")
            for r in flagged:
                worst = r.max_severity.value if r.max_severity else "-"
                why = r.error or "; ".join(r.reasons[:4])
                out.write(
                    f"| {md(r.target, 120)} | {_ICON[r.verdict]} {r.verdict.value} | "
                    f"{r.score:.2f} | {worst} | {md(why, 400)} |\n"
                )
            out.write("\n")
        clean = [r for r in results if r.verdict is Verdict.CLEAN]
        if clean:
            out.write(f"<details><summary>{len(clean)} clean</summary>\n\n")
            out.writelines(f"- {md(r.target, 160)}\n" for r in clean)
            out.write("\n</details>\n")
