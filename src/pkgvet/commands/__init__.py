"""CLI subcommands (imported lazily by pkgvet.cli)."""
