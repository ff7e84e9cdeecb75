"""Name similarity to popular projects (the shipped, dated ``data/popular.tsv``).

A symmetric-deletion index over the most downloaded names finds, for a query, popular names
within one edit (insertion, deletion, substitution or adjacent transposition) without comparing
against every name. Separator variants, ``python-``/``-py`` affixes and look-alike characters
(homoglyphs: ``0``/``o``, ``1``/``l``/``i``, ``rn``/``m``, Cyrillic letters, ...) are checked as
well.

Two tiers of targets. The ``TOP_N`` most downloaded names are matched by any one edit (for
names of at most ``SHORT`` characters only by the edits a slip of the finger or the eye makes:
a transposition, a neighbouring key or a look-alike character, since short names of real
projects often differ by one arbitrary letter). The rest of the shipped list (down to rank
``WIDE_N``) is matched only by those deliberate-looking confusions: a transposition, a
look-alike character, a neighbouring key in a name of at least ``WIDE_MIN_LEN`` characters,
or a separator-only difference.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from importlib import resources

from packaging.utils import canonicalize_name

TOP_N = 5000
WIDE_N = 15000
MIN_LEN = 4
SHORT = 5
WIDE_MIN_LEN = 6
_AFFIXES = ("python-", "py-", "-python", "-py", "python", "py", "2", "3", "-lib", "lib")

_QWERTY = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_POS = {ch: (r, c) for r, row in enumerate(_QWERTY) for c, ch in enumerate(row)}
# Characters that look alike in most fonts, folded to one representative.
_GLYPHS = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "5": "s", "3": "e", "4": "a"})
_GLYPH_SEQS = (("rn", "m"), ("vv", "w"), ("cl", "d"))


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


def fold_glyphs(name: str) -> str:
    """``name`` with look-alike characters folded (Unicode compatibility forms and accents
    removed, Cyrillic and Greek look-alikes mapped to Latin, ``0``/``o``, ``1``/``l``/``i``,
    ``rn``/``m``, ...) and separators dropped."""
    text = unicodedata.normalize("NFKD", name.lower())
    text = "".join(_CONFUSABLE.get(ch, ch) for ch in text if not unicodedata.combining(ch))
    text = text.translate(_GLYPHS).replace("-", "").replace("_", "").replace(".", "")
    for seq, rep in _GLYPH_SEQS:
        text = text.replace(seq, rep)
    return text


_CONFUSABLE = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ɡ": "g", "α": "a",
    "ο": "o", "ρ": "p", "ν": "v", "τ": "t", "ι": "i", "κ": "k",
}  # fmt: skip


def _deletes(name: str) -> set[str]:
    return {name[:i] + name[i + 1 :] for i in range(len(name))}


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    by_delete: dict[str, list[str]] = {}
    squashed: dict[str, str] = {}
    folded: dict[str, str] = {}
    for name, rank in sorted(popular_ranks().items(), key=lambda kv: kv[1]):
        if rank > WIDE_N or len(name) < MIN_LEN:
            continue
        for key in {name, *_deletes(name)}:
            by_delete.setdefault(key, []).append(name)
        squashed.setdefault(name.replace("-", ""), name)
        folded.setdefault(fold_glyphs(name), name)
    return by_delete, squashed, folded


def _edit_kind(a: str, b: str) -> str | None:
    """How ``a`` differs from ``b`` by one edit: ``transpose``, ``key`` (a neighbouring key),
    ``glyph`` (a look-alike character), ``double`` (a letter doubled or undoubled), ``version``
    (a digit changed, added or removed: ``psycopg``/``psycopg2``, ``cu12``/``cu13``), ``sub``,
    ``indel``; None if not within one edit."""
    if a == b or abs(len(a) - len(b)) > 1:
        return None
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            x, y = a[diff[0]], b[diff[0]]
            if x.isdigit() and y.isdigit():
                return "version"
            if fold_glyphs(x) == fold_glyphs(y):
                return "glyph"
            return "key" if _adjacent(x, y) else "sub"
        if (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        ):
            return "transpose"
        return None
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    for i in range(len(long_)):
        if long_[:i] + long_[i + 1 :] == short:
            if long_[i].isdigit():
                return "version"
            doubled = (i > 0 and long_[i - 1] == long_[i]) or long_[i + 1 : i + 2] == long_[i]
            return "double" if doubled else "indel"
    return None


def _adjacent(x: str, y: str) -> bool:
    px, py = _POS.get(x), _POS.get(y)
    return px is not None and py is not None and abs(px[0] - py[0]) <= 1 and abs(px[1] - py[1]) <= 1


def _accept(canon: str, target: str, kind: str, rank: int) -> bool:
    if kind == "version":
        return False  # numbered siblings are common among real projects (affixes still count)
    if kind in ("transpose", "glyph"):
        return True
    if rank <= TOP_N:
        return min(len(canon), len(target)) > SHORT or kind in ("key", "double")
    return kind in ("key", "double") and min(len(canon), len(target)) >= WIDE_MIN_LEN


def warm() -> None:
    """Build the popular-name index now rather than in the first scan that asks (a long-lived
    worker calls this before its first package)."""
    _index()


@lru_cache(maxsize=4096)
def closest_popular(name: str) -> str | None:
    """The popular project ``name`` imitates, or None (also None for popular names).

    Memoised: a scan asks twice per package (rule PV701 and the model's features) and the
    popular list is fixed for the process."""
    canon = canonicalize_name(name)
    ranks = popular_ranks()
    if canon in ranks or len(canon) < MIN_LEN:
        return None
    by_delete, squashed, folded = _index()
    candidates: set[str] = set()
    for key in {canon, *_deletes(canon)}:
        candidates.update(by_delete.get(key, ()))
    matches = []
    for c in candidates:
        kind = _edit_kind(canon, c)
        if kind is not None and _accept(canon, c, kind, ranks[c]):
            matches.append(c)
    if not matches:
        flat = canon.replace("-", "")
        if flat in squashed and squashed[flat] != canon:
            matches = [squashed[flat]]
    if not matches:
        target = folded.get(fold_glyphs(canon))
        if target is not None and target != canon:
            matches = [target]
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
