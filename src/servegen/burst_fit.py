"""Fitting bursty traffic: a two-phase gap mixture per window, and on/off structure per client.

:func:`servegen.characterize` and :func:`servegen.fit` call :func:`fit_bursts` after their
one-law fits. It adds three things to the per-window table:

* **A gap-mixture law** (``law="hyperexp"``, :class:`~servegen.Hyperexponential`): two
  Gamma phases fitted by EM on the window's gaps, all candidate windows at once with
  ``np.bincount`` sums. Candidates are windows whose best one-law fit is poor (KS above
  both 0.03 and ``1.5/sqrt(n)``, beyond the 1 % level even with known parameters), whose
  gaps are bursty (CV > 1.5) and mostly above the clock resolution (at most 10 %
  censored); so smooth traces cost nothing. The mixture replaces the one-law fit when its
  AIC/BIC (5 parameters) is lower.
* **Dispersion of counts** (variance / mean) at 1, 10 and 60 s inside every window,
  ``disp_1s``, ``disp_10s``, ``disp_60s``.
* **A multi-scale check** per client with candidate windows. The renewal model's
  dispersion is measured on the trace with each window's gaps shuffled (a renewal process
  with exactly the recorded gap law; mapped through the fitted rates when the fit refines
  them), pooled over the client's windows, averaged over 4 shuffles.
  ``dispersion_error`` is its largest mismatch with the recorded dispersion over the
  scales, in units of the tolerance (a factor :data:`TOLERANCE` plus twice the recorded
  value's relative standard error ``sqrt(2 / bins)``). Where the renewal model fails
  (> 1), or most candidate windows chose the mixture (a bursty client), an
  :class:`~servegen.OnOffRenewal` model is fitted for the whole client: bursts split at
  its gap mixture's threshold; on-period, off-period and in-burst laws by maximum
  likelihood with :mod:`scipy.stats`, the law chosen by BIC (a few dozen periods). It is
  simulated at the client's window rates as the fitted schedule regenerates it (windows
  at one rate are one stretch, the on/off state running on across their edges) and
  kept if it matches the dispersion better, or passes the check for a bursty client (it
  estimates its periods from all of the client's bursts, where a window holds a few).
  Its windows report ``structure="onoff"`` with ``mean_on``, ``mean_off`` (s) and
  ``rate_on`` (req/s), and ``ks`` against the model's gap law (its simulated gaps,
  logged on the trace's clock); all others
  ``structure="renewal"``. ``attrs["onoff"]`` holds, per on/off client, the fitted
  parameters, the KS of all its gaps and its ``dispersion_error``.

A Poisson or Gamma trace has one-law fits within the KS noise, so it never becomes a
candidate and stays renewal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import special, stats

from .burst_models import BurstFit, onoff_model
from .clock import Quantization, dequantize
from .trace import Trace

__all__ = ["DISPERSION_SCALES", "TOLERANCE", "fit_bursts", "fit_mixture"]

Float64 = NDArray[np.float64]

#: Bin widths (s) of the multi-scale dispersion check.
DISPERSION_SCALES = (1.0, 10.0, 60.0)
#: The renewal model must match the recorded dispersion within this factor at every scale.
TOLERANCE = 1.3
_MIN_GAPS = 50  # fewer gaps: no mixture (5 parameters) is attempted
_MIN_CV = 1.5
_KS_LEVEL = 1.5  # a window is a mixture candidate when its KS exceeds this / sqrt(gaps)
_KS_FLOOR = 0.03  # ... and this: a one-law fit this close needs no mixture
_RUNS = 4  # realizations averaged to predict a model's dispersion


def _gamma_shape(s: Float64) -> Float64:
    """Solve ``log k - digamma(k) = s`` by Newton from Minka's start (the Gamma MLE shape)."""
    s = np.maximum(s, 1e-9)
    k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(5):
        f = np.log(k) - special.digamma(k) - s
        k = np.clip(k - f / (1.0 / k - special.polygamma(1, k)), k / 4, k * 4)
    return np.clip(k, 1e-4, 1e4)


def _logpdf(y: Float64, ly: Float64, k: Float64 | float, th: Float64 | float) -> Float64:
    return (k - 1) * ly - y / th - k * np.log(th) - special.gammaln(k)


