"""What every stage of the fit shares: law names, argument checks, the window grid.

Internal to :mod:`servegen.fit`; the public names live in :mod:`servegen.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._rng import SeedLike, generator
from .._validate import check_whole
from ..engine.kernels import law as table_law
from ..trace import Trace, as_trace

Float64 = NDArray[np.float64]

#: Inter-arrival laws :func:`~servegen.characterize` can choose from: names of the engine's
#: law table (:func:`servegen.engine.kernels.law`; "exponential" is its alias of
#: "poisson"), which gives each its parameters (``shape``, ``scale`` as scipy's expon,
#: gamma, weibull_min, lognorm with ``loc=0``), their count for AIC/BIC, and its cdf.
ARRIVAL_LAWS = ("exponential", "gamma", "weibull", "lognormal")
#: Candidate inter-arrival laws of :func:`~servegen.fit` (its default candidates).
SCHEDULE_FIT_LAWS = ("exponential", "gamma", "weibull")
#: A window's law in the fitted schedule: the table's name of its fitted law. Any other
#: label (no law; the burst structures "hyperexp" and "onoff", whose windows become
#: model pieces) is a Poisson placeholder.
SCHEDULE_LAW = {name: table_law(name).name for name in (*SCHEDULE_FIT_LAWS, "deterministic")}
#: Parametric length laws :func:`~servegen.fit_lengths` can choose from.
LENGTH_LAWS = ("exponential", "lognormal", "pareto_lognormal")
#: Free parameters of every length law, for AIC/BIC (arrival laws: the law table's ``params``).
PARAMETER_COUNT = {"exponential": 1, "lognormal": 2, "pareto_lognormal": 5}
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


def check_arrival_laws(laws: Sequence[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    """:func:`check_laws` for inter-arrival laws: any name of the law table is taken
    (``"poisson"``, ``"Gamma"``, ...) and reported under its name in ``allowed``.

    >>> check_arrival_laws(["poisson", "Gamma"], ARRIVAL_LAWS, "laws")
    ('exponential', 'gamma')
    """
    by_row = {table_law(a).name: a for a in allowed}
    if isinstance(laws, str):
        laws = (laws,)
    named = []
    for n in laws:
        try:
            named.append(by_row.get(table_law(n).name, n))
        except ValueError:  # not a table name: check_laws says what is allowed
            named.append(n)
    return check_laws(named, allowed, name)


def check_choice(value: Any, name: str, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_count(value: Any, name: str, low: int) -> int:
    return check_whole(value, name, low=low)


def prepare(trace: Any, client: str | None, by: Any, dequantize: bool | None, rng: SeedLike) -> Trace:
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
