"""Generate typosquat CANDIDATES from the names in the shared malware dataset, for hand review.

    python scripts/typosquat_candidates.py [--malware DIR] [--top 15000] [--out FILE]

Run on purpose (not a test). Only package NAMES are read (the first path component of each
``MANIFEST.tsv`` entry); no archive is opened. The matcher is deliberately broader than, and
independent of, ``pkgvet.typosquat`` so that the reviewed list does not only contain what the
detector under evaluation already finds:

* edit: optimal-string-alignment (Damerau-Levenshtein) distance <= 2 against the ``--top`` most
  downloaded names when both are >= 5 characters (<= 1 for 3-4 characters), compared with and
  without separators;
* separator: equal once ``-``, ``_``, ``.`` are removed;
* homoglyph: equal (or one edit apart) after folding look-alikes (1/i/l, 0/o, rn/m, vv/w, cl/d,
  5/s) and removing separators;
* affix / combo: a popular name of >= 5 characters is a separator-delimited part of the name, or
  a plain substring of it, or one part (or a run of parts) is within one edit of it;
* keyboard: a single substitution by a key adjacent on a QWERTY keyboard is labelled as such.

Output (TSV, sorted by suggested target then name): ``malicious_name``, ``target``,
``target_rank``, ``suggested_kind``, ``distance``, ``matchers`` - at most ``--per-name``
candidate targets per malicious name, best first. The review that turns this into
``data/typosquats/pairs.tsv`` is done by hand (criteria in ``data/typosquats/README.md``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
POPULAR = REPO / "src" / "pkgvet" / "data" / "popular.tsv"
DEFAULT_MALWARE = REPO.parent / "shared" / "datasets" / "pypi-malregistry"
DEFAULT_OUT = REPO / "data" / "typosquats" / "candidates.tsv"

SEPARATORS = re.compile(r"[-_.]+")
AFFIXES = (
    "python", "py", "lib", "dev", "sdk", "api", "client", "cli", "core", "official", "pkg",
    "package", "module", "tool", "tools", "utils", "util", "helper", "helpers", "plugin", "ext",
    "extra", "extras", "new", "latest", "fix", "fixed", "pro", "plus", "bin", "x", "js", "io",
    "2", "3", "v2", "v3",
)
_HOMOGLYPHS = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("1", "l"), ("i", "l"), ("|", "l"),
               ("0", "o"), ("5", "s"))
_QWERTY = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")


def _adjacent() -> dict[str, set[str]]:
    pos = {c: (r, i) for r, row in enumerate(_QWERTY) for i, c in enumerate(row)}
    adj: dict[str, set[str]] = {c: set() for c in pos}
    for a, (ra, ia) in pos.items():
        for b, (rb, ib) in pos.items():
            # same row neighbours, and the keys touching it on the rows above/below (the
            # staggered layout makes column i of a row touch columns i and i+1 of the row above)
            if a != b and (
                (ra == rb and abs(ia - ib) == 1)
                or (rb == ra - 1 and ib in (ia, ia + 1))
                or (rb == ra + 1 and ib in (ia - 1, ia))
            ):
                adj[a].add(b)
    return adj


ADJACENT = _adjacent()


def flat(name: str) -> str:
    return SEPARATORS.sub("", name.lower())


def fold(name: str) -> str:
    out = flat(name)
    for seq, rep in _HOMOGLYPHS:
        out = out.replace(seq, rep)
    return out


def osa(a: str, b: str, limit: int = 3) -> int:
    """Optimal string alignment distance, capped at ``limit``."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) >= limit:
            return limit
        prev2, prev = prev, cur
    return min(prev[-1], limit)


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


