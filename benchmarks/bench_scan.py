"""Benchmark: pkgvet scan against the floor of merely reading every package.

The floor decompresses every member of every archive and ``ast.parse``-es every ``.py`` file,
doing nothing else. Both run in the same invocation, each in a fresh child process (so peak RSS
is per phase), over the same packages, single-threaded: the floor, pkgvet with rules only
(``--no-model``) and pkgvet with rules and the trained model. Prints packages/s, median and p95
per package, peak RSS, the ratio to the floor (the target is at most 3x) and the model's
overhead over rules only (the target is at most 20%).

    python benchmarks/bench_scan.py [DIR] [--limit N] [--repeat R]

DIR defaults to ../shared/datasets/pypi-malregistry. Run on purpose, never from the test suite.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import multiprocessing as mp
import resource
import statistics
import tarfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _floor_one(path: Path) -> None:
    files: list[tuple[str, bytes]] = []
    if path.is_dir():
        files = [(str(p), p.read_bytes()) for p in path.rglob("*") if p.is_file()]
    else:
        data = path.read_bytes()
        try:
            if data[:2] == b"PK":
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    files = [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
            else:
                with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                    for m in tf:
                        if m.isfile():
                            fh = tf.extractfile(m)
                            files.append((m.name, fh.read() if fh else b""))
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError):
            pass
    for name, blob in files:
        if name.endswith(".py"):
            with contextlib.suppress(SyntaxError, ValueError, RecursionError, MemoryError):
                ast.parse(blob)


def _phase(name: str, paths: list[str], queue: Any) -> None:
    warnings.simplefilter("ignore")
    fn = _floor_one
    if name != "floor":  # import, load rules and model before timing, as a long scan would
        from pkgvet.config import ScanConfig
        from pkgvet.ml.model import load_model
        from pkgvet.pipeline import scan_target
        from pkgvet.rules.registry import load_rules

        load_rules()
        config = ScanConfig(use_model=name == "model")
        if config.use_model:
            load_model()

        def fn(path: Path) -> None:
            scan_target(path, config)
    times = []
    start = time.perf_counter()
    for p in paths:
        t = time.perf_counter()
        fn(Path(p))
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"phase": name, "total": total, "times": times, "rss_mb": rss_mb})


def run_phase(name: str, paths: list[str]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_phase, args=(name, paths, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def _report(r: dict[str, Any], n: int) -> str:
    times = sorted(r["times"])
    p95 = times[int(0.95 * (len(times) - 1))]
    return (f"{r['phase']:7} {r['total']:8.1f} s  {n / r['total']:8.1f} pkg/s  "
            f"median {1000 * statistics.median(times):6.1f} ms  p95 {1000 * p95:7.1f} ms  "
            f"peak RSS {r['rss_mb']:6.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", type=Path,
                    default=REPO.parent / "shared" / "datasets" / "pypi-malregistry")
    ap.add_argument("--limit", type=int, default=0, help="only the first N packages")
    args = ap.parse_args()
    from pkgvet.pipeline import iter_targets

    paths = [str(p) for p in iter_targets(args.root)]
    if args.limit:
        paths = paths[: args.limit]
    n = len(paths)
    print(f"{n} packages from {args.root}")
    floor = run_phase("floor", paths)
    print(_report(floor, n))
    rules = run_phase("rules", paths)
    print(_report(rules, n))
    model = run_phase("model", paths)
    print(_report(model, n))
    ratio = rules["total"] / floor["total"]
    print(f"rules only / floor = {ratio:.2f}x (target <= 3x): {'OK' if ratio <= 3 else 'OVER'}")
    ratio = model["total"] / floor["total"]
    print(f"rules + model / floor = {ratio:.2f}x")
    extra = model["total"] / rules["total"] - 1
    print(f"model overhead = {100 * extra:+.1f}% (target <= +20%): "
          f"{'OK' if extra <= 0.2 else 'OVER'}")


if __name__ == "__main__":
    main()
