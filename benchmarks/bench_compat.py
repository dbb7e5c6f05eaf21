"""servegen.compat against the upstream ServeGen prototype it replaces.

Upstream figure (the prototype, on this kind of 2-core machine, as given in the
project's issue): ``generate_workload`` on m-large 18:00-19:00 at 100 req/s takes about
4.6 s. Measured here, best of ``--repeat`` runs: the same call through
``servegen.compat`` (pool view, rate function, sampling, and one ``Request`` object per
request), its parts, and the native columnar path it wraps. The target is >= 10x.

Run: python benchmarks/bench_compat.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import servegen as sg
from servegen.compat import Category, ClientPool, generate_workload, get_constant_rate_fn

UPSTREAM_S = 4.6  # generate_workload, m-large 64800-68400 s at 100 req/s


def best(fn, repeat: int) -> tuple[float, object]:
    t_best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    pool = ClientPool(Category.LANGUAGE, "m-large")
    load = time.perf_counter() - t0
    print(f"ClientPool(LANGUAGE, 'm-large'), first load: {load:.2f} s ({len(pool.clients)} clients)")

    def compat():
        view = pool.span(64800, 68400)
        return generate_workload(view, get_constant_rate_fn(view, 100.0), duration=3600, seed=0)

    t_compat, reqs = best(compat, args.repeat)
    view = pool.span(64800, 68400)
    fn = get_constant_rate_fn(view, 100.0)
    t_native, native = best(lambda: sg.Workload(view, rate=fn).sample(3600, rng=0), args.repeat)
    assert len(native) == len(reqs)
    native_pool = sg.load_pool("language/m-large").span(64800, 68400)
    t_pool, _ = best(lambda: sg.Workload(native_pool, rate=100.0).sample(3600, rng=0), args.repeat)
    t_cdfs, _ = best(
        lambda: pool.span(72000, 75600).filter_by_cv(0.5, 1.5).filter_by_max_output_len(2000).get_cdfs(),
        args.repeat,
    )
    t_all, _ = best(lambda: pool.filter_by_cv(0.5, 1.5).get_cdfs(), args.repeat)

    n = len(reqs)
    print(f"m-large 18:00-19:00 at 100 req/s: {n:,} requests")
    print(
        f"  compat generate_workload (list of Request)   {t_compat:6.3f} s   {n / t_compat / 1e6:5.2f} M req/s"
    )
    print(f"    of which native sampling (columnar)        {t_native:6.3f} s")
    print(f"    of which Request objects and rest          {t_compat - t_native:6.3f} s")
    print(f"  native sg.Workload(sg.load_pool view)        {t_pool:6.3f} s")
    print(f"  compat span+filters+get_cdfs (20:00-21:00)   {t_cdfs * 1e3:6.1f} ms")
    print(f"  compat filter_by_cv+get_cdfs (all 14 days)   {t_all:6.3f} s   (2016 windows)")
    print(f"  upstream generate_workload (issue figure)    {UPSTREAM_S:6.3f} s")
    print(f"  speed-up over upstream: {UPSTREAM_S / t_compat:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
