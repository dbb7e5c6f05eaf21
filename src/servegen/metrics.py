"""Workload metrics: burstiness, dispersion, distances, and a side-by-side comparison.

The primitives are small functions on numpy arrays (timestamps in seconds, token counts):

==========================  ============================================================
:func:`iat_cv`              coefficient of variation of inter-arrival times
:func:`dispersion_index`    variance / mean of arrival counts in fixed bins (IDC)
:func:`variance_time`       the IDC at several bin widths (the variance-time curve)
:func:`hurst`               Hurst exponent by the aggregated-variance method
:func:`ks`                  two-sample Kolmogorov-Smirnov statistic and p-value
:func:`wasserstein`         earth mover's distance between two samples
:func:`spearman`            Spearman rank correlation
:func:`clock_resolution`    the logging clock of a trace (ties, batch ticks)
:func:`dequantize`          spread requests sharing a clock tick uniformly inside it
==========================  ============================================================

:func:`compare` puts these side by side for two request streams (a recorded trace and a
synthetic one, or two traces) and returns a :class:`Comparison`. Cache metrics (infinite
cache and LRU block hit rates over ``hash_ids``) belong here too and are left for later.

>>> import numpy as np
>>> t = np.cumsum(np.random.default_rng(0).exponential(0.1, 100_000))
>>> round(iat_cv(t), 2), round(dispersion_index(t, 10.0), 1)
(1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from servegen._rng import SeedLike, generator
from servegen.cache import lru_hit_rate, prefix_hit_rate

from .clock import Quantization, check_seconds, clock_resolution, dequantize, sorted_times
from .trace import Trace, as_trace, client_column

if TYPE_CHECKING:  # matplotlib is imported lazily so `import servegen` stays light
    from matplotlib.figure import Figure

__all__ = [
    "Comparison",
    "Quantization",
    "clock_resolution",
    "compare",
    "dequantize",
    "dispersion_index",
    "hurst",
    "iat_cv",
    "ks",
    "lru_hit_rate",
    "prefix_hit_rate",
    "spearman",
    "variance_time",
    "wasserstein",
]

Float64 = NDArray[np.float64]

#: Bin widths (s) of the dispersion indices :func:`compare` reports.
DISPERSION_BINS = (1.0, 10.0, 60.0, 600.0)


# -- arrival-time primitives ------------------------------------------------------------
def iat_cv(times: ArrayLike) -> float:
    """Coefficient of variation (std / mean, ``ddof=1``) of the gaps between sorted ``times``.

    1 for a Poisson process, above 1 for bursty traffic. NaN with fewer than 3 times
    or when the mean gap is 0.

    >>> iat_cv([0.0, 1.0, 2.0, 3.0])
    0.0
    """
    t = sorted_times(times)
    if t.size < 3:
        return math.nan
    g = np.diff(t)
    m = g.mean()
    return float(g.std(ddof=1) / m) if m > 0 else math.nan


def _counts(t: Float64, width: float, start: float, end: float) -> NDArray[np.int64]:
    """Arrivals in each full bin ``[start + i*width, start + (i+1)*width)`` before ``end``."""
    nbins = math.floor((end - start) / width + 1e-9)
    if nbins <= 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = np.searchsorted(t, [start, start + nbins * width], side="left")
    idx = ((t[lo:hi] - start) // width).astype(np.int64)
    return np.bincount(np.minimum(idx, nbins - 1), minlength=nbins)


def _span(t: Float64, start: float | None, end: float | None) -> tuple[float, float]:
    lo = 0.0 if start is None else float(start)
    hi = (float(t[-1]) if t.size else lo) if end is None else float(end)
    return lo, hi


def dispersion_index(
    times: ArrayLike, bin: float, *, start: float | None = 0.0, end: float | None = None
) -> float:
    """Index of dispersion of counts: variance / mean of arrivals per ``bin`` seconds.

    Only full bins in [``start``, ``end``) count (``end`` defaults to the last time), so a
    short last bin does not read as a lull. 1 for Poisson at any bin width; a renewal
    process tends to ``cv**2`` for wide bins; rate changes raise it further. NaN with fewer
    than 2 full bins or no arrivals.

    >>> dispersion_index([0.5, 1.5, 2.5, 3.5], 1.0, end=4.0)
    0.0
    """
    width = check_seconds(bin, "bin")
    t = sorted_times(times)
    c = _counts(t, width, *_span(t, start, end))
    if c.size < 2 or c.sum() == 0:
        return math.nan
    return float(c.var(ddof=1) / c.mean())


def variance_time(
    times: ArrayLike, bins: ArrayLike, *, start: float | None = 0.0, end: float | None = None
) -> Float64:
    """The variance-time curve: :func:`dispersion_index` at each width in ``bins``.

    A flat curve at 1 is Poisson; a curve that keeps rising with the width is long-range
    dependence or a changing rate.

    >>> t = np.cumsum(np.random.default_rng(1).exponential(0.5, 20_000))
    >>> variance_time(t, [1, 10, 100]).round(1).tolist()
    [1.0, 1.0, 1.0]
    """
    b = np.atleast_1d(np.asarray(bins, dtype=np.float64))
    t = sorted_times(times)
    return np.array([dispersion_index(t, float(w), start=start, end=end) for w in b])


def hurst(
    times: ArrayLike,
    *,
    bin: float = 1.0,
    start: float | None = 0.0,
    end: float | None = None,
    min_blocks: int = 8,
) -> float:
    """Hurst exponent of the count series, by the aggregated-variance method.

    Counts per ``bin`` seconds are averaged over blocks of ``m`` bins for ``m`` on a
    log grid (while at least ``min_blocks`` blocks remain); the variance of the block
    means falls as ``m ** (2H - 2)``, and ``H`` comes from the least-squares slope on log
    axes. 0.5 for short-range-dependent traffic (Poisson, renewal); above 0.5 for
    long-range dependence — or for a rate that drifts over the trace (this estimator
    does not tell the two apart, so compare traces of the same span). NaN when fewer
    than 3 block sizes are available.

    >>> t = np.cumsum(np.random.default_rng(2).exponential(0.2, 100_000))
    >>> round(hurst(t), 1)
    0.5
    """
    width = check_seconds(bin, "bin")
    t = sorted_times(times)
    c = _counts(t, width, *_span(t, start, end)).astype(np.float64)
    if c.size < 3 * min_blocks or c.sum() == 0:
        return math.nan
    ms = np.unique(np.geomspace(1, c.size // min_blocks, 20).astype(np.int64))
    var = np.empty(ms.size)
    for i, m in enumerate(ms):  # one vectorized reshape per block size (<= 20 sizes)
        k = c.size // m
        var[i] = c[: k * m].reshape(k, m).mean(axis=1).var(ddof=1)
    ok = var > 0
    if ok.sum() < 3:
        return math.nan
    slope = np.polyfit(np.log(ms[ok]), np.log(var[ok]), 1)[0]
    return float(1.0 + slope / 2.0)


# -- distances between samples -----------------------------------------------------------
def _sample(x: ArrayLike, name: str) -> Float64:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"`{name}` must not be empty")
    return a


def ks(a: ArrayLike, b: ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (:func:`scipy.stats.ks_2samp`).

    >>> ks([1, 2, 3], [1, 2, 3])
    (0.0, 1.0)
    """
    res = stats.ks_2samp(_sample(a, "a"), _sample(b, "b"))
    return float(res.statistic), float(res.pvalue)


