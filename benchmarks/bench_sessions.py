"""Sessions and block hashes at scale: ~1e6 multi-turn requests with 512-token hash ids,
and the cost of the warm start (sessions in progress at t = 0) on a short run, where the
burn-in it draws is largest relative to the run.

Run: python benchmarks/bench_sessions.py
"""

from __future__ import annotations

import time

import servegen as sg
from servegen.cache import prefix_hit_rate


def main() -> None:
    chat = sg.Client(
        arrival=sg.Gamma(rate=100.0, cv=2.0),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.Exponential(mean=250),
        session=sg.Session(
            turns=sg.Empirical(values=[1, 2, 3, 5, 8], probs=[0.3, 0.3, 0.2, 0.1, 0.1]),
            think_time=sg.LogNormal(mu=3, sigma=1),
            new_tokens=sg.LogNormal(mu=4.5, sigma=1),
            context_limit=32_768,
        ),
        prefix=sg.SharedPrefix(
            groups=200, popularity=sg.Zipf(s=1.1, n=200), tokens=sg.Uniform(low=256, high=4096)
        ),
    )
    wl = sg.Workload({"chat": chat}, block_size=512)
    wl.sample(60, rng=0)
    t0 = time.perf_counter()
    reqs = wl.sample(3600, rng=1)
    dt = time.perf_counter() - t0
    n_ids = reqs["hash_ids"].values.size
    print(
        f"requests: {len(reqs):,} with {n_ids:,} block ids in {dt:.2f} s -> {len(reqs) / dt / 1e6:.2f} M req/s"
    )
    t0 = time.perf_counter()
    hit = prefix_hit_rate(reqs)
    print(f"infinite-cache prefix hit rate {hit:.3f} computed in {time.perf_counter() - t0:.2f} s")
    for warm in (True, False):
        c = chat.model_copy(update={"session": chat.session.model_copy(update={"warm_start": warm})})
        t0 = time.perf_counter()
        r = sg.Workload({"chat": c}, block_size=512).sample(300, rng=2)
        dt = time.perf_counter() - t0
        print(f"5 min, warm_start={warm}: {len(r):,} requests in {dt:.2f} s")


if __name__ == "__main__":
    main()
