"""The logging clock of a trace: detect its tick, and spread requests inside their tick.

Traces logged on a coarse clock (Mooncake's conversation trace logs a batch about every
3 s) have many gaps of exactly 0, which would read as extreme burstiness.
:func:`clock_resolution` finds the tick and :func:`dequantize` spreads every request
uniformly inside it. Re-exported by :mod:`servegen.metrics`.

>>> q = clock_resolution(np.repeat(np.arange(0.0, 30.0, 3.0), 4))
>>> q.resolution, q.quantized
(3.0, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MIN_TICK",
    "TIE_THRESHOLD",
    "Quantization",
    "check_seconds",
    "clock_resolution",
    "dequantize",
    "sorted_times",
]

Float64 = NDArray[np.float64]

#: A trace is called quantized (and de-quantized) when more than this fraction of its
#: inter-arrival gaps are exactly 0 and a clock resolution was found.
TIE_THRESHOLD = 0.01
#: The finest logging clock recognised (1 µs); finer "ticks" are float64 rounding.
MIN_TICK = 1e-6


def sorted_times(times: ArrayLike, name: str = "times") -> Float64:
    """``times`` as a finite one-dimensional float64 array, sorted."""
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError(f"`{name}` must be finite, got {float(t[~np.isfinite(t)][0])!r}")
    if t.size > 1 and (np.diff(t) < 0).any():
        t = np.sort(t)
    return t


def check_seconds(value: Any, name: str) -> float:
    """A finite positive number of seconds (``bin``, ``window``, ``resolution``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be finite and > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Quantization:
    """How a trace's timestamps were logged (from :func:`clock_resolution`).

    Attributes
    ----------
    resolution
        Width of one clock tick, seconds (0 when no grid was found).
    tie_fraction
        Fraction of inter-arrival gaps that are exactly 0.
    quantized
        True when ties are common (``tie_fraction > TIE_THRESHOLD``) and a tick was found:
        then gap statistics of the raw timestamps mostly measure the clock, not the traffic.
    source
        ``"batch"`` (requests logged in batches on a regular tick, possibly jittered),
        ``"decimal"`` (timestamps are multiples of a power of ten), or ``"none"``.
    """

    resolution: float
    tie_fraction: float
    quantized: bool
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "tie_fraction": self.tie_fraction,
            "quantized": self.quantized,
            "source": self.source,
        }


def _decimal_grid(t: Float64) -> float:
    """The largest power of ten (1 s down to 1 µs) of which every timestamp is a multiple."""
    t = t[t != 0]  # 0 is a multiple of everything: it says nothing about the clock
    if t.size == 0:
        return 0.0
    for exp in range(0, -7, -1):
        g = 10.0**exp
        r = t / g
        # float64 keeps ~16 digits: allow the rounding error of t / g itself.
        if np.all(np.abs(r - np.rint(r)) <= 1e-6 + 1e-15 * np.abs(r)):
            return g
    return 0.0


def clock_resolution(times: ArrayLike) -> Quantization:
    """Detect the logging clock of a trace: its tick width and how many gaps are ties.

    Two kinds of grid are recognised. A *batch* clock logs requests in batches on a
    regular tick, which may jitter slightly (Mooncake's conversation trace: one batch
    about every 3 s, ~90 % of gaps exactly 0): the tick is the typical gap between
    distinct timestamps, accepted when >= 90 % of those gaps lie within 2 % of a whole
    number of ticks. Otherwise, when some gaps are 0, the resolution is the *decimal* grid
    of the timestamps (e.g. 1 ms for integer milliseconds). A gcd of the timestamps would
    not do: a jittered tick has gcd 1 ms. With no ties at all the resolution is reported
    as 0 (it cannot affect any statistic).

    >>> t = np.repeat(np.arange(0.0, 300.0, 3.0), 10)    # 10 requests every 3 s
    >>> q = clock_resolution(t)
    >>> q.resolution, q.quantized, q.source, round(q.tie_fraction, 2)
    (3.0, True, 'batch', 0.9)
    """
    t = sorted_times(times)
    if t.size < 2:
        return Quantization(0.0, 0.0, False, "none")
    g = np.diff(t)
    ties = float(np.mean(g == 0))
    # Gaps of a few float64 ulps are rounding, not a clock (a Gamma law with CV 8 puts
    # most of its gaps there): only ticks of at least MIN_TICK count.
    pos = g[g >= MIN_TICK]
    res, source = 0.0, "none"
    if ties > TIE_THRESHOLD and pos.size >= 5:
        tick = float(np.quantile(pos, 0.05))
        k = pos / tick
        near = np.abs(k - np.rint(k)) <= 0.02 * np.maximum(np.rint(k), 1.0)
        if near.mean() >= 0.9:
            res = float(np.median(pos[np.rint(k) == 1])) if (np.rint(k) == 1).any() else tick
            source = "batch"
    if res == 0.0 and ties > 0:  # without ties the grid cannot matter to any statistic
        res = _decimal_grid(t)
        source = "decimal" if res > 0 else "none"
    return Quantization(res, ties, bool(ties > TIE_THRESHOLD and res > 0), source)


def dequantize(times: ArrayLike, resolution: float, *, rng: np.random.Generator) -> Float64:
    """Spread every request uniformly inside the clock tick it was logged at.

    A request logged at tick ``t`` arrived somewhere in ``[t, t + w)``, where ``w`` is
    ``resolution`` capped at the distance to the next distinct timestamp (so a jittered
    tick never reorders batches). Every request moves, not only the tied ones, so the
    singletons are not left on the grid. Returns the new times **in the input order**:
    ``np.argsort`` them to reorder the other columns of the trace.

    >>> t = dequantize([0.0, 0.0, 3.0, 3.0], 3.0, rng=np.random.default_rng(0))
    >>> bool(((t >= [0, 0, 3, 3]) & (t < [3, 3, 6, 6])).all())
    True
    """
    t = np.asarray(times, dtype=np.float64)
    width = check_seconds(resolution, "resolution")
    u, inv = np.unique(t, return_inverse=True)
    w = np.minimum(np.append(np.diff(u), width), width)
    return t + w[inv] * rng.random(t.size)
