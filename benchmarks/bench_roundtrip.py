"""Canonical formats with int, str and mixed client keys: write, read back, check.

JSON Lines with mixed int/str keys cannot be typed by Arrow's reader, so servegen reads
such files with the standard library's parser (line by line): this prints what that
costs next to the Arrow path (int or str keys), and the cost of the checks of
``read_parquet`` (timestamps, counts, keys).

Run: python benchmarks/bench_roundtrip.py [--rate 200] [--duration 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import servegen as sg
from servegen.formats import read_trace, write


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=1000.0)
    args = ap.parse_args()
    c = sg.Client(arrival=sg.Poisson(rate=args.rate / 4), input_tokens=sg.LogNormal(mu=5, sigma=1),
                  output_tokens=sg.Exponential(mean=100))  # fmt: skip
    key_sets = {"int": [0, 1, 2, 3], "str": ["a", "b", "c", "d"], "mixed": [0, "b", 2, "d"]}
    print(f"{'keys':6s} {'format':8s} {'write s':>8s} {'read s':>8s}")
    with tempfile.TemporaryDirectory() as d:
        for label, keys in key_sets.items():
            req = sg.Workload({k: c for k in keys}).sample(args.duration, rng=0)
            for fmt in ("parquet", "csv", "jsonl"):
                t0 = time.perf_counter()
                path = write(req, Path(d) / f"r.{fmt}", fmt)
                t1 = time.perf_counter()
                df = read_trace(path, fmt)
                t2 = time.perf_counter()
                assert df.client.tolist() == req.client_keys.tolist()
                print(f"{label:6s} {fmt:8s} {t1 - t0:8.2f} {t2 - t1:8.2f}")
            t0 = time.perf_counter()
            assert sg.read_parquet(Path(d) / "r.parquet").equals(req)
            print(
                f"{label:6s} {'read_parquet (checked)':>26s} {time.perf_counter() - t0:6.2f}  ({len(req):,} requests)"
            )


if __name__ == "__main__":
    main()
