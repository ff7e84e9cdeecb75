"""The hand-checked typosquat pairs used by scripts/evaluate_typosquat.py are well-formed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from pkgvet.typosquat import popular_ranks

PAIRS = Path(__file__).resolve().parent.parent / "data" / "typosquats" / "pairs.tsv"
KINDS = {"edit", "transposition", "separator", "affix", "homoglyph", "keyboard", "combo", "other"}


def _rows() -> list[dict[str, str]]:
    with PAIRS.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert reader.fieldnames == ["malicious_name", "target", "kind", "note"]
        return list(reader)


def test_pairs_are_well_formed() -> None:
    rows = _rows()
    names = [r["malicious_name"] for r in rows]
    assert len(set(names)) == len(names), "duplicate malicious names"
    canon = [canonicalize_name(n) for n in names]
    assert len(set(canon)) == len(canon), "names equal after normalisation"
    assert len(set(names)) >= 200
    ranks = popular_ranks()
    for r in rows:
        assert all(r[k] and r[k] == r[k].strip() for k in ("malicious_name", "target", "kind")), r
        assert r["kind"] in KINDS, r
        assert canonicalize_name(r["target"]) in ranks, r
        assert canonicalize_name(r["malicious_name"]) != canonicalize_name(r["target"]), r
        assert canonicalize_name(r["malicious_name"]) not in ranks, r


@pytest.mark.shared
def test_every_malicious_name_is_in_the_dataset(malregistry_dir: Path) -> None:
    with (malregistry_dir / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        next(fh)
        present = {line.split("\t", 1)[0].split("/", 1)[0] for line in fh}
    missing = [r["malicious_name"] for r in _rows() if r["malicious_name"] not in present]
    assert missing == []
