"""Standard figures of a request stream (matplotlib, imported only when a figure is drawn).

Every function takes a :class:`~servegen.Requests` or a canonical DataFrame (columns
``timestamp`` in seconds from the start, ``input_tokens``, ``output_tokens``, optional
``client``) and returns a :class:`matplotlib.figure.Figure`. Pass ``ax`` to draw into an
existing axes instead (the function then returns that axes' figure).

Figures are built with :class:`matplotlib.figure.Figure`, not ``pyplot``, so no global
figure registry grows in scripts, servers or the CLI.

>>> import servegen as sg
>>> from servegen import plot
>>> reqs = sg.Workload([sg.Client(arrival=sg.Gamma(rate=5, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1),
...                               output_tokens=sg.Exponential(mean=200))]).sample(600, rng=0)
>>> fig = plot.overview(reqs)
>>> len(fig.axes)
4
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .trace import as_trace, client_column

if TYPE_CHECKING:  # matplotlib is imported lazily so `import servegen` stays light
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DISPERSION_WIDTHS",
    "LENGTH_COLUMNS",
    "client_share",
    "comparison",
    "dispersion_curve",
    "iat_cdf",
    "latency_over_time",
    "length_cdf",
    "overview",
    "rate_over_time",
]

#: Candidate bin widths (s) for rate plots: the smallest that gives <= 200 bins is used.
_MIN_GAP = 1e-6  # s: left end of the inter-arrival axis at the lowest
_NICE_BINS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


@dataclass(frozen=True)
class _Trace:
    timestamp: NDArray[np.float64]
    input_tokens: NDArray[Any]
    output_tokens: NDArray[Any]
    codes: NDArray[np.intp] | None  # client index per request
    names: list[str]  # client label per index
    end: float  # end of the plotted span, seconds
    extra: dict[str, NDArray[Any]]


def _trace(data: Any) -> _Trace:
    """``Requests`` or a canonical DataFrame as sorted numpy columns (:func:`servegen.trace.as_trace`)."""
    if isinstance(data, _Trace):
        return data
    tr = as_trace(data, client=client_column(data), name="plot", extra=True)
    end = max(float(tr.duration or 0.0), float(tr.timestamp[-1]))
    names = [str(k) for k in tr.keys]
    return _Trace(tr.timestamp, tr.input_tokens, tr.output_tokens, tr.codes, names, end, tr.extra)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.0)) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _figure(ax: Axes) -> Figure:
    """The figure ``ax`` draws in (the top-level one when ``ax`` sits in a subfigure)."""
    from matplotlib.figure import Figure

    fig = ax.figure
    return fig if isinstance(fig, Figure) else fig.figure


def _time_unit(span: float) -> tuple[float, str]:
    if span > 3 * 3600:
        return 3600.0, "h"
    if span > 600:
        return 60.0, "min"
    return 1.0, "s"


def bin_edges(end: float, bin: float | None = None) -> NDArray[np.float64]:
    """Edges of the rate bins over ``[0, end]``: width ``bin`` (s), the last one cut at ``end``.

    With ``bin=None`` the width is the smallest of 1 s, 2 s, 5 s, ... 1 day giving at most
    200 bins.

    >>> bin_edges(3600).tolist()[:3], len(bin_edges(3600)) - 1
    ([0.0, 30.0, 60.0], 120)
    >>> bin_edges(25, bin=10).tolist()
    [0.0, 10.0, 20.0, 25.0]
    """
    if bin is None:
        bin = float(next((b for b in _NICE_BINS if end / b <= 200), _NICE_BINS[-1]))
    if not (np.isfinite(bin) and bin > 0):
        raise ValueError(f"plot: `bin` must be a finite number of seconds > 0, got {bin!r}")
    edges = np.arange(0.0, end, bin)
    return np.append(edges, end) if end > 0 else np.array([0.0, bin])


def _top(tr: _Trace, top: int) -> tuple[NDArray[np.intp], list[str]]:
    """Indices of the ``top`` clients by request count (largest first) and their labels."""
    assert tr.codes is not None
    counts = np.bincount(tr.codes, minlength=len(tr.names))
    order = np.argsort(-counts, kind="stable")[:top]
    return order, [tr.names[i] for i in order]


def rate_over_time(data: Any, *, bin: float | None = None, top: int = 0, ax: Axes | None = None) -> Figure:
    """Request rate (req/s) per time bin; with ``top=k``, stacked by the k largest clients.

    The rate of a bin is its request count divided by its width (the last bin may be
    shorter). Clients outside the top ``k`` are stacked together as ``other``.

    >>> import servegen as sg
    >>> reqs = sg.Workload([sg.Client(arrival=sg.Deterministic(rate=2), input_tokens=1,
    ...                               output_tokens=1)]).sample(100, rng=0)
    >>> step = rate_over_time(reqs, bin=10).axes[0].patches[0]
    >>> step.get_data().values.tolist() == [2.0] * 10
    True
    """
    tr = _trace(data)
    edges = bin_edges(tr.end, bin)
    widths = np.diff(edges)
    unit, label = _time_unit(tr.end)
    ax = _axes(ax)
    if top > 0 and tr.codes is not None and len(tr.names) > 1:
        idx, names = _top(tr, top)
        bins = np.searchsorted(edges, tr.timestamp, side="right") - 1
        bins = np.clip(bins, 0, len(widths) - 1)  # a point exactly at `end` joins the last bin
        # one 2-D bincount: row = client, column = time bin
        hits = np.bincount(tr.codes * len(widths) + bins, minlength=len(tr.names) * len(widths))
        grid = hits.reshape(len(tr.names), len(widths)) / widths
        layers = [grid[i] for i in idx]
        if len(idx) < len(tr.names):
            layers.append(grid.sum(axis=0) - np.sum(layers, axis=0))
            names = [*names, "other"]
        base = np.zeros(len(widths))
        for values, name in zip(layers, names, strict=True):
            ax.stairs(base + values, edges / unit, baseline=base, fill=True, label=name, alpha=0.85)
            base = base + values
        ax.legend(
            fontsize="small", title="client", ncols=len(names) if len(names) <= 6 else 6, loc="upper center"
        )
        ax.set_ylim(top=1.3 * float(base.max() or 1.0))  # room for the legend above the stack
    else:
        counts, _ = np.histogram(tr.timestamp, bins=edges)
        ax.stairs(counts / widths, edges / unit, color="C0", linewidth=1.2)
    ax.set_xlabel(f"time ({label})")
    ax.set_ylabel(f"rate (req/s, {widths[0]:g} s bins)")
    ax.set_xlim(0, tr.end / unit)
    ax.set_ylim(bottom=0)
    ax.set_title("Arrival rate")
    return _figure(ax)


def iat_cdf(data: Any, *, ax: Axes | None = None) -> Figure:
    """CDF of the aggregate inter-arrival times on a log time axis, against Poisson.

    The dashed line is the exponential CDF with the same mean, i.e. what a Poisson stream
    of the same rate would show; a wider curve means burstier arrivals. Zero gaps (equal
    timestamps) count in the CDF but cannot be drawn on a log axis; the axis starts at
    1 microsecond at the lowest, so the curve's height at the left edge is the share of
    shorter gaps.

    >>> import servegen as sg
    >>> reqs = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=1,
    ...                               output_tokens=1)]).sample(60, rng=0)
    >>> line = iat_cdf(reqs).axes[0].lines[0]
    >>> bool(line.get_ydata()[-1] == 1.0)
    True
    """
    tr = _trace(data)
    gaps = np.diff(tr.timestamp)
    if gaps.size == 0:
        raise ValueError("plot: inter-arrival times need at least 2 requests")
    ax = _axes(ax)
    mean = float(gaps.mean())
    cv = float(gaps.std() / mean) if mean > 0 else float("nan")
    ax.ecdf(gaps, label=f"trace (CV {cv:.2f})")
    positive = gaps[gaps > 0]
    if positive.size and mean > 0:
        x = np.geomspace(positive.min(), positive.max(), 200)
        ax.plot(x, -np.expm1(-x / mean), "--", color="0.4", label="Poisson, same rate")
        ax.set_xscale("log")
        # Very bursty models put mass at gaps of 1e-15 s; start the axis at 1 us so the
        # useful range stays readable (the curve's height there shows the mass below).
        ax.set_xlim(left=max(float(positive.min()) / 1.5, _MIN_GAP))
    ax.set_xlabel("inter-arrival time (s)")
    ax.set_ylabel("CDF")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title("Inter-arrival times")
    return _figure(ax)


#: Token columns drawn by default when present (multimodal totals, reasoning split).
LENGTH_COLUMNS = ("input_tokens", "input_tokens_total", "output_tokens", "reasoning_tokens")


def length_cdf(data: Any, *, columns: Sequence[str] | None = None, ax: Axes | None = None) -> Figure:
    """CDFs of token counts on a log axis.

    ``columns=None`` draws those of :data:`LENGTH_COLUMNS` the data has: input and
    output tokens, plus ``input_tokens_total`` (text and item tokens) for multimodal
    requests and ``reasoning_tokens`` for reasoning models.

    >>> import servegen as sg
    >>> reqs = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=400,
    ...                               output_tokens=50)]).sample(60, rng=0)
    >>> [line.get_label() for line in length_cdf(reqs).axes[0].lines]
    ['input_tokens (median 400)', 'output_tokens (median 50)']
    """
    tr = _trace(data)
    found = {"input_tokens": tr.input_tokens, "output_tokens": tr.output_tokens, **tr.extra}
    if columns is None:
        columns = [c for c in LENGTH_COLUMNS if c in found]
    unknown = [c for c in columns if c not in found]
    if unknown:
        raise ValueError(f"plot: unknown length column(s) {unknown!r}; columns are {list(found)!r}")
    ax = _axes(ax)
    for name in columns:
        values = np.asarray(found[name], dtype=np.float64)
        ax.ecdf(values, label=f"{name} (median {np.median(values):g})")
    if any((np.asarray(found[c]) > 0).any() for c in columns):
        ax.set_xscale("log")
    ax.set_xlabel("tokens")
    ax.set_ylabel("CDF")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title("Request lengths")
    return _figure(ax)


def client_share(data: Any, *, top: int = 10, ax: Axes | None = None) -> Figure:
    """Share of requests (%) of the ``top`` largest clients, the rest as ``other``.

    >>> import servegen as sg
    >>> c = lambda r: sg.Client(arrival=sg.Deterministic(rate=r), input_tokens=1, output_tokens=1)
    >>> reqs = sg.Workload({"a": c(3), "b": c(1)}).sample(100, rng=0)
    >>> bars = client_share(reqs).axes[0].patches
    >>> [float(b.get_width()) for b in bars]
    [75.0, 25.0]
    """
    tr = _trace(data)
    ax = _axes(ax)
    if tr.codes is None:
        shares, names = np.array([100.0]), ["(no client column)"]
    else:
        idx, names = _top(tr, top)
        counts = np.bincount(tr.codes, minlength=len(tr.names))
        shares = 100.0 * counts[idx] / tr.timestamp.size
        if len(idx) < len(tr.names):
            shares = np.append(shares, 100.0 - shares.sum())
            names = [*names, f"other ({len(tr.names) - len(idx)})"]
    y = np.arange(len(names))
    ax.barh(y, shares, color="C1")
    ax.set_yticks(y, names, fontsize="small")
    ax.invert_yaxis()  # largest client on top
    ax.set_xlabel("share of requests (%)")
    ax.set_title(f"Clients ({len(tr.names) or 1})")
    return _figure(ax)


def overview(data: Any, *, bin: float | None = None, top: int = 5, fig: Figure | None = None) -> Figure:
    """The standard 2x2 figure: rate over time, inter-arrival CDF, length CDFs, client shares.

    This is the figure ``servegen plot`` writes. Pass an empty ``fig`` to draw into it
    (e.g. ``plt.figure(figsize=(12, 8), layout="constrained")`` for pyplot to show).
    """
    from matplotlib.figure import Figure

    tr = _trace(data)  # normalized once, shared by the four panels
    if fig is None:
        fig = Figure(figsize=(12, 8), layout="constrained")
    elif fig.axes:
        raise ValueError("plot.overview: `fig` must be an empty figure")
    axes = fig.subplots(2, 2)
    rate_over_time(tr, bin=bin, top=top, ax=axes[0, 0])
    iat_cdf(tr, ax=axes[0, 1])
    length_cdf(tr, ax=axes[1, 0])
    client_share(tr, top=10, ax=axes[1, 1])
    n = tr.timestamp.size
    fig.suptitle(f"{n:,} requests over {tr.end:,.0f} s ({n / tr.end if tr.end else float('nan'):.2f} req/s)")
    return fig


#: Bin widths (s) of :func:`dispersion_curve`: 0.1 s to 1 h on a log grid.
DISPERSION_WIDTHS = tuple(float(w) for w in np.geomspace(0.1, 3600.0, 24).round(3))


def dispersion_curve(
    *data: Any,
    labels: Sequence[str] | None = None,
    widths: Sequence[float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Dispersion of counts (variance / mean per bin) against the bin width, log-log.

    One curve per stream in ``data`` (``Requests``, canonical DataFrames or arrays of
    timestamps; e.g. a recorded trace and its regeneration). Poisson
    traffic is flat at 1; a renewal process rises to its gap CV² and stays there; on/off
    bursts keep rising up to the silences' time scale. Widths leaving fewer than 4 full
    bins are skipped.

    >>> import servegen as sg
    >>> reqs = sg.Client(arrival=sg.Poisson(rate=5), input_tokens=1, output_tokens=1).sample(600, rng=0)
    >>> ax = dispersion_curve(reqs, labels=["poisson"]).axes[0]
    >>> ax.get_xscale(), ax.get_yscale(), ax.get_legend().get_texts()[0].get_text()
    ('log', 'log', 'poisson')
    """
    from .metrics import dispersion_index

    if not data:
        raise ValueError("plot.dispersion_curve: give at least one stream")
    names = list(labels) if labels is not None else [f"stream {i + 1}" for i in range(len(data))]
    if len(names) != len(data):
        raise ValueError(
            f"plot.dispersion_curve: `labels` must have one entry per stream ({len(data)}), got {names!r}"
        )
    ws = np.asarray(widths if widths is not None else DISPERSION_WIDTHS, dtype=np.float64)
    ax = _axes(ax)
    for d, name in zip(data, names, strict=True):
        if isinstance(d, (np.ndarray, list, tuple)):  # bare timestamps
            t = np.sort(np.asarray(d, dtype=np.float64))
            tr = _Trace(t, t[:0], t[:0], None, [], float(t[-1]) if t.size else 0.0, {})
        else:
            tr = _trace(d)
        use = ws[tr.end / ws >= 4]
        y = np.array([dispersion_index(tr.timestamp, float(w), end=tr.end) for w in use])
        ok = np.isfinite(y) & (y > 0)
        ax.plot(use[ok], y[ok], marker=".", label=name)
    ax.axhline(1.0, ls=":", color="0.5", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="bin width (s)", ylabel="variance / mean of counts")
    ax.set_title("Dispersion of counts")
    ax.legend(fontsize="small")
    return _figure(ax)


