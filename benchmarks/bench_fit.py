"""Fitting speed: characterize and fit a 10-million-request trace on one core.

The trace is generated with servegen: 500 clients (Gamma or Weibull arrivals with CVs
from 0.5 to 8, Pareto-distributed rates summing to 1000 req/s, log-normal inputs and
exponential outputs) over 10,000 s. The target is ``fit`` in under 30 s.

Run: python benchmarks/bench_fit.py [--requests 10_000_000] [--clients 500]
"""

from __future__ import annotations

import argparse
import os
import time

# One core, as the target states: set before numpy loads its BLAS.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

import servegen as sg  # noqa: E402
from servegen.fit import characterize, fit  # noqa: E402

DURATION = 10_000.0


def build(n_clients: int, total_rate: float, seed: int = 0) -> sg.Workload:
    rng = np.random.default_rng(seed)
    rates = rng.pareto(1.5, n_clients) + 0.05
    rates *= total_rate / rates.sum()
    clients = {}
    for i in range(n_clients):
        cv = float(rng.uniform(0.5, 8.0))
        law = sg.Gamma if i % 2 else sg.Weibull
        clients[f"c{i:04d}"] = sg.Client(
            arrival=law(rate=float(rates[i]), cv=cv),
            input_tokens=sg.LogNormal(mu=float(rng.uniform(5, 8)), sigma=float(rng.uniform(0.5, 1.5))),
            output_tokens=sg.Exponential(mean=float(rng.uniform(50, 800))),
        )
    return sg.Workload(clients)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=float, default=10_000_000)
    ap.add_argument("--clients", type=int, default=500)
    args = ap.parse_args()
    wl = build(args.clients, args.requests / DURATION)
    t0 = time.perf_counter()
    trace = wl.sample(DURATION, rng=1).to_pandas()
    print(
        f"generated {len(trace):,} requests from {args.clients} clients in {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    fitted = fit(trace, window=600, client="client")
    t_fit = time.perf_counter() - t0
    n_win = len(fitted.report)
    print(
        f"fit:          {t_fit:6.1f} s  ({len(trace) / t_fit / 1e6:.2f} M requests/s, {n_win:,} client-windows)"
    )

    t0 = time.perf_counter()
    report = characterize(trace, window=600, client="client")
    t_char = time.perf_counter() - t0
    print(f"characterize: {t_char:6.1f} s")

    laws = report["law"].value_counts().to_dict()
    print(f"laws chosen: {laws}")
    # family recovery where a window has enough gaps to tell: odd clients are Gamma
    big = report[(report["iat_n"] >= 500) & report["law"].notna()]
    true = np.where(big["client"].str[1:].astype(int) % 2 == 1, "gamma", "weibull")
    print(
        f"true family chosen in {np.mean(big['law'].to_numpy() == true):.1%} of {len(big):,} windows with >= 500 gaps"
    )

    t0 = time.perf_counter()
    again = fitted.sample(DURATION, rng=2)
    print(f"regenerate:   {time.perf_counter() - t0:6.1f} s  ({len(again):,} requests)")
    print(f"target: fit < 30 s -> {'OK' if t_fit < 30 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
