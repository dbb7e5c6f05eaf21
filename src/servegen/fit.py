"""Characterization: measure a recorded trace and fit client models that regenerate it.

:func:`characterize` cuts the trace into windows (per client) and reports, for each, the
request rate, the inter-arrival CV, the best inter-arrival law by maximum likelihood
with its parameters, AIC/BIC and a KS goodness of fit, and length statistics.
:func:`fit` turns the same measurements into a :class:`~servegen.Workload`: one
:class:`~servegen.ArrivalSchedule` per client (per window: recorded rate, measured CV,
chosen law; rates refined inside windows where counts demand it) and length models
(compact empirical by default, parametric on request), plus the input/output rank
correlation.

How the fitting works, and why
------------------------------
* **Clock quantization.** Traces logged on a coarse clock (Mooncake's conversation
  trace logs a batch about every 3 s, so ~90 % of gaps are exactly 0) would read as
  extreme burstiness. The clock is detected (:func:`servegen.metrics.clock_resolution`)
  and, when ties are common, every request is spread uniformly inside its tick with a
  seeded generator before any gap statistic (:func:`servegen.metrics.dequantize`). The
  report says so (``attrs["quantization"]``, column ``dequantized``, ``info``).
* **Maximum likelihood for every window at once.** Exponential and log-normal fits are
  closed form; Gamma solves ``log k - digamma(k) = log(mean) - mean(log x)`` by Newton
  from Minka's closed-form start; Weibull runs Newton on the shape of its profile
  likelihood from the start given by the measured CV. All windows of all clients
  iterate together with ``np.bincount`` sums over the gaps, so a 10-million-request
  trace fits in about 10 s on one core, with no subsampling. (Calling
  ``scipy.stats.gamma.fit``/``weibull_min.fit`` per window gives the same estimates —
  the tests check it — but costs milliseconds per window, minutes for a pool.)
* **Censored gaps.** Gaps shorter than the clock resolution (ties of a clock that was
  not de-quantized, or gaps below float64 rounding, which a Gamma law with CV 3 produces
  for ~5 % of its gaps) enter the likelihood as left-censored, not as their recorded
  value 0; for those windows the Gamma and log-normal fits run a damped Newton on the
  censored likelihood. The CV is the plain sample CV of all gaps.
* **Few requests.** A window with fewer than ``min_requests`` requests (default 10) gets
  no law in the report and a Poisson piece at its measured rate in the fitted model.
* **Gaps** are taken between consecutive requests of one client inside one window; a
  gap that crosses a window edge is not counted.
* **Rates inside windows** (``fit(rate_window=...)``, default a tenth of the window):
  counts per sub-window minus the noise a renewal process would add by itself; traffic
  that clusters over tens of seconds keeps its dispersion of counts, traffic that does
  not keeps one rate per window.

>>> import servegen as sg
>>> from servegen.fit import characterize, fit
>>> true = sg.Client(arrival=sg.Gamma(rate=5, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1),
...                  output_tokens=sg.Exponential(mean=200))
>>> trace = true.sample(1800, rng=0).to_pandas()
>>> report = characterize(trace, window=600)
>>> report["law"].tolist(), bool(report["iat_cv"].between(1.8, 2.2).all())
(['gamma', 'gamma', 'gamma'], True)
>>> wl = fit(trace, window=600)
>>> len(wl.sample(1800, rng=1)) > 8000
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special, stats

from . import dask_fit
from ._rng import generator
from .arrivals import weibull_shape
from .attributes import RankCorrelation
from .burst_fit import fit_bursts
from .burst_models import client_schedule, warp
from .client import Client
from .distributions import Clipped, Empirical, Exponential, LogNormal, Mixture, Pareto
from .metrics import Trace, as_trace
from .piecewise import Piecewise
from .workload import Workload

__all__ = ["ARRIVAL_LAWS", "LENGTH_LAWS", "FittedWorkload", "characterize", "fit", "fit_lengths"]

Float64 = NDArray[np.float64]

#: Inter-arrival laws :func:`characterize` can choose from (scipy names in parentheses:
#: expon, gamma, weibull_min, lognorm, all with ``loc=0``).
ARRIVAL_LAWS = ("exponential", "gamma", "weibull", "lognormal")
#: Laws an :class:`~servegen.ArrivalSchedule` can express, and their schedule names.
_SCHEDULE_LAW = {
    "exponential": "poisson",
    "gamma": "gamma",
    "weibull": "weibull",
    "deterministic": "deterministic",
}
#: Candidate inter-arrival laws of :func:`fit` (those a schedule can express).
SCHEDULE_FIT_LAWS = ("exponential", "gamma", "weibull")
#: Parametric length laws :func:`fit_lengths` can choose from.
LENGTH_LAWS = ("exponential", "lognormal", "pareto_lognormal")
_NPARAMS = {"exponential": 1, "gamma": 2, "weibull": 2, "lognormal": 2, "pareto_lognormal": 5}
#: Fitted CVs are clamped into this range so every piece is a valid, samplable law.
CV_RANGE = (1e-3, 1e3)
#: A client's input/output Spearman correlation is carried into its model when it is at
#: least this many standard errors from 0.
RHO_SIGMAS = 3.0
_WEIBULL_K = (0.02, 100.0)


# -- argument checks ---------------------------------------------------------------------
def _check_window(window: Any, name: str = "window") -> float:
    if isinstance(window, bool) or not isinstance(window, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number of seconds, got {window!r}")
    if not (math.isfinite(window) and window > 0):
        raise ValueError(f"`{name}` must be finite and > 0, got {window!r}")
    return float(window)


def _check_laws(laws: Sequence[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(laws, str):
        laws = (laws,)
    laws = tuple(laws)
    if not laws:
        raise ValueError(f"`{name}` must name at least one law, got {laws!r}")
    for law in laws:
        if law not in allowed:
            raise ValueError(f"`{name}`: unknown law {law!r}; choose from {', '.join(allowed)}")
    return laws


def _check_choice(value: Any, name: str, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _check_count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}")
    return int(value)


def _prepare(trace: Any, client: str | None, by: Any, dequantize: bool | None, rng: Any) -> Trace:
    tr = as_trace(trace, client=client, by=by)
    tr.dequantize(dequantize, generator(rng))
    if tr.codes is None:
        tr.codes = np.zeros(len(tr), dtype=np.intp)
        tr.keys = [0]
    return tr


def _grid(tr: Trace, window: float) -> tuple[int, Float64, Float64, NDArray[np.int64]]:
    """Window count, starts, widths, and the window index of every request."""
    span = tr.span
    if span <= 0:
        raise ValueError(
            "trace: all timestamps are 0, so no rate can be measured (give the trace a span, "
            "or de-quantize it with a known clock)"
        )
    nw = max(1, math.ceil(span / window - 1e-9))
    starts = np.arange(nw) * window
    widths = np.minimum(starts + window, span) - starts
    win = np.minimum((tr.timestamp // window).astype(np.int64), nw - 1)
    return nw, starts, widths, win


# -- inter-arrival fits ------------------------------------------------------------------
def _gamma_shape(s: Float64) -> Float64:
    """Solve ``log k - digamma(k) = s`` (> 0) by Newton from Minka's approximation."""
    s = np.maximum(s, 1e-12)
    k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(8):
        f = np.log(k) - special.digamma(k) - s
        fp = 1.0 / k - special.polygamma(1, k)
        k = np.clip(k - f / fp, k / 4.0, k * 4.0)
    return k