def comparison(windows: pd.DataFrame, a: Any, b: Any, names: Sequence[str]) -> Figure:
    """The figure of :meth:`servegen.Comparison.plot`: two streams side by side, 2x3 panels.

    Rate per window, inter-arrival CDFs (log x), the dispersion curve (log-log), per-window
    gap CV, and the input and output length CDFs. ``a`` and ``b`` have ``timestamp``,
    ``input_tokens`` and ``output_tokens`` arrays; ``windows`` has ``start``, ``end``,
    ``rate_a``, ``rate_b``, ``cv_a`` and ``cv_b``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 8), layout="constrained")
    axes = fig.subplots(2, 3)
    edges = np.append(windows["start"].to_numpy(), windows["end"].iloc[-1])
    for ax, pair, ylabel, title in (
        (axes[0, 0], ("rate_a", "rate_b"), "requests / s", "rate per window"),
        (axes[1, 0], ("cv_a", "cv_b"), "inter-arrival CV", "gap CV per window"),
    ):
        for col, label in zip(pair, names, strict=True):
            ax.stairs(np.nan_to_num(windows[col].to_numpy()), edges, baseline=None, label=label)
        ax.set(xlabel="time (s)", ylabel=ylabel, title=title)
        ax.legend()
    levels = np.linspace(0.0, 1.0, 513)[1:-1]  # quantile grid: cheap for 10 M requests
    ax = axes[0, 1]
    for tr, label in zip((a, b), names, strict=True):
        g = np.diff(tr.timestamp)
        g = g[g > 0]
        if g.size:
            ax.plot(np.quantile(g, levels), levels, label=label)
    ax.set(xscale="log", xlabel="inter-arrival time (s)", ylabel="CDF", title="inter-arrival times")
    ax.legend()
    end = float(max(a.timestamp[-1], b.timestamp[-1]))
    streams = [_Trace(tr.timestamp, tr.input_tokens, tr.output_tokens, None, [], end, {}) for tr in (a, b)]
    dispersion_curve(*streams, labels=names, ax=axes[0, 2])
    axes[0, 2].set_title("dispersion of counts")
    for ax, col, title in (
        (axes[1, 1], "input_tokens", "input length"),
        (axes[1, 2], "output_tokens", "output length"),
    ):
        for tr, label in zip((a, b), names, strict=True):
            v = getattr(tr, col)
            ax.plot(np.maximum(np.quantile(v, levels), 0.5), levels, label=label)
        ax.set(xscale="log", xlabel="tokens", ylabel="CDF", title=title)
        ax.legend()
    return fig


def latency_over_time(
    results: pd.DataFrame,
    *,
    metric: str = "e2e",
    bin: float | None = None,
    quantiles: Sequence[float] = (0.5, 0.99),
    fig: Figure | None = None,
) -> Figure:
    """A replay's latency against its arrival rate, bin by bin (two stacked panels).

    ``results`` is :func:`servegen.read_results` output: arrivals are the sent
    ``timestamp`` (or the tool's ``start`` when not joined); the lower panel shows the
    ``quantiles`` of ``metric`` (``ttft``, ``tpot`` or ``e2e``, seconds) over the
    successful requests that arrived in each bin, so a burst and the latency it causes
    line up.

    >>> import pandas as pd
    >>> res = pd.DataFrame({"timestamp": [0.0, 1.0, 2.0, 3.0], "e2e": [0.1, 0.3, 0.2, 0.2],
    ...                     "ok": [True, True, True, True]})
    >>> fig = latency_over_time(res, bin=2)
    >>> fig.axes[1].lines[0].get_ydata().tolist()  # median e2e of each 2 s bin
    [0.2, 0.2]
    """
    if metric not in ("ttft", "tpot", "e2e"):
        raise ValueError(f"plot: `metric` must be 'ttft', 'tpot' or 'e2e', got {metric!r}")
    time_col = "timestamp" if "timestamp" in results.columns else "start"
    t = results[time_col].to_numpy(dtype=np.float64)
    if not np.isfinite(t).any():
        raise ValueError("plot: the results carry no arrival times (join them to the sent workload)")
    t = t - np.nanmin(t)
    edges = bin_edges(float(np.nanmax(t)), bin)
    widths = np.diff(edges)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(widths) - 1)
    unit, label = _time_unit(float(edges[-1]))
    if fig is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    rate_ax, lat_ax = fig.subplots(2, 1, sharex=True)
    rate_ax.stairs(np.bincount(idx, minlength=len(widths)) / widths, edges / unit, color="C0")
    rate_ax.set_ylabel(f"arrivals (req/s, {widths[0]:g} s bins)")
    rate_ax.set_ylim(bottom=0)
    rate_ax.set_title(f"Arrival rate and {metric} latency")
    ok = results["ok"].to_numpy(dtype=bool) if "ok" in results.columns else np.ones(len(t), bool)
    values = pd.Series(results[metric].to_numpy(dtype=np.float64)[ok])
    by_bin = (
        values.groupby(idx[ok])
        .quantile(np.asarray(quantiles, np.float64))
        .unstack()
        .reindex(range(len(widths)))
    )
    centers = (edges[:-1] + edges[1:]) / 2 / unit
    for i, q in enumerate(quantiles):
        lat_ax.plot(
            centers, by_bin.iloc[:, i].to_numpy(), marker=".", color=f"C{i + 1}", label=f"p{q * 100:g}"
        )
    lat_ax.set_ylabel(f"{metric} (s)")
    lat_ax.set_xlabel(f"arrival time ({label})")
    lat_ax.legend(fontsize="small")
    return fig


def save(fig: Figure, path: Any, **kwargs: Any) -> Any:
    """Save ``fig`` atomically (temporary file renamed on success); format from the suffix.

    Returns the written :class:`~pathlib.Path`.
    """
    from pathlib import Path

    from ._atomic import atomic_write

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    kwargs.setdefault("dpi", 110)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))
