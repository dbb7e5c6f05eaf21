"""Format writers and readers: 1 M requests through every format, and a chunked write.

The requests carry no ``hash_ids`` column, so the Mooncake-family writers build fresh
ids (about 1 per request at 512 tokens, 16 at vLLM's 16). Also times the naive way of
writing the same Mooncake file (``json.dumps`` per request, hash ids in Python) as the
baseline the vectorized encoder replaces, and the peak resident memory (each in a fresh
process) of a chunked write (``write_chunks`` over ``Workload.iter_chunks``, 60 s
chunks) against sampling everything and writing it at once.

Run: python benchmarks/bench_formats.py [--rate 1000] [--duration 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import servegen as sg
from servegen.formats import WRITE_FORMATS, read_trace, write, write_chunks


def naive_mooncake(req: sg.Requests, path: Path) -> None:
    next_id = 0
    with open(path, "w") as fh:
        cols = (req.timestamp.tolist(), req.input_tokens.tolist(), req.output_tokens.tolist())
        for t, i, o in zip(*cols, strict=True):
            n = math.ceil(i / 512)
            ids = list(range(next_id, next_id + n))
            next_id += n
            row = {
                "timestamp": math.floor(t * 1000 + 0.5),
                "input_length": i,
                "output_length": o,
                "hash_ids": ids,
            }
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--duration", type=float, default=1000.0)
    ap.add_argument("--memory", choices=["one-shot", "chunked"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    wl = sg.Workload(
        [
            sg.Client(
                arrival=sg.Poisson(rate=args.rate),
                input_tokens=sg.LogNormal(mu=5, sigma=1),
                output_tokens=sg.Exponential(mean=100),
            )
        ]
    )
    if args.memory:
        memory(args.memory, wl, args.duration, args.out)
        return
    req = wl.sample(args.duration, rng=0)
    print(f"{len(req):,} requests")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        print(f"{'format':14s} {'write s':>8s} {'read s':>8s} {'MB':>8s}")
        for fmt in WRITE_FORMATS:
            t0 = time.perf_counter()
            path = write(req, out / f"r.{fmt}", fmt)
            t1 = time.perf_counter()
            read_trace(path, fmt)
            t2 = time.perf_counter()
            print(f"{fmt:14s} {t1 - t0:8.2f} {t2 - t1:8.2f} {path.stat().st_size / 1e6:8.1f}")
        t0 = time.perf_counter()
        naive_mooncake(req, out / "naive.jsonl")
        naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        write(req, out / "fast.jsonl", "mooncake")
        fast = time.perf_counter() - t0
        same = (out / "naive.jsonl").read_bytes() == (out / "fast.jsonl").read_bytes()
        print(f"mooncake: vectorized {fast:.2f} s vs json.dumps per request {naive:.2f} s "
              f"({naive / fast:.1f}x), identical bytes: {same}")  # fmt: skip

        del req
        for mode in ("one-shot", "chunked"):
            cmd = [sys.executable, __file__, "--memory", mode, "--rate", str(args.rate),
                   "--duration", str(args.duration), "--out", str(out / f"{mode}.jsonl")]  # fmt: skip
            print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
        same = (out / "one-shot.jsonl").read_bytes() == (out / "chunked.jsonl").read_bytes()
        print("chunked file == one-shot file:", same)


def peak_rss() -> int:
    """Peak resident set of this process, KiB (VmHWM: ru_maxrss survives exec on Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(mode: str, wl: sg.Workload, duration: float, out: Path) -> None:
    """Peak resident memory of sampling + writing vLLM JSONL, in a fresh process."""
    base = peak_rss()
    t0 = time.perf_counter()
    if mode == "one-shot":
        write(wl.sample(duration, rng=0), out, "vllm")
    else:
        write_chunks(wl.iter_chunks(duration, 60, rng=0), out, "vllm")
    elapsed = time.perf_counter() - t0
    peak = peak_rss()
    print(f"vllm {mode:8s}: {elapsed:6.2f} s, peak RSS {peak / 1024:7.1f} MiB "
          f"({(peak - base) / 1024:+7.1f} MiB over the imports)")  # fmt: skip


if __name__ == "__main__":
    main()
