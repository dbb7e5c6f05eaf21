"""Stand-ins for the upstream data, made by servegen itself, for clones without ../shared.

The fidelity tests read the real Mooncake traces and the ServeGen release through the
fixtures of tests/conftest.py. When /work/shared/data is absent (a plain clone, outside
CI) those fixtures hand out the files written here instead, so the logic under test still
runs: same file formats, same layout, same seeded numbers every run. Nothing here is read
from or derived from the shared data: the Mooncake stand-ins are written by servegen's own
mooncake writer from seeded workloads, and the release stand-in is written from the
profiles the project ships (data/pools), truncated to a few windows to stay fast.

``Source.real`` tells a test which one it got, so assertions on numbers that only the
real files have (row counts, measured hit rates) run only on those.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import servegen as sg
from servegen.formats import write
from servegen.pools._profiles import load_profile
from servegen.pools._release import FLOAT_FIELDS, POOLS

CONVERSATION = "conversation_trace.jsonl"
SYNTHETIC = "synthetic_trace.jsonl"
RELEASE = "ServeGen-main.zip"
MISSING = "ServeGen-main.MISSING.txt"

# length windows of each pool kept in the release stand-in: the small pools whole, the
# 14-day language pools their first 6 hours (all clients, so imputation sees every donor)
RELEASE_LENGTH_WINDOWS = {"language/m-large": 1, "language/m-mid": 1, "language/m-small": 1}


@dataclass(frozen=True)
class Source:
    """Where a test reads one upstream file from; ``real`` is False for a stand-in."""

    path: Path
    real: bool

    def rows(self, real_rows: int) -> int:
        """``real_rows`` (the count known for the real file), or the stand-in's line count."""
        return real_rows if self.real else self.path.read_bytes().count(b"\n")


def write_conversation(path: Path) -> Path:
    """A Mooncake-format hour like the conversation trace: 512-token blocks, one shared
    first block, multi-turn sessions, about 3.4 requests/s, on a 3 s batch clock."""
    client = sg.Client(
        arrival=sg.Poisson(rate=1.3),
        input_tokens=sg.LogNormal(mu=8.9, sigma=0.8),
        output_tokens=sg.LogNormal(mu=5.3, sigma=1.0),
        session=sg.Session(
            turns=sg.Empirical(values=[1, 2, 3, 4, 6], probs=[0.3, 0.25, 0.2, 0.15, 0.1]),
            think_time=sg.Exponential(mean=60),
            new_tokens=sg.Uniform(low=200, high=2000),
        ),
        prefix=sg.SharedPrefix(groups=1, popularity=sg.Zipf(s=1.0, n=1), tokens=512),
    )
    df = sg.Workload([client], block_size=512).sample(3540, rng=14).to_pandas()
    # the recording's requests are stamped by a 3 s batch clock (fit finds and undoes it)
    df["timestamp"] = np.floor(df["timestamp"] / 3.0) * 3.0
    return write(df, path, "mooncake")


def write_synthetic(path: Path) -> Path:
    """A Mooncake-format Poisson stream like the synthetic trace: ~3.9 requests/s for
    ~17 minutes, integer-ms timestamps, single-turn requests."""
    client = sg.Client(
        arrival=sg.Poisson(rate=3.9),
        input_tokens=sg.LogNormal(mu=9.2, sigma=0.7),
        output_tokens=sg.LogNormal(mu=4.7, sigma=0.8),
    )
    return sg.Workload([client], block_size=512).sample(1022, rng=15).to_format(path, "mooncake")


def _literal(values: np.ndarray, probs: np.ndarray, floats: bool) -> str:
    """The release's ``{value: probability}`` text (repr keeps every float64 exact)."""
    vals = [repr(float(v)) if floats else str(int(v)) for v in values]
    return "{" + ", ".join(f"{v}: {float(p)!r}" for v, p in zip(vals, probs, strict=True)) + "}"


def write_release(path: Path, pools: tuple[str, ...] = POOLS) -> Path:
    """A release zip in the upstream layout, written from the shipped profiles.

    ``ServeGen-main/data/<category>/<model>/chunk-<client>-{trace.csv,dataset.json}`` for
    every client of each of ``pools``, over ``RELEASE_LENGTH_WINDOWS`` (default: all) 6-hour
    windows; clients the profile imputes get no ``dataset.json`` and are listed in a
    ``ServeGen-main.MISSING.txt`` beside the zip, as for the real release.
    """
    missing: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ServeGen-main/README.md", b"ServeGen stand-in\n")
        for name in pools:
            p = load_profile(name)
            n_len = RELEASE_LENGTH_WINDOWS.get(name, p.length_window_start.size)
            n_win = min(p.window_start.size, n_len * 36)
            root = f"ServeGen-main/data/{name}"
            law = np.array(["", "Gamma", "Weibull"])[p.law[:, :n_win]]
            for c, cid in enumerate(p.client_ids):
                rows = zip(
                    p.window_start[:n_win], p.rate[c], p.cv[c], law[c], p.shape[c], p.scale[c], strict=False
                )
                # float32 -> float64 repr round-trips to the same float32
                csv = "".join(
                    f"{t},{float(r)!r},{float(v)!r},{lw},{float(a)!r},{float(b)!r}\n"
                    for t, r, v, lw, a, b in rows
                )
                zf.writestr(f"{root}/chunk-{cid}-trace.csv", csv)
                if p.imputed[c]:
                    missing.append(f"{root}/chunk-{cid}-dataset.json")
                    continue
                doc = {
                    str(21600 * d): {f: _literal(*p.pmf(c, d, f), f in FLOAT_FIELDS) for f in p.fields}
                    for d in range(n_len)
                }
                zf.writestr(f"{root}/chunk-{cid}-dataset.json", json.dumps(doc))
    (path.parent / MISSING).write_text("\n".join(missing) + "\n")
    return path
