"""The fit's stages put together: :func:`characterize`, :func:`fit`, :class:`FittedWorkload`.

The module docstring of :mod:`servegen.fit` says how the fitting works and why.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .._rng import SeedLike, generator
from ..attributes import RankCorrelation
from ..burst_fit import fit_bursts
from ..burst_models import client_schedule, warp
from ..client import Client
from ..trace import Trace
from ..workload import Workload
from . import out_of_core
from .arrival_laws import iat_table
from .common import (
    ARRIVAL_LAWS,
    CV_RANGE,
    LENGTH_LAWS,
    SCHEDULE_FIT_LAWS,
    SCHEDULE_LAW,
    Float64,
    check_arrival_laws,
    check_choice,
    check_count,
    check_window,
    prepare,
    window_grid,
)
from .lengths import (
    compact_tables,
    empirical_model,
    fit_lengths,
    length_stats,
    per_window_models,
    sort_by_segment,
)

__all__ = ["FittedWorkload", "characterize", "fit"]

#: A client's input/output Spearman correlation is carried into its model when it is at
#: least this many standard errors from 0.
RHO_SIGMAS = 3.0


# -- characterize ------------------------------------------------------------------------
def characterize(
    trace: Any,
    window: float = 600.0,
    client: str | None = None,
    by: str | Sequence[str] | None = None,
    *,
    laws: Sequence[str] = ARRIVAL_LAWS,
    criterion: str = "aic",
    min_requests: int = 10,
    dequantize: bool | None = None,
    rng: SeedLike = 0,
) -> pd.DataFrame:
    """Measure a trace per client and window: rate, burstiness, best inter-arrival law, lengths.

    Parameters
    ----------
    trace
        A canonical DataFrame (``timestamp`` seconds from the start, ``input_tokens``,
        ``output_tokens``, other columns optional) or :class:`~servegen.Requests`.
        Unsorted timestamps are sorted (stably, with their rows); ``attrs["resorted"]``
        says when that happened. A Dask DataFrame or Parquet dataset path runs out of core
        with the same result (:mod:`servegen.fit.out_of_core`).
    window
        Seconds per window (> 0). Windows start at 0; the last one ends at the last
        timestamp (or the recorded duration of a ``Requests``) and may be shorter.
    client
        Column naming each request's client (``None``: the whole trace is one client, key 0).
    by
        Column(s) that split the trace into clients further (e.g. BurstGPT's ``Model`` and
        ``Log Type``); combined keys are joined with ``"|"``.
    laws
        Candidate inter-arrival laws, from ``ARRIVAL_LAWS``: ``"exponential"``,
        ``"gamma"``, ``"weibull"``, ``"lognormal"`` (all with location 0), or any other
        name of the law table for them (``"poisson"``, ``"Gamma"``, ...; the report
        uses the names above).
    criterion
        ``"aic"`` or ``"bic"``: how the best law is chosen.
    min_requests
        Windows with fewer requests get no law (``law`` is missing). Windows whose gaps
        are evenly spaced (CV <= 1e-3) get ``law="deterministic"`` with ``scale`` the
        period (no likelihood to maximize).
    dequantize
        ``None`` (default): detect a coarse logging clock and, when many gaps are exactly
        0, spread requests uniformly inside their tick before measuring gaps;
        ``True``/``False`` force it on/off.
    rng
        Seed or Generator for the de-quantization spread (default 0: reproducible).

    Returns
    -------
    pandas.DataFrame
        One row per (client, window), every window of every client (rate 0 where a
        client is silent): ``client``, ``window``, ``start``, ``end``, ``n``, ``rate``
        (req/s), ``iat_n``, ``iat_mean`` (s), ``iat_cv``; the best ``law`` with its
        ``shape``/``scale`` (scipy's ``a``/``c``/``s`` and ``scale`` of
        gamma/weibull_min/lognorm/expon with ``loc=0``; shape 1 for exponential),
        ``loglik``, ``aic``, ``bic``, ``ks``, ``ks_pvalue`` (conservative: the parameters
        come from the same gaps), ``aic_<law>`` for every candidate; bursts (law
        ``"hyperexp"`` or ``"onoff"``, ``structure``, ``disp_{1,10,60}s``, on/off periods;
        ``attrs["onoff"]``): :mod:`servegen.burst_fit`; ``input_{mean,p50,p90,p99}``, the
        same for ``output``; ``io_spearman`` (input/output rank correlation); ``dequantized``.
        ``attrs``: ``window``, ``duration``, ``quantization`` (resolution, tie_fraction,
        quantized, source), ``dequantized``, ``resorted``, ``laws``, ``criterion``, ``min_requests``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = np.repeat(np.arange(0.0, 60.0, 3.0), 8)       # 8 requests logged every 3 s
    >>> trace = pd.DataFrame({"timestamp": t, "input_tokens": 100, "output_tokens": 10})
    >>> r = characterize(trace, window=60)
    >>> r.attrs["quantization"]["resolution"], bool(r.loc[0, "dequantized"])
    (3.0, True)
    >>> int(r.loc[0, "n"]), round(float(r.loc[0, "iat_cv"]), 1)   # spread inside the ticks
    (160, 0.9)
    """
    if out_of_core.is_dask_input(trace):  # a Dask DataFrame or Parquet dataset: out of core
        return out_of_core.run(characterize, locals())
    w = check_window(window)
    laws_t = check_arrival_laws(laws, ARRIVAL_LAWS, "laws")
    check_choice(criterion, "criterion", ("aic", "bic"))
    min_requests = check_count(min_requests, "min_requests", 2)
    tr = prepare(trace, client, by, dequantize, rng)
    table = iat_table(tr, w, laws_t, criterion, min_requests, gof=True)
    fit_bursts(tr, table, w, criterion, generator(rng))
    nw = int(table["window"].max()) + 1
    _, _, _, win = window_grid(tr, w)
    assert tr.codes is not None
    seg = tr.codes.astype(np.int64) * nw + win
    for name, col in length_stats(
        seg, len(table), tr.input_tokens, tr.output_tokens, ("input", "output")
    ).items():
        table[name] = col
    table["dequantized"] = tr.dequantized
    table.attrs.update(run_attrs(tr, w, laws_t, criterion, min_requests))
    return table


def run_attrs(
    tr: Trace, window: float, laws: tuple[str, ...], criterion: str, min_requests: int
) -> dict[str, Any]:
    q = tr.quantization
    return {
        "window": window,
        "duration": tr.span,
        "quantization": q.as_dict() if q else None,
        "dequantized": tr.dequantized,
        "resorted": tr.resorted,
        "laws": list(laws),
        "criterion": criterion,
        "min_requests": min_requests,
    }


# -- fit ---------------------------------------------------------------------------------
class FittedWorkload(Workload):
    """A :class:`~servegen.Workload` fitted from a trace, with what the fit measured.

    Attributes
    ----------
    report
        The per-(client, window) table the arrival models came from (the columns of
        :func:`characterize`, without the length statistics). With rate refinement
        (``rate_window``), its gap columns (``iat_mean``, ``iat_cv``, ``scale``) are in
        operational time: gaps times the local rate, so ``iat_mean`` is about 1.
    info
        How the fit was made: ``window``, ``duration``, ``n_requests``, ``quantization``,
        ``dequantized``, ``resorted``, ``lengths``, ``length_window``, ``poisson_windows``
        (windows with too few requests, fitted as Poisson), per-client
        ``io_spearman``, ``dependence`` (per client: whether it was carried into the model) and,
        for parametric lengths, ``length_fits``. With conversations: ``sessions`` (True),
        ``session_starts`` (the first turns in the trace) and ``block_size``.
    """

    def __init__(self, clients: Any, *, report: pd.DataFrame, info: dict[str, Any]) -> None:
        super().__init__(clients)
        self.report = report
        self.info = info


def dependence(rho: float, n: int) -> tuple[dict[str, Any], str]:
    """The ``dependence=`` argument for a client, and a note on what was done.

    A correlation within ``RHO_SIGMAS`` standard errors of 0 (``1 / sqrt(n - 1)`` under
    independence) is noise: it is not carried, which also spares the copula's
    calibration when the client is sampled.
    """
    if not np.isfinite(rho):
        return {}, "not estimable (a constant field or < 3 requests)"
    if abs(rho) * math.sqrt(max(n - 1, 1)) < RHO_SIGMAS:
        return {}, "not significant"
    return {"dependence": RankCorrelation(input_output=float(rho))}, "carried"


def fit(
    trace: Any,
    window: float = 600.0,
    client: str | None = None,
    by: str | Sequence[str] | None = None,
    *,
    lengths: str = "empirical",
    rate_window: float | str | None = "auto",
    length_window: float | None = None,
    max_points: int = 256,
    laws: Sequence[str] = SCHEDULE_FIT_LAWS,
    length_laws: Sequence[str] = LENGTH_LAWS,
    criterion: str = "aic",
    min_requests: int = 10,
    dequantize: bool | None = None,
    rng: SeedLike = 0,
    sessions: bool | None = None,
    block_size: int | None = None,
) -> FittedWorkload:
    """Fit a :class:`~servegen.Workload` that regenerates a trace, client by client.

    Parameters
    ----------
    trace, window, client, by, criterion, min_requests, dequantize, rng
        As for :func:`characterize`.
    lengths
        ``"empirical"`` (default): compact quantile PMFs, at most ``max_points`` support
        points each, within ``1 / max_points`` KS of the data and with the exact mean.
        ``"parametric"``: the best of ``length_laws`` by ``criterion`` (:func:`fit_lengths`);
        a client with fewer than ``min_requests`` requests or a constant field keeps the
        empirical model.
    rate_window
        Seconds per rate piece inside a window, a divisor of ``window``; ``"auto"``
        (default) is ``window / 10``. Rates are measured at that resolution and their count
        noise removed (see ``refine_rates``): a renewal process alone explains the
        counts, the pieces of a window all get the window's rate (the per-window model);
        where counts vary more (traffic clustered over tens of seconds, as in Mooncake's
        conversation trace), the pieces keep that extra variance, so the regenerated
        trace keeps the recorded dispersion of counts at this time scale. Each window's
        total is kept exactly, and its law and CV are measured on gaps in operational
        time (gap x local rate), so rate changes inside a window are not counted twice as
        burstiness. ``None``: exactly one piece per window at its recorded rate.
    length_window
        ``None`` (default): one length model per client for the whole trace (lengths
        drift much less than rates, and per-window PMFs of small windows are noisy).
        A number of seconds: one model per client and length window, as a
        :class:`~servegen.Piecewise`; windows with fewer than ``min_requests`` requests use
        the client's whole-trace model.
    max_points
        Support points per empirical model (>= 2).
    laws
        Candidate inter-arrival laws: ``"exponential"`` (a Poisson piece; also
        ``"poisson"``), ``"gamma"``, ``"weibull"`` (or their law-table aliases).
    sessions
        ``None`` (default): when the trace carries conversations or shared prefixes (a
        ``hash_ids``, ``session`` or ``parent`` column, e.g. Mooncake, Bailian), model
        them (:func:`~servegen.fit_sessions`' rules, per client), fit all arrivals as above,
        starts per ``servegen.session_starts``; the workload gets ``block_size`` (the argument, the
        trace's ``attrs["block_size"]``, or inferred from ``hash_ids``) so it regenerates
        block hashes too. ``True``: require it; ``False``: fit every request as an arrival.

    Returns
    -------
    FittedWorkload
        A Workload with one client per trace client (the same keys). Each client's arrival
        is an ``ArrivalSchedule`` with a piece per window (per ``rate_window`` inside it
        where the rate is refined; repeated pieces merged): the measured rate, the
        window's measured inter-arrival CV and its best law (a window with fewer than
        ``min_requests`` requests is a Poisson piece at its measured rate; a client's silent
        windows have rate 0). The input/output Spearman correlation of each client is
        passed as ``dependence=RankCorrelation(input_output=rho)`` when it is
        distinguishable from 0 (``|rho| >= RHO_SIGMAS / sqrt(n - 1)``);
        ``info["dependence"]`` says, per client, whether it was carried.

    Examples
    --------
    >>> import servegen as sg
    >>> trace = sg.Client(arrival=sg.Weibull(rate=3, cv=0.7), input_tokens=sg.LogNormal(mu=6, sigma=1),
    ...                   output_tokens=300).sample(1200, rng=0)
    >>> wl = fit(trace, window=600, rate_window=None)
    >>> a = wl.clients[0].arrival
    >>> a.laws, bool(abs(a.rates - 3).max() < 0.2), bool(abs(a.cvs - 0.7).max() < 0.05)
    (['weibull', 'weibull'], True, True)
    """
    if out_of_core.is_dask_input(trace):  # a Dask DataFrame or Parquet dataset: out of core
        return out_of_core.run(fit, locals())
    if sessions is not False:  # lazy import: session_fit calls back into this fit, never imports it
        args = {k: v for k, v in locals().items() if k not in ("trace", "sessions")}
        from ..session_fit import fit_conversations

        if (conv := fit_conversations(trace, fit, args, sessions=sessions)) is not None:
            return conv
    w = check_window(window)
    check_choice(lengths, "lengths", ("empirical", "parametric"))
    lw = None if length_window is None else check_window(length_window, "length_window")
    if rate_window == "auto":
        rw: float | None = w / 10.0
    else:
        rw = None if rate_window is None else check_window(rate_window, "rate_window")
    if rw is not None and rw < w and abs(w / rw - round(w / rw)) > 1e-9:
        raise ValueError(f"`rate_window` must divide `window` ({w!r}) into whole parts, got {rate_window!r}")
    max_points = check_count(max_points, "max_points", 2)
    laws_t = check_arrival_laws(laws, SCHEDULE_FIT_LAWS, "laws")
    check_choice(criterion, "criterion", ("aic", "bic"))
    min_requests = check_count(min_requests, "min_requests", 2)
    gen = generator(rng)
    tr = prepare(trace, client, by, dequantize, gen)
    assert tr.codes is not None
    refine = rw is not None and rw < w
    # With refinement, the first pass only needs rates and raw CVs: fit the cheapest law.
    table = iat_table(tr, w, ("exponential",) if refine else laws_t, criterion, min_requests, gof=not refine)
    nc, nw = len(tr.keys), int(table["window"].max()) + 1
    rates = table["rate"].to_numpy().reshape(nc, nw)
    times, piece = np.asarray(np.arange(nw) * w, dtype=np.float64), np.arange(nw)
    shrink = None
    if refine:
        assert rw is not None
        times, rates, piece, op_times, shrink = refine_rates(
            tr, w, rw, rates, table["iat_cv"].to_numpy().reshape(nc, nw)
        )
        table = iat_table(tr, w, laws_t, criterion, min_requests, gof=True, gap_times=op_times)
    bursts = fit_bursts(
        tr, table, w, criterion, gen, *((op_times, warp(times, rates, tr.span)) if refine else ())
    )

    # arrivals: one ArrivalSchedule per client, built from the table's columns
    missing = table["law"].isna().to_numpy().reshape(nc, nw)
    law = table["law"].to_numpy(dtype=object, na_value="poisson").reshape(nc, nw)
    cvs = np.clip(np.nan_to_num(table["iat_cv"].to_numpy(), nan=1.0), *CV_RANGE).reshape(nc, nw)
    sched = np.array([SCHEDULE_LAW.get(v, "poisson") for v in law.ravel()], dtype=object).reshape(nc, nw)
    cvs = np.where(sched == "poisson", 1.0, np.where(sched == "deterministic", 0.0, cvs))[:, piece]
    sched = sched[:, piece]
    counts = table["n"].to_numpy().reshape(nc, nw)
    poisson_windows = int((missing & (counts > 0)).sum())

    # lengths: per client (or per client and length window), and the rank correlation
    cseg = tr.codes.astype(np.int64)
    orders = (sort_by_segment(cseg, tr.input_tokens), sort_by_segment(cseg, tr.output_tokens))
    stats_c = length_stats(cseg, nc, tr.input_tokens, tr.output_tokens, ("input", "output"), orders)
    rho = stats_c["io_spearman"]
    models: dict[str, list[Any]] = {}
    length_fits: dict[str, list[dict[str, Any]]] = {}
    for j, col in enumerate(("input_tokens", "output_tokens")):
        vals = getattr(tr, col)
        off, val, prob = compact_tables(cseg, nc, vals, max_points, orders[j])
        models[col] = [empirical_model(off, val, prob, i) for i in range(nc)]
        if lengths == "parametric":
            order = np.argsort(tr.codes, kind="stable")
            bounds = np.concatenate([[0], np.cumsum(np.bincount(tr.codes, minlength=nc))])
            length_fits[col] = []
            for i in range(nc):
                x = vals[order[bounds[i] : bounds[i + 1]]]
                # too few or all-equal values: keep the (exact) empirical model
                if x.size < min_requests or x.min() == x.max():
                    length_fits[col].append({"law": "empirical", "reason": "too few distinct values"})
                    continue
                models[col][i], info_i = fit_lengths(x, length_laws, criterion=criterion, rng=gen)
                length_fits[col].append(info_i)
        if lw is not None:
            models[col] = per_window_models(
                tr, lw, vals, models[col], lengths, max_points, min_requests, length_laws, criterion, gen
            )

    clients: dict[Hashable, Client] = {}
    notes = []
    for i, key in enumerate(tr.keys):
        # drop pieces that repeat the previous one (silent spells, unrefined windows)
        arrival = client_schedule(i, times, rates[i], cvs[i], sched[i], piece, bursts, table)
        dep, note = dependence(float(rho[i]), int(counts[i].sum()))
        notes.append(note)
        clients[key] = Client(
            arrival=arrival,
            input_tokens=models["input_tokens"][i],
            output_tokens=models["output_tokens"][i],
            **dep,
        )
    info: dict[str, Any] = {
        **run_attrs(tr, w, laws_t, criterion, min_requests),
        "n_requests": len(tr),
        "lengths": lengths,
        "length_window": lw,
        "rate_window": rw if refine else w,
        "max_points": max_points,
        "poisson_windows": poisson_windows,
        "io_spearman": {k: float(r) for k, r in zip(tr.keys, rho, strict=True)},
        "dependence": dict(zip(tr.keys, notes, strict=True)),
    }
    if shrink is not None:
        info["rate_shrink"] = dict(zip(tr.keys, shrink.tolist(), strict=True))
    if length_fits:
        info["length_fits"] = {
            col: dict(zip(tr.keys, fits, strict=True)) for col, fits in length_fits.items()
        }
    table["dequantized"] = tr.dequantized
    table.attrs.update(run_attrs(tr, w, laws_t, criterion, min_requests))
    return FittedWorkload(clients, report=table, info=info)


def refine_rates(
    tr: Trace, window: float, rate_window: float, rates: Float64, cvs: Float64
) -> tuple[Float64, Float64, NDArray[np.int64], Float64, Float64]:
    """Rates at ``rate_window`` resolution inside each window, with the count noise removed.

    A sub-window's count ``n`` is its window's expected count ``mu`` plus a deviation
    ``d``. Copying ``n`` as the rate would add the renewal noise a second time when the
    model is sampled, so the deviations are shrunk by a per-client factor
    ``s = sqrt(1 - noise / sum(d**2))`` with ``noise = sum(cv**2 * mu)`` (a renewal
    process's count variance over long bins): then the regenerated counts have the
    variance of the recorded ones. Window totals are kept exactly (the deviations of a
    window sum to 0), and a silent window stays silent.

    Returns the sub-window starts, rates (clients x sub-windows), the window of each
    sub-window, every request's operational time ``Lambda(t)`` (the integral of its
    client's rate; gaps there have mean ~1 and measure the renewal part of burstiness
    only), and the shrink factors.
    """
    assert tr.codes is not None
    nc, nw = rates.shape
    k = round(window / rate_window)
    span = tr.span
    nf = max(1, math.ceil(span / rate_window - 1e-9))
    starts = np.arange(nf) * rate_window
    widths = np.minimum(starts + rate_window, span) - starts
    coarse = np.minimum(np.arange(nf) // k, nw - 1)
    t = tr.timestamp
    f = np.minimum((t // rate_window).astype(np.int64), nf - 1)
    n = np.bincount(tr.codes.astype(np.int64) * nf + f, minlength=nc * nf).reshape(nc, nf)
    mu = rates[:, coarse] * widths
    d = n - mu
    noise = (np.nan_to_num(cvs, nan=1.0)[:, coarse] ** 2 * mu).sum(axis=1)
    var = (d * d).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrink = np.where(var > 0, np.sqrt(np.clip(1.0 - noise / var, 0.0, 1.0)), 0.0)
    expected = mu + shrink[:, None] * d  # >= 0: shrink <= 1 and mu + d = n >= 0
    fine = expected / widths
    cum = np.concatenate([np.zeros((nc, 1)), np.cumsum(expected, axis=1)], axis=1)
    op = cum[tr.codes, f] + fine[tr.codes, f] * (t - starts[f])
    as_float = np.float64
    return (
        np.asarray(starts, dtype=as_float),
        np.asarray(fine, dtype=as_float),
        np.asarray(coarse, dtype=np.int64),
        np.asarray(op, dtype=as_float),
        np.asarray(shrink, dtype=as_float),
    )
