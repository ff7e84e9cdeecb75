"""The packages of a study and their records: found in a ``name/version/file`` tree or a
manifest, dated by the dataset's ``MANIFEST.tsv``, scanned in a process pool with the normal
pipeline (model on), or read from a JSONL of ``pkgvet scan -f jsonl`` results.

A record is plain JSON: ``{"id", "name", "version", "date", "result", "attrs"}`` where
``result`` is :func:`~pkgvet.report.json_format.result_to_dict` of the scan and ``attrs`` the
code attributes of :func:`pkgvet.study.attrs.context_attrs` (None when the package could not be
read). Nothing crosses between processes but these dicts and the sample tuples.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pkgvet.errors import PkgvetError
from pkgvet.pipeline import iter_targets


class StudyError(PkgvetError):
    """A dataset, manifest or results file that cannot be used."""


@dataclass(frozen=True, slots=True)
class Sample:
    id: str  # the path below the dataset root (or the target as given)
    name: str
    version: str
    date: str | None
    path: str
    size: int = 0


def _read_dates(manifest: Path) -> dict[str, str]:
    """``name/version`` -> earliest ``added`` (or ``date``/``upload_time``) of MANIFEST.tsv."""
    dates: dict[str, str] = {}
    with manifest.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            path = row.get("path") or ""
            added = _date(row)
            if not path or not added:
                continue
            key = "/".join(path.split("/")[:2])
            if key not in dates or added < dates[key]:
                dates[key] = added
    return dates


_DATE_RE = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])")


def _date(row: dict[str, str]) -> str | None:
    """The row's ``added`` (else ``date``, ``upload_time``) as YYYY-MM-DD; None when missing or
    a placeholder such as ``0000-00-00``."""
    raw = (row.get("added") or row.get("date") or row.get("upload_time") or "")[:10]
    return raw if _DATE_RE.fullmatch(raw) else None


def _identity(rel: str) -> tuple[str, str]:
    parts = rel.split("/")
    if len(parts) >= 2:
        return parts[0], parts[1]
    from pkgvet.known import name_version_from_filename

    nv = name_version_from_filename(parts[-1])
    return (nv[0], nv[1]) if nv else (parts[-1], "?")


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def load_samples(dataset: Path) -> list[Sample]:
    """Every package of ``dataset``: a directory (``name/version/file`` layout, dated by its
    ``MANIFEST.tsv`` when there is one) or a manifest TSV (a ``path`` column relative to the
    manifest's folder, dates from ``added``/``date``/``upload_time``)."""
    if dataset.is_file():
        return _manifest_samples(dataset)
    if not dataset.is_dir():
        raise StudyError(f"{dataset}: no such dataset directory or manifest")
    manifest = dataset / "MANIFEST.tsv"
    dates = _read_dates(manifest) if manifest.is_file() else {}
    out = []
    for target in iter_targets(dataset):
        rel = target.relative_to(dataset).as_posix() if target != dataset else target.name
        name, version = _identity(rel)
        out.append(
            Sample(
                id=rel,
                name=name,
                version=version,
                date=dates.get("/".join(rel.split("/")[:2])),
                path=str(target),
                size=_size(target),
            )
        )
    return sorted(out, key=lambda s: s.id)


def _manifest_samples(manifest: Path) -> list[Sample]:
    root = manifest.parent
    try:
        with manifest.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StudyError(f"{manifest}: cannot read the manifest ({exc})") from exc
    if rows and "path" not in rows[0]:
        raise StudyError(f"{manifest}: a manifest needs a tab-separated 'path' column")
    seen: set[str] = set()
    out = []
    for row in rows:
        rel = (row.get("path") or "").strip()
        if not rel or rel in seen or rel.startswith("/") or ".." in rel.split("/"):
            continue
        seen.add(rel)
        target = root / rel
        if not target.exists():
            continue
        name, version = _identity(rel)
        out.append(Sample(rel, name, version, _date(row), str(target), _size(target)))
    return sorted(out, key=lambda s: s.id)


def subsample(samples: Sequence[Sample], limit: int | None, seed: int = 0) -> list[Sample]:
    """A seeded random sample of ``limit`` packages (all when ``limit`` is None), by id."""
    if limit is None or limit >= len(samples):
        return list(samples)
    picked = random.Random(seed).sample(list(samples), limit)
    return sorted(picked, key=lambda s: s.id)


# -- scanning --------------------------------------------------------------------------------


def scan_sample(sample: Sample, use_model: bool = True) -> dict[str, Any]:
    """One record: the package scanned by the normal pipeline, attributes read off its
    context. Runs in a worker process; never raises for a bad package."""
    from pkgvet.config import ScanConfig
    from pkgvet.pipeline import scan_target
    from pkgvet.report.json_format import result_to_dict
    from pkgvet.study.attrs import context_attrs

    attrs: dict[str, Any] = {}
    attrs_error: list[str] = []

    def observe(pkg: Any, result: Any) -> None:
        try:
            attrs.update(context_attrs(pkg, result.findings))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError, MemoryError) as exc:
            attrs_error.append(f"{type(exc).__name__}: {exc}")

    result = scan_target(Path(sample.path), ScanConfig(use_model=use_model), observe=observe)
    d = result_to_dict(result)
    d["target"] = sample.id
    return {
        "id": sample.id,
        "name": sample.name,
        "version": sample.version,
        "date": sample.date,
        "result": d,
        "attrs": attrs or None,
        "attrs_error": attrs_error[0] if attrs_error else None,
    }


