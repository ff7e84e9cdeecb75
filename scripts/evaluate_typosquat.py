"""Measure pkgvet's name-confusion detector (rule PV807, ``pkgvet.typosquat.closest_popular``).

    python scripts/evaluate_typosquat.py [--pairs data/typosquats/pairs.tsv] [--out FILE]

Recall: every hand-checked pair of ``data/typosquats/pairs.tsv`` (malicious name from the shared
dataset, the popular project it imitates, kind of confusion) goes through ``closest_popular``,
the function PV807 calls. A hit is the right target named; "other target" is a flag naming a
different popular project; a miss is no flag. Reported overall and per kind, with the misses by
kind and why (target outside the compared TOP_N, name too short, more than one edit, ...).

False positives: each of the 5,000 most downloaded names (ranks 1-5,000), and then each name of
ranks 5,001-10,000, is checked as if it were a new upload: the detector's own guard "a popular
name is never a typosquat" is lifted for that one name only (the rank table it reads hides the
name being checked), so what is measured is whether a legitimate popular name would be flagged
as resembling another one. ``typosquat.py`` itself is not changed.

Only names are read (no archive is opened). Output is deterministic Markdown (stdout, or --out).
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from packaging.utils import canonicalize_name

from pkgvet import typosquat
from pkgvet.typosquat import MIN_LEN, TOP_N, WIDE_N, closest_popular, popular_ranks

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PAIRS = REPO / "data" / "typosquats" / "pairs.tsv"
KINDS = ("edit", "transposition", "separator", "affix", "homoglyph", "keyboard", "combo", "other")
EXAMPLES = 8


class _Hiding(dict[str, int]):
    """The rank table with one name hidden from membership tests (``name in ranks``)."""

    hidden = ""

    def __contains__(self, key: object) -> bool:
        return key != self.hidden and super().__contains__(key)


@contextmanager
def _as_new_upload() -> Iterator[_Hiding]:
    typosquat._index()  # build the detector's index from the real table first
    table = _Hiding(popular_ranks())
    with mock.patch.object(typosquat, "popular_ranks", return_value=table):
        yield table


def _flat(name: str) -> str:
    return canonicalize_name(name).replace("-", "")


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance (small strings only)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def miss_reason(name: str, target: str, ranks: dict[str, int]) -> str:
    canon, tgt = canonicalize_name(name), canonicalize_name(target)
    if ranks.get(tgt, 10**9) > WIDE_N:
        return f"target ranked beyond WIDE_N={WIDE_N}"
    if len(canon) < MIN_LEN:
        return f"name shorter than MIN_LEN={MIN_LEN}"
    d = _edits(_flat(name), _flat(target))
    if tgt in canon or _flat(target) in _flat(name):
        return "target plus extra text (not a known affix)"
    if d == 1 and ranks[tgt] > TOP_N:
        return f"one edit of a kind not matched for targets ranked beyond TOP_N={TOP_N}"
    if d == 1 and min(len(canon), len(tgt)) <= typosquat.SHORT:
        return f"one edit of a kind not matched for names of <= {typosquat.SHORT} characters"
    if d == 2:
        return "two edits"
    if d > 2:
        return "more than two edits"
    if d == 1 and any(ch.isdigit() for ch in canon + tgt):
        return "a digit changed, added or removed (not matched: numbered siblings)"
    return "one edit on the flattened name, but not on the canonical one"


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "-"


def evaluate_pairs(path: Path) -> tuple[list[str], dict[str, object]]:
    ranks = popular_ranks()
    with path.open(encoding="utf-8", newline="") as fh:
        pairs = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    per_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    misses: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    others: list[tuple[str, str, str]] = []
    reasons: collections.Counter[str] = collections.Counter()
    for row in pairs:
        name, target, kind = row["malicious_name"], row["target"], row["kind"]
        got = closest_popular(name)
        c = per_kind[kind]
        c["n"] += 1
        if got == canonicalize_name(target):
            c["hit"] += 1
        elif got:
            c["other"] += 1
            others.append((name, target, got))
        else:
            c["miss"] += 1
            why = miss_reason(name, target, ranks)
            reasons[why] += 1
            misses[kind].append((name, target, why))
    total = collections.Counter[str]()
    for c in per_kind.values():
        total.update(c)
    in_top = [r for r in pairs if ranks.get(canonicalize_name(r["target"]), 10**9) <= TOP_N]
    hit_top = sum(1 for r in in_top if closest_popular(r["malicious_name"])
                  == canonicalize_name(r["target"]))

    out = [f"Pairs: {total['n']} distinct malicious names, {len({r['target'] for r in pairs})} "
           "targets.", "",
           f"- **Recall (right target named): {total['hit']}/{total['n']} = "
           f"{_pct(total['hit'], total['n'])}**",
           f"- Flagged with another target: {total['other']} ({_pct(total['other'], total['n'])})",
           f"- Any flag (right or other target): {total['hit'] + total['other']} "
           f"({_pct(total['hit'] + total['other'], total['n'])})",
           f"- Not flagged: {total['miss']} ({_pct(total['miss'], total['n'])})",
           f"- Restricted to the {len(in_top)} pairs whose target is within TOP_N={TOP_N}: "
           f"{hit_top}/{len(in_top)} = {_pct(hit_top, len(in_top))}", "",
           "| kind | pairs | right target | other target | missed | recall |",
           "|---|---:|---:|---:|---:|---:|"]
    for kind in KINDS:
        c = per_kind.get(kind, collections.Counter())
        out.append(f"| {kind} | {c['n']} | {c['hit']} | {c['other']} | {c['miss']} | "
                   f"{_pct(c['hit'], c['n'])} |")
    out.append(f"| **all** | {total['n']} | {total['hit']} | {total['other']} | "
               f"{total['miss']} | {_pct(total['hit'], total['n'])} |")
    out += ["", "Why the misses were missed:", "", "| reason | misses |", "|---|---:|"]
    out += [f"| {why} | {n} |" for why, n in sorted(reasons.items(), key=lambda kv: (-kv[1],
                                                                                   kv[0]))]
    out += ["", "Misses by kind (examples):", ""]
    for kind in KINDS:
        rows = sorted(misses.get(kind, []), key=lambda r: (r[2], r[1], r[0].lower()))
        if rows:
            ex = "; ".join(f"`{n}` → `{t}` ({w})" for n, t, w in rows[:EXAMPLES])
            out.append(f"- **{kind}** ({len(rows)}): {ex}")
    if others:
        out += ["", "Flagged with another target (examples):", ""]
        out += [f"- `{n}`: expected `{t}`, named `{g}`"
                for n, t, g in sorted(others, key=lambda r: r[0].lower())[:EXAMPLES]]
    return out, {"total": dict(total), "per_kind": {k: dict(v) for k, v in per_kind.items()}}


def false_positives(lo: int, hi: int) -> tuple[list[str], int, int]:
    ranks = popular_ranks()
    names = sorted((n for n, r in ranks.items() if lo <= r <= hi), key=lambda n: (ranks[n], n))
    flagged: list[tuple[str, str]] = []
    with _as_new_upload() as table:
        for name in names:
            table.hidden = name
            got = typosquat.closest_popular(name)
            if got:
                flagged.append((name, got))
    out = [f"- Ranks {lo:,}-{hi:,}: **{len(flagged)}/{len(names)} flagged "
           f"({_pct(len(flagged), len(names))})**"]
    if flagged:
        ex = ", ".join(f"`{n}`→`{g}`" for n, g in flagged[:20])
        out.append(f"  - first by rank: {ex}")
    return out, len(flagged), len(names)


def long_tail_names(manifests: list[Path]) -> list[str]:
    """Distinct unranked names of the long-tail stratum of the pinned benign manifests."""
    ranks = popular_ranks()
    names: set[str] = set()
    for path in manifests:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row.get("stratum") == "long_tail":
                    names.add(canonicalize_name(row["name"]))
    return sorted(n for n in names if n not in ranks)


def long_tail_false_positives(manifests: list[Path]) -> list[str]:
    names = long_tail_names(manifests)
    flagged = [(n, g) for n in names if (g := closest_popular(n))]
    out = [f"- Long-tail benign names of the pinned manifests (unranked, as uploaded): "
           f"**{len(flagged)}/{len(names)} flagged ({_pct(len(flagged), len(names))})**"]
    if flagged:
        out.append("  - " + ", ".join(f"`{n}`→`{g}`" for n, g in flagged))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    ap.add_argument("--out", type=Path, help="write the Markdown here instead of stdout")
    args = ap.parse_args(argv)

    lines = ["## Recall on real typosquats (data/typosquats/pairs.tsv)", ""]
    recall_lines, _ = evaluate_pairs(args.pairs)
    lines += recall_lines
    lines += ["", "## False positives on popular names checked as new uploads", ""]
    for lo, hi in ((1, TOP_N), (TOP_N + 1, 2 * TOP_N)):
        fp_lines, _, _ = false_positives(lo, hi)
        lines += fp_lines
    manifests = sorted((REPO / "data" / "benign").glob("*-manifest.tsv"))
    lines += long_tail_false_positives(manifests)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
