"""Name similarity to popular projects (the shipped, dated ``data/popular.tsv``).

A symmetric-deletion index over the most downloaded names finds, for a query, popular names
within one edit (insertion, deletion, substitution or adjacent transposition) without comparing
against every name. Separator variants and ``python-``/``-py`` affixes are checked as well.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from packaging.utils import canonicalize_name

TOP_N = 5000
MIN_LEN = 4
_AFFIXES = ("python-", "py-", "-python", "-py", "python", "py", "2", "3", "-lib", "lib")


@lru_cache(maxsize=1)
def popular_ranks() -> dict[str, int]:
    """Canonical name -> download rank, from the shipped list."""
    text = resources.files("pkgvet").joinpath("data/popular.tsv").read_text("utf-8")
    ranks: dict[str, int] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rank = line.partition("\t")
        ranks.setdefault(canonicalize_name(name), int(rank) if rank.isdigit() else len(ranks))
    return ranks


def _deletes(name: str) -> set[str]:
    return {name[:i] + name[i + 1 :] for i in range(len(name))}


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, list[str]], dict[str, str]]:
    by_delete: dict[str, list[str]] = {}
    squashed: dict[str, str] = {}
    for name, rank in popular_ranks().items():
        if rank > TOP_N or len(name) < MIN_LEN:
            continue
        for key in {name, *_deletes(name)}:
            by_delete.setdefault(key, []).append(name)
        squashed.setdefault(name.replace("-", ""), name)
    return by_delete, squashed


def _within_one_edit(a: str, b: str) -> bool:
    if a == b:
        return False
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def closest_popular(name: str) -> str | None:
    """The popular project ``name`` imitates, or None (also None for popular names)."""
    canon = canonicalize_name(name)
    ranks = popular_ranks()
    if canon in ranks or len(canon) < MIN_LEN:
        return None
    by_delete, squashed = _index()
    candidates: set[str] = set()
    for key in {canon, *_deletes(canon)}:
        candidates.update(by_delete.get(key, ()))
    matches = [c for c in candidates if _within_one_edit(canon, c)]
    if not matches:
        flat = canon.replace("-", "")
        if flat in squashed and squashed[flat] != canon:
            matches = [squashed[flat]]
    if not matches:
        for affix in _AFFIXES:
            stripped = (
                canon[len(affix) :]
                if canon.startswith(affix)
                else canon[: -len(affix)]
                if canon.endswith(affix)
                else ""
            )
            stripped = stripped.strip("-")
            if stripped in ranks and ranks[stripped] <= TOP_N and len(stripped) >= MIN_LEN:
                matches = [stripped]
                break
    return min(matches, key=lambda n: ranks[n]) if matches else None