def fit_mixture(y: Float64, g: NDArray[np.int64], nseg: int, iters: int = 60) -> dict[str, Float64]:
    """EM fit of a two-phase Gamma mixture to every segment's gaps at once.

    ``y`` are gaps (> 0) and ``g`` their segment (0..nseg-1). Returns per segment ``p``
    (burst weight), ``k1``, ``th1`` (burst shape and scale), ``k2``, ``th2`` and ``ll``
    (the log-likelihood). The EM is written out because scipy has no mixture fitter and
    per-segment optimizers would cost milliseconds per window; each step is a few
    ``np.bincount`` sums over all gaps.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.where(rng.random(20000) < 0.9, rng.exponential(0.1, 20000), rng.exponential(20, 20000))
    >>> f = fit_mixture(y, np.zeros(y.size, dtype=np.int64), 1)
    >>> means = f["k1"] * f["th1"], f["k2"] * f["th2"]
    >>> round(float(f["p"][0]), 2), round(float(means[0][0]), 2), round(float(means[1][0]))
    (0.9, 0.1, 20)
    """
    y = np.maximum(y, 1e-300)
    ly = np.log(y)
    n = np.bincount(g, minlength=nseg).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, y, minlength=nseg) / n
        # start: split at the mean (bursts are the gaps below it), then refine
        r = (y < mean[g]).astype(np.float64)
        out: dict[str, Float64] = {}
        for it in range(iters + 1):
            w1 = np.bincount(g, r, minlength=nseg)
            w2 = n - w1
            p = np.clip(w1 / n, 1e-6, 1 - 1e-6)
            pars = []
            for ww, rr in ((w1, r), (w2, 1.0 - r)):
                ww = np.maximum(ww, 1e-9)
                m = np.bincount(g, rr * y, minlength=nseg) / ww
                lm = np.bincount(g, rr * ly, minlength=nseg) / ww
                k = _gamma_shape(np.log(m) - lm)
                pars.append((k, m / k))
            (k1, t1), (k2, t2) = pars
            l1 = np.log(p)[g] + _logpdf(y, ly, k1[g], t1[g])
            l2 = np.log1p(-p)[g] + _logpdf(y, ly, k2[g], t2[g])
            lse = np.logaddexp(l1, l2)
            if it == iters:
                break
            r = np.exp(l1 - lse)
        swap = k1 * t1 > k2 * t2  # label the short phase "burst"
        out = {
            "p": np.where(swap, 1 - p, p),
            "k1": np.where(swap, k2, k1),
            "th1": np.where(swap, t2, t1),
            "k2": np.where(swap, k1, k2),
            "th2": np.where(swap, t1, t2),
            "ll": np.asarray(np.bincount(g, lse, minlength=nseg), dtype=np.float64),
        }
    return out


def _mixture_cdf(y: Float64, f: dict[str, Float64], g: NDArray[np.int64]) -> Float64:
    p = f["p"][g]
    return p * special.gammainc(f["k1"][g], y / f["th1"][g]) + (1 - p) * special.gammainc(
        f["k2"][g], y / f["th2"][g]
    )


def _ks(y: Float64, g: NDArray[np.int64], cdf: Float64, nseg: int) -> Float64:
    """One-sample KS statistic per segment (``cdf`` of each gap under its segment's law)."""
    order = np.lexsort((cdf, g))
    gs, fs = g[order], cdf[order]
    k = np.bincount(gs, minlength=nseg)
    first = np.concatenate([[0], np.cumsum(k)[:-1]])
    i = np.arange(fs.size) - first[gs]
    d = np.maximum((i + 1) / k[gs] - fs, fs - i / k[gs])
    out = np.full(nseg, np.nan)
    nz = np.flatnonzero(k)
    if nz.size:
        out[nz] = np.maximum.reduceat(d, first[nz])
    return out


def _gaps(
    codes: NDArray[np.intp], seg: NDArray[np.int64], values: Float64
) -> tuple[Float64, NDArray[np.int64], NDArray[np.intp]]:
    """Gaps between consecutive requests of one segment (client x window), per segment.

    Returns the gaps, their segment, and the index of the request that ends each gap.
    """
    order = np.argsort(codes, kind="stable")  # per client, in time order
    ss = seg[order]
    same = np.flatnonzero(ss[1:] == ss[:-1])
    v = values[order]
    return v[same + 1] - v[same], ss[same + 1], order[same + 1]


