"""The format interface and registry. A format renders results as text for a stream; formats
that describe a whole run (JSON, SARIF) render once at the end, line formats as they go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TextIO

from pkgvet.models import ScanResult


class Format(Protocol):
    name: str

    def write_result(self, result: ScanResult, out: TextIO) -> None:
        """Called for each result as it arrives (a whole-run format may write nothing)."""

    def finish(self, results: Sequence[ScanResult], out: TextIO) -> None:
        """Called once with every result: whole-run documents and summaries."""


FORMATS: dict[str, type[Format]] = {}


def register(cls: type[Format]) -> type[Format]:
    FORMATS[cls.name] = cls
    return cls


def get_format(name: str) -> Format:
    from pkgvet.report import json_format, markdown, sarif, text  # noqa: F401  (they register)

    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(
            f"unknown format {name!r}; choose from {', '.join(sorted(FORMATS))}"
        ) from None
