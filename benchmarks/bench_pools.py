"""Production pools: load time, generation speed and memory, against upstream and numpy.

Upstream figures (the ServeGen prototype, measured on this kind of 2-core machine, as
given in the project's issue): load m-large 13-18 s / 410 MB; m-large 18:00-19:00 at
100 req/s ~4.6 s, at 1000 req/s ~14 s; 24 h at native rate ~38 s and 442 bytes/request.
The "naive" figure is measured here in the same run: the same draws with bare numpy
primitives (per client-window gaps + cumsum, two inverse-CDF lookups per request, one
argsort of the whole stream).

Run: python benchmarks/bench_pools.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc

import numpy as np

import servegen as sg

UPSTREAM = {"load": 15.5, "100": 4.6, "1000": 14.0, "24h": 38.0}

LOAD_SNIPPET = """
import time, resource, tracemalloc
t0 = time.perf_counter()
import servegen as sg
t1 = time.perf_counter()
tracemalloc.start()
pool = sg.load_pool("language/m-large")
t2 = time.perf_counter()
peak = tracemalloc.get_traced_memory()[1]
print(t2 - t1, peak, t1 - t0)
"""


def naive(view: sg.Pool, duration: float, rate: float | None, seed: int = 0) -> int:
    """Bare numpy: per client-window gaps + cumsum, searchsorted inverse CDF, one argsort."""
    rng = np.random.default_rng(seed)
    prof = view.profile
    idx = view._window_index()
    rates = view._rates()
    if rate is not None:
        rates = rates * (rate / np.maximum(rates.sum(axis=0), 1e-300))
    ts, ins, outs = [], [], []
    for row in np.flatnonzero(rates.sum(axis=1) > 0):
        for j, w in enumerate(idx):
            r = rates[row, j]
            if r <= 0:
                continue
            cv = float(prof.cv[row, w])
            m = r * 600
            n = int(m + 6 * max(cv, 1) * np.sqrt(m) + 16)
            k = 1 / cv**2
            gaps = rng.gamma(k, 1 / (k * r), n) if prof.law[row, w] == 1 else rng.weibull(0.5, n) / r / 2
            t = j * 600 + np.cumsum(gaps)
            t = t[t < (j + 1) * 600]
            d = int(w * 600 // 21600)
            for field, out in (("input_tokens", ins), ("output_tokens", outs)):
                values, probs = prof.pmf(row, d, field)
                out.append(
                    values[np.minimum(np.searchsorted(np.cumsum(probs), rng.random(t.size)), values.size - 1)]
                )
            ts.append(t)
    t = np.concatenate(ts)
    order = np.argsort(t)
    _ = t[order], np.concatenate(ins)[order], np.concatenate(outs)[order]
    return t.size


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 24-hour run")
    args = ap.parse_args()

    out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], capture_output=True, text=True, check=True)
    load_s, load_peak, import_s = (float(x) for x in out.stdout.split())
    print(
        f"load m-large (fresh process): {load_s:.3f} s, peak {load_peak / 2**20:.0f} MB traced "
        f"(import servegen {import_s:.2f} s)   upstream ~{UPSTREAM['load']:.0f} s -> {UPSTREAM['load'] / load_s:.0f}x"
    )

    pool = sg.load_pool("language/m-large")
    for rate, key in ((100.0, "100"), (1000.0, "1000")):
        cold_t0 = time.perf_counter()
        reqs = sg.Workload(pool.span(18 * 3600, 19 * 3600), rate=rate).sample(3600, rng=0)
        cold = time.perf_counter() - cold_t0
        warm, reqs = timed(
            lambda r=rate: sg.Workload(pool.span(18 * 3600, 19 * 3600), rate=r).sample(3600, rng=0), 3
        )
        nv, n_naive = timed(lambda r=rate: naive(pool.span(18 * 3600, 19 * 3600), 3600, r), 2)
        n = len(reqs)
        print(
            f"m-large 18:00-19:00 at {rate:g} req/s: {n:,} requests, {warm:.3f} s warm ({cold:.3f} s first call) "
            f"-> {n / warm / 1e6:.2f} M req/s; upstream {UPSTREAM[key]} s -> {UPSTREAM[key] / warm:.0f}x; "
            f"naive numpy {nv:.3f} s -> ratio {nv / warm:.2f}x"
        )

    for name, rate in (("multimodal/mm-image", 50.0), ("reason/deepseek-r1", 50.0)):
        view = sg.load_pool(name).span(12 * 3600, 13 * 3600)
        dt, reqs = timed(lambda v=view, r=rate: sg.Workload(v, rate=r).sample(3600, rng=0), 3)
        text_view = pool.span(12 * 3600, 13 * 3600)
        dt_text, text = timed(lambda v=text_view, r=rate: sg.Workload(v, rate=r).sample(3600, rng=0), 3)
        per = dt / len(reqs)
        per_text = dt_text / len(text)
        print(
            f"{name} at {rate:g} req/s: {len(reqs) / dt / 1e6:.2f} M req/s, {reqs.nbytes / len(reqs):.0f} bytes/request; "
            f"text-only path {len(text) / dt_text / 1e6:.2f} M req/s -> {per / per_text:.2f}x the time per request (target < 2x)"
        )

    if not args.quick:
        # Upstream skips clients whose length file is missing (it has no lengths for
        # them); the like-for-like comparison uses the same client set.
        own = [int(k) for k in pool.profile.client_ids[~pool.profile.imputed]]
        same = pool.filter(clients=own).span(0, 86400)
        dt, reqs = timed(lambda: sg.Workload(same).sample(86400, rng=0), 2)
        print(
            f"m-large 24 h native, upstream's client set ({len(own)} clients with length data): "
            f"{len(reqs):,} requests in {dt:.2f} s -> {len(reqs) / dt / 1e6:.2f} M req/s; "
            f"upstream {UPSTREAM['24h']} s for ~17 M -> {UPSTREAM['24h'] / dt:.0f}x"
        )
        del reqs
        day = pool.span(0, 86400)
        dt, reqs = timed(lambda: sg.Workload(day).sample(86400, rng=0), 2)
        n = len(reqs)
        del reqs
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        reqs = sg.Workload(day).sample(86400, rng=0)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        nv, n_naive = timed(lambda: naive(day, 86400, None), 1)
        print(
            f"m-large 24 h native: {n:,} requests in {dt:.2f} s -> {n / dt / 1e6:.2f} M req/s; "
            f"upstream {UPSTREAM['24h']} s -> {UPSTREAM['24h'] / dt:.0f}x; naive numpy {nv:.2f} s ({n_naive:,}) -> ratio {nv / dt:.2f}x; "
            f"peak memory {peak / n:.1f} bytes/request (target < 48)"
        )


if __name__ == "__main__":
    main()
