"""Benchmark: campaign grouping (MinHash LSH) of synthetic signatures at training scale.

Builds N signatures: campaigns of near-identical variants plus unrelated packages, the mix of
the shared set, and times ``pkgvet.ml.campaigns.group`` on them. The target is 20,000
signatures in under 5 s on the reference machine (2 cores), i.e. no quadratic blow-up on the
one very large campaign.

    python benchmarks/bench_campaigns.py [--n 20000] [--repeat 3]

Run on purpose, never from the test suite.
"""

from __future__ import annotations

import argparse
import random
import time

from pkgvet.ml.campaigns import group


def signatures(n: int, seed: int = 9) -> list[tuple[int, ...]]:
    rng = random.Random(seed)

    def fresh() -> tuple[int, ...]:
        return tuple(rng.getrandbits(61) for _ in range(64))

    def variant(base: tuple[int, ...]) -> tuple[int, ...]:
        sig = list(base)
        for k in rng.sample(range(64), 6):
            sig[k] = rng.getrandbits(61)
        return tuple(sig)

    sigs: list[tuple[int, ...]] = []
    for _ in range(n * 3 // 1000):  # 0.3% of n campaigns of 60 variants: 18% of n
        base = fresh()
        sigs.extend(variant(base) for _ in range(60))
    big = fresh()
    sigs.extend(variant(big) for _ in range(n * 15 // 100))  # one campaign of 15% of n
    sigs.extend(fresh() for _ in range(n - len(sigs)))
    return sigs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sigs = signatures(args.n)
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        ids = group(sigs)
        times.append(time.perf_counter() - start)
    print(f"{len(sigs):,} signatures -> {len(set(ids)):,} groups; "
          f"best {min(times):.2f} s, worst {max(times):.2f} s (target < 5 s)")


if __name__ == "__main__":
    main()
