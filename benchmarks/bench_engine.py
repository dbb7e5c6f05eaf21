"""Sampling cost follows the requests produced, not the 600 s windows (issue #11, items 3-4).

Prints, for each case, the requests produced, the wall time and the peak of traced
memory (tracemalloc, measured in a second run so the time is not slowed by tracing):

- a tiny duration at a huge rate (cost must follow the ~1000 requests, not the window);
- a huge duration at a tiny rate (cost must follow the ~1000 requests, not 1.7 M windows);
- ``iter_chunks`` over 600 s of m-large at 10x its native rate, chunk 600 / 1 / 0.1 s
  (linear: the small chunks must cost about what one big chunk does).

Run: python benchmarks/bench_engine.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import servegen as sg


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak traced MB): timed untraced, then traced once more."""
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return out, seconds, peak


def one(rate: float, cv: float = 1.0) -> sg.Workload:
    law = sg.Poisson(rate=rate) if cv == 1.0 else sg.Gamma(rate=rate, cv=cv)
    return sg.Workload([sg.Client(arrival=law, input_tokens=100, output_tokens=sg.Exponential(mean=50))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 1e10 s case and the 0.1 s chunks")
    args = ap.parse_args()

    cases = [("rate 1e5, sample(0.01)", one(1e5), 0.01), ("rate 1e7, sample(0.1)", one(1e7), 0.1),
             ("rate 1e-6 cv 2, sample(1e9 s)", one(1e-6, 2.0), 1e9)]  # fmt: skip
    if not args.quick:
        cases.append(("rate 1e-6 cv 2, sample(1e10 s)", one(1e-6, 2.0), 1e10))
    for name, wl, duration in cases:
        r, s, mb = measure(lambda wl=wl, d=duration: wl.sample(d, rng=0))
        print(f"{name:34s} {len(r):>10,} requests  {s:7.3f} s  peak {mb:8.1f} MB")

    pool = sg.load_pool("language/m-large").span(18 * 3600, 18 * 3600 + 600)
    wl = sg.Workload(pool, scale=10.0)
    for chunk in (600.0, 1.0) if args.quick else (600.0, 1.0, 0.1):

        def run(chunk: float = chunk) -> int:
            return sum(len(c) for c in wl.iter_chunks(600, chunk, rng=0))

        t0 = time.perf_counter()
        n = run()
        s = time.perf_counter() - t0
        print(f"m-large 600 s at 10x, iter_chunks chunk {chunk:>5g} s: {n:>10,} requests  {s:7.3f} s")


if __name__ == "__main__":
    main()
