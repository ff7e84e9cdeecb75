"""Command line: ``pkgvet scan | rules | collect | train | evaluate``. Thin wiring over the
pipeline.

Subcommands are imported only when invoked, so ``pkgvet scan`` does not pay for the collector's
or a future model's imports. Exit codes: 0 clean, 1 a finding at or above ``--fail-on``, 2 an
error (bad usage, or a target that could not be scanned).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

_COMMANDS = {
    "scan": ("pkgvet.commands.scan", "scan_command"),
    "batch": ("pkgvet.commands.batch", "batch_command"),
    "rules": ("pkgvet.commands.rules", "rules_command"),
    "collect": ("pkgvet.collect.cli", "collect_command"),
    "train": ("pkgvet.commands.train", "train_command"),
    "evaluate": ("pkgvet.commands.train", "evaluate_command"),
    "diff": ("pkgvet.commands.diff", "diff_command"),
    "known": ("pkgvet.commands.known", "known_command"),
    "study": ("pkgvet.commands.study", "study_command"),
    "mirror-audit": ("pkgvet.commands.mirror", "mirror_audit_command"),
    "watch": ("pkgvet.commands.watch", "watch_command"),
    "serve": ("pkgvet.commands.serve", "serve_command"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = _COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        cmd: click.Command = getattr(module, spec[1])
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pkgvet")
def cli() -> None:
    """pkgvet: vet Python packages for malicious code, statically.

    pkgvet reads sdists, wheels, eggs, zips and directories as bytes, never installing,
    building or importing them, and explains each finding with file, line, behaviour category
    and the decoded payload.
    """


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="pkgvet", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("interrupted", err=True)
        sys.exit(130)