def _log_cdf_exp(z: Float64) -> Float64:
    """``log(1 - exp(-z))`` for z > 0, accurate for tiny and large z."""
    return np.log(-np.expm1(-z))


def _censored_rate(nu: Float64, b: Float64, ncen: Float64, d: Float64) -> Float64:
    """Maximize ``nu*log(v) - b*v + ncen*log(1 - exp(-d*v))`` over v > 0, elementwise.

    The exponential (and, given its shape, the Weibull) likelihood with ``ncen`` gaps
    left-censored at ``d``. Strictly concave in v, so Newton from the uncensored
    optimum ``nu / b`` (which it can only exceed) converges; without censoring that
    start is already the answer.
    """
    v = nu / b
    cens = ncen > 0
    if not cens.any():
        return v
    live = cens & np.isfinite(v)  # each window stops on its own: never depends on the others
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(60):
            e = np.expm1(d * v)
            g1 = nu / v - b + np.where(cens, ncen * d / e, 0.0)
            g2 = -nu / v**2 - np.where(cens, ncen * d * d * (e + 1.0) / e**2, 0.0)
            new = np.clip(v - g1 / g2, v / 4.0, v * 4.0)
            new = np.where(np.isfinite(new) & live, new, v)
            live &= np.abs(new - v) > 1e-12 * v
            v = new
            if not live.any():
                break
    return v


def _newton2(fun: Any, p0: Float64, p1: Float64, iters: int = 60) -> tuple[Float64, Float64, Float64]:
    """Maximize ``fun(p0, p1)`` elementwise by damped Newton with finite-difference derivatives.

    For the censored Gamma and log-normal fits, whose log-likelihoods depend on the data
    only through per-window sums, so each evaluation costs O(windows), not O(gaps).
    Steps that lower the likelihood are halved; a non-concave point takes a gradient step.
    """
    h = 1e-4
    f = fun(p0, p1)
    live = np.isfinite(f)  # each window stops on its own: never depends on the others
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(iters):
            fa, fb = fun(p0 + h, p1), fun(p0 - h, p1)
            fc, fd = fun(p0, p1 + h), fun(p0, p1 - h)
            fab = fun(p0 + h, p1 + h) - fun(p0 + h, p1 - h) - fun(p0 - h, p1 + h) + fun(p0 - h, p1 - h)
            g0, g1 = (fa - fb) / (2 * h), (fc - fd) / (2 * h)
            h00, h11, h01 = (fa - 2 * f + fb) / h**2, (fc - 2 * f + fd) / h**2, fab / (4 * h * h)
            det = h00 * h11 - h01 * h01
            concave = (h00 < 0) & (det > 0)
            s0 = np.where(concave, -(h11 * g0 - h01 * g1) / det, 1e-3 * g0 / np.maximum(np.abs(g0), 1e-300))
            s1 = np.where(concave, -(h00 * g1 - h01 * g0) / det, 1e-3 * g1 / np.maximum(np.abs(g1), 1e-300))
            # at most one unit per step in (log) parameter space
            scale = np.minimum(1.0, 1.0 / np.maximum(np.maximum(np.abs(s0), np.abs(s1)), 1e-300))
            s0, s1 = np.nan_to_num(s0 * scale), np.nan_to_num(s1 * scale)
            step = np.ones_like(f)
            for _ in range(30):  # backtrack until the likelihood does not drop
                fn = fun(p0 + step * s0, p1 + step * s1)
                bad = live & ~(fn >= f - 1e-12 * np.abs(f))
                if not bad.any():
                    break
                step = np.where(bad, step / 2, step)
            ok = live & (fn >= f - 1e-12 * np.abs(f))
            p0 = np.where(ok, p0 + step * s0, p0)
            p1 = np.where(ok, p1 + step * s1, p1)
            f = np.where(ok, fn, f)
            live &= np.abs(step * s0) + np.abs(step * s1) >= 1e-9
            if not live.any():
                break
    return p0, p1, f


