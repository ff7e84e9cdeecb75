"""Regenerate ``src/pkgvet/data/popular.tsv`` from a PyPI package list.

The input is a TSV whose header names the columns ``name``, ``month`` and
``rank_among_15000_most_downloaded`` (other columns are ignored).  The
output keeps the ranked names only, sorted by rank, under a comment line
that records the snapshot month (the latest month in the input unless
``--snapshot`` is given)::

    python scripts/make_popular.py /path/to/pypi.tsv
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

RANK_COLUMN = "rank_among_15000_most_downloaded"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "pkgvet" / "data" / "popular.tsv"


def build(source: Path) -> tuple[list[tuple[str, int]], str]:
    """Return the ranked ``(name, rank)`` pairs sorted by rank, and the latest month."""
    ranked: dict[str, int] = {}
    latest = ""
    with source.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"name", "month", RANK_COLUMN} - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(f"{source}: missing columns {sorted(missing)}")
        for row in reader:
            latest = max(latest, row["month"] or "")
            rank = (row[RANK_COLUMN] or "").strip()
            if rank.isdigit():
                name = canonicalize_name(row["name"])
                ranked[name] = min(int(rank), ranked.get(name, int(rank)))
    return sorted(ranked.items(), key=lambda item: (item[1], item[0])), latest


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the list and write it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="PyPI package list (TSV)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file")
    parser.add_argument("--snapshot", help="snapshot month to record (default: latest month)")
    args = parser.parse_args(argv)
    rows, latest = build(args.source)
    snapshot = args.snapshot or latest
    with args.out.open("w", encoding="utf-8", newline="") as out:
        out.write(f"# source: PyPI download ranks, snapshot {snapshot}; columns: name rank\n")
        out.writelines(f"{name}\t{rank}\n" for name, rank in rows)
    print(f"wrote {len(rows)} names to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
