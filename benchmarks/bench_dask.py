"""Dask scale-out: out-of-core fit of a Parquet dataset, and distributed generation.

1. **Fit.** A synthetic trace (``--requests`` requests, ``--clients`` clients: Gamma or
   Weibull arrivals, Pareto rates, over ``--days`` days) is written as a Parquet dataset
   (one file per hour) and fitted with ``sg.fit(path, client="client")`` on a
   ``--workers``-process LocalCluster with ``--memory`` per worker. For comparison the
   in-memory ``sg.fit`` runs on a slice of ``--slice`` requests (the first clients'
   rows), in this process. Reported: requests/s of both (per wall second and per CPU
   second), each worker's peak resident memory, and the load average during the run.
2. **Generate.** ``write_dataset`` of ``--gen-duration`` seconds of ``--pool`` at native
   rate, as ``servegen generate --workers N`` does, on 1 and on ``--workers`` local
   processes, in turn, ``--repeat`` times (medians compared): wall time, speed-up and
   peak memory per worker; then ``servegen generate --workers N`` end to end.

The issue's full size is ``--requests 100e6 --clients 2000 --slice 10e6``; the default is
smaller so it finishes in a few minutes on a shared 2-core machine. ``--trace DIR`` keeps
the written trace for later runs (``--trace-only`` writes it and stops).

Measured on the idle 2-core machine (load average = runnable processes, about 1 at rest):

* ``--requests 100e6 --clients 2000 --slice 10e6 --skip-gen``: the 100 M-request trace
  fitted out of core on 2 workers in 143.4 s, 697,000 req/s, 210.6 worker-CPU s + 38.5
  CPU s of client and scheduler, peak RSS 1,617 and 1,564 MiB per worker (2 GB limit),
  load 1.0-2.6; the in-memory fit of its 10 M-request slice (214 clients) 21.8 s,
  457,000 req/s. Without ``MALLOC_MMAP_THRESHOLD_`` in the workers' environment: 208.8 s,
  327.9 worker-CPU s, peak 1,206 and 928 MiB.
* ``--skip-fit``: 24 h of language/m-mid, 1 worker 18.3 / 18.5 / 18.6 s, 2 workers
  10.8 / 10.6 / 10.5 s: 1.75x (medians); peak 447-475 MiB on 1 worker, 362-395 MiB per
  worker on 2. ``servegen generate`` end to end (cluster start included): 22.4 s and 14.0 s.

Run: python benchmarks/bench_dask.py [--requests 20e6] [--clients 2000] [--skip-gen]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import servegen as sg
from servegen.dask_sample import cluster as sg_cluster
from servegen.dask_sample import write_dataset


def build(n_clients: int, total_rate: float, seed: int = 0) -> sg.Workload:
    rng = np.random.default_rng(seed)
    rates = rng.pareto(1.5, n_clients) + 0.05
    rates *= total_rate / rates.sum()
    clients = {}
    for i in range(n_clients):
        law = sg.Gamma if i % 2 else sg.Weibull
        clients[i] = sg.Client(
            arrival=law(rate=float(rates[i]), cv=float(rng.uniform(0.5, 4.0))),
            input_tokens=sg.LogNormal(mu=float(rng.uniform(5, 8)), sigma=float(rng.uniform(0.5, 1.5))),
            output_tokens=sg.Exponential(mean=float(rng.uniform(50, 800))),
        )
    return sg.Workload(clients)


def write_trace(wl: sg.Workload, duration: float, root: Path) -> int:
    """The trace as one Parquet file per hour, `client` as int64 (as a log would have it)."""
    n = 0
    for h, chunk in enumerate(wl.iter_chunks(duration, 3600, rng=1)):
        df = pd.DataFrame(
            {
                "timestamp": chunk.timestamp,
                "client": np.asarray(chunk.clients)[chunk.client].astype(np.int64),
                "input_tokens": chunk.input_tokens,
                "output_tokens": chunk.output_tokens,
            }
        )
        df.to_parquet(root / f"part-{h:04d}.parquet", index=False)
        n += len(df)
    return n


def cluster(workers: int, memory: str):
    """The local cluster of ``servegen generate --workers N`` (its worker environment), with
    ``memory`` per worker; returned open, for the caller to close."""
    stack = contextlib.ExitStack()
    client = stack.enter_context(sg_cluster(workers, memory_limit=memory))
    return stack, client


class Watch:
    """Peak resident memory and CPU seconds of each worker process, and the load average.

    Polls the workers' processes (psutil) twice a second: the peak of each worker, not the
    cluster's total divided by the number of workers. CPU seconds do not depend on how
    busy the shared machine is, so they compare runs made under different loads.
    """

    def __init__(self, client) -> None:
        import psutil

        self.procs = [psutil.Process(pid) for pid in client.run(os.getpid).values()]
        self.cpu0 = [sum(p.cpu_times()[:2]) for p in self.procs]
        self.peak = [0] * len(self.procs)
        self.loads: list[float] = []
        self.lost = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.loads.append(os.getloadavg()[0])
            for i, p in enumerate(self.procs):
                try:
                    self.peak[i] = max(self.peak[i], p.memory_info().rss)
                except Exception:  # a worker restarted (e.g. killed over its memory limit)
                    self.lost += 1

    def __enter__(self) -> Watch:
        self.t0, self.own0 = time.perf_counter(), time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        self.own = time.process_time() - self.own0  # this process: the client and the local scheduler
        self._stop.set()
        self._thread.join()
        self.cpu = 0.0
        for p, c0 in zip(self.procs, self.cpu0, strict=True):
            try:
                self.cpu += sum(p.cpu_times()[:2]) - c0
            except Exception:
                self.lost += 1

    def __str__(self) -> str:
        loads = np.array(self.loads or [os.getloadavg()[0]])
        peaks = ", ".join(f"{b / 2**20:,.0f}" for b in self.peak)
        lost = f", {self.lost} polls of a lost worker" if self.lost else ""
        return (f"{self.wall:.1f} s wall, {self.cpu:.1f} worker-CPU s (+ {self.own:.1f} CPU s of client and scheduler), peak RSS per worker [{peaks}] MiB, "
                f"load average {loads.min():.1f}-{loads.max():.1f} (mean {loads.mean():.1f}){lost}")  # fmt: skip


def bench_fit(args: argparse.Namespace, tmp: Path) -> None:
    duration = args.days * 86400.0
    wl = build(args.clients, args.requests / duration)
    root = Path(args.trace) if args.trace else tmp / "trace"
    t0 = time.perf_counter()
    if root.is_dir() and any(root.glob("*.parquet")):  # --trace: written by an earlier run
        n = sum(pq.ParquetFile(p).metadata.num_rows for p in root.glob("*.parquet"))
        how = "reused"
    else:
        root.mkdir(parents=True)
        n = write_trace(wl, duration, root)
        how = f"written in {time.perf_counter() - t0:.0f} s"
    print(f"trace: {n:,} requests, {args.clients} clients, {len(list(root.iterdir()))} Parquet files "
          f"({sum(p.stat().st_size for p in root.iterdir()) / 2**20:,.0f} MiB), {how}", flush=True)  # fmt: skip
    if args.trace_only:
        return

    lc, client = cluster(args.workers, args.memory)
    try:
        with Watch(client) as w:
            fitted = sg.fit(root, window=600, client="client")
    finally:
        lc.close()
    print(f"dask fit ({args.workers} workers, {args.memory} each): {n / w.wall:,.0f} req/s "
          f"({n / w.cpu:,.0f} req per worker-CPU s), {len(fitted.clients)} clients; {w}", flush=True)  # fmt: skip
    if args.skip_slice:
        return

    # in-memory reference: the first clients' rows, up to --slice requests
    counts = pd.read_parquet(root, columns=["client"])["client"].value_counts().sort_index()
    keep = counts.index[np.cumsum(counts.to_numpy()) <= args.slice]
    part = pd.read_parquet(root, filters=[("client", "in", keep.tolist())])
    loads = [os.getloadavg()[0]]
    t0, c0 = time.perf_counter(), time.process_time()
    sg.fit(part, window=600, client="client")
    t_mem, c_mem = time.perf_counter() - t0, time.process_time() - c0
    loads.append(os.getloadavg()[0])
    print(f"in-memory fit of a {len(part):,}-request slice ({len(keep)} clients): {t_mem:.1f} s wall, "
          f"{c_mem:.1f} CPU s: {len(part) / t_mem:,.0f} req/s ({len(part) / c_mem:,.0f} req per CPU s); "
          f"load average {min(loads):.1f}-{max(loads):.1f}", flush=True)  # fmt: skip


def bench_generate(args: argparse.Namespace, tmp: Path) -> None:
    """1 and ``--workers`` workers in turn, ``--repeat`` times: the machine's speed drifts
    by 10 % over minutes, so the two are measured side by side and their medians compared."""
    view = sg.load_pool(args.pool).span(0.0, args.gen_duration)
    wl = sg.Workload(view)
    what = f"{args.gen_duration / 3600:g} h of {args.pool}"
    walls: dict[int, list[float]] = {1: [], args.workers: []}
    for r in range(args.repeat):
        for workers in walls:
            # a fresh cluster each time: its workers start cold (only servegen imported)
            lc, client = cluster(workers, args.memory)
            try:
                out = tmp / f"gen{workers}-{r}"
                with Watch(client) as w:
                    write_dataset(wl, args.gen_duration, out, rng=0, partitions=4 * workers)
                walls[workers].append(w.wall)
            finally:
                lc.close()
            size = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 2**20
            shutil.rmtree(out)
            print(f"generate {what} with {workers} worker(s): {size:,.0f} MiB of Parquet; {w}", flush=True)
    one, many = statistics.median(walls[1]), statistics.median(walls[args.workers])
    ratios = [a / b for a, b in zip(walls[1], walls[args.workers], strict=True)]
    print(f"speed-up with {args.workers} workers: {one / many:.2f}x (median {one:.1f} s / {many:.1f} s; "
          f"per round {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)  # fmt: skip
    if args.skip_cli:
        return
    for workers in walls:  # the whole command, cluster start and imports included
        out = tmp / f"cli{workers}"
        cmd = [sys.executable, "-m", "servegen", "generate", "--pool", args.pool, "--duration",
               f"{args.gen_duration:g}", "--seed", "0", "--workers", str(workers), "-o", str(out), "--quiet"]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        print(
            f"servegen generate ... --workers {workers}: {time.perf_counter() - t0:.1f} s end to end",
            flush=True,
        )
        shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=float, default=20e6)
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--slice", type=float, default=2e6, help="requests of the in-memory comparison")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory", default="2GB", help="memory limit per worker")
    ap.add_argument("--pool", default="language/m-mid")
    ap.add_argument("--gen-duration", type=float, default=86400.0)
    ap.add_argument(
        "--trace",
        help="directory of the fit's trace: reused if it holds Parquet files, else written there and kept",
    )
    ap.add_argument("--trace-only", action="store_true", help="write the trace (--trace) and stop")
    ap.add_argument("--skip-slice", action="store_true", help="no in-memory comparison")
    ap.add_argument("--skip-fit", action="store_true")
    ap.add_argument("--skip-gen", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of 1 and --workers workers")
    ap.add_argument("--skip-cli", action="store_true", help="no end-to-end `servegen generate` timing")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_dask."))
    try:
        if not args.skip_fit:
            bench_fit(args, tmp)
        if not args.skip_gen:
            bench_generate(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