def _weibull_fit(
    ly: Float64,
    gs: NDArray[np.int64],
    nseg: int,
    nu: Float64,
    sl: Float64,
    ncen: Float64,
    dlog: Float64,
    k0: Float64,
) -> tuple[Float64, Float64, Float64]:
    """Weibull MLE for every segment: Newton on the shape of the profile likelihood.

    ``ly`` are log gaps (uncensored only) of the segments ``gs``; ``nu``, ``sl`` their
    counts and sums of ``ly`` per segment; ``ncen`` gaps are left-censored at
    ``exp(dlog)``. For a shape ``c``, ``v = 1/scale**c`` maximizes the likelihood in
    closed form without censoring, and by :func:`_censored_rate` with it. One pass over
    the gaps per Newton step gives ``B = sum(y**c)`` and its first two derivatives in
    ``c``; the profile's second derivative comes from their Taylor expansion.
    Returns (shape, scale, log-likelihood).
    """
    c = np.clip(k0, *_WEIBULL_K)
    live = np.ones(nseg, dtype=bool)  # each window stops on its own: never depends on the others

    def profile(cc: Float64, b: Float64, b1: Float64) -> tuple[Float64, Float64]:
        d = np.exp(cc * dlog)
        v = _censored_rate(nu, b, ncen, d)
        cens = np.where(ncen > 0, ncen * d * dlog * v / np.expm1(d * v), 0.0)
        grad = nu / cc + sl - b1 * v + cens
        ll = (
            nu * np.log(cc)
            + (cc - 1) * sl
            + nu * np.log(v)
            - b * v
            + np.where(ncen > 0, ncen * _log_cdf_exp(d * v), 0.0)
        )
        return grad, ll

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(40):
            w = np.exp(c[gs] * ly)
            b = np.bincount(gs, w, minlength=nseg)
            b1 = np.bincount(gs, w * ly, minlength=nseg)
            b2 = np.bincount(gs, w * ly * ly, minlength=nseg)
            h = 1e-5 * c
            gp, _ = profile(c + h, b + h * b1 + 0.5 * h * h * b2, b1 + h * b2)
            gm, _ = profile(c - h, b - h * b1 + 0.5 * h * h * b2, b1 - h * b2)
            g, _ = profile(c, b, b1)
            curv = (gp - gm) / (2 * h)
            new = np.where(curv < 0, c - g / curv, c * np.where(g > 0, 2.0, 0.5))
            new = np.clip(new, c / 4.0, c * 4.0)
            new = np.where(np.isfinite(new) & live, np.clip(new, *_WEIBULL_K), c)
            live &= np.abs(new - c) >= 1e-10 * c
            c = new
            if not live.any():
                break
        b = np.bincount(gs, np.exp(c[gs] * ly), minlength=nseg)
        _, ll = profile(c, b, np.zeros_like(b))
        v = _censored_rate(nu, b, ncen, np.exp(c * dlog))
        scale = v ** (-1.0 / c)
    return c, scale, ll


def _floor_resolution(times: Float64, seg: NDArray[np.int64], nseg: int) -> Float64:
    """Per segment (never from other clients): shorter gaps are float64 rounding (256 ulps)."""
    top = np.ones(nseg)
    np.maximum.at(top, seg, np.abs(times))
    return 256 * np.spacing(top)


