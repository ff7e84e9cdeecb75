"""``pkgvet rules``: list the rules or show one rule's documentation."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import click
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from pkgvet.rules.registry import load_rules


@click.command("rules")
@click.argument("rule_id", required=False)
def rules_command(rule_id: str | None) -> None:
    """List every rule, or show the documentation of RULE_ID (PV000 is the known-malicious
    lookup, PD... the release-diff checks of 'pkgvet diff')."""
    from pkgvet.diff import DIFF_REGISTRY
    from pkgvet.known import known_rule_meta

    rules: dict[str, Any] = {**load_rules(), **DIFF_REGISTRY}
    rules["PV000"] = SimpleNamespace(meta=known_rule_meta())
    console = Console()
    if rule_id:
        rule = rules.get(rule_id.upper())
        if rule is None:
            raise click.ClickException(f"no rule {rule_id!r}; see 'pkgvet rules'")
        m = rule.meta
        console.print(f"[bold]{m.id} {m.name}[/bold]: {m.title}")
        console.print(
            f"severity up to {m.severity.value}, confidence {m.confidence.value}, "
            f"category {m.category.value}" + (f", {m.cwe}" if m.cwe else "")
        )
        console.print(Markdown(m.description))
        return
    table = Table()
    for col in ("id", "name", "severity", "category", "title"):
        table.add_column(col)
    for rid in sorted(rules):
        m = rules[rid].meta
        table.add_row(m.id, m.name, m.severity.value, m.category.value, m.title)
    console.print(table)
