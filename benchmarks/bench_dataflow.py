"""Benchmark: the context's name data flow and call graph on hostile shapes (one name assigned
and used thousands of times, thousands of small functions, one function name bound and called
thousands of times), which must stay linear in the file's size.

Each shape is indexed as one install-time file (``FileContext``) at N and at 2N; the targets
are under 2 s for N = 5,000 on the reference machine (2 cores) and a growth under x3 from N to
2N (linear work doubles, quadratic work quadruples); each time is the best of three, after a
garbage collection. Before the flows were cached per scope and name, the assignments-times-calls
shape took 248 s; before a name was resolved once per function span,
the bound-and-called shape took 3.9 s for N = 8,000 (n * n call-graph edges). The last two
shapes cover the socket-to-command flow (PV404) and maintainer-command guards.

    python benchmarks/bench_dataflow.py [--n 5000]

Run on purpose, never from the test suite.
"""

from __future__ import annotations

import argparse
import gc
import time

from pkgvet.analysis.context import FileContext
from pkgvet.config import Limits
from pkgvet.models import Trigger

TARGET_S = 2.0
MAX_GROWTH = 3.0  # time(2n) / time(n): linear is 2, quadratic 4
_B64 = "cHJpbnQoMSk="  # print(1)


def shapes(n: int) -> dict[str, str]:
    return {
        "functions, each with a call": "import requests\n"
        + "".join(f"def f{i}(u):\n    u = u + 'x'\n    return requests.get(u)\n" for i in range(n)),
        "assignments x network calls": "import requests\nu = 'a'\n"
        + "u = u + 'x'\n" * n
        + "requests.get(u)\n" * n,
        "assignments x exec calls": "u = 'a'\n" + "u = u + 'x'\n" * n + "exec(u)\n" * n,
        "a name bound and called n times": "def f(u):\n    return exec(u)\n" * n + "f('1')\n" * n,
        "a chain of n functions": "".join(
            f"def f{i}():\n    return f{i - 1}()\n" for i in range(1, n)
        )
        + f"f{n - 1}()\n",
        "n exec of base64": f"import base64\nexec(base64.b64decode('{_B64}'))\n" * n,
        "n eval aliases, n calls": "e = eval\n" * n + "e('1')\n" * n,
        "n decoded socket addresses": "import socket, base64\n"
        + "socket.create_connection((base64.b64decode('ZXhhbXBsZS5pbnZhbGlk').decode(), 1))\n" * n,
        "n classes with a run method": "".join(
            f"class C{i}:\n    def run(self):\n        import os; os.system('x')\n"
            for i in range(n)
        ),
        "n imports, n module calls": "".join(f"import mod{i}\n" for i in range(n))
        + "".join(f"mod{i}.run()\n" for i in range(n)),
        "a string built by n +=": "s = ''\n"
        + "".join(f"s += 'abc{i}'\n" for i in range(n))
        + "exec(s)\n",
        "chr() join of n parts": "exec(''.join(["
        + ",".join(f"chr({65 + i % 26})" for i in range(n))
        + "]))\n",
        "n getattr(builtins, ...)": "import builtins\n"
        + "getattr(builtins, 'ex' + 'ec')('1')\n" * n,
        "n received names x n commands": "import os, socket\ns = socket.socket()\n"
        + "".join(f"d{i} = s.recv(9)\nc{i} = d{i}.decode()\n" for i in range(n))
        + "".join(f"os.system(k{i})\n" for i in range(n)),  # none received: no early stop
        "n argv guards, n functions": "import os, sys\n"
        + "".join(f"def p{i}():\n    os.system('twine')\n" for i in range(n))
        + "".join(f"if sys.argv[-1] == 'publish':\n    p{i}()\n" for i in range(n)),
    }


def _index_time(src: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        FileContext("setup.py", "setup.py", src, Trigger.INSTALL, Limits())
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    worst, steepest, ok = 0.0, 0.0, True
    small, large = shapes(args.n), shapes(2 * args.n)
    for name, src in small.items():
        took = _index_time(src)
        growth = _index_time(large[name]) / max(took, 1e-6)
        worst, steepest = max(worst, took), max(steepest, growth)
        shape_ok = took < TARGET_S and growth < MAX_GROWTH
        ok = ok and shape_ok
        flag = "" if shape_ok else "OVER"
        print(f"{name:34} n={args.n:<7} {took:6.2f} s   x{growth:4.1f} at 2n  {flag}")
    print(
        f"worst {worst:.2f} s (target < {TARGET_S} s), steepest growth x{steepest:.1f} "
        f"(target < x{MAX_GROWTH}): {'OK' if ok else 'OVER'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
