"""Benchmark: pkgvet against the floor of merely reading every package, and against bandit.

One invocation measures, on the same packages:

* **floor**: decompress every member of every archive and ``ast.parse`` every ``.py`` file,
  nothing else (the interpreter's default garbage-collector settings);
* **floor, GC paused**: the same with the cyclic garbage collector paused per package, as the
  pkgvet pipeline does (informative: the strictest floor for this interpreter);
* **bandit**: the same reading, then bandit (as a library, every default plugin) on each
  ``.py`` file, in memory: nothing is extracted to disk, nothing is executed;
* **rules**: ``pkgvet scan --no-model``; **model**: ``pkgvet scan`` (rules + trained model);
* **model, N processes**: the rules + model scan again in N worker processes (default 2)
  pulling packages from one queue, for the scaling from 1 to N processes.

Packages: a seeded sample of the malware dataset (``--limit``, default 1000; ``--limit 0`` for
all of it) and a seeded sample of the pinned benign manifests ``data/benign/*.tsv`` read from
the collector cache (``--benign``, default 500), shuffled together. Every phase runs in fresh
``spawn`` processes that load rules, popular names and model (``pipeline.prepare``) before the
clock starts, as a batch worker does. Prints packages/s, median and p95 per package and peak
RSS per worker, per set and overall, then the ratios against their targets; ``--json FILE``
writes everything as JSON.

    python benchmarks/bench_scan.py [--limit N] [--benign N] [--jobs N] [--rounds N] [--json FILE]

bandit is not a pkgvet dependency: ``pip install bandit`` first (the phase is skipped with a
note otherwise). Run on purpose, never from the test suite; on a shared machine run it when the
load is low (the load average is recorded before and after every phase).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import io
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import statistics
import sys
import tarfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MALWARE = REPO.parent / "shared" / "datasets" / "pypi-malregistry"

TARGETS = {
    "model_over_floor": 2.0,  # rules + model scan time / floor time, per core: at most
    "model_overhead": 0.20,  # model over rules only: at most
    "speedup": 1.8,  # N-process throughput / 1-process throughput, for N = 2: at least
    "rss_mb": 300.0,  # peak RSS of one worker: under
}


# -- reading, as the floor and bandit do -----------------------------------------------------
def _members(path: Path) -> list[tuple[str, bytes]]:
    """Every regular member of an archive (or file below a directory), decompressed."""
    if path.is_dir():
        return [(str(p), p.read_bytes()) for p in path.rglob("*") if p.is_file()]
    data = path.read_bytes()
    files: list[tuple[str, bytes]] = []
    try:
        if data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                files = [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
        elif data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[257:262] == b"ustar":
            with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                for m in tf:
                    if m.isfile():
                        fh = tf.extractfile(m)
                        files.append((m.name, fh.read() if fh else b""))
        else:
            files = [(path.name, data)]  # a lone source file
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
        pass
    return files


def _floor_one(path: Path) -> str | None:
    for name, blob in _members(path):
        if name.endswith(".py"):
            with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
                ast.parse(blob)
    return None


# -- one worker process ----------------------------------------------------------------------
def _make_scanner(phase: str) -> Callable[[Path], str | None]:
    """The per-package function of a phase; returns an error text or None."""
    if phase == "floor":
        return _floor_one
    if phase == "floor-nogc":

        def floor_nogc(path: Path) -> str | None:
            gc.disable()
            try:
                return _floor_one(path)
            finally:
                gc.enable()

        return floor_nogc
    if phase == "bandit":
        import logging

        # untyped, and optional: not a pkgvet dependency
        from bandit.core import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            config as b_config,
        )
        from bandit.core import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            manager as b_manager,
        )
        from bandit.core import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            metrics as b_metrics,
        )

        logging.getLogger("bandit").setLevel(logging.CRITICAL)
        mgr = b_manager.BanditManager(b_config.BanditConfig(), "file")

        def bandit_one(path: Path) -> str | None:
            mgr.results, mgr.scores, mgr.skipped = [], [], []
            mgr.metrics = b_metrics.Metrics()  # per package: nothing accumulates
            for name, blob in _members(path):
                if name.endswith(".py"):
                    # bandit's own per-file entry point, fed from memory
                    mgr._parse_file(name, io.BytesIO(blob), [name])
            return None

        return bandit_one
    from pkgvet.config import ScanConfig
    from pkgvet.pipeline import prepare, scan_target

    config = ScanConfig(use_model=phase == "model")
    # rules, popular names, model; raises when no usable model is installed: reported, not timed
    prepare(config)

    def pkgvet_one(path: Path) -> str | None:
        return scan_target(path, config).error

    return pkgvet_one


def _worker(phase: str, tasks: Any, results: Any, ready: Any, go: Any) -> None:
    warnings.simplefilter("ignore")
    try:
        scan = _make_scanner(phase)
    except Exception as exc:  # e.g. bandit missing, model of another feature schema
        ready.put(f"{type(exc).__name__}: {exc}")
        return
    ready.put(None)
    go.wait()
    times: list[tuple[int, float, bool]] = []
    while True:
        item = tasks.get()
        if item is None:
            break
        i, path = item
        t = time.perf_counter()
        try:
            err = scan(Path(path))
        except Exception as exc:  # a floor or bandit crash costs one package
            err = f"{type(exc).__name__}: {exc}"
        times.append((i, time.perf_counter() - t, err is not None))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put({"times": times, "rss_mb": rss_mb})


def run_phase(phase: str, paths: list[str], workers: int = 1) -> dict[str, Any]:
    """Run ``phase`` over ``paths`` in ``workers`` fresh processes; wall time from the moment
    every worker is loaded to the last result."""
    ctx = mp.get_context("spawn")
    tasks, results, ready = ctx.Queue(), ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    for item in enumerate(paths):
        tasks.put(item)
    for _ in range(workers):
        tasks.put(None)
    procs = [
        ctx.Process(target=_worker, args=(phase, tasks, results, ready, go))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    problems = [ready.get() for _ in procs]
    if any(problems):
        go.set()
        for p in procs:
            p.terminate()
            p.join()
        return {"phase": phase, "workers": workers, "unavailable": next(filter(None, problems))}
    load_before = os.getloadavg()
    start = time.perf_counter()
    go.set()
    outs = [results.get() for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    per_pkg = [0.0] * len(paths)
    errors = 0
    for out in outs:
        for i, dt, err in out["times"]:
            per_pkg[i] = dt
            errors += err
    return {
        "phase": phase,
        "workers": workers,
        "wall_s": wall,
        "times": per_pkg,
        "errors": errors,
        "rss_mb_per_worker": [round(o["rss_mb"], 1) for o in outs],
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }


# -- inputs ------------------------------------------------------------------------------------
def malware_paths(root: Path, limit: int, seed: int) -> list[str]:
    from pkgvet.pipeline import iter_targets

    paths = sorted(str(p) for p in iter_targets(root))
    if limit and limit < len(paths):
        paths = sorted(random.Random(seed).sample(paths, limit))
    return paths


def benign_paths(limit: int, seed: int) -> tuple[list[str], int]:
    """Cached files of the pinned benign manifests (deduplicated), and how many are missing."""
    from pkgvet.ml.dataset import benign_samples

    found: dict[str, str] = {}
    missing = 0
    for manifest in sorted((REPO / "data" / "benign").glob("*.tsv")):
        samples, miss = benign_samples(manifest)
        missing += len(miss)
        for s in samples:
            found.setdefault(Path(s.path).name, s.path)
    paths = sorted(found.values())
    if limit and limit < len(paths):
        paths = sorted(random.Random(seed).sample(paths, limit))
    return paths, missing


# -- report ------------------------------------------------------------------------------------
def _stats(times: list[float], wall: float | None = None) -> dict[str, float]:
    s = sorted(times)
    total = wall if wall is not None else sum(s)
    return {
        "n": len(s),
        "total_s": round(total, 2),
        "pkg_per_s": round(len(s) / total, 2) if total else 0.0,
        "median_ms": round(1000 * statistics.median(s), 2) if s else 0.0,
        "p95_ms": round(1000 * s[int(0.95 * (len(s) - 1))], 2) if s else 0.0,
    }


_LABELS = {
    "floor": "floor (decompress + ast.parse)",
    "floor-nogc": "floor, GC paused per package",
    "bandit": "bandit (all default plugins)",
    "rules": "pkgvet rules only (--no-model)",
    "model": "pkgvet rules + model",
}


def summarise(r: dict[str, Any], sets: dict[str, list[int]]) -> dict[str, Any]:
    if "unavailable" in r:
        return r
    out = {k: v for k, v in r.items() if k != "times"}
    for name, idx in sets.items():
        times = [r["times"][i] for i in idx]
        # one worker: the sum of per-package times is the set's scan time; the whole run's
        # throughput is measured on the wall clock
        out[name] = _stats(times)
    out["all"] = _stats(r["times"], r["wall_s"])
    out["all"]["sum_s"] = round(sum(r["times"]), 2)
    return out


def table(summaries: list[dict[str, Any]], sets: list[str]) -> str:
    head = (f"{'phase':34} {'set':9} {'pkgs':>5} {'total s':>8} {'pkg/s':>7} "
            f"{'median ms':>9} {'p95 ms':>8} {'peak RSS/worker MB':>18} {'errors':>6}")
    lines = [head, "-" * len(head)]
    for s in summaries:
        label = _LABELS.get(s["phase"], s["phase"])
        if s["workers"] > 1:
            label = label.replace("pkgvet ", "") + f", {s['workers']} procs"
        if "unavailable" in s:
            lines.append(f"{label:34} unavailable: {s['unavailable']}")
            continue
        rss = max(s["rss_mb_per_worker"])
        for name in ([*sets, "all"] if s["workers"] == 1 else ["all"]):
            st = s[name]
            lines.append(
                f"{label:34} {name:9} {st['n']:5d} {st['total_s']:8.1f} {st['pkg_per_s']:7.1f} "
                f"{st['median_ms']:9.1f} {st['p95_ms']:8.1f} {rss:18.0f} "
                f"{s['errors'] if name == 'all' else '':>6}"
            )
            label = ""
    return "\n".join(lines)


def ratios(by: dict[str, dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    """The target ratios, from whole-run wall times (all sets together)."""

    def wall(name: str) -> float | None:
        s = by.get(name)
        return None if s is None or "unavailable" in s else float(s["all"]["total_s"])

    out: list[dict[str, Any]] = []
    floor, rules, model, bandit = wall("floor"), wall("rules"), wall("model"), wall("bandit")
    scanned = model or rules
    kind = "rules + model" if model else "rules only"
    if scanned and floor:
        out.append({"name": f"{kind} / floor", "value": scanned / floor,
                    "target": f"<= {TARGETS['model_over_floor']:g}x",
                    "ok": scanned / floor <= TARGETS["model_over_floor"]})
        nogc = wall("floor-nogc")
        if nogc:
            out.append({"name": f"{kind} / floor with GC paused", "value": scanned / nogc,
                        "target": "(informative)", "ok": None})
    for name in ("malware", "benign"):
        # per set: the sum of that set's per-package times in the same runs
        f_s, m_s, r_s = (
            by.get(p, {}).get(name, {}).get("total_s") for p in ("floor", "model", "rules")
        )
        if f_s and (m_s or r_s):
            v = (m_s or r_s) / f_s
            out.append({"name": f"{kind} / floor, {name} alone", "value": v,
                        "target": f"<= {TARGETS['model_over_floor']:g}x",
                        "ok": v <= TARGETS["model_over_floor"]})
        if m_s and r_s:
            out.append({"name": f"model overhead, {name} alone", "value": m_s / r_s - 1,
                        "target": f"<= +{100 * TARGETS['model_overhead']:.0f}%",
                        "ok": m_s / r_s - 1 <= TARGETS["model_overhead"]})
    if model and rules:
        extra = model / rules - 1
        out.append({"name": "model overhead over rules only", "value": extra,
                    "target": f"<= +{100 * TARGETS['model_overhead']:.0f}%",
                    "ok": extra <= TARGETS["model_overhead"]})
    if bandit and scanned:
        out.append({"name": f"bandit / pkgvet {kind}", "value": bandit / scanned,
                    "target": "(informative)", "ok": None})
    many = by.get(f"scale{jobs}")
    if many and "unavailable" not in many and scanned:
        speedup = scanned / many["all"]["total_s"]
        out.append({"name": f"{jobs}-process speedup ({kind})", "value": speedup,
                    "target": f">= {TARGETS['speedup']:g}x", "ok": speedup >= TARGETS["speedup"]})
    rss = [max(s["rss_mb_per_worker"]) for s in by.values()
           if "unavailable" not in s and s["phase"] in ("rules", "model")]
    if rss:
        out.append({"name": "peak RSS per pkgvet worker (MB)", "value": max(rss),
                    "target": f"< {TARGETS['rss_mb']:g}", "ok": max(rss) < TARGETS["rss_mb"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--malware", type=Path, default=DEFAULT_MALWARE, help="malware dataset tree")
    ap.add_argument("--limit", type=int, default=1000,
                    help="malware packages, a seeded sample (0: the whole dataset)")
    ap.add_argument("--benign", type=int, default=500,
                    help="benign releases from data/benign/*.tsv in the cache (0: all cached)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=2, help="processes for the scaling phase")
    ap.add_argument("--phases", default="floor,floor-nogc,bandit,rules,model,scale",
                    help="comma-separated subset of the phases to run")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the phases this many times, interleaved; keep each one's fastest "
                         "(bandit runs in the first round only)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args()
    phases = args.phases.split(",")

    mal = malware_paths(args.malware, args.limit, args.seed) if args.limit >= 0 else []
    ben, missing = benign_paths(args.benign, args.seed) if args.benign >= 0 else ([], 0)
    paths = mal + ben
    random.Random(args.seed).shuffle(paths)
    pos = {p: i for i, p in enumerate(paths)}
    sets = {"malware": [pos[p] for p in mal], "benign": [pos[p] for p in ben]}
    sets = {k: v for k, v in sets.items() if v}
    print(f"{len(mal)} malware packages from {args.malware} (seed {args.seed}), "
          f"{len(ben)} benign releases from data/benign/*.tsv "
          f"({missing} manifest rows not in the cache)")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f}")

    summaries: list[dict[str, Any]] = []
    by: dict[str, dict[str, Any]] = {}
    order = [p for p in ("floor", "floor-nogc", "bandit", "rules", "model") if p in phases]
    for rnd in range(args.rounds):
        # Rounds interleave the phases (ABCABC), so a slow spell of the machine falls on all of
        # them; each phase keeps its fastest round.
        for phase in order:
            if phase == "bandit" and rnd > 0:
                continue  # minutes per round, and independent of pkgvet's code: run once
            s = summarise(run_phase(phase, paths), sets)
            if args.rounds > 1:
                print(f"round {rnd + 1}:", flush=True)
            print(table([s], list(sets)).split("\n", 2)[-1], flush=True)
            best = by.get(phase)
            if best is None or "unavailable" in best or (
                "unavailable" not in s and s["all"]["total_s"] < best["all"]["total_s"]
            ):
                by[phase] = s
    summaries = [by[p] for p in order]
    if "scale" in phases and args.jobs > 1:
        base = "model" if "unavailable" not in by.get("model", {"unavailable": 1}) else "rules"
        s = summarise(run_phase(base, paths, args.jobs), sets)
        s["phase"] = base
        summaries.append(s)
        by[f"scale{args.jobs}"] = s
    print()
    print(table(summaries, list(sets)))
    print()
    rs = ratios(by, args.jobs)
    for r in rs:
        verdict = "" if r["ok"] is None else ("OK" if r["ok"] else "MISSED")
        value = (f"{100 * r['value']:+.1f}%" if "overhead" in r["name"]
                 else f"{r['value']:.0f}" if "RSS" in r["name"] else f"{r['value']:.2f}x")
        print(f"{r['name']:48} {value:>9}  target {r['target']:14} {verdict}")
    print(f"load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        doc = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": sys.version.split()[0]},
            "inputs": {"malware": len(mal), "benign": len(ben), "seed": args.seed,
                       "malware_root": str(args.malware), "benign_missing": missing},
            "phases": summaries,
            "ratios": rs,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