def _dispersion(
    t: Float64, seg: NDArray[np.int64], starts: Float64, widths: Float64, nseg: int, scale: float
) -> tuple[Float64, Float64, Float64]:
    """Per segment: dispersion of counts in full ``scale`` bins, its sum of squares and dof."""
    nb = np.floor(widths / scale + 1e-9).astype(np.int64)  # full bins per segment
    b = np.floor((t - starts[seg]) / scale).astype(np.int64)
    ok = b < nb[seg]
    off = np.concatenate([[0], np.cumsum(nb)[:-1]])
    cell, in_seg = off[seg[ok]] + b[ok], seg[ok]
    if nb.sum() <= cell.size:  # dense: count every bin
        cnt = np.bincount(cell, minlength=int(nb.sum())).astype(np.float64)
        cell_seg = np.repeat(np.arange(nseg), nb)
    else:  # sparse (many quiet clients x fine scale): only the occupied bins, O(requests)
        _, first, counts = np.unique(cell, return_index=True, return_counts=True)
        cnt, cell_seg = counts.astype(np.float64), in_seg[first]
    # integer-valued sums, so both ways give the same bits
    s1 = np.bincount(cell_seg, cnt, minlength=nseg)
    s2 = np.bincount(cell_seg, cnt * cnt, minlength=nseg)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = s2 - s1 * s1 / nb
        disp = np.where((nb >= 2) & (s1 > 0), ss / (nb - 1) / (s1 / nb), np.nan)
        dof = np.where(s1 > 0, (nb - 1) * s1 / nb, 0.0)  # (bins - 1) x mean count
    return disp, np.where(s1 > 0, ss, 0.0), dof


def _fit_law(x: Float64, laws: tuple[str, ...]) -> tuple[str, float]:
    """Best duration law for ``x`` by BIC (scipy MLE, location 0): (law, cv)."""
    best: tuple[float, str, float] = (math.inf, "exponential", 1.0)
    mean = float(x.mean())
    for law in laws:
        if law == "exponential":
            ll, cv = float(stats.expon.logpdf(x, scale=mean).sum()), 1.0
        elif law == "lognormal":
            s, _, sc = stats.lognorm.fit(x, floc=0)
            ll, cv = float(stats.lognorm.logpdf(x, s, scale=sc).sum()), math.sqrt(math.expm1(s * s))
        elif law == "gamma":
            a, _, sc = stats.gamma.fit(x, floc=0)
            ll, cv = float(stats.gamma.logpdf(x, a, scale=sc).sum()), 1 / math.sqrt(a)
        else:  # Pareto I with the minimum as scale; needs a finite variance (alpha > 2)
            b, _, sc = stats.pareto.fit(x, floc=0)
            if b <= 2.05:
                continue
            ll, cv = float(stats.pareto.logpdf(x, b, scale=sc).sum()), 1 / math.sqrt(b * (b - 2))
        # BIC, not AIC: with a few dozen periods AIC picks a two-parameter law over the
        # exponential by chance often enough (a log-normal of CV 1.3 for exponential
        # on-periods) to shift the dispersion at 60-300 s by a quarter
        crit = (1 if law == "exponential" else 2) * math.log(x.size) - 2 * ll
        if np.isfinite(crit) and crit < best[0]:
            best = (crit, law, float(np.clip(cv, 0.05, 20.0)))
    return best[1], best[2]