def _iat_table(
    tr: Trace,
    window: float,
    laws: tuple[str, ...],
    criterion: str,
    min_requests: int,
    gof: bool,
    gap_times: Float64 | None = None,
) -> pd.DataFrame:
    """One row per (client, window): counts, rate, gap moments, MLE fits, best law, KS.

    Windows come from the real timestamps; gap values from ``gap_times`` when given
    (operational time, see :func:`_refine_rates`), else from the timestamps.

    Gaps shorter than the clock resolution (ties of a clock that was not de-quantized,
    or gaps below float64 rounding: a Gamma law with CV 3 puts ~5 % of its gaps below
    1e-11 of the mean) carry only the fact that they are short: the likelihood counts
    them as left-censored at the resolution instead of as their recorded value.
    """
    nw, starts, widths, win = _grid(tr, window)
    codes = tr.codes
    assert codes is not None
    nc = len(tr.keys)
    nseg = nc * nw
    seg = codes.astype(np.int64) * nw + win
    n = np.bincount(seg, minlength=nseg)
    order = np.argsort(codes, kind="stable") if nc > 1 else None  # per client, in time order
    ss = seg if order is None else seg[order]
    same = ss[1:] == ss[:-1]
    gs = ss[1:][same]  # non-decreasing: the gaps of a segment are contiguous
    cnt = np.bincount(gs, minlength=nseg).astype(np.float64)

    def gaps(t: Float64) -> Float64:
        return np.diff(t if order is None else t[order])[same]

    x = gaps(tr.timestamp)
    q = tr.quantization
    res = q.resolution if (q is not None and q.resolution > 0 and not tr.dequantized) else 0.0
    delta = np.maximum(res, _floor_resolution(tr.timestamp, seg, nseg))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x = np.bincount(gs, x, minlength=nseg) / cnt
        dy = delta / mean_x  # the censoring point, in units of the mean gap
        if gap_times is not None:
            x = gaps(gap_times)
            fl = _floor_resolution(gap_times, seg, nseg)
            mean_op = np.bincount(gs, x, minlength=nseg) / cnt
            dy = np.maximum(dy, fl / mean_op)
            mean_x = mean_op
        y = x / mean_x[gs]
        unc = y >= dy[gs]
        my = np.bincount(gs, y, minlength=nseg) / cnt
        var = (np.bincount(gs, y * y, minlength=nseg) - cnt * my * my) / (cnt - 1)
        cv = np.where(cnt >= 2, np.sqrt(np.maximum(var, 0.0)) / my, np.nan)
    yu, gu = y[unc], gs[unc]
    ly = np.log(yu)
    nu = np.bincount(gu, minlength=nseg).astype(np.float64)
    ncen = cnt - nu
    s1 = np.bincount(gu, yu, minlength=nseg)
    sl = np.bincount(gu, ly, minlength=nseg)
    sl2 = np.bincount(gu, ly * ly, minlength=nseg)

    # Evenly spaced gaps (CV below CV_RANGE) have no likelihood to maximize: deterministic.
    regular = (n >= min_requests) & (cnt >= 2) & (np.nan_to_num(cv, nan=1.0) <= CV_RANGE[0])
    fitted = (n >= min_requests) & (nu >= 2) & ~regular
    ll = {law: np.full(nseg, -np.inf) for law in laws}
    shape = {law: np.full(nseg, np.nan) for law in laws}
    scale = {law: np.full(nseg, np.nan) for law in laws}  # in units of the mean gap
    f = fitted
    cf = f & (ncen > 0)  # fitted segments with censored gaps
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        dlog = np.log(dy)
        if "exponential" in laws:
            v = _censored_rate(nu[f], s1[f], ncen[f], dy[f])
            cens = np.where(ncen[f] > 0, ncen[f] * _log_cdf_exp(dy[f] * v), 0.0)
            ll["exponential"][f] = nu[f] * np.log(v) - s1[f] * v + cens
            shape["exponential"][f], scale["exponential"][f] = 1.0, 1.0 / v
        if "gamma" in laws:
            a = _gamma_shape(np.log(s1[f] / nu[f]) - sl[f] / nu[f])
            th = s1[f] / nu[f] / a

            def gamma_ll(la: Float64, lt: Float64, m: Any = f) -> Float64:
                aa, tt = np.exp(la), np.exp(lt)
                out = (aa - 1) * sl[m] - s1[m] / tt - nu[m] * (aa * lt + special.gammaln(aa))
                cdf = special.gammainc(aa, dy[m] / tt)
                return out + np.where(ncen[m] > 0, ncen[m] * np.log(np.maximum(cdf, 1e-300)), 0.0)

            la, lt = np.log(a), np.log(th)
            if cf.any():
                sub = cf[f]
                la[sub], lt[sub], _ = _newton2(lambda p, r: gamma_ll(p, r, cf), la[sub], lt[sub])
            ll["gamma"][f] = gamma_ll(la, lt)
            shape["gamma"][f], scale["gamma"][f] = np.exp(la), np.exp(lt)
        if "lognormal" in laws:
            mu = sl[f] / nu[f]
            lsig = 0.5 * np.log(np.maximum(sl2[f] / nu[f] - mu**2, 1e-300))

            def lognormal_ll(mm: Float64, ls: Float64, m: Any = f) -> Float64:
                sig2 = np.exp(2 * ls)
                out = -sl[m] - nu[m] * (ls + 0.5 * np.log(2 * np.pi))
                out = out - (sl2[m] - 2 * mm * sl[m] + nu[m] * mm * mm) / (2 * sig2)
                return out + np.where(
                    ncen[m] > 0, ncen[m] * special.log_ndtr((dlog[m] - mm) / np.exp(ls)), 0.0
                )

            if cf.any():
                sub = cf[f]
                mu[sub], lsig[sub], _ = _newton2(lambda p, r: lognormal_ll(p, r, cf), mu[sub], lsig[sub])
            ll["lognormal"][f] = lognormal_ll(mu, lsig)
            shape["lognormal"][f], scale["lognormal"][f] = np.exp(lsig), np.exp(mu)
        if "weibull" in laws:
            sel = f[gu]  # only the gaps of fitted segments take part in the Newton sums
            k0 = np.ones(nseg)
            k0[f] = weibull_shape(np.clip(cv[f], 0.05, 50.0))
            c, lam, llw = _weibull_fit(ly[sel], gu[sel], nseg, nu, sl, ncen, dlog, k0)
            ok = f & np.isfinite(llw)
            ll["weibull"][ok] = llw[ok]
            shape["weibull"][ok], scale["weibull"][ok] = c[ok], lam[ok]

    names = np.array(laws, dtype=object)
    penalty = np.array([_NPARAMS[law] for law in laws], dtype=np.float64)[:, None]
    stack = np.stack([ll[law] for law in laws])
    with np.errstate(invalid="ignore"):
        crit = penalty * (np.log(np.maximum(cnt, 1)) if criterion == "bic" else 2.0) - 2 * stack
    best = np.argmin(np.where(np.isfinite(crit), crit, np.inf), axis=0)
    pick = np.arange(nseg)
    llb = stack[best, pick]
    has = fitted & np.isfinite(llb)
    shape_b = np.stack([shape[law] for law in laws])[best, pick]
    scale_b = np.stack([scale[law] for law in laws])[best, pick]
    # Back to seconds: y = x / mean_x, so scales multiply by mean_x and each log-density
    # drops log(mean_x) (the Jacobian, for the uncensored gaps), the same for every law.
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = np.where(nu > 0, nu * np.log(np.where(mean_x > 0, mean_x, 1.0)), 0.0)
    loglik = np.where(has, llb - jac, np.nan)
    p = penalty[best, 0]
    out = pd.DataFrame(
        {
            "client": pd.Series(np.repeat(np.asarray(tr.keys, dtype=object), nw)),
            "window": np.tile(np.arange(nw), nc),
            "start": np.tile(starts, nc),
            "end": np.tile(starts + widths, nc),
            "n": n,
            "rate": n / np.tile(widths, nc),
            "iat_n": cnt.astype(np.int64),
            "iat_censored": ncen.astype(np.int64),
            "iat_mean": mean_x,
            "iat_cv": cv,
            "law": np.where(has, names[best], np.where(regular, "deterministic", None)),
            "shape": np.where(has, shape_b, np.nan),
            "scale": np.where(has, scale_b * mean_x, np.where(regular, mean_x, np.nan)),
            "loglik": loglik,
            "aic": np.where(has, 2 * p - 2 * loglik, np.nan),
            "bic": np.where(has, p * np.log(np.maximum(cnt, 1)) - 2 * loglik, np.nan),
        }
    )
    if gof:
        out["ks"], out["ks_pvalue"] = _ks_by_segment(laws, best, has, shape_b, scale_b, yu, gu, dy, nseg)
    for law in laws:
        out[f"aic_{law}"] = np.where(np.isfinite(ll[law]), 2 * _NPARAMS[law] - 2 * (ll[law] - jac), np.nan)
    return out


