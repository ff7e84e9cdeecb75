"""Training data: labelled samples (the shared malware set, the pinned benign manifests), their
features computed by the scan pipeline in a process pool, and a resumable feature cache.

The cache lives outside the repository (``$PKGVET_CACHE_DIR/features/<schema>-<extractor>/``),
one JSONL file per source, keyed by the feature-schema hash and by the hash of the code that
computes the rows (:func:`extractor_hash`), so neither a schema change nor a change to a rule or
to the analysis ever mixes stale vectors with new ones. Rows are plain JSON: nothing is
unpickled.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pkgvet.config import ScanConfig
from pkgvet.errors import PkgvetError
from pkgvet.ml.features import Features, dense_names, schema_hash
from pkgvet.models import Severity
from pkgvet.pipeline import iter_targets, scan_target

UNKNOWN_DATE = "0000-00-00"


class DatasetError(PkgvetError):
    pass


@dataclass(frozen=True, slots=True)
class Sample:
    id: str  # unique within its source: dataset path or manifest filename
    label: int  # 1 malicious, 0 benign
    date: str  # YYYY-MM-DD: added to the dataset (malware) or uploaded (benign)
    stratum: str  # malware, popular, long_tail
    source: str  # malregistry or the manifest's file stem
    name: str
    path: str  # the file or directory to scan


def malware_samples(root: Path) -> list[Sample]:
    """One sample per package of the malregistry tree, dated by its ``MANIFEST.tsv``."""
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: not found (is {root} the pypi-malregistry dataset?)")
    dates: dict[str, str] = {}
    with manifest.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            key = "/".join(row["path"].split("/")[:2])
            added = row.get("added") or UNKNOWN_DATE
            if key not in dates or added < dates[key]:
                dates[key] = added
    out = []
    for target in iter_targets(root):
        rel = target.relative_to(root).as_posix()
        key = "/".join(rel.split("/")[:2])
        out.append(
            Sample(
                id=rel,
                label=1,
                date=dates.get(key, UNKNOWN_DATE),
                stratum="malware",
                source="malregistry",
                name=rel.split("/")[0],
                path=str(target),
            )
        )
    return sorted(out, key=lambda s: s.id)


def benign_samples(manifest: Path, cache: Path | None = None) -> tuple[list[Sample], list[str]]:
    """Samples of a pinned benign manifest whose files are in the cache, and the missing ones."""
    from pkgvet.collect.manifest import cached_path, read_manifest

    out: list[Sample] = []
    missing: list[str] = []
    for row in read_manifest(manifest):
        path = cached_path(row, cache)
        if not path.is_file():
            missing.append(row.filename)
            continue
        out.append(
            Sample(
                id=row.filename,
                label=0,
                date=(row.upload_time or UNKNOWN_DATE)[:10],
                stratum=row.stratum or "unknown",
                source=manifest.stem,
                name=row.name,
                path=str(path),
            )
        )
    return sorted(out, key=lambda s: s.id), missing


def labelled_samples(labels: Path, roots: Iterable[Path] = ()) -> tuple[list[Sample], list[str]]:
    """Samples of a triage labels file (``pkgvet serve labels export``): reviewers' confirmed
    malicious releases (label 1) and marked false positives (label 0), dated by the decision.
    Each file is looked for in ``roots`` (a service's blob directory: ``<sha[:2]>/<sha>/<file>``),
    then in the collector's cache; returns the samples found and the files missing."""
    from pkgvet.collect.index import cache_dir
    from pkgvet.service.labels import read_labels

    out: list[Sample] = []
    missing: list[str] = []
    bases = [*roots, cache_dir() / "dists"]
    for row in read_labels(labels):
        found = next(
            (p for b in bases if (p := b / row.sha256[:2] / row.sha256 / row.filename).is_file()),
            None,
        )
        if found is None:
            missing.append(row.filename)
            continue
        out.append(
            Sample(
                id=f"{row.sha256[:12]}/{row.filename}",
                label=int(row.is_malicious),
                date=row.decided_at[:10] or UNKNOWN_DATE,
                stratum="triage",
                source=labels.stem,
                name=row.name,
                path=str(found),
            )
        )
    return sorted(out, key=lambda s: s.id), missing


def prefer_labels(rows: list[dict[str, Any]], label_sources: set[str]) -> list[dict[str, Any]]:
    """Drop rows of other sources whose file (sha256) a reviewer labelled: the label wins."""
    labelled = {r["sha256"] for r in rows if r["sample"]["source"] in label_sources}
    return [
        r for r in rows if r["sample"]["source"] in label_sources or r.get("sha256") not in labelled
    ]


# Parts of pkgvet that never run while a feature row is computed (shells around the pipeline and
# the fitting code): editing them leaves cached rows valid. Everything else counts, new modules
# included, so a forgotten module can only cost a re-extraction, never a stale row.
_OUTSIDE_EXTRACTION = frozenset(
    {
        "__main__.py",
        "batch",
        "cli.py",
        "collect",
        "commands",
        "ml/evaluate.py",
        "ml/export.py",
        "ml/pinned.py",  # the shipped model's hash, rewritten by `pkgvet train --install`
        "ml/plots.py",
        "ml/train.py",
        "report",
        "service",
        "store.py",
        "study",
        "watch",
    }
)


def extractor_hash(root: Path | None = None) -> str:
    """sha256 over the source of the code that computes feature rows: every ``.py`` module of
    the pkgvet package at ``root`` (default: this one) outside :data:`_OUTSIDE_EXTRACTION`, and
    its ``.tsv`` data (the popular names behind the typosquat features). The shipped model is
    not part of it: retraining leaves the cache valid."""
    import pkgvet

    root = root or Path(pkgvet.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix not in (".py", ".tsv") or not path.is_file():
            continue
        if rel.split("/")[0] in _OUTSIDE_EXTRACTION or rel in _OUTSIDE_EXTRACTION:
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def features_dir() -> Path:
    from pkgvet.collect.index import cache_dir

    return cache_dir() / "features" / f"{schema_hash()[:16]}-{extractor_hash()[:16]}"


def _row(sample: Sample) -> dict[str, Any]:
    config = ScanConfig(use_model=False, keep_features=True)
    r = scan_target(Path(sample.path), config)
    row: dict[str, Any] = {"sample": asdict(sample), "error": r.error, "sha256": r.sha256}
    feats: Features | None = r.features
    if feats is not None:
        row["dense"] = feats.vector(dense_names())
        row["tokens"] = sorted(feats.tokens)
        row["fingerprint"] = list(r.fingerprint or ())
    row["categories"] = sorted(
        {f.category.value for f in r.findings if f.severity >= Severity.HIGH}
    )
    row["rules_high"] = bool(r.max_severity is not None and r.max_severity >= Severity.HIGH)
    row["files"] = r.stats.get("files", 0)
    row["duration_s"] = round(r.duration_s, 4)
    return row


def compute_features(
    samples: list[Sample],
    jobs: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Feature rows for ``samples``, from the cache where present, computed (and appended to the
    cache) otherwise. Interrupted runs resume where they stopped."""
    out_dir = features_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    by_source: dict[str, list[Sample]] = {}
    for s in samples:
        by_source.setdefault(s.source, []).append(s)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    todo: list[Sample] = []
    for source, group in by_source.items():
        cached = {r["sample"]["id"]: r for r in _read_jsonl(out_dir / f"{source}.jsonl")}
        for s in group:
            r = cached.get(s.id)
            if r is not None and r["sample"] == asdict(s):
                rows[(s.source, s.id)] = r
            else:
                todo.append(s)
    done = len(samples) - len(todo)
    if progress:
        progress(done, len(samples))
    if todo:
        handles = {src: (out_dir / f"{src}.jsonl").open("a", encoding="utf-8") for src in by_source}
        try:
            for row in _map(_row, todo, jobs):
                s = row["sample"]
                handles[s["source"]].write(json.dumps(row, sort_keys=True) + "\n")
                handles[s["source"]].flush()
                rows[(s["source"], s["id"])] = row
                done += 1
                if progress:
                    progress(done, len(samples))
        finally:
            for h in handles.values():
                h.close()
    return [rows[(s.source, s.id)] for s in samples]


def _map(
    fn: Callable[[Sample], dict[str, Any]], items: list[Sample], jobs: int
) -> Iterator[dict[str, Any]]:
    jobs = jobs or min(os.cpu_count() or 1, 8)
    if jobs == 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(fn, items, chunksize=8)


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by an interrupted run
    return out
