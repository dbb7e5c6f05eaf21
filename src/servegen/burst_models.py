"""From fitted burst parameters to arrival models: the pieces :func:`servegen.fit` emits.

:func:`servegen.burst_fit.fit_bursts` measures; this module turns its findings into
:class:`~servegen.Hyperexponential` and :class:`~servegen.OnOffRenewal` processes and
each client's :class:`~servegen.ArrivalSchedule` (``law="model"`` pieces).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .arrivals import ArrivalSchedule
from .bursts import Hyperexponential, OnOffRenewal

__all__ = ["BurstFit", "client_schedule", "mixture_cv", "mixture_model", "onoff_model", "warp"]

Float64 = NDArray[np.float64]


@dataclass
class BurstFit:
    """What :func:`fit_bursts` found: per-segment mixtures and per-client on/off models."""

    mixture: dict[str, Float64]
    chosen: NDArray[np.bool_]  # segments whose law is the mixture
    onoff: dict[int, dict[str, Any]] = field(default_factory=dict)  # client index -> parameters
    rate_factor: dict[int, Float64] = field(default_factory=dict)  # client -> per-window rate factor


def onoff_model(rate: float, par: dict[str, Any]) -> OnOffRenewal:
    """The on/off law of one window: the client's periods, ``mean_off`` set to give ``rate``."""
    on = par["mean_on"]
    off = max(on * (par["rate_on"] / rate - 1.0), 0.01 * on)
    keys = ("gap_cv", "on_law", "on_cv", "off_law", "off_cv")
    return OnOffRenewal(rate=rate, mean_on=on, mean_off=off, **{k: par[k] for k in keys})


def mixture_model(rate: float, cv: float, f: dict[str, Float64], s: int) -> Hyperexponential:
    """The :class:`~servegen.Hyperexponential` of segment ``s`` at ``rate`` and its mixture's CV."""
    p = float(f["p"][s])
    return Hyperexponential(
        rate=rate,
        cv=cv,
        p=p,
        burst_cv=float(np.clip(1 / np.sqrt(f["k1"][s]), 0.01, 100)),
        silence_cv=float(np.clip(1 / np.sqrt(f["k2"][s]), 0.01, 100)),
    )


def mixture_cv(f: dict[str, Float64]) -> Float64:
    """CV of each segment's fitted mixture."""
    p, k1, t1, k2, t2 = f["p"], f["k1"], f["th1"], f["k2"], f["th2"]
    m = p * k1 * t1 + (1 - p) * k2 * t2
    m2 = p * k1 * (k1 + 1) * t1**2 + (1 - p) * k2 * (k2 + 1) * t2**2
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.maximum(m2 / m**2 - 1, 0.0))


def client_schedule(
    i: int,
    times: Float64,
    rates: Float64,
    cvs: Float64,
    laws: NDArray[Any],
    piece: NDArray[np.int64],
    bf: BurstFit,
    table: pd.DataFrame,
) -> ArrivalSchedule:
    """Client ``i``'s fitted schedule: renewal pieces, mixture pieces, or on/off windows.

    ``rates``, ``cvs`` and ``laws`` are the client's per-piece values; ``piece`` maps each
    piece to its window. Repeated pieces (silent spells, unrefined windows) are merged.
    """
    nw = int(table["window"].max()) + 1
    segs = i * nw + piece
    models: list[Any] = [None] * times.size
    laws = laws.copy()
    rates = rates.copy()
    cvs = cvs.copy()
    if i in bf.onoff:  # one on/off law per window, at the window's (de-noised) rate
        wr = bf.onoff[i]["rates"][piece]
        rates = wr
        for j in range(wr.size):
            if wr[j] > 0 and (j == 0 or wr[j - 1] != wr[j]):
                models[j] = onoff_model(float(wr[j]), bf.onoff[i])
            elif wr[j] > 0:
                models[j] = models[j - 1]
            if models[j] is not None:
                # the model's CV, not the window's renewal fit: consecutive windows with one
                # model then merge into one piece, and the engine carries the on/off state
                # (a silence running on) across them instead of restarting it per window
                cvs[j] = models[j].iat_cv
    else:
        if i in bf.rate_factor:  # bursty windows: de-noised window rates (see _window_rates)
            rates = rates * bf.rate_factor[i][piece]
        measured, implied = table["iat_cv"].to_numpy(), mixture_cv(bf.mixture)
        for j, s in enumerate(segs):
            if bf.chosen[s] and rates[j] > 0:
                try:  # the window's measured CV, as for Gamma/Weibull pieces
                    models[j] = mixture_model(float(rates[j]), float(measured[s]), bf.mixture, int(s))
                except ValueError:  # no mixture with these phases has it: the fitted one's CV
                    models[j] = mixture_model(float(rates[j]), float(implied[s]), bf.mixture, int(s))
    laws = np.array(
        [law if m is None else "model" for law, m in zip(laws, models, strict=True)], dtype=object
    )
    keep = np.ones(times.size, dtype=bool)
    keep[1:] = (rates[1:] != rates[:-1]) | (cvs[1:] != cvs[:-1]) | (laws[1:] != laws[:-1])
    keep[1:] |= np.array([a is not b for a, b in zip(models[1:], models[:-1], strict=True)], dtype=bool)
    any_model = any(m is not None for m in models)
    return ArrivalSchedule(
        times=times[keep],
        rates=rates[keep],
        cvs=cvs[keep],
        laws=list(laws[keep]),
        models=[m for m, k in zip(models, keep, strict=True) if k] if any_model else None,
    )


def warp(times: Float64, rates: Float64, span: float) -> Any:
    """``f(i, op)``: seconds at which client ``i``'s piecewise-constant ``rates`` reach ``op``."""
    knots = np.append(times, span)
    cum = np.concatenate([np.zeros((rates.shape[0], 1)), np.cumsum(rates * np.diff(knots), axis=1)], axis=1)

    def f(i: int, op: Float64) -> Float64:
        return np.interp(op, cum[i], knots)

    return f
