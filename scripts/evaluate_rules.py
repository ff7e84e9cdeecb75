"""Measure the rules alone: detection on the shared malware set, false positives on the benign
manifest. Prints the acceptance figures of the core scanner and writes them as JSON.

    python scripts/evaluate_rules.py [--malware DIR] [--benign MANIFEST] [--jobs N] [--out F]

Malware: share of packages with a finding of high severity or worse, per behaviour category
(packages with a high finding in that category) and per month the sample entered the dataset.
Benign: share of releases with a high finding, per stratum (popular / long tail), and which
rules caused them. Files of the benign manifest are read from the collector's cache
(``pkgvet collect`` fetches missing ones).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pkgvet.collect.manifest import cached_path, iter_manifest
from pkgvet.config import ScanConfig
from pkgvet.models import Severity
from pkgvet.pipeline import iter_targets, scan_target

_RULES_ONLY = ScanConfig(use_model=False)  # this script measures the rules

REPO = Path(__file__).resolve().parent.parent


def _scan(path: str) -> dict[str, Any]:
    r = scan_target(Path(path), _RULES_ONLY)
    high = [f for f in r.findings if f.severity >= Severity.HIGH]
    return {
        "path": path,
        "error": r.error,
        "high": bool(high),
        "high_categories": sorted({f.category.value for f in high}),
        "high_rules": sorted({f.rule_id for f in high}),
        "high_findings": [f"{f.rule_id} {f.path}:{f.line} {f.message}" for f in high][:5],
        "seconds": r.duration_s,
    }


def _run(paths: list[str], jobs: int) -> Iterable[dict[str, Any]]:
    if jobs <= 1:
        yield from map(_scan, paths)
        return
    with ProcessPoolExecutor(jobs) as pool:
        yield from pool.map(_scan, paths, chunksize=16)


def _added_months(root: Path) -> dict[str, str]:
    """Package directory (name/version) -> month the sample entered the dataset."""
    months: dict[str, str] = {}
    manifest = root / "MANIFEST.tsv"
    for line in manifest.read_text().splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 4:
            key = "/".join(parts[0].split("/")[:2])
            months.setdefault(key, parts[3][:7])
    return months


def evaluate_malware(root: Path, jobs: int) -> dict[str, Any]:
    paths = [str(p) for p in iter_targets(root)]
    months = _added_months(root)
    n = high = errors = 0
    cats: collections.Counter[str] = collections.Counter()
    rules: collections.Counter[str] = collections.Counter()
    by_month: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    misses: list[str] = []
    start = time.monotonic()
    for res in _run(paths, jobs):
        n += 1
        rel = Path(res["path"]).relative_to(root).parts
        month = months.get("/".join(rel[:2]), "unknown")
        by_month[month][0] += 1
        errors += bool(res["error"])
        if res["high"]:
            high += 1
            by_month[month][1] += 1
            cats.update(res["high_categories"])
            rules.update(res["high_rules"])
        else:
            misses.append(res["path"])
    return {
        "packages": n,
        "with_high_finding": high,
        "detection_rate": round(high / max(n, 1), 4),
        "errors": errors,
        "per_category": dict(cats.most_common()),
        "per_rule": dict(rules.most_common()),
        "per_month": {m: {"packages": v[0], "detected": v[1]} for m, v in sorted(by_month.items())},
        "seconds": round(time.monotonic() - start, 1),
        "misses": misses,
    }


def evaluate_benign(manifest: Path, jobs: int) -> dict[str, Any]:
    rows = list(iter_manifest(manifest))
    paths = {str(cached_path(r)): r for r in rows}
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        sys.exit(
            f"{len(missing)} benign files are not cached; run: pkgvet collect "
            f"--from-manifest {manifest} (first: {missing[0]})"
        )
    per: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    rules: collections.Counter[str] = collections.Counter()
    flagged: list[dict[str, Any]] = []
    errors: list[str] = []
    for res in _run(list(paths), jobs):
        row = paths[res["path"]]
        per[row.stratum][0] += 1
        if res["error"]:
            errors.append(f"{row.name}=={row.version}: {res['error']}")
        if res["high"]:
            per[row.stratum][1] += 1
            rules.update(res["high_rules"])
            flagged.append(
                {
                    "release": f"{row.name}=={row.version}",
                    "stratum": row.stratum,
                    "findings": res["high_findings"],
                }
            )
    total = sum(v[0] for v in per.values())
    total_high = sum(v[1] for v in per.values())
    return {
        "releases": total,
        "with_high_finding": total_high,
        "false_positive_rate": round(total_high / max(total, 1), 4),
        "per_stratum": {
            k: {"releases": v[0], "with_high_finding": v[1], "rate": round(v[1] / max(v[0], 1), 4)}
            for k, v in per.items()
        },
        "per_rule": dict(rules.most_common()),
        "errors": len(errors),
        "error_list": errors,
        "flagged": flagged,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--malware", type=Path, default=REPO.parent / "shared" / "datasets" / "pypi-malregistry"
    )
    ap.add_argument("--benign", type=Path, default=REPO / "data" / "benign" / "scan-manifest.tsv")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench-out" / "rules-eval.json")
    ap.add_argument("--skip-malware", action="store_true")
    ap.add_argument("--skip-benign", action="store_true")
    args = ap.parse_args()
    report: dict[str, Any] = {}
    if not args.skip_malware:
        report["malware"] = mal = evaluate_malware(args.malware, args.jobs)
        print(
            f"malware: {mal['with_high_finding']}/{mal['packages']} packages with a high "
            f"finding ({100 * mal['detection_rate']:.2f}%), {mal['errors']} errors, "
            f"{mal['seconds']} s"
        )
        for cat, count in mal["per_category"].items():
            print(f"  {cat:24} {count:6}  {100 * count / mal['packages']:.1f}%")
    if not args.skip_benign:
        report["benign"] = ben = evaluate_benign(args.benign, args.jobs)
        print(
            f"benign: {ben['with_high_finding']}/{ben['releases']} releases with a high finding "
            f"({100 * ben['false_positive_rate']:.2f}%), {ben['errors']} errors"
        )
        for stratum, v in ben["per_stratum"].items():
            print(
                f"  {stratum:10} {v['with_high_finding']}/{v['releases']} ({100 * v['rate']:.2f}%)"
            )
        for err in ben["error_list"]:
            print(f"  error {err}")
        for item in ben["flagged"]:
            print(f"  flagged {item['release']} [{item['stratum']}]: {item['findings'][0]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
