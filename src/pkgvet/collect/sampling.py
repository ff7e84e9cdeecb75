"""Turning sampling specs into the list of projects to collect.

Specs:

``top:N``
    The N most downloaded projects of the shipped popularity list
    (``pkgvet/data/popular.tsv``), stratum ``popular``.
``tail:N``
    N projects drawn with a seeded generator from a names file
    (``--names-file``), leaving out every project in the popularity list and
    every excluded name; stratum ``long_tail``.
``names:a,b,c``
    The given projects, stratum ``named``.
any other value
    A file of names (one per line, ``#`` comments; for a TSV only the first
    column counts and a ``name`` header is skipped), stratum ``named``.

All names are normalised with :func:`packaging.utils.canonicalize_name`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from packaging.utils import canonicalize_name

from pkgvet.collect.index import SpecError

POPULAR = "popular"
LONG_TAIL = "long_tail"
NAMED = "named"

_VALID_NAME = re.compile(r"[a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Target:
    """A project to collect, with the stratum it was sampled for."""

    name: str
    stratum: str
    rank: int | None


def normalise(name: str) -> str:
    """Canonicalise a project name, rejecting names PyPI would not accept."""
    if not _VALID_NAME.fullmatch(name):
        raise SpecError(f"invalid project name {name!r}")
    return canonicalize_name(name)


def load_popular(path: Path | None = None) -> dict[str, int]:
    """Return ``{name: rank}`` from a popularity list (default: the shipped one).

    The file has ``#`` comment lines and ``name<TAB>rank`` rows.
    """
    if path is None:
        text = (files("pkgvet") / "data" / "popular.tsv").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    ranks: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[1].isdigit():
            raise SpecError(f"popularity list line {lineno}: expected 'name<TAB>rank'")
        ranks.setdefault(normalise(fields[0]), int(fields[1]))
    return ranks


def read_names(path: Path) -> list[str]:
    """Read a names file: one name per line, or the first column of a TSV.

    Blank lines and ``#`` comments are skipped, as is a first row whose first
    column is ``name`` when the file has several columns.  Duplicates are
    dropped, keeping the first occurrence.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecError(f"cannot read names file {path}: {exc}") from exc
    seen: dict[str, None] = {}
    first = True
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        field, tab, _ = line.partition("\t")
        field = field.strip()
        if first and tab and field == "name":
            first = False
            continue
        first = False
        try:
            seen.setdefault(normalise(field), None)
        except SpecError as exc:
            raise SpecError(f"{path}:{lineno}: {exc}") from exc
    return list(seen)


def select_targets(
    specs: Iterable[str],
    *,
    names_file: Path | None = None,
    seed: int = 0,
    exclude: Collection[str] = (),
    popular: dict[str, int] | None = None,
) -> list[Target]:
    """Expand specs into targets, in spec order, without duplicates.

    ``exclude`` names are dropped everywhere; for ``tail:N`` they are removed
    from the pool before drawing, so N names are still drawn when the pool
    allows.  A name selected by several specs keeps its first stratum.
    """
    ranks = load_popular() if popular is None else popular
    excluded: set[str] = {canonicalize_name(n) for n in exclude}
    chosen: dict[str, Target] = {}
    for spec in specs:
        for target in _expand(spec, names_file, seed, excluded, ranks):
            if target.name not in excluded:
                chosen.setdefault(target.name, target)
    return list(chosen.values())


def _expand(
    spec: str,
    names_file: Path | None,
    seed: int,
    excluded: set[str],
    ranks: dict[str, int],
) -> Iterator[Target]:
    kind, colon, value = spec.partition(":")
    if colon and kind == "top":
        count = _count(spec, value)
        by_rank = sorted(ranks.items(), key=lambda item: item[1])
        for name, rank in by_rank[:count]:
            yield Target(name, POPULAR, rank)
    elif colon and kind == "tail":
        count = _count(spec, value)
        if names_file is None:
            raise SpecError(
                f"{spec!r} draws from a names file: pass --names-file PATH "
                "(a list of project names, e.g. a TSV whose first column is the name)"
            )
        pool = [n for n in read_names(names_file) if n not in ranks and n not in excluded]
        if count > len(pool):
            raise SpecError(f"{spec!r}: only {len(pool)} eligible names in {names_file}")
        for name in random.Random(seed).sample(pool, count):
            yield Target(name, LONG_TAIL, None)
    elif colon and kind == "names":
        for raw in value.split(","):
            if raw.strip():
                name = normalise(raw.strip())
                yield Target(name, NAMED, ranks.get(name))
    elif Path(spec).is_file():
        for name in read_names(Path(spec)):
            yield Target(name, NAMED, ranks.get(name))
    else:
        raise SpecError(
            f"unknown spec {spec!r}: expected top:N, tail:N, names:a,b,c or a file of names"
        )


def _count(spec: str, value: str) -> int:
    if not value.isdigit() or int(value) == 0:
        raise SpecError(f"{spec!r}: N must be a positive integer")
    return int(value)
