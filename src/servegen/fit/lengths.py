"""Length models: per-segment statistics, compact empirical PMFs, parametric fits.

:func:`length_stats` gives the mean, quantiles and the input/output Spearman
correlation of every (client, window) segment at once; :func:`compact_tables` turns each
segment's values into an equal-mass quantile PMF; :func:`fit_lengths` fits a parametric
law (exponential, log-normal, or the Pareto + log-normal mixture of the ServeGen study)
by maximum likelihood; :func:`per_window_models` makes a :class:`~servegen.Piecewise` of
them per length window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from .._rng import SeedLike, generator
from ..distributions import Clipped, Empirical, Exponential, LogNormal, Mixture, Pareto
from ..piecewise import Piecewise
from ..trace import Trace
from .common import LENGTH_LAWS, PARAMETER_COUNT, Float64, check_choice, check_laws, window_grid

__all__ = ["LENGTH_LAWS", "fit_lengths"]


# -- length statistics -------------------------------------------------------------------
def sort_by_segment(seg: NDArray[np.int64], values: NDArray[np.int64]) -> NDArray[np.intp]:
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


def length_stats(
    seg: NDArray[np.int64],
    nseg: int,
    inp: NDArray[np.int64],
    out: NDArray[np.int64],
    prefix: tuple[str, str],
    orders: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None,
) -> dict[str, Float64]:
    """Mean, p50/p90/p99 of both fields and their Spearman correlation, per segment.

    ``orders`` are the :func:`sort_by_segment` orders of ``inp`` and ``out`` when known.
    """
    cnt = np.bincount(seg, minlength=nseg)
    first = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    res: dict[str, Float64] = {}
    ranks = []
    for j, (vals, name) in enumerate(zip((inp, out), prefix, strict=True)):
        order = sort_by_segment(seg, vals) if orders is None else orders[j]
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


# -- length models -----------------------------------------------------------------------
def compact_tables(
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
        order = sort_by_segment(seg, values)
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


def empirical_model(offsets: NDArray[np.int64], val: Float64, prob: Float64, i: int) -> Empirical:
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
    rng: SeedLike = 0,
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
    laws_t = check_laws(laws, LENGTH_LAWS, "laws")
    check_choice(criterion, "criterion", ("aic", "bic"))
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
    pen = {law: PARAMETER_COUNT[law] * (np.log(x.size) if criterion == "bic" else 2.0) for law in laws_t}
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
        "aic": 2 * PARAMETER_COUNT[law] - 2 * ll,
        "bic": float(PARAMETER_COUNT[law] * np.log(x.size) - 2 * ll),
        "ks": float(stats.ks_1samp(x, model.cdf).statistic),
        **{f"aic_{k}": 2 * PARAMETER_COUNT[k] - 2 * v[1] for k, v in fits.items()},
    }
    return model, info


def per_window_models(
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
    nw, _, _, win = window_grid(tr, lw)
    if nw == 1:
        return overall
    seg = tr.codes.astype(np.int64) * nw + win
    cnt = np.bincount(seg, minlength=nc * nw)
    times = np.arange(nw) * lw
    if lengths == "empirical":
        off, val, prob = compact_tables(seg, nc * nw, vals, max_points)

        def model(s: int) -> Any:
            return empirical_model(off, val, prob, s)
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
