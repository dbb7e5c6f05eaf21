"""What every stage of the fit shares: law names, argument checks, the window grid.

Internal to :mod:`servegen.fit`; the public names live in :mod:`servegen.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._rng import generator
from ..trace import Trace, as_trace

Float64 = NDArray[np.float64]

#: Inter-arrival laws :func:`~servegen.characterize` can choose from (scipy names in
#: parentheses: expon, gamma, weibull_min, lognorm, all with ``loc=0``).
ARRIVAL_LAWS = ("exponential", "gamma", "weibull", "lognormal")
#: Laws an :class:`~servegen.ArrivalSchedule` can express, and their schedule names.
SCHEDULE_LAW = {
    "exponential": "poisson",
    "gamma": "gamma",
    "weibull": "weibull",
    "deterministic": "deterministic",
}
#: Candidate inter-arrival laws of :func:`~servegen.fit` (those a schedule can express).
SCHEDULE_FIT_LAWS = ("exponential", "gamma", "weibull")
#: Parametric length laws :func:`~servegen.fit_lengths` can choose from.
LENGTH_LAWS = ("exponential", "lognormal", "pareto_lognormal")
#: Free parameters of every law, for AIC/BIC.
PARAMETER_COUNT = {"exponential": 1, "gamma": 2, "weibull": 2, "lognormal": 2, "pareto_lognormal": 5}
#: Fitted CVs are clamped into this range so every piece is a valid, samplable law.
CV_RANGE = (1e-3, 1e3)


def check_window(window: Any, name: str = "window") -> float:
    if isinstance(window, bool) or not isinstance(window, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number of seconds, got {window!r}")
    if not (math.isfinite(window) and window > 0):
        raise ValueError(f"`{name}` must be finite and > 0, got {window!r}")
    return float(window)


def check_laws(laws: Sequence[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(laws, str):
        laws = (laws,)
    laws = tuple(laws)
    if not laws:
        raise ValueError(f"`{name}` must name at least one law, got {laws!r}")
    for law in laws:
        if law not in allowed:
            raise ValueError(f"`{name}`: unknown law {law!r}; choose from {', '.join(allowed)}")
    return laws


def check_choice(value: Any, name: str, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
    return int(value)


def prepare(trace: Any, client: str | None, by: Any, dequantize: bool | None, rng: Any) -> Trace:
    """The validated trace, de-quantized as asked, with a client code for every request."""
    tr = as_trace(trace, client=client, by=by)
    tr.dequantize(dequantize, generator(rng))
    if tr.codes is None:
        tr.codes = np.zeros(len(tr), dtype=np.intp)
        tr.keys = [0]
    return tr


def window_grid(tr: Trace, window: float) -> tuple[int, Float64, Float64, NDArray[np.int64]]:
    """Window count, starts, widths, and the window index of every request."""
    span = tr.span
    if span <= 0:
        raise ValueError(
            "trace: all timestamps are 0, so no rate can be measured (give the trace a span, "
            "or de-quantize it with a known clock)"
        )
    count = max(1, math.ceil(span / window - 1e-9))
    starts = np.asarray(np.arange(count) * window, dtype=np.float64)
    widths = np.asarray(np.minimum(starts + window, span) - starts, dtype=np.float64)
    index = np.asarray(np.minimum((tr.timestamp // window).astype(np.int64), count - 1), dtype=np.int64)
    return count, starts, widths, index