def load_popular(top: int) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for line in POPULAR.read_text("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rank = line.partition("\t")
        if int(rank) <= top:
            ranks.setdefault(canonicalize_name(name), int(rank))
    return ranks


def load_malicious(root: Path) -> list[str]:
    names: set[str] = set()
    with (root / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            names.add(line.split("\t", 1)[0].split("/", 1)[0])
    return sorted(names)


def suggested_kind(mal: str, target: str) -> str:
    fm, ft = flat(mal), flat(target)
    if fm == ft:
        return "separator"
    if fold(mal) == fold(target):
        return "homoglyph"
    parts = [p for p in SEPARATORS.split(mal.lower()) if p]
    tparts = [p for p in SEPARATORS.split(target) if p]
    for affix in AFFIXES:
        if fm in (affix + ft, ft + affix):
            return "affix"
    n = len(tparts)
    for i in range(len(parts) - n + 1):
        if parts[i : i + n] == tparts:
            rest = parts[:i] + parts[i + n :]
            return "affix" if all(r in AFFIXES for r in rest) else "combo"
    d = osa(fm, ft)
    if d == 1 and len(fm) == len(ft):
        diff = [i for i in range(len(fm)) if fm[i] != ft[i]]
        if len(diff) == 2:
            return "transposition"
        a, b = fm[diff[0]], ft[diff[0]]
        if b in ADJACENT.get(a, ()):
            return "keyboard"
        return "edit"
    if d <= 2:
        return "edit"
    if ft in fm:
        return "combo"
    return "other"


def candidates(mal: str, index: dict[str, list[str]],
               by_flat: dict[str, list[str]], by_fold: dict[str, list[str]],
               ) -> Iterable[tuple[str, int, str]]:
    """(target, distance, matcher) for one canonical malicious name."""
    fm, fo = flat(mal), fold(mal)
    for t in by_flat.get(fm, ()):
        if t != mal:
            yield t, 0, "separator"
    for t in by_fold.get(fo, ()):
        if t != mal:
            yield t, 0, "homoglyph"
    # edit distance, through a symmetric-deletion index over the flattened popular names
    if len(fm) >= 3:
        limit = 2 if len(fm) >= 5 else 1
        seen: set[str] = set()
        for key in _deletes(fm, limit):
            for t in index.get(key, ()):
                if t in seen or t == mal:
                    continue
                seen.add(t)
                ft = flat(t)
                lim = 2 if min(len(ft), len(fm)) >= 5 else 1
                d = osa(fm, ft)
                if 0 < d <= lim:
                    yield t, d, "edit"
                df = osa(fo, fold(t))
                if 0 < df <= lim and df < d:
                    yield t, df, "homoglyph-edit"
    # containment: a popular name (>= 5 chars) as parts, as a substring, or one part a typo of it
    parts = [p for p in SEPARATORS.split(mal) if p]
    runs = {"-".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)}
    runs |= {r.replace("-", "") for r in runs}
    for r in runs:
        for t in by_flat.get(flat(r), ()):
            if t != mal and len(flat(t)) >= 5 and flat(t) != fm:
                yield t, 0, "parts"
    for i in range(len(fm)):
        for j in range(i + 5, len(fm) + 1):
            for t in by_flat.get(fm[i:j], ()):
                if t != mal and flat(t) != fm:
                    yield t, 0, "substring"
    if len(parts) > 1:
        for r in runs:
            fr = flat(r)
            if len(fr) < 5:
                continue
            for key in _deletes(fr, 1):
                for t in index.get(key, ()):
                    ft = flat(t)
                    if len(ft) >= 5 and t != mal and osa(fr, ft, 2) == 1:
                        yield t, 1, "part-edit"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--malware", type=Path, default=DEFAULT_MALWARE)
    ap.add_argument("--top", type=int, default=15000)
    ap.add_argument("--per-name", type=int, default=5)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    popular = load_popular(args.top)
    index: dict[str, list[str]] = {}
    by_flat: dict[str, list[str]] = {}
    by_fold: dict[str, list[str]] = {}
    for name in popular:
        ft = flat(name)
        by_flat.setdefault(ft, []).append(name)
        by_fold.setdefault(fold(name), []).append(name)
        if len(ft) >= 3:
            for key in _deletes(ft, 2 if len(ft) >= 5 else 1):
                index.setdefault(key, []).append(name)

    raw = load_malicious(args.malware)
    rows: list[tuple[str, str, int, str, int, str]] = []
    in_popular = 0
    for original in raw:
        mal = canonicalize_name(original)
        if mal in popular:
            in_popular += 1
            continue
        found: dict[str, tuple[int, set[str]]] = {}
        for t, d, how in candidates(mal, index, by_flat, by_fold):
            best, hows = found.get(t, (d, set()))
            found[t] = (min(best, d), hows | {how})
        # best first: exact-ish matchers, then distance, then longer (more specific) targets,
        # then download rank
        strong = {"separator", "homoglyph", "parts"}
        ranked = sorted(found.items(), key=lambda kv: (
            not (kv[1][1] & strong), kv[1][0], -len(flat(kv[0])), popular[kv[0]]))
        for t, (d, hows) in ranked[: args.per_name]:
            rows.append((original, t, popular[t], suggested_kind(mal, t), d,
                         ",".join(sorted(hows))))
    rows.sort(key=lambda r: (r[1], r[0].lower()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        fh.write("malicious_name\ttarget\ttarget_rank\tsuggested_kind\tdistance\tmatchers\n")
        for r in rows:
            fh.write("\t".join(map(str, r)) + "\n")
    names = {r[0] for r in rows}
    print(f"{len(raw)} malicious names ({in_popular} are themselves popular names, skipped); "
          f"{len(names)} have candidates; {len(rows)} candidate pairs -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
