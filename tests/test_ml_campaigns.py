"""MinHash/LSH campaign grouping (pkgvet.ml.campaigns)."""

from __future__ import annotations

import random

import pytest

from pkgvet.ml.campaigns import (
    MAX_HASH,
    estimated_jaccard,
    group,
    line_shingles,
    minhash,
)


def _payload(tag: str, n: int = 20) -> str:
    lines = [f"value_{tag}_{i} = compute('{tag}', {i} * 7 + {len(tag)})" for i in range(n)]
    return "\n".join(lines)


def _unrelated(seed: int, n: int = 20) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta"]
    return "\n".join(
        f"{rng.choice(words)}_{rng.randrange(10**6)} = {rng.choice(words)}({rng.random():.6f})"
        for _ in range(n)
    )


def test_line_shingles_normalises_and_filters() -> None:
    a = line_shingles(["import os\nx  =   1 + 2\n)\n]),\n'''\nsetup(\n  y = 2\n"])
    b = line_shingles(["\tx = 1 + 2   \n"])
    assert b <= a
    assert len(a) == 2  # "x = 1 + 2" and "y = 2"; the rest is boilerplate or punctuation
    assert line_shingles([]) == set()
    assert line_shingles(["", ")\n", "pass\nabc\n"]) == set()
    assert line_shingles(["a\n", "a\n"]) == set()  # shorter than four characters
    assert len(line_shingles(["abcd\n", "abcd\n", "abce"])) == 2
    assert line_shingles(["surrogate \udcff here"])  # does not raise


def test_minhash_deterministic_and_empty() -> None:
    sh = line_shingles([_payload("a")])
    assert minhash(sh) == minhash(set(sorted(sh, reverse=True)))
    assert len(minhash(sh)) == 64
    assert len(minhash(sh, num_perm=128)) == 128
    assert minhash(sh, seed=2) != minhash(sh)
    assert all(0 <= v < MAX_HASH for v in minhash(sh))
    assert minhash(set()) == (MAX_HASH,) * 64
    with pytest.raises(ValueError):
        minhash(sh, num_perm=0)


def test_estimated_jaccard_tracks_true_jaccard() -> None:
    a = set(range(1000))
    b = set(range(300, 1300))  # true Jaccard 700/1300
    est = estimated_jaccard(minhash(a, num_perm=256), minhash(b, num_perm=256))
    assert est == pytest.approx(700 / 1300, abs=0.1)
    assert estimated_jaccard(minhash(a), minhash(a)) == 1.0


def test_clones_group_and_unrelated_do_not() -> None:
    base = _payload("stealer")
    clones = []
    for k in range(5):
        lines = base.splitlines()
        lines[k * 3] = f"webhook = 'https://discord.example/api/webhooks/{k}'"
        clones.append("\n".join(lines))
    others = [_unrelated(s) for s in range(5)]
    texts = [*others[:2], *clones, *others[2:], ""]
    sigs = [minhash(line_shingles([t])) for t in texts]
    ids = group(sigs)
    assert ids[2:7] == [2] * 5  # the clones: one group, id = its smallest index
    assert ids[:2] == [0, 1]
    assert ids[7:10] == [7, 8, 9]
    assert ids[10] == 10  # empty package stays alone


def test_transitive_and_identical() -> None:
    base = _payload("chain", 40).splitlines()
    texts = []
    # each step changes a different block of four lines: neighbours are similar,
    # the two ends of the chain share little
    for step in range(6):
        lines = list(base)
        for k in range(step * 4):
            lines[k] = f"changed_{k} = {k}"
        texts.append("\n".join(lines))
    sigs = [minhash(line_shingles([t])) for t in texts]
    ids = group(sigs, threshold=0.7)
    assert estimated_jaccard(sigs[0], sigs[-1]) < 0.7
    assert ids == [0] * 6
    assert group([sigs[3], sigs[3], sigs[3]]) == [0, 0, 0]


def test_empty_signatures_stay_alone() -> None:
    empty = minhash(set())
    assert group([empty, empty, empty]) == [0, 1, 2]
    assert group([]) == []


def test_group_validates() -> None:
    s = minhash({1, 2, 3})
    with pytest.raises(ValueError):
        group([s], bands=10)
    with pytest.raises(ValueError):
        group([s, s[:32]])
    with pytest.raises(ValueError):
        group([s], threshold=1.5)


def test_group_is_deterministic_under_permutation() -> None:
    rng = random.Random(4)
    families = [set(rng.sample(range(10**7), 60)) for _ in range(30)]
    sets = []
    for _ in range(300):
        fam = rng.choice(families)
        s = set(fam)
        for x in rng.sample(sorted(s), 3):
            s.discard(x)
        s.update(rng.sample(range(10**7, 2 * 10**7), 3))
        sets.append(s)
    sigs = [minhash(s) for s in sets]
    ids = group(sigs)
    assert ids == group(list(sigs))
    # same partition whatever the input order
    order = list(range(len(sigs)))
    rng.shuffle(order)
    ids_perm = group([sigs[i] for i in order])
    part = {frozenset(i for i in range(len(sigs)) if ids[i] == g) for g in set(ids)}
    part_perm = {
        frozenset(order[k] for k in range(len(order)) if ids_perm[k] == g) for g in set(ids_perm)
    }
    assert part == part_perm
    assert len(part) == 30
    assert all(ids[i] <= i and ids[ids[i]] == ids[i] for i in range(len(ids)))


def test_group_20000_mixed_campaigns() -> None:
    rng = random.Random(9)

    def variant(base: tuple[int, ...], changed: int) -> tuple[int, ...]:
        sig = list(base)
        for k in rng.sample(range(len(sig)), changed):
            sig[k] = rng.getrandbits(61)
        return tuple(sig)

    sigs: list[tuple[int, ...]] = []
    # 100 campaigns of 60 variants, one of 3,000, and 11,000 unrelated packages; a variant
    # differs from its campaign's base in 6 of 64 slots (estimated Jaccard ~0.83 between two)
    bases = [tuple(rng.getrandbits(61) for _ in range(64)) for _ in range(101)]
    for base in bases[:100]:
        sigs.extend(variant(base, 6) for _ in range(60))
    sigs.extend(variant(bases[100], 6) for _ in range(3_000))
    sigs.extend(tuple(rng.getrandbits(61) for _ in range(64)) for _ in range(11_000))
    assert len(sigs) == 20_000
    ids = group(sigs)
    assert [len(set(ids[k * 60 : (k + 1) * 60])) for k in range(100)] == [1] * 100
    assert len(set(ids[:6000])) == 100
    assert set(ids[6000:9000]) == {6000}
    assert ids[9000:] == list(range(9000, 20_000))
