"""A/B timing of two checkouts on the cases of bench_pools.py and bench_core.py.

One long-lived worker process per checkout (``PYTHONPATH=<checkout>/src``) builds each
case once, then the driver asks the two workers in turn for one timed call at a time,
alternating which goes first, so both see the same machine load. Each call reports wall
time and the process's CPU time (``time.process_time``); the summary gives best-of-N and
the median of both, and the B/A ratio. CPU time is the steadier figure on a loaded machine.

A process's best time varies by several per cent from one process to the next (memory
layout, hash seeds), more than the differences this is meant to find. So each case runs
``--procs`` pairs of fresh workers; the summary's "best" is the median over the pairs of
each worker's best, with the range of the pairs' B/A ratios beside it.

Workers also run with glibc's heap pinned (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, the same for A and B). Left to itself, glibc's sliding mmap
threshold puts a process either in a mode where each call reuses the last call's freed
buffers (~2 k page faults per mm50 call) or one where it maps them afresh (~10 k faults,
+30 ms), and which mode a process lands in is chance, not code. ``--os-malloc`` turns the
pinning off.

Run: python benchmarks/bench_ab.py A_CHECKOUT B_CHECKOUT [--rounds 7] [--procs 3] [--os-malloc]
[--case pools100 ...]

e.g. ``git worktree add /tmp/v010 <commit>`` and
``python benchmarks/bench_ab.py /tmp/v010 .``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    # name: (setup code defining `run()`, calls per round)
    "pools100": (
        "pool = sg.load_pool('language/m-large')\n"
        "def run(): return sg.Workload(pool.span(18 * 3600, 19 * 3600), rate=100.0).sample(3600, rng=0)",
        3,
    ),
    "pools1000": (
        "pool = sg.load_pool('language/m-large')\n"
        "def run(): return sg.Workload(pool.span(18 * 3600, 19 * 3600), rate=1000.0).sample(3600, rng=0)",
        1,
    ),
    "text50": (
        "pool = sg.load_pool('language/m-large')\n"
        "def run(): return sg.Workload(pool.span(12 * 3600, 13 * 3600), rate=50.0).sample(3600, rng=0)",
        3,
    ),
    "mm50": (
        "pool = sg.load_pool('multimodal/mm-image')\n"
        "def run(): return sg.Workload(pool.span(12 * 3600, 13 * 3600), rate=50.0).sample(3600, rng=0)",
        3,
    ),
    "r1_50": (
        "pool = sg.load_pool('reason/deepseek-r1')\n"
        "def run(): return sg.Workload(pool.span(12 * 3600, 13 * 3600), rate=50.0).sample(3600, rng=0)",
        3,
    ),
    "day_same": (
        "pool = sg.load_pool('language/m-large')\n"
        "own = [int(k) for k in pool.profile.client_ids[~pool.profile.imputed]]\n"
        "view = pool.filter(clients=own).span(0, 86400)\n"
        "def run(): return sg.Workload(view).sample(86400, rng=0)",
        1,
    ),
    "day": (
        "pool = sg.load_pool('language/m-large')\n"
        "view = pool.span(0, 86400)\n"
        "def run(): return sg.Workload(view).sample(86400, rng=0)",
        1,
    ),
    "small": (  # per client-window overhead: 1000 slow clients, ~12 requests per window each
        "cs = {i: sg.Client(arrival=sg.Gamma(rate=0.02, cv=2), input_tokens=sg.Exponential(mean=500),\n"
        "                   output_tokens=sg.Exponential(mean=200)) for i in range(1000)}\n"
        "wl = sg.Workload(cs)\n"
        "def run(): return wl.sample(3600, rng=0)",
        2,
    ),
    "core": (
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import bench_core\n"
        "wl, _ = bench_core.build()\n"
        "wl.sample(60, rng=0)\n"
        "def run(): return wl.sample(bench_core.DURATION, rng=0)",
        1,
    ),
}

WORKER = """
import gc, json, sys, time
import servegen as sg
ns = {"sg": sg, "sys": sys}
cases = {}
for line in sys.stdin:
    name, setup = json.loads(line)
    if name not in cases:
        exec(setup, ns)  # the driver's own case table, not user input
        cases[name] = ns["run"]
        n = len(cases[name]())  # warm caches (alias tables, pool views) once
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    n = len(cases[name]())
    c1, w1 = time.process_time(), time.perf_counter()
    print(json.dumps([w1 - w0, c1 - c0, n]), flush=True)
"""


class Worker:
    def __init__(self, checkout: Path, pin_heap: bool) -> None:
        env = dict(os.environ, PYTHONPATH=str(checkout / "src"))
        if pin_heap:  # freed buffers stay in the heap for the next call (see the docstring)
            env.update(MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(4 << 30))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def call(self, name: str) -> tuple[float, float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([name, CASES[name][0]]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker for case {name!r} died")
        wall, cpu, n = json.loads(line)
        return wall, cpu, n

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="checkout A (the reference)")
    ap.add_argument("b", type=Path, help="checkout B")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case")
    ap.add_argument("--procs", type=int, default=3, help="fresh pairs of worker processes per case")
    ap.add_argument("--os-malloc", action="store_true", help="leave glibc's heap thresholds alone")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="cases (default: all)")
    args = ap.parse_args()
    print(f"A = {args.a}\nB = {args.b}\nload average before: {os.getloadavg()}", flush=True)
    for name in args.case or list(CASES):
        bests: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}  # per pair of workers
        cpus: dict[str, list[float]] = {"A": [], "B": []}
        sizes = {}
        t0 = time.perf_counter()
        for _ in range(args.procs):
            a, b = Worker(args.a.resolve(), not args.os_malloc), Worker(args.b.resolve(), not args.os_malloc)
            times: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
            for r in range(args.rounds):
                order = [("A", a), ("B", b)] if r % 2 == 0 else [("B", b), ("A", a)]
                for _ in range(CASES[name][1]):
                    for label, w in order:
                        wall, cpu, n = w.call(name)
                        times[label].append((wall, cpu))
                        sizes[label] = n
            a.close()
            b.close()
            for k, v in times.items():
                bests[k].append((min(x[0] for x in v), min(x[1] for x in v)))
                cpus[k].extend(x[1] for x in v)
        best = {
            k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
            for k, v in bests.items()
        }
        ratios = [bw / aw - 1 for (aw, _), (bw, _) in zip(bests["A"], bests["B"], strict=True)]
        med = {k: statistics.median(v) for k, v in cpus.items()}
        print(
            f"{name:10s} n={sizes['A']:,}/{sizes['B']:,}  "
            f"best wall A {best['A'][0]:.4f} B {best['B'][0]:.4f} ({best['B'][0] / best['A'][0] - 1:+.1%}; "
            f"pairs {min(ratios):+.1%}..{max(ratios):+.1%})  "
            f"best cpu A {best['A'][1]:.4f} B {best['B'][1]:.4f} ({best['B'][1] / best['A'][1] - 1:+.1%})  "
            f"median cpu A {med['A']:.4f} B {med['B']:.4f} ({med['B'] / med['A'] - 1:+.1%})  "
            f"[{args.procs} x {len(times['A'])} calls each, {time.perf_counter() - t0:.0f} s, "
            f"load {os.getloadavg()[0]:.2f}]",
            flush=True,
        )


if __name__ == "__main__":
    main()