def _fit_onoff(x: Float64, mix: dict[str, float]) -> dict[str, Any] | None:
    """On/off parameters of one client from its time-ordered gaps ``x`` (s).

    Gaps where the silence phase of the client's gap mixture is the likelier one are off
    periods (minus one in-burst gap); runs of burst gaps between them are on periods.
    """
    y = x / x.mean()
    ly = np.log(np.maximum(y, 1e-300))
    l1 = math.log(mix["p"]) + _logpdf(y, ly, mix["k1"], mix["th1"])
    l2 = math.log1p(-mix["p"]) + _logpdf(y, ly, mix["k2"], mix["th2"])
    off = l2 > l1
    short = x[~off]
    if off.sum() < 5 or short.size < 20:
        return None
    g_mean = float(short.mean())
    offs = np.maximum(x[off] - g_mean, 0.05 * g_mean)
    # on period j = the burst gaps between silences j-1 and j, plus the gap that opens it
    run = np.cumsum(off)[~off]
    spans = np.asarray(np.bincount(run, short, minlength=int(off.sum()) + 1)[1:-1] + g_mean, dtype=np.float64)
    if spans.size < 5:
        return None
    on_law, on_cv = _fit_law(spans, ("exponential", "lognormal", "gamma"))
    off_law, off_cv = _fit_law(offs, ("exponential", "lognormal", "gamma", "pareto"))
    gap_cv = float(np.clip(short.std() / g_mean, 0.05, 20.0)) if short.size > 1 else 1.0
    # on-time per silence, counting the runs cut by the trace's ends too: the cut runs are
    # the longer ones (inspection paradox), so dropping them biases the mean down
    mean_on = float((short.sum() + off.sum() * g_mean) / off.sum())
    # The off-period CV by moments, so the model's gap CV (the closed form of
    # OnOffRenewal) is the recorded one: a few dozen silences give its likelihood estimate
    # a large spread, and the longest silences are the likeliest to be cut by the ends.
    rate = x.size / x.sum()
    mean_off = mean_on * ((1.0 / g_mean) / rate - 1.0)
    cv2 = float(x.var() / x.mean() ** 2)
    if mean_off > 0:
        second = (cv2 - gap_cv**2) * (mean_on + mean_off) / (rate * mean_off**2)
        off_cv = float(np.clip(np.sqrt(max(second - 1.0, 0.0025)), 0.05, 20.0))
    return {
        "mean_on": mean_on,
        "rate_on": 1.0 / g_mean,
        "gap_cv": gap_cv,
        "on_law": on_law,
        "on_cv": on_cv,
        "off_law": off_law,
        "off_cv": off_cv,
    }


