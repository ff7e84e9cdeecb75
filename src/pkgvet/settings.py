"""Settings for ``pkgvet scan`` read from TOML: ``[tool.pkgvet]`` in a ``pyproject.toml``, a
standalone ``pkgvet.toml`` (the same keys at top level), and suppressions files (only
``[[suppress]]`` entries).

Every key and entry is checked: an unknown key, a wrong type or a suppression without a reason
is a :class:`SettingsError` naming the file and the entry, never silently ignored. Values are
returned as written (after validation); which of them win over command-line options is the
caller's business (on the command line, an option given explicitly wins).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import InvalidName, canonicalize_name

from pkgvet.errors import PkgvetError
from pkgvet.models import Severity
from pkgvet.suppress import Suppression

DIST_CHOICES = ("best", "sdist", "wheel", "all")
_SEVERITIES = tuple(s.value for s in Severity)
_ENTRY_KEYS = ("package", "version", "rule", "path", "reason")
_OPTION_KEYS = (
    "fail-on",
    "min-severity",
    "select",
    "ignore",
    "format",
    "index-url",
    "dist",
    "time-budget",
    "model",
)
_RULE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class SettingsError(PkgvetError):
    """A configuration or suppressions file that cannot be used as written."""


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Scan options from a configuration file; None where the file does not set them."""

    fail_on: str | None = None
    min_severity: str | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    format: str | None = None
    index_url: str | None = None
    dist: str | None = None
    time_budget: float | None = None
    model: bool | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    source: str | None = None  # the file the options came from
    options: ScanOptions = field(default_factory=ScanOptions)
    suppressions: tuple[Suppression, ...] = ()


def default_config(cwd: Path | None = None) -> Path | None:
    """``./pyproject.toml`` when there is one (its ``[tool.pkgvet]`` may still be absent)."""
    path = (cwd or Path.cwd()) / "pyproject.toml"
    return path if path.is_file() else None


def load_config(path: Path, *, required: bool = True) -> Settings:
    """Options and suppressions from ``[tool.pkgvet]`` of a ``pyproject.toml``, or from the top
    level of any other TOML file (a standalone ``pkgvet.toml``). A pyproject without
    ``[tool.pkgvet]`` is an error when ``required`` (it was named explicitly), else no settings.
    """
    doc = _read(path)
    if path.name == "pyproject.toml":
        tool = doc.get("tool", {})
        table = tool.get("pkgvet") if isinstance(tool, dict) else None
        if table is None:
            if required:
                raise SettingsError(f"{path}: no [tool.pkgvet] table")
            return Settings()
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: tool.pkgvet must be a table")
        where, entry_where = f"{path}: [tool.pkgvet]", f"{path}: [[tool.pkgvet.suppress]]"
    else:
        table = doc
        where, entry_where = str(path), f"{path}: [[suppress]]"
    unknown = [k for k in table if k not in _OPTION_KEYS and k != "suppress"]
    if unknown:
        raise SettingsError(f"{where}: {_unknown(unknown, (*_OPTION_KEYS, 'suppress'))}")
    return Settings(
        source=str(path),
        options=_options(table, where),
        suppressions=parse_suppressions(table.get("suppress", []), entry_where),
    )


def load_suppressions(path: Path) -> tuple[Suppression, ...]:
    """The ``[[suppress]]`` entries of a suppressions file (nothing else may be in it)."""
    doc = _read(path)
    unknown = [k for k in doc if k != "suppress"]
    if unknown:
        raise SettingsError(
            f"{path}: a suppressions file holds only [[suppress]] entries; "
            f"{_unknown(unknown, ('suppress',))} (scan options belong in [tool.pkgvet] or "
            "a file given with --config)"
        )
    return parse_suppressions(doc.get("suppress", []), f"{path}: [[suppress]]")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from exc


def _unknown(keys: list[str], allowed: tuple[str, ...]) -> str:
    hints = []
    for k in keys:
        near = k.replace("_", "-").lower()
        hint = near in allowed and near != k
        hints.append(f"{k!r} (did you mean {near!r}?)" if hint else repr(k))
    return f"unknown key{'s' * (len(keys) > 1)} {', '.join(hints)}; allowed: {', '.join(allowed)}"


def _options(table: dict[str, Any], where: str) -> ScanOptions:
    def text(key: str, choices: tuple[str, ...] | None = None) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{where}: {key} must be a non-empty string, not {value!r}")
        if choices is not None and value not in choices:
            raise SettingsError(f"{where}: {key} = {value!r}; choose from {', '.join(choices)}")
        return value

    def rules(key: str) -> tuple[str, ...] | None:
        value = table.get(key)
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise SettingsError(
                f"{where}: {key} must be a rule id or prefix, or a list of them, not {value!r}"
            )
        return tuple(items)

    budget = table.get("time-budget")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0
    ):
        raise SettingsError(f"{where}: time-budget must be a positive number, not {budget!r}")
    model = table.get("model")
    if model is not None and not isinstance(model, bool):
        raise SettingsError(f"{where}: model must be true or false, not {model!r}")
    fmt = text("format")
    if fmt is not None and fmt != "auto":
        from pkgvet.report.base import get_format

        try:
            get_format(fmt)
        except ValueError as exc:
            raise SettingsError(f"{where}: format: {exc}") from None
    return ScanOptions(
        fail_on=text("fail-on", _SEVERITIES),
        min_severity=text("min-severity", _SEVERITIES),
        select=rules("select"),
        ignore=rules("ignore"),
        format=fmt,
        index_url=text("index-url"),
        dist=text("dist", DIST_CHOICES),
        time_budget=float(budget) if budget is not None else None,
        model=model,
    )


def parse_suppressions(value: object, where: str) -> tuple[Suppression, ...]:
    """Validated suppression entries (``where`` names the file and table in messages)."""
    if not isinstance(value, list):
        raise SettingsError(f"{where}: suppress must be an array of tables, not {value!r}")
    out = []
    for i, item in enumerate(value, 1):
        label = f"{where} entry {i}"
        if not isinstance(item, dict):
            raise SettingsError(f"{label}: must be a table, not {item!r}")
        if isinstance(item.get("package"), str):
            label += f" (package = {item['package']!r})"
        unknown = [k for k in item if k not in _ENTRY_KEYS]
        if unknown:
            raise SettingsError(f"{label}: {_unknown(unknown, _ENTRY_KEYS)}")
        for key in _ENTRY_KEYS:
            v = item.get(key)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise SettingsError(f"{label}: {key} must be a non-empty string, not {v!r}")
        if item.get("package") is None:
            raise SettingsError(f"{label}: package is required")
        if item.get("reason") is None:
            raise SettingsError(f"{label}: reason is required (say why this is accepted)")
        try:
            package = canonicalize_name(item["package"].strip(), validate=True)
        except InvalidName:
            raise SettingsError(f"{label}: {item['package']!r} is not a package name") from None
        rule = item.get("rule")
        if rule is not None:
            rule = rule.strip().upper()
            _check_rule(rule, label)
        out.append(
            Suppression(
                package=package,
                reason=" ".join(item["reason"].split()),
                version=item["version"].strip() if item.get("version") else None,
                rule=rule,
                path=item.get("path"),
                source=label,
            )
        )
    return tuple(out)


def _check_rule(rule: str, label: str) -> None:
    from pkgvet.rules.registry import load_rules

    known = any(rid.upper().startswith(rule) for rid in load_rules())
    if not _RULE_PREFIX.match(rule) or not known:
        raise SettingsError(f"{label}: rule {rule!r} is no rule id or prefix (see `pkgvet rules`)")