def _law_cdf(law: str, y: Float64, a: Float64, s: Float64) -> Float64:
    """CDF of a fitted law (shape ``a``, scale ``s``, location 0), elementwise."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if law == "exponential":
            return -np.expm1(-y / s)
        if law == "gamma":
            return special.gammainc(a, y / s)
        if law == "weibull":
            return -np.expm1(-((y / s) ** a))
        return special.ndtr((np.log(y) - np.log(s)) / a)


def _ks_by_segment(
    laws: tuple[str, ...],
    best: NDArray[np.intp],
    has: NDArray[np.bool_],
    shape_b: Float64,
    scale_b: Float64,
    y: Float64,
    gs: NDArray[np.int64],
    dy: Float64,
    nseg: int,
) -> tuple[Float64, Float64]:
    """One-sample KS statistic and p-value of every segment's gaps against its best law.

    ``y`` are the uncensored gaps; they are compared with the law truncated to
    ``[dy, inf)`` (the plain law when nothing was censored). The p-value uses the KS law
    for known parameters (:data:`scipy.stats.kstwo`); with parameters estimated from the
    same gaps it is conservative (too large).
    """
    sel = has[gs]
    ys, g = y[sel], gs[sel]
    code = best[g]
    cdf = np.empty(ys.size)
    low = np.zeros(nseg)
    for i, law in enumerate(laws):  # one vectorized evaluation per law (<= 4)
        m = code == i
        if m.any():
            cdf[m] = _law_cdf(law, ys[m], shape_b[g[m]], scale_b[g[m]])
        ms = has & (best == i)
        low[ms] = _law_cdf(law, dy[ms], shape_b[ms], scale_b[ms])
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = (cdf - low[g]) / (1.0 - low[g])
    # Sort the CDF values inside each segment with one float sort: the segments are
    # contiguous and non-decreasing in g, and seg + cdf/2 keeps them apart.
    fs = 2.0 * (np.sort(g + 0.5 * np.clip(np.nan_to_num(cdf), 0.0, 1.0)) - g)
    k = np.bincount(g, minlength=nseg)
    first = np.concatenate([[0], np.cumsum(k)[:-1]])
    i = np.arange(fs.size) - first[g]
    n = k[g]
    d = np.maximum((i + 1) / n - fs, fs - i / n)
    ks = np.full(nseg, np.nan)
    nz = np.flatnonzero(k)
    if nz.size:
        ks[nz] = np.maximum.reduceat(d, first[nz])
    return ks, _ks_pvalue(ks, k)


def _ks_pvalue(d: Float64, n: NDArray[np.int64]) -> Float64:
    """P(D_n >= d) for the one-sample KS statistic, vectorized over segments.

    Exact (:data:`scipy.stats.kstwo`) up to 1000 gaps; beyond, Stephens' corrected
    asymptotic form ``kolmogorov((sqrt(n) + 0.12 + 0.11 / sqrt(n)) * d)``, within 0.005
    of the exact value there and a thousand times faster (kstwo loops per element).
    """
    pv = np.full(d.shape, np.nan)
    ok = np.isfinite(d) & (n > 0)
    small = ok & (n <= 1000)
    if small.any():
        pv[small] = stats.kstwo.sf(d[small], n[small])
    big = ok & (n > 1000)
    if big.any():
        sn = np.sqrt(n[big].astype(np.float64))
        pv[big] = special.kolmogorov((sn + 0.12 + 0.11 / sn) * d[big])
    return pv


# -- length statistics -------------------------------------------------------------------
def _sort_by_segment(seg: NDArray[np.int64], values: NDArray[np.int64]) -> NDArray[np.intp]:
    """Indices sorting by (segment, value)."""
    vmax = int(values.max()) if values.size else 0
    smax = int(seg.max()) if seg.size else 0
    if vmax < 2**40 and smax < 2**22:  # one int64 key sorts faster than a lexsort
        return np.argsort(seg * np.int64(2**40) + values)
    return np.lexsort((values, seg))


def _avg_ranks(
    seg: NDArray[np.int64], values: NDArray[np.int64], order: NDArray[np.intp], first: NDArray[np.int64]
) -> Float64:
    """Ranks (1-based, ties averaged) of ``values`` inside each segment, in input order."""
    ss, vs = seg[order], values[order]
    pos = np.arange(order.size) - first[ss]
    change = np.ones(order.size, dtype=bool)
    change[1:] = (ss[1:] != ss[:-1]) | (vs[1:] != vs[:-1])
    run = np.cumsum(change) - 1
    lo = pos[change]
    hi = np.append(pos[np.flatnonzero(change)[1:] - 1], pos[-1]) if order.size else lo
    r = np.empty(order.size)
    r[order] = (lo + hi)[run] / 2.0 + 1.0
    return r


def _length_stats(
    seg: NDArray[np.int64],
    nseg: int,
    inp: NDArray[np.int64],
    out: NDArray[np.int64],
    prefix: tuple[str, str],
    orders: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None,
) -> dict[str, Float64]:
    """Mean, p50/p90/p99 of both fields and their Spearman correlation, per segment.

    ``orders`` are the :func:`_sort_by_segment` orders of ``inp`` and ``out`` when known.
    """
    cnt = np.bincount(seg, minlength=nseg)
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    res: dict[str, Float64] = {}
    ranks = []
    for j, (vals, name) in enumerate(zip((inp, out), prefix, strict=True)):
        order = _sort_by_segment(seg, vals) if orders is None else orders[j]
        sv = vals[order].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            res[f"{name}_mean"] = np.bincount(seg, vals.astype(np.float64), minlength=nseg) / cnt
        for q in (50, 90, 99):
            v = np.full(nseg, np.nan)
            has = cnt > 0
            h = (q / 100.0) * (cnt[has] - 1)  # numpy's default (linear) quantile
            lo = np.floor(h).astype(np.int64)
            hi = np.minimum(lo + 1, cnt[has] - 1)
            base = first[has]
            v[has] = sv[base + lo] + (h - lo) * (sv[base + hi] - sv[base + lo])
            res[f"{name}_p{q}"] = v
        ranks.append(_avg_ranks(seg, vals, order, first))
    r1, r2 = ranks
    c = cnt.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = np.bincount(seg, r1, minlength=nseg) / c
        m2 = np.bincount(seg, r2, minlength=nseg) / c
        cov = np.bincount(seg, r1 * r2, minlength=nseg) / c - m1 * m2
        v1 = np.bincount(seg, r1 * r1, minlength=nseg) / c - m1 * m1
        v2 = np.bincount(seg, r2 * r2, minlength=nseg) / c - m2 * m2
        tol = 1e-9 * np.maximum(c, 1) ** 2  # rank variances of constant segments are 0 up to rounding
        rho = np.where((c >= 3) & (v1 > tol) & (v2 > tol), cov / np.sqrt(v1 * v2), np.nan)
    res["io_spearman"] = np.clip(rho, -1.0, 1.0)
    return res


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
    rng: Any = 0,
) -> pd.DataFrame:
    """Measure a trace per client and window: rate, burstiness, best inter-arrival law, lengths.

    Parameters
    ----------
    trace
        A canonical DataFrame (``timestamp`` seconds from the start, ``input_tokens``,
        ``output_tokens``, other columns optional) or :class:`~servegen.Requests`.
        Unsorted timestamps are sorted (stably, with their rows); ``attrs["resorted"]``
        says when that happened. A Dask DataFrame or Parquet dataset path runs out of core
        with the same result (:mod:`servegen.dask_fit`).
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
        ``"gamma"``, ``"weibull"``, ``"lognormal"`` (all with location 0).
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
    if dask_fit.is_dask_input(trace):  # a Dask DataFrame or Parquet dataset: out of core
        return dask_fit.run(characterize, locals())
    w = _check_window(window)
    laws_t = _check_laws(laws, ARRIVAL_LAWS, "laws")
    _check_choice(criterion, "criterion", ("aic", "bic"))
    min_requests = _check_count(min_requests, "min_requests", 2)
    tr = _prepare(trace, client, by, dequantize, rng)
    table = _iat_table(tr, w, laws_t, criterion, min_requests, gof=True)
    fit_bursts(tr, table, w, criterion, generator(rng))
    nw = int(table["window"].max()) + 1
    _, _, _, win = _grid(tr, w)
    assert tr.codes is not None
    seg = tr.codes.astype(np.int64) * nw + win
    for name, col in _length_stats(
        seg, len(table), tr.input_tokens, tr.output_tokens, ("input", "output")
    ).items():
        table[name] = col
    table["dequantized"] = tr.dequantized
    table.attrs.update(_attrs(tr, w, laws_t, criterion, min_requests))
    return table


