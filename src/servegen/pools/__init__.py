"""Production client pools: the ServeGen release's per-client statistics, ready to sample.

Five pools ship with servegen (compact profiles under ``data/pools``, derived from the
ServeGen release by Alibaba, Apache-2.0): ``language/m-large``, ``language/m-mid``,
``language/m-small`` (14 days) and ``multimodal/mm-image``, ``reason/deepseek-r1``
(1 day). Each client has, per 600 s window, a rate, an inter-arrival CV and a fitted
Gamma/Weibull law, and per 6-hour window its length distributions.

A :class:`Pool` is an immutable view: ``span`` shifts a time range to start at 0,
``filter`` masks client-windows, and ``Workload(pool, rate=...)`` samples it. Client
keys are the upstream chunk numbers (``chunk-12`` is key 12).

Generation semantics: each client-window keeps its recorded rate (scaled by the
workload's target) and its *recorded* CV with the fitted law's family (Gamma or Weibull).
``laws="fitted"`` uses the fitted shape and scale verbatim instead (upstream's generator
used only the fitted shape, which under-states burstiness for windows with CV >= 5).
Windows with no recorded law (rate 0) produce no requests.

Clients whose length file is missing from the release (15 of m-large, 35 of m-mid,
5 of m-small, carrying 29-57 % of the traffic) get length distributions imputed from
the other clients of the same 6-hour window (rate-weighted); ``summary()`` marks them.

>>> import servegen as sg
>>> pool = sg.load_pool("language/m-large")
>>> evening = pool.span(18 * 3600, 19 * 3600)
>>> reqs = sg.Workload(evening, rate=100.0).sample(3600, rng=0)
>>> 95 < len(reqs) / 3600 < 105
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .._base import register_kind
from .._validate import check_number, is_number
from ..arrivals import ArrivalSchedule
from ..attributes import Modality, Multimodal, Reasoning
from ..client import Client
from ..distributions import Constant, Empirical
from ..engine.kernels import GAMMA, RELEASE_LAWS
from ..piecewise import Piecewise
from ._pmf import stats
from ._profiles import LENGTH_WINDOW_S, WINDOW_S, Profile, list_profiles, load_profile

__all__ = ["Pool", "list_pools", "load_pool", "read_release"]

#: release law code -> arrival law name, through the law table (code 0, no law: a silent window)
_LAW_NAMES = {code: row.name for code, row in RELEASE_LAWS.items()}
DAY = 86400.0


def _check_bounds(what: str, lo: Any, hi: Any) -> None:
    """``min_<what>``/``max_<what>`` of :meth:`Pool.filter`: numbers (inf allowed), not NaN, min <= max."""
    for name, v in ((f"min_{what}", lo), (f"max_{what}", hi)):
        if not (v is None or (is_number(v) and not math.isnan(v))):
            raise ValueError(f"Pool.filter: `{name}` must be a number (not NaN) or None, got {v!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"Pool.filter: `min_{what}` must be <= `max_{what}`, got {lo!r} > {hi!r}")


def list_pools() -> pd.DataFrame:
    """The shipped pools: name, clients, span, fields, imputed clients.

    >>> sg.list_pools()["name"].tolist()[:2]
    ['language/m-large', 'language/m-mid']
    """
    rows = [
        {
            "name": m["name"],
            "category": m["category"],
            "clients": m["n_clients"],
            "span_days": m["span_s"] / DAY,
            "windows": m["n_windows"],
            "fields": ", ".join(m["fields"]),
            "imputed_clients": m["n_imputed"],
        }
        for m in list_profiles()
    ]
    return pd.DataFrame(rows)


def load_pool(name: str, *, laws: Literal["recorded", "fitted"] = "recorded") -> Pool:
    """Load a shipped pool by name (``"language/m-large"`` or just ``"m-large"``).

    Works from any directory and offline; profiles are cached after the first load.
    """
    return Pool(load_profile(name), laws=laws)


def read_release(source: Any, pool: str, *, laws: Literal["recorded", "fitted"] = "recorded") -> Pool:
    """A pool read from a ServeGen release (a directory, or its GitHub zip), exact PMFs.

    Use it with the complete release to get every client's own lengths instead of the
    imputed ones, or to check the shipped profiles.

    The source is read as untrusted input: file sizes, line counts, compression ratios
    and member counts are checked against the release format's bounds before anything is
    decompressed, and a malformed or corrupt file raises ``ValueError`` naming the file
    (and the line or window), never another exception.
    """
    from ._profiles import profile_from_release

    return Pool(profile_from_release(source, pool), laws=laws)


class Pool:
    """An immutable view of a production client pool.

    Parameters
    ----------
    profile
        The loaded profile (use :func:`load_pool`).
    laws
        ``"recorded"`` (default): each window's recorded CV with the fitted law's family;
        ``"fitted"``: the fitted shape and scale verbatim (native rate 1/mean of the law).
    """

    def __init__(
        self,
        profile: Profile,
        *,
        laws: Literal["recorded", "fitted"] = "recorded",
        start: float = 0.0,
        end: float | None = None,
        wrap: bool = False,
        mask: NDArray[np.bool_] | None = None,
    ) -> None:
        if laws not in ("recorded", "fitted"):
            raise ValueError(f"Pool: `laws` must be 'recorded' or 'fitted', got {laws!r}")
        self.profile = profile
        self.laws = laws
        self.start = float(start)
        self.end = float(self.data_span if end is None else end)
        self.wrap = wrap
        n_win = self._window_index().size
        self._mask = np.ones((len(profile.client_ids), n_win), dtype=bool) if mask is None else mask

    # -- identity -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def category(self) -> str:
        return self.name.split("/")[0]

    @property
    def data_span(self) -> float:
        """Seconds covered by the release data (14 or 1 days)."""
        return float(self.profile.window_start.size * WINDOW_S)

    @property
    def duration(self) -> float:
        """Seconds covered by this view."""
        return self.end - self.start

    @property
    def keys(self) -> list[int]:
        """Client keys (upstream chunk numbers) of clients active somewhere in the view."""
        return [int(self.profile.client_ids[i]) for i in self._rows()]

    def __repr__(self) -> str:
        return (
            f"<Pool {self.name} [{self.start:g}s, {self.end:g}s) clients={len(self._rows())}"
            f"{' wrap' if self.wrap else ''}{' laws=fitted' if self.laws == 'fitted' else ''}>"
        )

    # -- views --------------------------------------------------------------------
    def span(self, start: float, end: float, *, wrap: bool = False) -> Pool:
        """A view of [``start``, ``end``) seconds of this view, shifted to start at 0.

        Beyond the data's span is an error unless ``wrap=True``, which repeats the data
        day by day (the language pools cover 14 days, the others one day).
        """
        for name, v in (("start", start), ("end", end)):
            check_number(v, name, owner="Pool.span", low=0, unit="seconds")
        if end <= start:
            raise ValueError(f"Pool.span: `end` must be > `start`, got start={start!r}, end={end!r}")
        a, b = self.start + start, self.start + end
        wrap = wrap or self.wrap
        if b > self.end + 1e-9 and not (wrap and self.end == self.data_span and self.start == 0):
            limit = self.end - self.start
            raise ValueError(
                f"Pool.span: end={end!r} s is beyond this view's data ({limit:g} s of {self.name}); "
                "pass wrap=True to repeat the data by day"
            )
        view = Pool(self.profile, laws=self.laws, start=a, end=b, wrap=wrap)
        # carry this view's mask over to the overlapping windows
        if not self._mask.all():
            mine = dict(zip(self._window_index().tolist(), range(self._mask.shape[1]), strict=False))
            cols = [mine.get(w) for w in view._window_index().tolist()]
            view._mask = np.stack(
                [self._mask[:, c] if c is not None else np.ones(self._mask.shape[0], bool) for c in cols],
                axis=1,
            )
        return view

    def check_sample(self, duration: float) -> None:
        """Refuse to sample past this view's end, where its last window would be held on.

        >>> load_pool("multimodal/mm-image").check_sample(2 * 86400)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: sample: `duration`=172800 s runs past the 86400 s of this view of multimodal/mm-image...
        """
        if duration > self.duration + 1e-9:
            raise ValueError(
                f"sample: `duration`={duration:g} s runs past the {self.duration:g} s of this view of "
                f"{self.name} (its last window would be repeated); sample at most {self.duration:g} s, "
                f"or repeat the data by day: load_pool({self.name!r}).span(0, {duration:g}, wrap=True) "
                "(CLI: --wrap)"
            )

    def filter(
        self,
        condition: Callable[[pd.DataFrame], Any] | None = None,
        *,
        min_rate: float | None = None,
        max_rate: float | None = None,
        min_cv: float | None = None,
        max_cv: float | None = None,
        min_mean_input: float | None = None,
        max_mean_input: float | None = None,
        min_mean_output: float | None = None,
        max_mean_output: float | None = None,
        max_input: float | None = None,
        max_output: float | None = None,
        clients: list[int] | None = None,
    ) -> Pool:
        """A view keeping only the client-windows that pass every given test.

        Tests apply per (client, 600 s window), like upstream's filters: rate, CV, the
        mean input/output length of the window's 6-hour distribution, its maximum
        length (p100) and membership in ``clients``. ``condition`` receives the
        :meth:`summary` frame (all windows) and returns a boolean Series/array.
        """
        bounds = {
            "rate": (min_rate, max_rate),
            "cv": (min_cv, max_cv),
            "mean_input": (min_mean_input, max_mean_input),
            "mean_output": (min_mean_output, max_mean_output),
            "input": (None, max_input),
            "output": (None, max_output),
        }
        for what, pair in bounds.items():
            _check_bounds(what, *pair)
        s = self._frame(active_only=False)
        keep = np.ones(len(s), dtype=bool)

        def within(col: str, lo: float | None, hi: float | None) -> None:
            nonlocal keep
            if lo is not None:
                keep &= (s[col] >= lo).to_numpy()
            if hi is not None:
                keep &= (s[col] <= hi).to_numpy()

        within("rate", min_rate, max_rate)
        within("cv", min_cv, max_cv)
        within(f"{self._input_field}_mean", min_mean_input, max_mean_input)
        within("output_tokens_mean", min_mean_output, max_mean_output)
        within(f"{self._input_field}_max", None, max_input)
        within("output_tokens_max", None, max_output)
        if clients is not None:
            unknown = set(clients) - set(self.profile.client_ids.tolist())
            if unknown:
                raise ValueError(f"Pool.filter: unknown client(s) {sorted(unknown)!r} in {self.name}")
            keep &= s["client"].isin(clients).to_numpy()
        if condition is not None:
            res = np.asarray(condition(s), dtype=bool)
            if res.shape != keep.shape:
                raise ValueError(
                    f"Pool.filter: `condition` must return {len(s)} booleans, got shape {res.shape}"
                )
            keep &= res
        view = Pool(self.profile, laws=self.laws, start=self.start, end=self.end, wrap=self.wrap)
        view._mask = self._mask & keep.reshape(self._mask.shape)
        return view

    # -- summaries ----------------------------------------------------------------
    @property
    def _input_field(self) -> str:
        return "text_tokens" if "text_tokens" in self.profile.fields else "input_tokens"

    def summary(self) -> pd.DataFrame:
        """One row per active client-window: rate, cv, law, imputed, length statistics.

        Length columns ``<field>_mean``, ``_p50``, ``_p99``, ``_max`` come from the
        client's 6-hour distribution in force in that window.
        """
        return self._frame(active_only=True)

    def _frame(self, *, active_only: bool) -> pd.DataFrame:
        p = self.profile
        widx = self._window_index()
        rows = np.arange(len(p.client_ids))
        cg, wg = np.meshgrid(rows, np.arange(widx.size), indexing="ij")
        c, w = cg.ravel(), wg.ravel()
        src = widx[w]
        starts = self._piece_times()
        frame: dict[str, Any] = {
            "client": p.client_ids[c],
            "window_start": starts[w],
            "rate": p.rate[c, src].astype(np.float64),
            "cv": p.cv[c, src].astype(np.float64),
            "law": np.array(["none", *_LAW_NAMES.values()])[p.law[c, src]],
            "imputed": p.imputed[c],
        }
        d = src * WINDOW_S // LENGTH_WINDOW_S
        for f in p.fields:
            stats = p.length_stats(f)
            for key in ("mean", "p50", "p99"):
                frame[f"{f}_{key}"] = stats[key][c, d]
            frame[f"{f}_max"] = self._max_table(f)[c, d]
        df = pd.DataFrame(frame)
        if active_only:
            keep = (df["rate"].to_numpy() > 0) & self._mask.ravel()
            df = df[keep].reset_index(drop=True)
        return df

    def _max_table(self, field: str) -> NDArray[np.float64]:
        p = self.profile
        f = p.fields.index(field)
        t = p.tables[f]
        last = np.append(t.values[t.offsets[1:] - 1].astype(np.float64), np.nan)
        return last[p.pmf_id[:, :, f]]

    def cdfs(self) -> pd.DataFrame:
        """Distributions of client statistics per window, as tidy CDF rows.

        Like upstream's ``get_cdfs``: per window start, the CDF across active clients of
        ``rate`` (unweighted) and ``cv`` (weighted by client rate); per 6-hour window,
        of each field's ``mean``/``p50``/``p95``/``p99`` (weighted by client rate).
        Columns: ``metric``, ``stat``, ``window_start``, ``value``, ``cdf``.
        """
        s = self.summary()
        out = []
        for metric, weighted in (("rate", False), ("cv", True)):
            for ws, g in cast("Iterable[tuple[float, pd.DataFrame]]", s.groupby("window_start", sort=True)):
                out.append(
                    _cdf_rows(
                        g[metric].to_numpy(), g["rate"].to_numpy() if weighted else None, metric, "", ws
                    )
                )
        p = self.profile
        widx = self._window_index()
        s["source_window"] = widx[
            np.searchsorted(self._piece_times(), s["window_start"].to_numpy(), side="right") - 1
        ]
        s["length_window"] = s["source_window"] * WINDOW_S // LENGTH_WINDOW_S
        for f in p.fields:
            stats = {**p.length_stats(f), "p95": self._quantile_table(f, 0.95)}
            for d, g in cast("Iterable[tuple[int, pd.DataFrame]]", s.groupby("length_window", sort=True)):
                weights = g.groupby("client")["rate"].mean()  # a client's mean rate over the 6 hours
                rows = np.searchsorted(p.client_ids, weights.index.to_numpy())
                start = float(d * LENGTH_WINDOW_S - self.start)
                for stat in ("mean", "p50", "p95", "p99"):
                    vals = stats[stat][rows, int(d)]
                    ok = np.isfinite(vals)
                    out.append(_cdf_rows(vals[ok], weights.to_numpy()[ok], f, stat, start))
        return pd.concat(out, ignore_index=True)

    def _quantile_table(self, field: str, q: float) -> NDArray[np.float64]:
        """Quantile ``q`` of every (client, length window) PMF, as the profile's p50/p99 are."""
        p = self.profile
        f = p.fields.index(field)
        t = p.tables[f]
        _, quantiles = stats(t.offsets, t.values, t.probs, (q,))
        return np.append(quantiles[:, 0], np.nan)[p.pmf_id[:, :, f]]

    # -- rates --------------------------------------------------------------------
    def aggregate_rate(self) -> pd.Series:
        """The pool's native aggregate rate (req/s) per window start of the view."""
        rate = self._rates()
        return pd.Series(rate.sum(axis=0), index=self._piece_times(), name="rate")

    def constant_rate(self, rate: float) -> dict[float, float]:
        """``{window_start: rate}`` holding ``rate`` everywhere (for ``Workload(rate=...)``)."""
        return {float(t): float(rate) for t in self._piece_times()}

    def scaled_rate(self, factor: float) -> dict[float, float]:
        """The native aggregate rate times ``factor``, per window."""
        rate = self.aggregate_rate()
        return {
            float(t): float(r) * factor for t, r in zip(rate.index.to_numpy(), rate.to_numpy(), strict=True)
        }

    def bounded_rate(self, peak: float) -> dict[float, float]:
        """The native aggregate shape scaled so that its highest window is ``peak`` req/s."""
        agg = self.aggregate_rate()
        top = float(agg.max())
        if top <= 0:
            raise ValueError(f"Pool.bounded_rate: no client is active in {self!r}")
        return self.scaled_rate(peak / top)

    # -- clients ------------------------------------------------------------------
    def to_clients(self) -> dict[int, Client]:
        """``{client key: Client}`` for every client active somewhere in the view."""
        return self.clients

    @cached_property
    def clients(self) -> dict[int, Client]:
        """``{client key: Client}``: Piecewise arrivals per 600 s window, lengths per 6 h."""
        return {int(self.profile.client_ids[i]): self._client(i) for i in self._rows()}

    def to_spec(self) -> dict[str, Any]:
        """A compact JSON description (for ``Workload.to_json``)."""
        if not self._mask.all():
            return {
                "kind": "clients",
                "clients": [[k, c.model_dump(mode="json")] for k, c in self.clients.items()],
            }
        return {"kind": "pool", "name": self.name, "start": self.start, "end": self.end,
                "wrap": self.wrap, "laws": self.laws}  # fmt: skip

    def _rows(self) -> list[int]:
        active = (self._rates() > 0).any(axis=1)
        return np.flatnonzero(active).tolist()

    def _window_index(self) -> NDArray[np.int64]:
        """Source window of each 600 s piece of the view (wrapping by day if asked)."""
        n = self.profile.window_start.size
        first = int(self.start // WINDOW_S)
        last = math.ceil(self.end / WINDOW_S - 1e-9)
        idx = np.arange(first, max(last, first + 1))
        if self.wrap:
            per_day = int(DAY // WINDOW_S)
            days = n // per_day
            idx = idx % (days * per_day)
        elif idx[-1] >= n:
            raise ValueError(f"{self.name}: [{self.start:g}, {self.end:g}) s is beyond the data")
        return idx

    def _piece_times(self) -> NDArray[np.float64]:
        """Start of each piece relative to the view (the first is 0, edges truncated)."""
        first = int(self.start // WINDOW_S)
        t = (first + np.arange(self._window_index().size, dtype=np.float64)) * float(WINDOW_S) - self.start
        t[0] = 0.0
        return t

    def _rates(self) -> NDArray[np.float64]:
        p = self.profile
        idx = self._window_index()
        if self.laws == "fitted":
            rate = _fitted_rate(p.law[:, idx], p.shape[:, idx], p.scale[:, idx])
        else:
            rate = p.rate[:, idx].astype(np.float64)
        return np.where(self._mask & (p.law[:, idx] > 0), rate, 0.0)

    def _client(self, i: int) -> Client:
        p = self.profile
        idx = self._window_index()
        rates = self._rates()[i]
        law = p.law[i, idx]
        if self.laws == "fitted":
            cvs = fitted_cv(law, p.shape[i, idx].astype(np.float64))
        else:
            cvs = p.cv[i, idx].astype(np.float64)
        laws = law_names(law)
        # a recorded CV of 0 with a law (degenerate fit) would be a deterministic stream
        cvs = np.where((law > 0) & ~(cvs > 0), 1.0, np.where(law > 0, cvs, 1.0))
        arrival = ArrivalSchedule(times=self._piece_times(), rates=rates, cvs=cvs, laws=laws)
        lengths = self._lengths(i)
        if p.fields[0] == "text_tokens":  # multimodal pool
            mm = {
                m: Modality(count=lengths[f"{m}_count"], tokens=lengths[f"{m}_tokens"])
                for m in ("image", "audio", "video")
                if f"{m}_count" in lengths
            }
            return Client(arrival=arrival, input_tokens=lengths["text_tokens"],
                          output_tokens=lengths["output_tokens"], multimodal=Multimodal(**mm))  # fmt: skip
        reasoning = Reasoning(ratio=lengths["reason_ratio"]) if "reason_ratio" in lengths else None
        return Client(arrival=arrival, input_tokens=lengths["input_tokens"],
                      output_tokens=lengths["output_tokens"], reasoning=reasoning)  # fmt: skip

    def _lengths(self, i: int) -> dict[str, Any]:
        """Per field, the client's 6-hour PMFs in force over the view (Piecewise)."""
        p = self.profile
        idx = self._window_index()
        d_of_piece = idx * WINDOW_S // LENGTH_WINDOW_S
        change = np.r_[True, d_of_piece[1:] != d_of_piece[:-1]]
        times = self._piece_times()[change]
        ds = d_of_piece[change]
        out = {}
        for f in p.fields:
            models = [self._empirical(i, int(d), f) for d in ds]
            known = [m for m in models if m is not None]
            fallback = known[0] if known else Constant(value=0.0)
            filled = [m if m is not None else fallback for m in models]
            out[f] = filled[0] if len(filled) == 1 else Piecewise(times, filled)
        return out

    def _empirical(self, i: int, d: int, field: str) -> Empirical | None:
        return self.profile.pmf_model(i, d, field, _trusted_empirical)


def _trusted_empirical(values: NDArray[Any], probs: NDArray[np.float64]) -> Empirical:
    # trusted, already validated data: skip re-validation (sorted, distinct, sums to 1)
    return Empirical.model_construct(
        values=_ro(values.astype(np.float64)), probs=_ro(np.asarray(probs, dtype=np.float64))
    )


def _ro(a: NDArray[Any]) -> NDArray[Any]:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def fitted_cv(law: NDArray[np.uint8], shape: NDArray[np.float64]) -> NDArray[np.float64]:
    """CV of inter-arrival times of each fitted law (profile codes: 1 Gamma, 2 Weibull) from its shape.

    1 where there is no law or no shape. Internal API shared with :mod:`servegen.compat`.

    >>> fitted_cv(np.array([1, 2, 0], dtype=np.uint8), np.array([0.25, 1.0, 0.0])).round(3).tolist()
    [2.0, 1.0, 1.0]
    """
    cv = np.ones_like(shape)
    for code, row in RELEASE_LAWS.items():
        m = (law == code) & (shape > 0)
        cv[m] = row.cv(shape[m])
    return cv


def _fitted_rate(
    law: NDArray[np.uint8], shape: NDArray[np.float32], scale: NDArray[np.float32]
) -> NDArray[np.float64]:
    shape, scale = shape.astype(np.float64), scale.astype(np.float64)
    mean = np.zeros_like(shape)
    for code, row in RELEASE_LAWS.items():
        m = law == code
        # a Weibull fit with shape <= 0 counts as shape 1 (as the release's reader always did)
        k = shape[m] if row.code == GAMMA else np.where(shape[m] > 0, shape[m], 1.0)
        with np.errstate(over="ignore"):
            mean[m] = row.mean(k, scale[m])
    with np.errstate(divide="ignore"):
        return np.where(mean > 0, 1 / mean, 0.0)


def _cdf_rows(
    values: NDArray[Any], weights: NDArray[Any] | None, metric: str, stat: str, ws: float
) -> pd.DataFrame:
    order = np.argsort(values, kind="stable")
    v = np.asarray(values, dtype=np.float64)[order]
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)[order]
    total = w.sum()
    cdf = np.cumsum(w) / total if total > 0 else np.zeros_like(v)
    return pd.DataFrame({"metric": metric, "stat": stat, "window_start": ws, "value": v, "cdf": cdf})


def law_names(codes: NDArray[np.uint8]) -> list[str]:
    """``ArrivalSchedule`` law names of profile law codes (0, no law, is ``"poisson"`` at rate 0).

    Internal API shared with :mod:`servegen.compat`.

    >>> law_names(np.array([0, 1, 2], dtype=np.uint8))
    ['poisson', 'gamma', 'weibull']
    """
    return [_LAW_NAMES.get(c, "poisson") for c in codes.tolist()]


def masked_pool(profile: Profile, *, start: float, end: float, keep: NDArray[np.bool_]) -> Pool:
    """The pool of ``profile`` over ``[start, end)`` keeping only the (client, window) cells set in ``keep``.

    ``keep`` has one row per client of the profile and one column per window of the span.
    Internal API of :mod:`servegen.compat`'s filtered views; users filter with
    :meth:`Pool.filter`.
    """
    return Pool(profile, start=start, end=end, mask=keep)


def _pool_from_spec(spec: Mapping[str, Any]) -> Pool:
    pool = load_pool(spec["name"], laws=spec.get("laws", "recorded"))
    if spec.get("start", 0.0) == 0 and spec.get("end") in (None, pool.data_span) and not spec.get("wrap"):
        return pool
    return pool.span(spec.get("start", 0.0), spec["end"], wrap=spec.get("wrap", False))


register_kind("pool", _pool_from_spec)  # a workload spec's {"kind": "pool", ...} clients
