"""Fit -> regenerate on Mooncake's conversation hour: request count, block hit rate,
length KS, gap CV, dispersion of counts at 10 s and 60 s and per-window rate error of the
regenerated traces against the recording, per seed and on average.

Compares the default fit (conversations modelled, warm start) with the same model
started cold (``Session(warm_start=False)``) and with ``sessions=False`` (every request
an arrival, no conversations).

Run: python benchmarks/bench_conversations.py [TRACE] [--seeds N]
(TRACE defaults to ../shared/data/mooncake/conversation_trace.jsonl beside the checkout.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

import servegen as sg
from servegen.cache import prefix_hit_rate

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mooncake" / "conversation_trace.jsonl"


def cold(wl: sg.Workload) -> sg.Workload:
    clients = {
        k: c.model_copy(update={"session": c.session.model_copy(update={"warm_start": False})})
        for k, c in wl.clients.items()
    }
    return sg.Workload(clients, block_size=wl.block_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    trace = sg.read_trace(args.trace, format="mooncake")
    duration = float(trace.timestamp.max())
    t = trace.timestamp.to_numpy()
    real_hit = prefix_hit_rate(trace)
    print(f"recorded: {len(trace):,} requests, hit rate {real_hit:.3f}, "
          f"first 5 min / rest rate {((t < 300).sum() / 300) / ((t >= 300).sum() / (duration - 300)):.2f}")  # fmt: skip
    fitted = sg.fit(trace)
    models = {
        "default (warm)": fitted,
        "cold start": cold(fitted),
        "sessions=False": sg.fit(trace, sessions=False),
    }
    for name, wl in models.items():
        rows = []
        for seed in range(args.seeds):
            r = wl.sample(duration, rng=seed)
            g = r.timestamp
            c = sg.compare(trace, r)
            rows.append([
                len(r) / len(trace),
                prefix_hit_rate(r) if wl.block_size else 0.0,
                stats.ks_2samp(r.input_tokens, trace.input_tokens).statistic,
                stats.ks_2samp(r.output_tokens, trace.output_tokens).statistic,
                ((g < 300).sum() / 300) / ((g >= 300).sum() / (duration - 300)),
                c["iat_cv"]["ratio"],
                c["dispersion_10s"]["ratio"],
                c["dispersion_60s"]["ratio"],
                c["rate_window_mape"]["distance"],
            ])  # fmt: skip
        a = np.array(rows)
        hit = f"{a[:, 1].mean():.3f}" if wl.block_size else "-"
        print(f"{name:>15}: count ratio {a[:, 0].mean():.3f} (seeds {a[:, 0].min():.3f}-{a[:, 0].max():.3f}), "
              f"hit rate {hit}, KS input {a[:, 2].mean():.3f} output {a[:, 3].mean():.3f}, "
              f"first 5 min / rest {a[:, 4].mean():.2f}")  # fmt: skip
        print(f"{'':>15}  gap CV ratio {a[:, 5].mean():.3f}, dispersion ratio 10 s {a[:, 6].mean():.3f} "
              f"60 s {a[:, 7].mean():.3f} (seeds {a[:, 7].min():.2f}-{a[:, 7].max():.2f}), "
              f"rate MAPE per 10 min {a[:, 8].mean():.3f} (max {a[:, 8].max():.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