def fit_bursts(
    tr: Trace,
    table: pd.DataFrame,
    window: float,
    criterion: str,
    rng: np.random.Generator,
    op_times: Float64 | None = None,
    warp: Any = None,
) -> BurstFit:
    """Add the mixture law, dispersion columns and on/off structure to ``table`` (in place).

    ``op_times`` (operational times of the requests) and ``warp`` (maps operational
    times of client ``i`` back to seconds: ``warp(i, op)``) are given when the fit refines
    rates inside windows, so the renewal model's dispersion includes those rates.
    """
    assert tr.codes is not None
    nc = len(tr.keys)
    nw = int(table["window"].max()) + 1
    nseg = nc * nw
    starts = table["start"].to_numpy()
    widths = table["end"].to_numpy() - starts
    win = np.minimum((tr.timestamp // window).astype(np.int64), nw - 1)
    seg = tr.codes.astype(np.int64) * nw + win
    values = tr.timestamp if op_times is None else op_times
    # 1. gap mixtures where the one-law fit is poor
    n_gaps = table["iat_n"].to_numpy()
    ks = table["ks"].to_numpy(dtype=np.float64, na_value=np.nan)
    cand = (n_gaps >= _MIN_GAPS) & (table["iat_cv"].to_numpy() > _MIN_CV)
    cand &= table["iat_censored"].to_numpy() <= 0.1 * n_gaps  # mostly-censored gaps: the one-law fit
    cand &= np.nan_to_num(ks, nan=1.0) > np.maximum(_KS_FLOOR, _KS_LEVEL / np.sqrt(np.maximum(n_gaps, 1)))
    # gaps below the clock or float64 resolution are left-censored, as in the one-law fits
    q = tr.quantization
    res = q.resolution if (q is not None and q.resolution > 0 and not tr.dequantized) else 0.0
    delta = max(res, float(256 * np.spacing(max(float(np.abs(values).max()), 1.0))))
    has = np.isin(tr.codes, np.flatnonzero(cand.reshape(nc, nw).any(axis=1)))
    x, g, _ = _gaps(tr.codes[has], seg[has], values[has]) if has.any() else (np.empty(0), seg[:0], None)
    sel = cand[g] & (x >= delta)
    ncen = np.bincount(g[cand[g] & (x < delta)], minlength=nseg)
    mix = {k: np.full(nseg, np.nan) for k in ("p", "k1", "th1", "k2", "th2", "ll")}
    chosen = np.zeros(nseg, dtype=bool)
    for col in ("p", "burst_cv", "silence_cv", "aic_hyperexp"):
        table[col] = np.nan
    if sel.any():
        xs, gs = x[sel], g[sel]
        mean = np.asarray(np.bincount(gs, xs, minlength=nseg), dtype=np.float64)
        cnt = np.bincount(gs, minlength=nseg)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = mean / cnt
        f = fit_mixture(xs / mean[gs], gs, nseg)
        with np.errstate(invalid="ignore", divide="ignore"):
            cens = _mixture_cdf(delta / mean, f, np.arange(nseg))
            ll = f["ll"] - cnt * np.log(mean) + np.where(ncen > 0, ncen * np.log(np.maximum(cens, 1e-300)), 0)
            cnt = cnt + ncen
        pen = 5 * (np.log(np.maximum(cnt, 1)) if criterion == "bic" else 2.0)
        crit = pen - 2 * ll
        old = table[criterion].to_numpy(dtype=np.float64, na_value=np.nan)
        chosen = cand & np.isfinite(crit) & (crit < np.nan_to_num(old, nan=np.inf))
        mix = {**f, "ll": ll}
        table["aic_hyperexp"] = np.where(cand, 10 - 2 * ll, np.nan)
        kss = _ks(xs / mean[gs], gs, _mixture_cdf(xs / mean[gs], f, gs), nseg)
        c = chosen
        table.loc[c, "law"] = "hyperexp"
        table.loc[c, "p"] = f["p"][c]
        table.loc[c, "burst_cv"] = 1 / np.sqrt(f["k1"][c])
        table.loc[c, "silence_cv"] = 1 / np.sqrt(f["k2"][c])
        table.loc[c, "shape"] = np.nan
        table.loc[c, "scale"] = np.nan
        table.loc[c, "loglik"] = ll[c]
        table.loc[c, "aic"] = 10 - 2 * ll[c]
        table.loc[c, "bic"] = 5 * np.log(cnt[c]) - 2 * ll[c]
        table.loc[c, "ks"] = kss[c]
        table.loc[c, "ks_pvalue"] = np.nan

    out = BurstFit(mix, chosen)
    cvw = table["iat_cv"].to_numpy()
    for i in np.flatnonzero(chosen.reshape(nc, nw).any(axis=1)):
        sl = slice(i * nw, (i + 1) * nw)
        n_i = table["n"].to_numpy()[sl].astype(np.float64)
        new = _window_rates(n_i, widths[:nw], np.where(n_i > 0, np.nan_to_num(cvw[sl], nan=1.0) ** 2, 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            out.rate_factor[int(i)] = np.where(n_i > 0, new * widths[:nw] / n_i, 0.0)

    # 2. dispersion of counts inside every window
    disp = {}
    for s in DISPERSION_SCALES:
        disp[s], _, _ = _dispersion(tr.timestamp, seg, starts, widths, nseg, s)
        table[f"disp_{s:g}s"] = disp[s]

    # 3. the multi-scale check, for clients with candidate windows
    structure = np.full(len(table), None, dtype=object)
    structure[table["law"].notna().to_numpy()] = "renewal"
    table["structure"] = structure
    for col in ("mean_on", "mean_off", "rate_on"):
        table[col] = np.nan
    clients = np.flatnonzero(cand.reshape(nc, nw).any(axis=1))
    table.attrs["onoff"] = {}
    table["dispersion_error"] = np.nan
    if clients.size == 0:
        return out
    mine = np.isin(tr.codes, clients)
    seg_m = seg[mine]
    real = _pooled([(tr.timestamp[mine], seg_m)], starts, widths, nseg, nw)
    shuffled = [_surrogate(values[mine], seg_m, rng, warp, nw) for _ in range(_RUNS)]
    err_ren = _error(_pooled(shuffled, starts, widths, nseg, nw), real)
    table["dispersion_error"] = np.repeat(np.where(np.isin(np.arange(nc), clients), err_ren, np.nan), nw)
    onoff_info: dict[Any, dict[str, Any]] = {}
    for i in clients:
        bursty = chosen.reshape(nc, nw)[i].sum() >= max(1, cand.reshape(nc, nw)[i].sum() / 2)
        if err_ren[i] <= 1 and not bursty:
            continue
        ti = tr.timestamp[tr.codes == i]
        xi = np.diff(ti)
        xi = xi[xi > 0]
        whole = fit_mixture(xi / xi.mean(), np.zeros(xi.size, dtype=np.int64), 1)
        par = _fit_onoff(np.diff(ti), {k: float(v[0]) for k, v in whole.items()})
        if par is None:
            continue
        n_i = table["n"].to_numpy()[i * nw : (i + 1) * nw]
        cv2 = onoff_model(n_i.sum() / widths[:nw].sum(), par).iat_cv ** 2
        par["rates"] = _window_rates(n_i, widths[:nw], np.full(nw, cv2))
        sims = [_simulate(par, par["rates"], starts[:nw], widths[:nw], rng) for _ in range(_RUNS)]
        runs = [(t, np.minimum((t // window).astype(np.int64), nw - 1) + i * nw) for t in sims]
        err_on = _error(_pooled(runs, starts, widths, nseg, nw), real)[i]
        # A client-wide on/off model estimates its periods from all the client's bursts (a
        # window holds only a few silences), so for bursty clients it is preferred whenever
        # it passes the check; otherwise it must beat the renewal model.
        if err_on < err_ren[i] or (bursty and err_on <= 1):
            out.onoff[int(i)] = par
            rows = np.arange(i * nw, (i + 1) * nw)
            live = rows[par["rates"] > 0]
            mo = [onoff_model(float(par["rates"][w - i * nw]), par).periods for w in live]
            idx = table.index[live]
            table.loc[idx, "structure"] = "onoff"
            table.loc[idx, "law"] = "onoff"
            # KS of each window's gaps against the model's gap law (its simulated gaps, logged
            # on the trace's clock: ms ticks turn a third of millisecond burst gaps into ties)
            ref = np.sort(np.concatenate([np.diff(_on_clock(t, q, tr.dequantized, rng)) for t in sims]))
            xr, gr, _ = _gaps(tr.codes[tr.codes == i], seg[tr.codes == i], tr.timestamp[tr.codes == i])
            cdf = np.searchsorted(ref, xr, side="right") / max(ref.size, 1)
            table.loc[idx, "ks"] = _ks(xr, gr, cdf, nseg)[live]
            table.loc[idx, "ks_pvalue"] = np.nan
            for col in ("mean_on", "mean_off", "rate_on"):
                table.loc[idx, col] = [m[col] for m in mo]
            whole_ks = float(_ks(xr, np.zeros(xr.size, dtype=np.int64), cdf, 1)[0])
            info = {k: v for k, v in par.items() if k != "rates"}
            onoff_info[tr.keys[i]] = {**info, "ks": whole_ks, "dispersion_error": float(err_on)}
    table.attrs["onoff"] = onoff_info
    return out


def _on_clock(t: Float64, q: Quantization | None, dequantized: bool, rng: np.random.Generator) -> Float64:
    """Simulated times as the trace recorded them: on its clock's ticks, spread if it was."""
    if q is None or q.resolution <= 0:
        return t
    t = np.floor(t / q.resolution) * q.resolution
    return np.sort(dequantize(t, q.resolution, rng=rng)) if dequantized else t


def _window_rates(n: Float64, widths: Float64, cv2: Float64) -> Float64:
    """Window rates of a bursty client, with the model's own count noise removed.

    Copying each window's count would add the model's noise a second time when sampling
    (a bursty process's count over a window varies by about ``cv² x mean``), doubling the
    variance between windows. As for rates inside windows (``fit(rate_window=...)``), the
    deviations from the client's mean are shrunk by ``sqrt(1 - noise / sum(d²))``: a
    stationary client gets one rate, a drifting one keeps its drift. Totals are kept, and
    silent windows stay silent.
    """
    total = n.sum()
    mu = total / widths.sum() * widths
    d = n - mu
    var = float((d * d).sum())
    noise = float(np.nansum(cv2 * mu))
    shrink = math.sqrt(max(0.0, 1.0 - noise / var)) if var > 0 else 0.0
    r = np.where(n > 0, mu + shrink * d, 0.0)
    return r * (total / r.sum()) / widths if r.sum() > 0 else np.zeros_like(widths)


def _surrogate(
    values: Float64, seg: NDArray[np.int64], rng: np.random.Generator, warp: Any, nw: int
) -> tuple[Float64, NDArray[np.int64]]:
    """The requests with each segment's gaps shuffled: a renewal process with the same gaps.

    Returns the new times (seconds) and their segments, grouped by segment.
    """
    by_seg = np.argsort(seg, kind="stable")
    sv, sseg = values[by_seg], seg[by_seg]
    first = np.r_[True, sseg[1:] != sseg[:-1]]
    gaps = np.diff(sv, prepend=sv[0])
    gaps[first] = 0.0
    key = np.lexsort((rng.random(sv.size), sseg))  # a random order inside each segment
    cs = np.cumsum(gaps[key])
    heads = np.flatnonzero(first)
    sizes = np.diff(np.r_[heads, sv.size])
    base = np.repeat(cs[heads] - gaps[key][heads], sizes)
    out = np.repeat(sv[heads], sizes) + cs - base
    if warp is not None:
        cl = sseg // nw
        for c in np.unique(cl):
            m = cl == c
            out[m] = warp(int(c), out[m])
    return out, sseg


def _pooled(
    runs: list[tuple[Float64, NDArray[np.int64]]], starts: Float64, widths: Float64, nseg: int, nw: int
) -> dict[float, tuple[Float64, Float64]]:
    """Per scale: dispersion pooled over each client's windows (and over ``runs``), and bins."""
    out = {}
    nc = nseg // nw
    for s in DISPERSION_SCALES:
        ss_sum, dof_sum, bins = np.zeros(nc), np.zeros(nc), np.zeros(nc)
        for t, seg in runs:
            _, ss, dof = _dispersion(t, seg, starts, widths, nseg, s)
            nb = np.floor(widths / s + 1e-9)
            bins += np.where(dof > 0, nb - 1, 0).reshape(nc, nw).sum(axis=1)
            ss_sum += ss.reshape(nc, nw).sum(axis=1)
            dof_sum += dof.reshape(nc, nw).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s] = (ss_sum / dof_sum, bins / len(runs))
    return out


def _error(
    model: dict[float, tuple[Float64, Float64]], real: dict[float, tuple[Float64, Float64]]
) -> Float64:
    """Per client: the largest dispersion mismatch over the scales, in units of its tolerance.

    At each scale the mismatch ``|log(model / recorded)|`` is divided by
    ``log(TOLERANCE) + 2 sqrt(2 / bins)``: the recorded dispersion of a few dozen bins is
    itself uncertain (its relative standard error is about ``sqrt(2 / bins)``), so coarse
    scales of short traces are allowed that much more. A model passes at <= 1.
    """
    errs = []
    for s in DISPERSION_SCALES:
        (dm, _), (dr, bins) = model[s], real[s]
        with np.errstate(invalid="ignore", divide="ignore"):
            e = np.abs(np.log(dm / dr)) / (math.log(TOLERANCE) + 2 * np.sqrt(2 / bins))
        errs.append(np.where((bins >= 10) & np.isfinite(e), e, 0.0))
    return np.max(errs, axis=0)


def _simulate(
    par: dict[str, Any], rates: Float64, starts: Float64, widths: Float64, rng: np.random.Generator
) -> Float64:
    """One realization of a client's on/off model, as :func:`~servegen.fit` regenerates it.

    Consecutive windows at one rate are one stretch of one model (its on/off state runs
    on across them, as in the fitted schedule); a new rate starts a new model.
    """
    out = []
    new = np.flatnonzero(np.r_[True, rates[1:] != rates[:-1]])
    for a, b in zip(new, np.r_[new[1:], rates.size], strict=True):
        if rates[a] > 0:
            span = float(starts[b - 1] + widths[b - 1] - starts[a])
            out.append(starts[a] + onoff_model(float(rates[a]), par).sample(0, span, rng=rng))
    return np.concatenate(out) if out else np.empty(0)