def wasserstein(a: ArrayLike, b: ArrayLike) -> float:
    """Earth mover's distance between two samples, in their unit (:func:`scipy.stats.wasserstein_distance`).

    >>> wasserstein([0, 0, 0], [1, 1, 1])
    1.0
    """
    x, y = _sample(a, "a"), _sample(b, "b")
    if x.size + y.size > 100_000 and np.array_equal(x, np.round(x)) and np.array_equal(y, np.round(y)):
        # Token counts repeat a lot: the same distance from the distinct values weighted
        # by their counts, which is ~4x faster on millions of requests.
        (xv, xc), (yv, yc) = np.unique(x, return_counts=True), np.unique(y, return_counts=True)
        return float(stats.wasserstein_distance(xv, yv, xc, yc))
    return float(stats.wasserstein_distance(x, y))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation of paired samples; NaN when either is constant or n < 3.

    >>> round(spearman([1, 2, 3, 4], [10, 20, 40, 30]), 3)
    0.8
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spearman: `x` and `y` must have the same shape, got {a.shape} and {b.shape}")
    # scipy warns on constant input; answer NaN without a warning instead.
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)


# -- comparison --------------------------------------------------------------------------
def _window_stats(t: Float64, window: float, end: float) -> tuple[Float64, Float64, Float64]:
    """Per window: start, rate (req/s over the covered part), IAT CV of the gaps inside."""
    nw = max(1, math.ceil(end / window - 1e-9))
    starts = np.arange(nw) * window
    widths = np.minimum(starts + window, end) - starts
    w = np.minimum((t // window).astype(np.int64), nw - 1)
    n = np.bincount(w, minlength=nw)
    g = np.diff(t)
    same = w[1:] == w[:-1]
    gw = w[1:][same]
    gs = g[same]
    k = np.bincount(gw, minlength=nw).astype(np.float64)
    s1 = np.bincount(gw, gs, minlength=nw)
    s2 = np.bincount(gw, gs * gs, minlength=nw)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / k
        var = (s2 - k * mean**2) / (k - 1)
        cv = np.where((k >= 2) & (mean > 0), np.sqrt(np.maximum(var, 0)) / mean, np.nan)
        rate = np.where(widths > 0, n / widths, np.nan)
    return (
        np.asarray(starts, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
        np.asarray(cv, dtype=np.float64),
    )


def _shares(tr: Trace) -> pd.Series | None:
    if tr.codes is None:
        return None
    counts = np.bincount(tr.codes, minlength=len(tr.keys))
    return pd.Series(counts / counts.sum(), index=pd.Index([str(k) for k in tr.keys])).sort_values(
        ascending=False
    )


@dataclass
class Comparison:
    """Two request streams side by side (from :func:`compare`).

    Attributes
    ----------
    table
        One row per metric (the index), columns ``a``, ``b``, ``ratio`` (b / a),
        ``distance`` (relative difference ``|b - a| / |a|`` for scalar metrics; the KS
        statistic or Wasserstein distance for distribution rows) and ``note``.
    windows
        Per window: ``start``, ``end``, ``rate_a``, ``rate_b``, ``cv_a``, ``cv_b``.
    names
        Labels of the two streams in figures.
    info
        How each stream was read: quantization, de-quantization, sorting.
    """

    table: pd.DataFrame
    windows: pd.DataFrame
    names: tuple[str, str]
    info: dict[str, Any]
    _data: tuple[Trace, Trace] = field(repr=False)

    def __getitem__(self, metric: str) -> pd.Series:
        """The row of one metric (``cmp["iat_cv"]["b"]``)."""
        if metric not in self.table.index:
            raise KeyError(f"Comparison has no metric {metric!r}; metrics: {', '.join(self.table.index)}")
        row = self.table.loc[metric]
        assert isinstance(row, pd.Series)  # the metrics index is unique
        return row

    def __repr__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_rows", 200):
            return f"Comparison({self.names[0]!r} vs {self.names[1]!r})\n{self.table.drop(columns='note')}"

    def _repr_html_(self) -> str:
        return self.table.to_html()

    def plot(self) -> Figure:
        """A 2x3 matplotlib figure (:func:`servegen.plot.comparison`): rate and gap CV per
        window, IAT CDF (log x), the dispersion curve (variance / mean of counts against
        the bin width, log-log), input and output length CDFs.

        Built on :class:`matplotlib.figure.Figure` (no pyplot state); save it with
        ``fig.savefig(path)``.
        """
        from .plot import comparison

        return comparison(self.windows, *self._data, self.names)


def compare(
    a: Any,
    b: Any,
    window: float = 600.0,
    *,
    names: tuple[str, str] = ("a", "b"),
    dequantize: bool | None = None,
    rng: SeedLike = 0,
) -> Comparison:
    """Compare two request streams: rates, burstiness, lengths, correlation, client shares.

    Parameters
    ----------
    a, b
        Canonical trace DataFrames (``timestamp`` s, ``input_tokens``, ``output_tokens``,
        optional ``client``) or :class:`~servegen.Requests`.
    window
        Seconds per window for the per-window rates and CVs.
    names
        Labels for figures.
    dequantize
        ``None`` (default): spread requests of a stream whose timestamps sit on a coarse
        clock uniformly inside their tick (:func:`~servegen.metrics.clock_resolution`,
        :func:`~servegen.metrics.dequantize`) before gap statistics; ``True``/``False`` force it on/off.
        ``iat_cv_raw`` always reports the raw timestamps.
    rng
        Seed or Generator for the de-quantization spread (default 0: reproducible).

    Returns
    -------
    Comparison
        ``.table`` indexed by metric: ``n_requests``, ``mean_rate``, ``rate_window_mape``
        (mean absolute difference of per-window rates over a's mean rate), ``iat_cv``,
        ``iat_cv_raw``, ``iat_cv_window_median``, ``iat_ks`` (gap laws), ``dispersion_{1,10,60,600}s``,
        ``hurst``, ``{input,output}_tokens_{mean,p50,p90,p99}``,
        ``{input,output}_tokens_ks`` and ``_wasserstein``, ``io_spearman`` and, when both
        have clients, ``n_clients``, ``top{1,5,10}_client_share`` and
        ``client_share_tv`` (total variation between the share vectors, by key).

    Examples
    --------
    >>> import servegen as sg
    >>> c = sg.Client(arrival=sg.Gamma(rate=5, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1),
    ...               output_tokens=sg.Exponential(mean=200))
    >>> cmp = compare(c.sample(1200, rng=1), c.sample(1200, rng=2))
    >>> bool(cmp["input_tokens_ks"]["distance"] < 0.05), bool(abs(cmp["iat_cv"]["ratio"] - 1) < 0.15)
    (True, True)
    """
    w = check_seconds(window, "window")
    gen = generator(rng)
    ta = as_trace(a, client=client_column(a), name="a")
    tb = as_trace(b, client=client_column(b), name="b")
    raw = (iat_cv(ta.timestamp), iat_cv(tb.timestamp))
    ta.dequantize(dequantize, gen)
    tb.dequantize(dequantize, gen)
    end = max(ta.span, tb.span)

    rows: list[tuple[str, float, float, float, str]] = []

    def scalar(metric: str, va: float, vb: float, note: str = "") -> None:
        d = abs(vb - va) / abs(va) if va not in (0, 0.0) and np.isfinite(va) and np.isfinite(vb) else math.nan
        rows.append((metric, float(va), float(vb), d, note))

    def dist(metric: str, d: float, note: str) -> None:
        rows.append((metric, math.nan, math.nan, float(d), note))

    scalar("n_requests", len(ta), len(tb))
    scalar(
        "mean_rate",
        len(ta) / ta.span if ta.span > 0 else math.nan,
        len(tb) / tb.span if tb.span > 0 else math.nan,
    )
    # No window may start after every request: the estimated end (last request + a mean
    # gap) can just cross a window boundary, leaving a sliver of a window with no request
    # whose rate would read 0.
    last = max([float(x.timestamp[-1]) for x in (ta, tb) if len(x)], default=0.0)
    end = min(end, (math.floor(last / w) + 1) * w)
    sa, ra, ca = _window_stats(ta.timestamp, w, end)
    _, rb, cb = _window_stats(tb.timestamp, w, end)
    ends = np.minimum(sa + w, end)
    windows = pd.DataFrame({"start": sa, "end": ends, "rate_a": ra, "rate_b": rb, "cv_a": ca, "cv_b": cb})
    mean_a = float(np.nanmean(ra)) if np.isfinite(ra).any() else math.nan
    dist(
        "rate_window_mape",
        float(np.nanmean(np.abs(rb - ra)) / mean_a) if mean_a > 0 else math.nan,
        f"mean |rate_b - rate_a| / mean rate_a over {w:g} s windows",
    )
    scalar(
        "iat_cv",
        iat_cv(ta.timestamp),
        iat_cv(tb.timestamp),
        "after de-quantization" if (ta.dequantized or tb.dequantized) else "",
    )
    scalar("iat_cv_raw", *raw, "raw timestamps")
    with np.errstate(all="ignore"):
        scalar(
            "iat_cv_window_median",
            float(np.nanmedian(ca)) if np.isfinite(ca).any() else math.nan,
            float(np.nanmedian(cb)) if np.isfinite(cb).any() else math.nan,
        )
    if len(ta) > 1 and len(tb) > 1:  # the gap laws, one against the other
        dist("iat_ks", ks(np.diff(ta.timestamp), np.diff(tb.timestamp))[0], "inter-arrival gaps, ks_2samp")
    for width in DISPERSION_BINS:
        da, db = (dispersion_index(x.timestamp, width, end=end) for x in (ta, tb))
        scalar(f"dispersion_{width:g}s", da, db, "variance / mean of counts in full bins")
    scalar(
        "hurst", hurst(ta.timestamp, end=end), hurst(tb.timestamp, end=end), "aggregated variance, 1 s bins"
    )
    for col in ("input_tokens", "output_tokens"):
        va, vb = getattr(ta, col), getattr(tb, col)
        scalar(f"{col}_mean", va.mean(), vb.mean())
        qa, qb = np.quantile(va, [0.5, 0.9, 0.99]), np.quantile(vb, [0.5, 0.9, 0.99])
        for p, x, y in zip((50, 90, 99), qa, qb, strict=True):
            scalar(f"{col}_p{p}", x, y)
        stat, pval = ks(va, vb)
        dist(f"{col}_ks", stat, f"ks_2samp p={pval:.3g}")
        wd = wasserstein(va, vb)
        dist(
            f"{col}_wasserstein",
            wd,
            f"tokens; {wd / va.mean():.3g} of a's mean" if va.mean() > 0 else "tokens",
        )
    scalar(
        "io_spearman",
        spearman(ta.input_tokens, ta.output_tokens),
        spearman(tb.input_tokens, tb.output_tokens),
    )
    if _has_hash_ids(a) and _has_hash_ids(b):
        scalar("prefix_hit_rate", prefix_hit_rate(a), prefix_hit_rate(b), "infinite prefix cache, by block")
    share_a, share_b = _shares(ta), _shares(tb)
    if share_a is not None and share_b is not None:
        scalar("n_clients", int((share_a > 0).sum()), int((share_b > 0).sum()))
        for k in (1, 5, 10):
            scalar(f"top{k}_client_share", share_a.iloc[:k].sum(), share_b.iloc[:k].sum())
        tv = 0.5 * share_a.sub(share_b, fill_value=0.0).abs().sum()
        dist("client_share_tv", tv, "total variation between client shares, by key")
    table = pd.DataFrame(rows, columns=["metric", "a", "b", "distance", "note"]).set_index("metric")
    with np.errstate(invalid="ignore", divide="ignore"):
        table.insert(2, "ratio", table["b"] / table["a"])
    info = {
        name: {
            "quantization": tr.quantization.as_dict() if tr.quantization else None,
            "dequantized": tr.dequantized,
            "resorted": tr.resorted,
        }
        for name, tr in zip(names, (ta, tb), strict=True)
    }
    return Comparison(table, windows, (str(names[0]), str(names[1])), info, (ta, tb))


def _has_hash_ids(x: Any) -> bool:
    return "hash_ids" in getattr(x, "columns", [])