def _attrs(
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


# -- length models -----------------------------------------------------------------------
def _compact_tables(
    seg: NDArray[np.int64],
    nseg: int,
    values: NDArray[np.int64],
    max_points: int,
    order: NDArray[np.intp] | None = None,
) -> tuple[NDArray[np.int64], Float64, Float64]:
    """Equal-mass quantile compaction of every segment's values, all at once.

    The sorted values of a segment are cut into ``max_points`` runs of equal count; each
    run becomes one support point at its mean, with its share of the mass. So the mean is
    kept exactly, each point lies inside the range of the values it stands for, and the
    CDF moves by less than one run's mass: the KS distance to the data is at most
    ``1 / max_points``. Equal values are merged, so a field with few distinct values keeps
    its exact PMF. Returns (offsets, values, probs) of the ragged table of PMFs.
    """
    cnt = np.bincount(seg, minlength=nseg)
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    if order is None:
        order = _sort_by_segment(seg, values)
    ss, vs = seg[order], values[order].astype(np.float64)
    pos = np.arange(order.size) - first[ss]
    m = np.int64(max_points)
    b = (pos * m) // np.maximum(cnt[ss], 1)  # bin within the segment, 0..m-1
    cell = ss * m + b
    sums = np.bincount(cell, vs, minlength=nseg * max_points)
    num = np.bincount(cell, minlength=nseg * max_points)
    live = np.flatnonzero(num)
    cseg = live // m
    val = sums[live] / num[live]
    prob = num[live] / cnt[cseg]
    # merge equal neighbours (a value spanning several runs), keeping segment order
    new = np.ones(live.size, dtype=bool)
    new[1:] = (cseg[1:] != cseg[:-1]) | (val[1:] != val[:-1])
    starts = np.flatnonzero(new)
    val, cseg = val[starts], cseg[starts]
    prob = np.add.reduceat(prob, starts) if starts.size else prob
    offsets = np.zeros(nseg + 1, dtype=np.int64)
    np.cumsum(np.bincount(cseg, minlength=nseg), out=offsets[1:])
    return offsets, val, prob


def _empirical(offsets: NDArray[np.int64], val: Float64, prob: Float64, i: int) -> Empirical:
    lo, hi = offsets[i], offsets[i + 1]
    p = prob[lo:hi]
    return Empirical(values=val[lo:hi], probs=p / p.sum())


def _fit_exponential(x: Float64) -> tuple[Any, float, dict[str, float]]:
    m = float(x.mean())
    if m <= 0:
        return None, -np.inf, {}
    return Exponential(mean=m), float(-x.size * np.log(m) - x.size), {"mean": m}


def _fit_lognormal(lx: Float64) -> tuple[Any, float, dict[str, float]]:
    mu, s = float(lx.mean()), float(lx.std())
    if s <= 0:
        return None, -np.inf, {}
    ll = float(-lx.sum() - 0.5 * lx.size * np.log(2 * np.pi * s * s) - 0.5 * lx.size)
    return LogNormal(mu=mu, sigma=s), ll, {"mu": mu, "sigma": s}


def _em_pareto_lognormal(
    lx: Float64, lc: Float64, iters: int, init: dict[str, Float64] | None = None
) -> tuple[Float64, dict[str, Float64]]:
    """EM for w*Pareto(alpha, xmin=exp(lc)) + (1-w)*LogNormal(mu, sigma), one row per xmin.

    ``lx`` are log data (n,), ``lc`` log xmin candidates (c,). Runs all candidates at once
    as (c, n) arrays. Returns the log-likelihood of each candidate and the parameters.
    """
    lc = lc[:, None]
    above = lx[None, :] >= lc
    excess = np.where(above, lx[None, :] - lc, 0.0)
    n = lx.size
    if init is None:
        na = above.sum(axis=1)
        w = np.clip(0.5 * na / n, 1e-3, 0.999)
        alpha = np.clip(na / np.maximum(excess.sum(axis=1), 1e-12), 0.05, 50.0)
        below = ~above
        nb = np.maximum(below.sum(axis=1), 1)
        mu = np.where(below.sum(axis=1) > 1, (lx * below).sum(axis=1) / nb, lx.mean())
        sig = np.sqrt(np.maximum(((lx[None, :] - mu[:, None]) ** 2 * below).sum(axis=1) / nb, 1e-4))
        sig = np.where(below.sum(axis=1) > 1, sig, lx.std() + 1e-3)
    else:
        w, alpha, mu, sig = (np.array(init[k], dtype=np.float64) for k in ("w", "alpha", "mu", "sigma"))
    ll_prev = np.full(lc.shape[0], -np.inf)
    half_log_2pi = 0.5 * np.log(2 * np.pi)
    for _ in range(iters):
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.where(
                above,
                (np.log(w) + np.log(alpha))[:, None] + alpha[:, None] * lc - (alpha[:, None] + 1) * lx,
                -np.inf,
            )
            z = (lx[None, :] - mu[:, None]) / sig[:, None]
            ln = np.log1p(-w)[:, None] - lx - np.log(sig)[:, None] - half_log_2pi - 0.5 * z * z
            top = np.maximum(lp, ln)
            lse = top + np.log(np.exp(lp - top) + np.exp(ln - top))
            r = np.exp(lp - lse)
        ll = lse.sum(axis=1)
        rs = r.sum(axis=1)
        q = 1.0 - r
        qs = np.maximum(q.sum(axis=1), 1e-12)
        w = np.clip(rs / n, 1e-6, 1 - 1e-6)
        alpha = np.clip(rs / np.maximum((r * excess).sum(axis=1), 1e-12), 0.05, 50.0)
        mu = (q * lx).sum(axis=1) / qs
        sig = np.sqrt(np.maximum((q * (lx[None, :] - mu[:, None]) ** 2).sum(axis=1) / qs, 1e-6))
        if np.all(np.abs(ll - ll_prev) < 1e-9 * np.abs(ll)):
            break
        ll_prev = ll
    return ll, {"w": w, "alpha": alpha, "mu": mu, "sigma": sig, "xmin": np.exp(lc[:, 0])}


def _fit_pareto_lognormal(
    x: Float64, rng: np.random.Generator, max_n: int = 5_000
) -> tuple[Any, float, dict[str, float]]:
    """Pareto + log-normal mixture by EM, with ``xmin`` chosen by profile likelihood.

    scipy has no mixture fitter, hence the EM. ``xmin`` (where the Pareto starts) is not
    a smooth parameter, so a grid of data quantiles is profiled, then refined between the
    best candidate's neighbours; this search runs on a random subsample of at most
    ``max_n`` values, and the final EM on all of them starts from its estimate.
    """
    lx_all = np.log(x)
    lx = lx_all if x.size <= max_n else rng.choice(lx_all, max_n, replace=False)
    cands = np.unique(np.quantile(lx, np.linspace(0.02, 0.95, 20)))
    best: dict[str, Float64] = {}
    for _ in range(2):
        ll, params = _em_pareto_lognormal(lx, cands, 200)
        i = int(np.nanargmax(np.where(np.isfinite(ll), ll, -np.inf)))
        best = {k: v[i : i + 1] for k, v in params.items()}
        lo, hi = cands[max(i - 1, 0)], cands[min(i + 1, cands.size - 1)]
        cands = np.linspace(lo, hi, 11)
    lc = np.log(best["xmin"])
    ll, params = _em_pareto_lognormal(lx_all, lc, 200, init=best)
    p = {k: float(v[0]) for k, v in params.items()}
    model = Mixture(
        [Pareto(alpha=p["alpha"], xmin=p["xmin"]), LogNormal(mu=p["mu"], sigma=p["sigma"])],
        weights=[p["w"], 1.0 - p["w"]],
    )
    return model, float(ll[0]), p


def fit_lengths(
    values: Any,
    laws: Sequence[str] = LENGTH_LAWS,
    *,
    criterion: str = "aic",
    clip: bool = True,
    rng: Any = 0,
) -> tuple[Any, dict[str, Any]]:
    """Fit a parametric length law to token counts by maximum likelihood; pick by AIC/BIC.

    Candidates (``LENGTH_LAWS``): ``"exponential"`` (mean), ``"lognormal"`` (``mu``,
    ``sigma`` of log values, closed form) and ``"pareto_lognormal"``, the mixture
    ``w * Pareto(alpha, xmin) + (1 - w) * LogNormal(mu, sigma)`` the ServeGen study found
    for input lengths, by EM (see ``_fit_pareto_lognormal``). Token counts are treated
    as continuous; zeros count as 0.5 for the log-based laws. With ``clip`` the model is
    wrapped in ``Clipped(high=max(values))``: traces are bounded by a context or
    ``max_tokens`` limit, and an unbounded tail would otherwise exceed it.

    Returns
    -------
    (model, info)
        ``info`` has ``law``, ``params``, ``loglik``, ``aic``, ``bic``, ``ks`` (one-sample
        KS distance of the data to the chosen model) and ``aic_<law>`` for each candidate.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.rint(np.random.default_rng(0).lognormal(6, 0.8, 5000))
    >>> model, info = fit_lengths(x)
    >>> info["law"], round(info["params"]["mu"], 1), round(info["params"]["sigma"], 1)
    ('lognormal', 6.0, 0.8)
    """
    laws_t = _check_laws(laws, LENGTH_LAWS, "laws")
    _check_choice(criterion, "criterion", ("aic", "bic"))
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"fit_lengths: need at least 2 values, got {x.size}")
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("fit_lengths: `values` must be finite and >= 0")
    gen = generator(rng)
    xl = np.maximum(x, 0.5)
    fits: dict[str, tuple[Any, float, dict[str, float]]] = {}
    for law in laws_t:
        if law == "exponential":
            fits[law] = _fit_exponential(x)
        elif law == "lognormal":
            fits[law] = _fit_lognormal(np.log(xl))
        else:
            fits[law] = _fit_pareto_lognormal(xl, gen)
    pen = {law: _NPARAMS[law] * (np.log(x.size) if criterion == "bic" else 2.0) for law in laws_t}
    score = {law: pen[law] - 2 * fits[law][1] for law in laws_t if fits[law][0] is not None}
    if not score:
        raise ValueError("fit_lengths: no candidate law fits (all values equal?); use lengths='empirical'")
    law = min(score, key=score.__getitem__)
    model, ll, params = fits[law]
    if clip:
        model = Clipped(model, high=float(x.max()))
    info = {
        "law": law,
        "params": params,
        "loglik": ll,
        "aic": 2 * _NPARAMS[law] - 2 * ll,
        "bic": float(_NPARAMS[law] * np.log(x.size) - 2 * ll),
        "ks": float(stats.ks_1samp(x, model.cdf).statistic),
        **{f"aic_{k}": 2 * _NPARAMS[k] - 2 * v[1] for k, v in fits.items()},
    }
    return model, info


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


