"""Run the collector as ``python -m pkgvet.collect``."""

from pkgvet.collect.cli import collect_command

collect_command(prog_name="python -m pkgvet.collect")
