"""Two request streams side by side: :func:`compare` and its :class:`Comparison`.

The statistics come from :mod:`servegen.metrics` (burstiness, dispersion, distances)
and :mod:`servegen.cache`; :meth:`Comparison.plot` draws them with
:func:`servegen.plot.comparison`. This module sits above both (the plots layer of
docs/architecture.md), so the metrics never import the plots.

>>> import servegen as sg
>>> c = sg.Client(arrival=sg.Poisson(rate=5), input_tokens=100, output_tokens=9)
>>> cmp = compare(c.sample(600, rng=1), c.sample(600, rng=2))
>>> bool(cmp["n_requests"]["a"] > 0), list(cmp.windows.columns)[:4]
(True, ['start', 'end', 'rate_a', 'rate_b'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._rng import SeedLike, generator
from .cache import prefix_hit_rate
from .clock import check_seconds
from .metrics import dispersion_index, hurst, iat_cv, ks, spearman, wasserstein, window_stats
from .plot import comparison as draw_comparison  # matplotlib itself loads on the first figure
from .trace import Trace, as_trace, client_column

if TYPE_CHECKING:  # matplotlib is imported lazily so `import servegen` stays light
    from matplotlib.figure import Figure

__all__ = ["DISPERSION_BINS", "Comparison", "compare"]

#: Bin widths (s) of the dispersion indices :func:`compare` reports.
DISPERSION_BINS = (1.0, 10.0, 60.0, 600.0)


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
        return draw_comparison(self.windows, *self._data, self.names)


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
    sa, ra, ca = window_stats(ta.timestamp, w, end)
    _, rb, cb = window_stats(tb.timestamp, w, end)
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
