"""Human report (rich): verdict, score, categories, trigger, findings by severity with the code
line and the decoded payload. ``summary`` prints one line per package."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pkgvet.models import ScanResult, Severity, Trigger, Verdict
from pkgvet.report.base import register

_VERDICT_STYLE = {
    Verdict.MALICIOUS: "bold white on red",
    Verdict.SUSPICIOUS: "bold black on yellow",
    Verdict.CLEAN: "bold white on green",
    Verdict.ERROR: "bold white on magenta",
}
_SEV_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


_TRIGGER_LABEL = {
    Trigger.INSTALL: "install-time",
    Trigger.IMPORT: "import-time",
    Trigger.RUNTIME: "run-time",
    Trigger.NONE: "package",
}
_EVIDENCE_LINES = 8
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: str) -> str:
    """Text from a package, with control characters (terminal escapes) made visible."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _console(out: TextIO) -> Console:
    return Console(file=out, highlight=False, soft_wrap=False, width=None)


def render_result(r: ScanResult, console: Console) -> None:
    name = r.package.name or r.target
    version = f" {r.package.version}" if r.package.version else ""
    head = Text.assemble(
        (f" {r.verdict.value.upper()} ", _VERDICT_STYLE[r.verdict]),
        " ",
        (safe(f"{name}{version}"), "bold"),
        f"  score {r.score:.2f}",
    )
    lines = [
        head,
        Text(
            f"{safe(r.target)}  ({r.kind}, {r.size} bytes, {r.duration_s * 1000:.0f} ms)",
            style="dim",
        ),
    ]
    if r.error:
        lines.append(Text(f"error: {safe(r.error)}", style="magenta"))
    if r.allowlisted:
        lines.append(Text(f"allowlisted: {safe(r.allowlisted)}", style="green"))
    if r.suppressed:
        n = len(r.suppressed)
        lines.append(Text(f"{n} finding{'s' * (n != 1)} suppressed (listed in -f json/sarif)"))
    if r.findings:
        lines.append(
            Text(
                f"categories: {', '.join(r.categories) or '-'}   "
                f"triggers: {', '.join(r.triggers) or '-'}"
            )
        )
    if r.model_probability is not None:
        drivers = [x.removeprefix("model: ") for x in r.reasons if x.startswith("model: ")]
        lines.append(
            Text(
                f"model: probability {r.model_probability:.3f} (model {r.model_version})"
                + (f"; driven by {safe(', '.join(drivers))}" if drivers else "")
            )
        )
    console.print(Panel(Text("\n").join(lines), expand=False))
    for f in r.findings:
        loc = f"{f.path}:{f.line}" if f.line else f.path
        console.print(
            Text.assemble(
                (f"{f.severity.value.upper():8}", _SEV_STYLE[f.severity]),
                " ",
                (f.rule_id, "bold"),
                f" {f.title}  ",
                (safe(loc), "blue"),
                (f"  [{f.category.value}, {_TRIGGER_LABEL[f.trigger]}]", "dim"),
            )
        )
        console.print(Text(f"         {safe(f.message)}"))
        if f.snippet:
            console.print(Text(f"         │ {safe(_clip(f.snippet, 160))}", style="dim"))
        if f.evidence:
            label = f"decoded x{f.decoded_depth}" if f.decoded_depth else "evidence"
            ev_lines = f.evidence.splitlines() or [""]
            shown = [safe(_clip(line, 160)) for line in ev_lines[:_EVIDENCE_LINES]]
            if len(ev_lines) > _EVIDENCE_LINES:
                shown.append(f"… {len(ev_lines) - _EVIDENCE_LINES} more lines")
            console.print(
                Text(f"         └ {label}: " + "\n           ".join(shown), style="magenta")
            )
    for s in r.skips[:10]:
        console.print(Text(f"  skipped {safe(s.path)}: {safe(s.reason)}", style="dim"))
    if len(r.skips) > 10:
        console.print(Text(f"  … and {len(r.skips) - 10} more skips", style="dim"))
    console.print()


@register
class TextFormat:
    name = "text"

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        render_result(result, _console(out))

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        summary_table(results, _console(out))


def summary_table(results: Sequence[ScanResult], console: Console) -> None:
    """Counts by verdict and by behaviour category."""
    if len(results) < 2:
        return
    verdicts: dict[str, int] = {}
    cats: dict[str, int] = {}
    for r in results:
        verdicts[r.verdict.value] = verdicts.get(r.verdict.value, 0) + 1
        for c in {f.category.value for f in r.findings if f.severity >= Severity.HIGH}:
            cats[c] = cats.get(c, 0) + 1
    t = Table(title=f"{len(results)} packages")
    t.add_column("verdict")
    t.add_column("packages", justify="right")
    for v, n in sorted(verdicts.items(), key=lambda kv: -kv[1]):
        t.add_row(v, str(n))
    console.print(t)
    if cats:
        by_cat = Table(title="packages with a high finding, by behaviour category")
        by_cat.add_column("category")
        by_cat.add_column("packages", justify="right")
        by_cat.add_column("share", justify="right")
        for k, n in sorted(cats.items(), key=lambda kv: -kv[1]):
            by_cat.add_row(k, str(n), f"{100 * n / len(results):.1f}%")
        console.print(by_cat)


@register
class SummaryFormat:
    name = "summary"

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        r = result
        worst = r.max_severity.value if r.max_severity else "-"
        rules = ",".join(sorted({f.rule_id for f in r.findings if f.severity >= Severity.MEDIUM}))
        out.write(
            f"{r.verdict.value:10} {r.score:.2f} {worst:8} {r.target} {rules}"
            f"{'  error: ' + r.error if r.error else ''}\n"
        )

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        summary_table(results, _console(out))