def _dependence(rho: float, n: int) -> tuple[dict[str, Any], str]:
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
    rng: Any = 0,
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
        noise removed (see ``_refine_rates``): a renewal process alone explains the
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
        Candidate inter-arrival laws: ``"exponential"`` (a Poisson piece), ``"gamma"``,
        ``"weibull"`` — the laws an :class:`~servegen.ArrivalSchedule` can express.
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
    if dask_fit.is_dask_input(trace):  # a Dask DataFrame or Parquet dataset: out of core
        return dask_fit.run(fit, locals())
    if sessions is not False:  # lazy import: session_fit calls back into this fit, never imports it
        args = {k: v for k, v in locals().items() if k not in ("trace", "sessions")}
        from .session_fit import fit_conversations

        if (conv := fit_conversations(trace, fit, args, sessions=sessions)) is not None:
            return conv
    w = _check_window(window)
    _check_choice(lengths, "lengths", ("empirical", "parametric"))
    lw = None if length_window is None else _check_window(length_window, "length_window")
    if rate_window == "auto":
        rw: float | None = w / 10.0
    else:
        rw = None if rate_window is None else _check_window(rate_window, "rate_window")
    if rw is not None and rw < w and abs(w / rw - round(w / rw)) > 1e-9:
        raise ValueError(f"`rate_window` must divide `window` ({w!r}) into whole parts, got {rate_window!r}")
    max_points = _check_count(max_points, "max_points", 2)
    laws_t = _check_laws(laws, SCHEDULE_FIT_LAWS, "laws")
    _check_choice(criterion, "criterion", ("aic", "bic"))
    min_requests = _check_count(min_requests, "min_requests", 2)
    gen = generator(rng)
    tr = _prepare(trace, client, by, dequantize, gen)
    assert tr.codes is not None
    refine = rw is not None and rw < w
    # With refinement, the first pass only needs rates and raw CVs: fit the cheapest law.
    table = _iat_table(tr, w, ("exponential",) if refine else laws_t, criterion, min_requests, gof=not refine)
    nc, nw = len(tr.keys), int(table["window"].max()) + 1
    rates = table["rate"].to_numpy().reshape(nc, nw)
    times, piece = np.arange(nw) * w, np.arange(nw)
    shrink = None
    if refine:
        assert rw is not None
        times, rates, piece, op_times, shrink = _refine_rates(
            tr, w, rw, rates, table["iat_cv"].to_numpy().reshape(nc, nw)
        )
        table = _iat_table(tr, w, laws_t, criterion, min_requests, gof=True, gap_times=op_times)
    bursts = fit_bursts(
        tr, table, w, criterion, gen, *((op_times, warp(times, rates, tr.span)) if refine else ())
    )

    # arrivals: one ArrivalSchedule per client, built from the table's columns
    missing = table["law"].isna().to_numpy().reshape(nc, nw)
    law = table["law"].to_numpy(dtype=object, na_value="poisson").reshape(nc, nw)
    cvs = np.clip(np.nan_to_num(table["iat_cv"].to_numpy(), nan=1.0), *CV_RANGE).reshape(nc, nw)
    sched = np.array([_SCHEDULE_LAW.get(v, "poisson") for v in law.ravel()], dtype=object).reshape(nc, nw)
    cvs = np.where(sched == "poisson", 1.0, np.where(sched == "deterministic", 0.0, cvs))[:, piece]
    sched = sched[:, piece]
    counts = table["n"].to_numpy().reshape(nc, nw)
    poisson_windows = int((missing & (counts > 0)).sum())

    # lengths: per client (or per client and length window), and the rank correlation
    cseg = tr.codes.astype(np.int64)
    orders = (_sort_by_segment(cseg, tr.input_tokens), _sort_by_segment(cseg, tr.output_tokens))
    stats_c = _length_stats(cseg, nc, tr.input_tokens, tr.output_tokens, ("input", "output"), orders)
    rho = stats_c["io_spearman"]
    models: dict[str, list[Any]] = {}
    length_fits: dict[str, list[dict[str, Any]]] = {}
    for j, col in enumerate(("input_tokens", "output_tokens")):
        vals = getattr(tr, col)
        off, val, prob = _compact_tables(cseg, nc, vals, max_points, orders[j])
        models[col] = [_empirical(off, val, prob, i) for i in range(nc)]
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
            models[col] = _per_window(
                tr, lw, vals, models[col], lengths, max_points, min_requests, length_laws, criterion, gen
            )

    clients: dict[Hashable, Client] = {}
    notes = []
    for i, key in enumerate(tr.keys):
        # drop pieces that repeat the previous one (silent spells, unrefined windows)
        arrival = client_schedule(i, times, rates[i], cvs[i], sched[i], piece, bursts, table)
        dep, note = _dependence(float(rho[i]), int(counts[i].sum()))
        notes.append(note)
        clients[key] = Client(
            arrival=arrival,
            input_tokens=models["input_tokens"][i],
            output_tokens=models["output_tokens"][i],
            **dep,
        )
    info: dict[str, Any] = {
        **_attrs(tr, w, laws_t, criterion, min_requests),
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
    table.attrs.update(_attrs(tr, w, laws_t, criterion, min_requests))
    return FittedWorkload(clients, report=table, info=info)


def _refine_rates(
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
    return starts, fine, coarse, op, shrink


def _per_window(
    tr: Trace,
    lw: float,
    vals: NDArray[np.int64],
    overall: list[Any],
    lengths: str,
    max_points: int,
    min_requests: int,
    length_laws: Sequence[str],
    criterion: str,
    gen: np.random.Generator,
) -> list[Any]:
    """A Piecewise per client: one length model per length window, the overall one where thin."""
    assert tr.codes is not None
    nc = len(tr.keys)
    nw, _, _, win = _grid(tr, lw)
    if nw == 1:
        return overall
    seg = tr.codes.astype(np.int64) * nw + win
    cnt = np.bincount(seg, minlength=nc * nw)
    times = np.arange(nw) * lw
    if lengths == "empirical":
        off, val, prob = _compact_tables(seg, nc * nw, vals, max_points)

        def model(s: int) -> Any:
            return _empirical(off, val, prob, s)
    else:
        order = np.argsort(seg, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(cnt)])

        def model(s: int) -> Any:
            x = vals[order[bounds[s] : bounds[s + 1]]]
            if x.min() == x.max():  # no law fits a constant: keep it exact
                return Empirical(values=[float(x[0])], probs=[1.0])
            return fit_lengths(x, length_laws, criterion=criterion, rng=gen)[0]

    out = []
    for i in range(nc):
        ms = [model(i * nw + j) if cnt[i * nw + j] >= min_requests else overall[i] for j in range(nw)]
        out.append(Piecewise(times, ms))
    return out
