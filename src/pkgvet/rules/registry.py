"""Loading and selecting rules. Built-in rule modules register themselves on import; third-party
rules come from the ``pkgvet.rules`` entry-point group (each entry point names a module)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pkgvet.rules.base import REGISTRY, Rule

_BUILTIN = (
    "pkgvet.rules.execution",
    "pkgvet.rules.stealing",
    "pkgvet.rules.network",
    "pkgvet.rules.persistence",
    "pkgvet.rules.obfuscation",
    "pkgvet.rules.package",
)
_loaded = False


def load_rules() -> dict[str, Rule]:
    """Import built-in and plugin rule modules once; return the registry by id."""
    global _loaded
    if not _loaded:
        for mod in _BUILTIN:
            importlib.import_module(mod)
        for ep in entry_points(group="pkgvet.rules"):
            importlib.import_module(ep.value)
        _loaded = True
    return REGISTRY


def select_rules(select: frozenset[str], ignore: frozenset[str]) -> list[Rule]:
    """Rules whose id starts with one of ``select`` (all when empty) and none of ``ignore``."""
    rules = load_rules()
    chosen = []
    for rid in sorted(rules):
        if select and not any(rid.startswith(s) for s in select):
            continue
        if any(rid.startswith(i) for i in ignore):
            continue
        chosen.append(rules[rid])
    return chosen
