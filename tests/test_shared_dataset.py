"""Integration tests on the real malware set in ../shared (skipped where it is absent).

They read the archives only as bytes through the scanner; nothing is extracted or run.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pkgvet.models import Severity
from pkgvet.pipeline import iter_targets, scan_target

pytestmark = pytest.mark.shared


def _sample(root: Path, n: int, seed: int) -> list[Path]:
    targets = sorted(iter_targets(root))
    return random.Random(seed).sample(targets, n)


def test_every_sample_is_read_and_most_are_flagged_high(malregistry_dir: Path) -> None:
    """A fixed random sample of 300 packages: every one scans without an internal error, and
    the rules alone flag the great majority with a high finding (the full-set figure is in
    docs/evaluation.md; this guards against regressions)."""
    results = [scan_target(p) for p in _sample(malregistry_dir, 300, seed=7)]
    internal = [r.target for r in results if r.error and "internal error" in r.error]
    assert internal == []
    flagged = sum(1 for r in results if r.max_severity is not None
                  and r.max_severity >= Severity.HIGH)
    assert flagged / len(results) >= 0.9, flagged


def test_findings_point_into_the_package(malregistry_dir: Path) -> None:
    """Every finding names a member of the scanned package and carries a category and
    trigger; code findings have a line number."""
    for r in (scan_target(p) for p in _sample(malregistry_dir, 60, seed=11)):
        for f in r.findings:
            assert f.path, f
            if f.rule_id[:3] in ("PV1", "PV2", "PV3", "PV4", "PV5", "PV6") and f.path != "*":
                assert f.line >= 1 or f.rule_id == "PV102", f
