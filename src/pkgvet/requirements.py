"""Read a pip requirements file into the packages to scan, without running pip.

Supported: one requirement per line (``NAME``, ``NAME==VERSION``, extras, environment markers,
which are evaluated for this interpreter), ``--hash=sha256:…`` options (the fetched file must
match one), ``-r``/``--requirement`` includes relative to the including file, comments and
``\\`` line continuations. Other options (``-e``, ``--index-url``, ``-c``…) and URL requirements
are reported as skipped lines. Ranges are not resolved: pkgvet runs no resolver.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from pkgvet.errors import PkgvetError

_MAX_DEPTH = 8


class RequirementsError(PkgvetError):
    pass


@dataclass(frozen=True, slots=True)
class Entry:
    """One requirement line: what to fetch, or why it cannot be."""

    origin: str  # file:line
    text: str
    name: str | None = None
    version: str | None = None
    hashes: frozenset[str] = frozenset()
    problem: str | None = None


@dataclass(slots=True)
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # origin: reason


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def parse_file(path: Path, parsed: Parsed | None = None, depth: int = 0) -> Parsed:
    """All entries of ``path`` and the files it includes."""
    parsed = parsed if parsed is not None else Parsed()
    if depth > _MAX_DEPTH:
        raise RequirementsError(f"{path}: -r includes nested deeper than {_MAX_DEPTH}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementsError(f"{path}: cannot read: {exc}") from exc
    for lineno, line in _logical_lines(text):
        origin = f"{path}:{lineno}"
        try:
            words = shlex.split(line, posix=False)  # keep the quotes of markers
        except ValueError as exc:
            parsed.entries.append(Entry(origin, line, problem=f"unparsable line: {exc}"))
            continue
        if words[0] in ("-r", "--requirement") or words[0].startswith(("-r", "--requirement=")):
            target = (
                words[1]
                if len(words) > 1 and words[0] in ("-r", "--requirement")
                else (words[0].split("=", 1)[1] if "=" in words[0] else words[0][2:])
            )
            parse_file(path.parent / target, parsed, depth + 1)
            continue
        if words[0].startswith("-"):
            parsed.skipped.append(f"{origin}: option {words[0]} is not used by pkgvet")
            continue
        entry = _entry(origin, words)
        if isinstance(entry, str):
            parsed.skipped.append(f"{origin}: {entry}")
        else:
            parsed.entries.append(entry)
    return parsed


def _entry(origin: str, words: list[str]) -> Entry | str:
    """The entry of one requirement line, or why it is skipped."""
    spec_words = [w for w in words if not w.startswith("--hash")]
    hashes = frozenset(
        w.split("=", 1)[1].removeprefix("sha256:").lower()
        for w in words
        if w.startswith("--hash=") and "sha256:" in w
    )
    text = " ".join(spec_words)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return Entry(origin, text, problem=f"not a requirement: {exc}")
    if req.url:
        return Entry(origin, text, name=req.name, problem="URL requirements are not fetched")
    if req.marker is not None and not req.marker.evaluate():
        return f"{req.name}: marker is false for this interpreter (not installed here)"
    specs = list(req.specifier)
    if not specs:
        return Entry(origin, text, name=req.name, hashes=hashes)
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        return Entry(origin, text, name=req.name, version=specs[0].version, hashes=hashes)
    return Entry(origin, text, name=req.name, problem="a range, not a pin: pkgvet runs no resolver")