def _scan_model(sample: Sample) -> dict[str, Any]:
    return scan_sample(sample, True)


def _scan_no_model(sample: Sample) -> dict[str, Any]:
    return scan_sample(sample, False)


def attrs_for_result(sample: Sample, result: dict[str, Any]) -> dict[str, Any]:
    """A record for a result read from JSONL: the package is parsed again (no rules run) for
    its attributes when its file is still at hand."""
    from pkgvet.analysis.builder import build_context
    from pkgvet.archive import is_archive_name, read_archive, read_directory, read_single_file
    from pkgvet.config import ScanConfig
    from pkgvet.models import Category, Confidence, Finding, Severity, Trigger
    from pkgvet.study.attrs import context_attrs

    record: dict[str, Any] = {
        "id": sample.id,
        "name": sample.name,
        "version": sample.version,
        "date": sample.date,
        "result": result,
        "attrs": None,
    }
    path = Path(sample.path)
    if result.get("error") or not path.exists():
        return record
    limits = ScanConfig().limits
    try:
        if path.is_dir():
            archive = read_directory(path, limits)
        elif is_archive_name(path.name):
            archive = read_archive(path.read_bytes(), path.name, limits, b"infected")
        else:
            archive = read_single_file(path, limits)
        import time

        pkg = build_context(archive, limits, time.monotonic() + limits.time_budget_s)
        findings = [
            Finding(
                rule_id=str(f["rule_id"]),
                title=str(f.get("title", "")),
                severity=Severity(f["severity"]),
                confidence=Confidence(f.get("confidence", "medium")),
                category=Category(f["category"]),
                trigger=Trigger(f["trigger"]),
                path=str(f.get("path", "")),
                line=int(f.get("line", 0)),
                message=str(f.get("message", "")),
                snippet=str(f.get("snippet", "")),
                evidence=str(f.get("evidence", "")),
                decoded_depth=int(f.get("decoded_depth", 0)),
            )
            for f in result.get("findings") or []
        ]
        record["attrs"] = context_attrs(pkg, findings)
    except (PkgvetError, OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        record["attrs_error"] = f"{type(exc).__name__}: {exc}"
    return record


def _attrs_job(job: tuple[Sample, dict[str, Any]]) -> dict[str, Any]:
    return attrs_for_result(*job)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Result dicts of a ``pkgvet scan -f jsonl`` file (or a ``-f json`` document)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: cannot read results ({exc})") from exc
    stripped = text.lstrip()
    if stripped.startswith("{") and '"results"' in stripped[:2000]:
        try:
            doc = json.loads(text)
            results = doc.get("results") if isinstance(doc, dict) else None
            if isinstance(results, list):
                return [r for r in results if isinstance(r, dict)]
        except ValueError:
            pass
    out = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: \u2028 is data
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise StudyError(f"{path}:{n}: not a JSON line ({exc})") from exc
        if isinstance(row, dict) and ("findings" in row or "result" in row):
            out.append(row)
    return out


def match_results(
    results: Sequence[dict[str, Any]], samples: Sequence[Sample], root: Path | None
) -> list[tuple[Sample, dict[str, Any]]]:
    """Pair each result with its dataset sample (by target path, absolute or below ``root``);
    a result whose target is not in the dataset gets a sample of its own, undated."""
    by_path: dict[str, Sample] = {}
    for s in samples:
        by_path[s.id] = s
        by_path[os.path.abspath(s.path)] = s
    out = []
    for r in results:
        target = str(r.get("target") or "")
        found = by_path.get(target) or by_path.get(os.path.abspath(target))
        if found is None and root is not None:
            try:
                rel = Path(os.path.abspath(target)).relative_to(os.path.abspath(root)).as_posix()
                found = by_path.get(rel)
            except ValueError:
                found = None
        if found is not None:
            s = found
        else:
            pkg = r.get("package") or {}
            s = Sample(
                target,
                str(pkg.get("name") or target),
                str(pkg.get("version") or "?"),
                None,
                target,
            )
        out.append((s, r))
    return out


def run_pool(
    fn: Callable[[Any], dict[str, Any]],
    items: Sequence[Any],
    jobs: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """``fn`` over ``items`` in ``jobs`` processes (1: in this process), results in input
    order; ``progress`` is called as each one arrives."""
    out: list[dict[str, Any]] = []

    def emit(rows: Iterator[dict[str, Any]]) -> None:
        for row in rows:
            out.append(row)
            if progress is not None:
                progress(row)

    if jobs <= 1 or len(items) <= 1:
        emit(map(fn, items))
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        emit(pool.map(fn, items, chunksize=2))
    return out


def scan_samples(
    samples: Sequence[Sample],
    jobs: int,
    use_model: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Records of ``samples``, scanned largest first (so no big package is left for the end
    of the pool), returned in ``samples`` order."""
    order = sorted(range(len(samples)), key=lambda i: (-samples[i].size, samples[i].id))
    fn = _scan_model if use_model else _scan_no_model
    rows = run_pool(fn, [samples[i] for i in order], jobs, progress)
    out: list[dict[str, Any]] = [{}] * len(samples)
    for i, row in zip(order, rows, strict=True):
        out[i] = row
    return out


def records_from_results(
    pairs: Sequence[tuple[Sample, dict[str, Any]]],
    jobs: int,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    return run_pool(_attrs_job, list(pairs), jobs, progress)


def default_jobs() -> int:
    return os.cpu_count() or 1
