"""Read a pip requirements file into the packages to scan, without running pip.

Supported: one requirement per line (``NAME``, ``NAME==VERSION``, extras, environment markers,
which are evaluated for this interpreter), ``--hash=sha256:…`` options (the fetched file must
match one), ``-r``/``--requirement`` includes relative to the including file, comments and
``\\`` line continuations, and ``-i``/``--index-url`` (as for pip, it applies to the whole file
and its includes; the last one given wins). Other options (``-e``, ``--extra-index-url``,
``-c``…) and URL requirements are reported as skipped lines. Ranges are not resolved: pkgvet
runs no resolver.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from pkgvet.collect.index import DEFAULT_INDEX_URL
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
    index_url: str | None = None  # the index a lock file records for this package


@dataclass(slots=True)
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # origin: reason
    index_given: str | None = None  # a requirements file's --index-url, as written
    index_origin: str | None = None  # where it was given (file:line)

    @property
    def index_url(self) -> str | None:
        """The index for every entry of the file (None for none given, or PyPI's own)."""
        return named_index(self.index_given)

    def set_index(self, url: str, origin: str) -> None:
        """Record ``--index-url``: the last one given wins, as in pip; an earlier one is
        reported as skipped."""
        if self.index_given is not None and self.index_given != url:
            self.skipped.append(
                f"{self.index_origin}: --index-url {self.index_given} is overridden by the "
                f"--index-url of {origin}"
            )
        self.index_given, self.index_origin = url, origin


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
        url = _index_option(words)
        if url is not None:
            if not url.startswith(("http://", "https://")):
                parsed.skipped.append(f"{origin}: {words[0]} {url}: not an http(s) index URL")
            else:
                parsed.set_index(url, origin)
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


_DEFAULT_INDEXES = frozenset(
    {DEFAULT_INDEX_URL, "https://pypi.python.org/simple", "https://pypi.org/pypi"}
)


def named_index(url: object) -> str | None:
    """The index a file names, or None for none or PyPI's own (so that ``$PIP_INDEX_URL``, a
    mirror, still serves what PyPI would)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None
    return None if url.rstrip("/") in _DEFAULT_INDEXES else url


def _index_option(words: list[str]) -> str | None:
    """The URL of an ``-i``/``--index-url`` line (empty when it has none); None for any other
    line."""
    first = words[0]
    if first in ("-i", "--index-url"):
        return words[1] if len(words) > 1 else ""
    if first.startswith("--index-url="):
        return first.split("=", 1)[1]
    if first.startswith("-i") and len(first) > 2:
        return first[2:]  # -iURL, as optparse reads it
    return None


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
