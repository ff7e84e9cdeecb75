"""Load test of ``pkgvet serve``: a real server (uvicorn, SQLite by default) on loopback, many
concurrent clients, and checks that no submission is lost or duplicated.

``--clients`` threads (default 20) submit ``--scans`` distinct small inert packages (default
500; generated in memory: droppers and clean ones, see ``tests/service_helpers.py``) plus
``--duplicates`` resubmissions of packages already sent (default 50), all through
``POST /api/v1/scans/upload``. Then the script waits until every scan is finished and checks
through the API that

- every distinct package has exactly one release and one scan, and every scan finished;
- every duplicate was answered with the first submission's scan id (``created: false``).

It prints p50/p95 submit latency (client side), p50/p95 time to result (the server's
``finished_at - submitted_at``), throughput (scans finished per second of wall time from the
first submission to the last result), and the peak RSS of the server's process tree (uvicorn
and its scan workers, sampled from /proc every 0.1 s). Exit code 1 if a check fails.

    python benchmarks/load_service.py [--scans 500] [--clients 20] [--workers 2] [--model]
        [--db URL]

Loopback only; run on purpose, never from the test suite. Without ``--model`` verdicts are
rules-only (the trained model adds a few ms per package).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import httpx  # noqa: E402

from service_helpers import Server, clean, dropper, make_token  # noqa: E402


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (KiB), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kib = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.peak_kib = max(self.peak_kib, _tree_rss_kib(self.pid))
            self.stop_event.wait(0.1)


def _packages(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        name = f"zzload{i}"
        data = dropper(name, "1.0", salt=str(i)) if i % 5 == 0 else clean(name, "1.0", str(i))
        out.append((f"{name}-1.0.tar.gz", data))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=500, help="distinct packages (default 500)")
    ap.add_argument("--duplicates", type=int, default=50, help="resubmissions (default 50)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    ap.add_argument("--workers", type=int, default=2, help="scan worker processes (default 2)")
    ap.add_argument("--db", default=None, help="database URL (default: a new SQLite file)")
    ap.add_argument("--model", action="store_true", help="score with the trained model too")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pkgvet-load-"))
    db = args.db or str(work / "service.db")
    token = make_token(db, "load")
    server_args = ["--workers", str(args.workers)]
    if not args.model:
        server_args.append("--no-model")
    server = Server(db, work, server_args).start()
    assert server.proc is not None
    sampler = RssSampler(server.proc.pid)
    sampler.start()

    packages = _packages(args.scans)
    jobs: queue.Queue[tuple[int, str, bytes, bool]] = queue.Queue()
    for i, (filename, data) in enumerate(packages):
        jobs.put((i, filename, data, False))
    dup_step = max(1, args.scans // max(1, args.duplicates))
    dups = [(i, *packages[i], True) for i in range(0, args.scans, dup_step)][: args.duplicates]
    answers: dict[int, list[tuple[bool, int, bool]]] = {}  # package -> (dup?, scan id, created)
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    first_round_done = threading.Barrier(args.clients)

    def client() -> None:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        ) as c:

            def send(i: int, filename: str, data: bytes, dup: bool) -> None:
                t0 = time.perf_counter()
                try:
                    r = c.post("/api/v1/scans/upload", files={"file": (filename, data)})
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{filename}: {exc!r}")
                    return
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if r.status_code not in (200, 202):
                        failures.append(f"{filename}: HTTP {r.status_code} {r.text[:200]}")
                        return
                    body = r.json()
                    answers.setdefault(i, []).append((dup, body["scan_id"], body["created"]))

            while True:
                try:
                    item = jobs.get_nowait()
                except queue.Empty:
                    break
                send(*item)
            first_round_done.wait()  # duplicates go after every first submission was answered
            while True:
                with lock:
                    if not dups:
                        break
                    item = dups.pop()
                send(*item)

    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    submitted = time.monotonic()

    with server.client() as c:
        while True:
            counts = c.get("/api/v1/health").json()["counts"]
            if counts["status:queued"] == 0 and counts["status:running"] == 0:
                break
            time.sleep(0.2)
        finished = time.monotonic()
        scans: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = c.get("/api/v1/scans", params={"limit": 1000, "offset": offset}).json()
            scans += page
            offset += len(page)
            if len(page) < 1000:
                break
        releases = c.get("/api/v1/releases", params={"limit": 1}).json()["total"]
    sampler.stop_event.set()
    sampler.join()
    server.stop()

    # -- checks --------------------------------------------------------------------------------
    problems = list(failures)
    firsts = {}
    for i in range(args.scans):
        got = answers.get(i, [])
        first = [a for a in got if not a[0]]
        if len(first) != 1 or not first[0][2]:
            problems.append(f"package {i}: first submission answered {first}")
            continue
        firsts[i] = first[0][1]
        for dup, sid, created in got:
            if dup and (sid != firsts[i] or created):
                problems.append(f"package {i}: duplicate got scan {sid} (created={created})")
    dup_answers = sum(1 for got in answers.values() for a in got if a[0])
    ids = [s["id"] for s in scans]
    if len(ids) != len(set(ids)):
        problems.append("a scan id is listed twice")
    if len(scans) != args.scans:
        problems.append(f"{len(scans)} scans stored for {args.scans} distinct packages")
    if releases != args.scans:
        problems.append(f"{releases} releases stored for {args.scans} distinct packages")
    if set(ids) != set(firsts.values()):
        problems.append("the stored scans are not the ones the submissions were answered with")
    unfinished = [s["id"] for s in scans if s["status"] not in ("done", "error")]
    if unfinished:
        problems.append(f"unfinished scans: {unfinished[:10]}")
    verdicts: dict[str, int] = {}
    for s in scans:
        verdicts[s["verdict"] or "-"] = verdicts.get(s["verdict"] or "-", 0) + 1
    expected_malicious = sum(1 for i in range(args.scans) if i % 5 == 0)

    to_result = [
        (
            datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["submitted_at"])
        ).total_seconds()
        for s in scans
        if s["finished_at"]
    ]
    figures = {
        "scans": args.scans,
        "duplicates_sent": dup_answers,
        "clients": args.clients,
        "workers": args.workers,
        "model": args.model,
        "database": "sqlite" if "://" not in db else db.split(":", 1)[0],
        "submit_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "submit_p95_ms": round(_pct(latencies, 95) * 1000, 1),
        "result_p50_s": round(statistics.median(to_result), 2),
        "result_p95_s": round(_pct(to_result, 95), 2),
        "submit_phase_s": round(submitted - start, 2),
        "total_s": round(finished - start, 2),
        "throughput_scans_per_s": round(args.scans / (finished - start), 2),
        "peak_rss_mib": round(sampler.peak_kib / 1024, 1),
        "verdicts": verdicts,
        "expected_malicious": expected_malicious,
        "problems": len(problems),
    }
    for key, value in figures.items():
        print(f"{key:24} {value}")
    for p in problems[:20]:
        print("PROBLEM:", p)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
