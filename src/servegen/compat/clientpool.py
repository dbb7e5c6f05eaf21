"""Upstream's ``Client``, ``ClientPool`` and ``ClientPoolView``, computed on arrays.

A pool is ``(category, model)``: ``ClientPool(Category.LANGUAGE, "m-large")`` reads the
profile shipped with servegen (from any directory, offline), ``ClientPool.from_clients``
takes hand-made ``Client`` objects. Views (``span``, ``filter*``) are immutable: each call
returns a new view. Built-in filters, ``get_cdfs`` and the rate functions are vectorized
over the (client x window) arrays; only a custom ``filter(condition)`` and ``get()``
build one ``ClientWindow`` per window, as upstream's interface requires.

>>> from servegen.compat import Category, ClientPool
>>> pool = ClientPool(Category.LANGUAGE, "m-large")
>>> view = pool.span(72000, 75600).filter_by_cv(0.5, 1.5).filter_by_max_output_len(2000)
>>> cdfs = view.get_cdfs()
>>> sorted(cdfs["rate"]), sorted(cdfs["input_tokens"])
([0, 600, 1200, 1800, 2400, 3000], ['avg', 'p50', 'p95', 'p99'])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servegen._validate import is_number
from servegen.arrivals import ArrivalSchedule
from servegen.attributes import MODALITIES, Modality, Multimodal, Reasoning
from servegen.client import Client as NativeClient
from servegen.distributions import Empirical
from servegen.engine.kernels import RELEASE_NAMES
from servegen.piecewise import Piecewise
from servegen.pools import fitted_cv, law_names, masked_pool
from servegen.pools._profiles import list_profiles

from ._client import Client
from ._tables import (
    ProfileDataset,
    ProfilePdfs,
    ProfileTrace,
    as_number,
    compact_pdf,
    grouped_cdfs,
    profile_tables,
    tables_from_clients,
)
from .workload_types import Category, ClientWindow

__all__ = ["Client", "ClientPool", "ClientPoolView"]


# -- filters -------------------------------------------------------------------------------
class _Filter:
    """A built-in filter: callable on a ``ClientWindow`` like upstream's, plus a mask."""

    def mask(self, ev: _Eval) -> NDArray[np.bool_]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, window: ClientWindow) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class _CVFilter(_Filter):
    lo: float
    hi: float

    def mask(self, ev: _Eval) -> NDArray[np.bool_]:
        cv = ev.arr("cv")
        return (cv >= self.lo) & (cv <= self.hi)

    def __call__(self, window: ClientWindow) -> bool:
        return window.cv is not None and self.lo <= window.cv <= self.hi


@dataclass(frozen=True)
class _LengthFilter(_Filter):
    """Mean length in [lo, hi] (``stat="avg"``) or largest length <= hi (``stat="max"``)."""

    field: str | None
    stat: str
    lo: float
    hi: float

    def mask(self, ev: _Eval) -> NDArray[np.bool_]:
        if self.field is None:
            return np.zeros(ev.shape, dtype=bool)
        v = ev.stat(self.field, self.stat)  # NaN where the window has no such pdf
        return (v >= self.lo) & (v <= self.hi)

    def __call__(self, window: ClientWindow) -> bool:
        ds = window.dataset
        if not ds or self.field is None or self.field not in ds:
            return False
        values, probs = (
            ds.compact(self.field) if isinstance(ds, ProfilePdfs) else compact_pdf(self.field, ds[self.field])
        )
        v = float(values @ probs) if self.stat == "avg" else float(values[-1])
        return self.lo <= v <= self.hi


def _bound(owner: str, name: str, v: Any) -> float:
    if not (is_number(v) and not math.isnan(v)):
        raise ValueError(f"{owner}: `{name}` must be a number, got {v!r}")
    return float(v)


def _range(owner: str, names: tuple[str, str], lo: Any, hi: Any) -> tuple[float, float]:
    lo, hi = _bound(owner, names[0], lo), _bound(owner, names[1], hi)
    if lo > hi:
        raise ValueError(f"{owner}: `{names[0]}` must be <= `{names[1]}`, got {lo!r} > {hi!r}")
    return lo, hi


# -- views -----------------------------------------------------------------------------------
class _Views:
    """The view methods shared by ``ClientPool`` (over all its data) and ``ClientPoolView``."""

    def _view(self) -> ClientPoolView:  # pragma: no cover - abstract
        raise NotImplementedError

    def filter(self, condition: Callable[[ClientWindow], bool]) -> ClientPoolView:
        """A view keeping the windows for which ``condition(window)`` is true.

        ``condition`` sees each window that passed the earlier filters (upstream's
        short-circuit order). Returns a new view; the one called on is unchanged.
        """
        if not callable(condition):
            raise TypeError(f"filter: `condition` must be callable (ClientWindow -> bool), got {condition!r}")
        v = self._view()
        return ClientPoolView(v.pool, v.start_time, v.end_time, (*v.filters, condition))

    def filter_by_cv(self, min_cv: float, max_cv: float) -> ClientPoolView:
        """Windows whose inter-arrival CV lies in [``min_cv``, ``max_cv``]."""
        return self.filter(_CVFilter(*_range("filter_by_cv", ("min_cv", "max_cv"), min_cv, max_cv)))

    def filter_by_avg_input_len(self, min_len: float, max_len: float) -> ClientPoolView:
        """Windows whose mean input length (text tokens for multimodal) is in range."""
        lo, hi = _range("filter_by_avg_input_len", ("min_len", "max_len"), min_len, max_len)
        return self.filter(_LengthFilter(self._view().pool._input_field, "avg", lo, hi))

    def filter_by_avg_output_len(self, min_len: float, max_len: float) -> ClientPoolView:
        """Windows whose mean output length is in [``min_len``, ``max_len``]."""
        lo, hi = _range("filter_by_avg_output_len", ("min_len", "max_len"), min_len, max_len)
        return self.filter(_LengthFilter(self._view().pool._field("output_tokens"), "avg", lo, hi))

    def filter_by_max_input_len(self, max_len: float) -> ClientPoolView:
        """Windows whose longest possible input is <= ``max_len``."""
        hi = _bound("filter_by_max_input_len", "max_len", max_len)
        return self.filter(_LengthFilter(self._view().pool._input_field, "max", -math.inf, hi))

    def filter_by_max_output_len(self, max_len: float) -> ClientPoolView:
        """Windows whose longest possible output is <= ``max_len``."""
        hi = _bound("filter_by_max_output_len", "max_len", max_len)
        return self.filter(_LengthFilter(self._view().pool._field("output_tokens"), "max", -math.inf, hi))

    def get(self) -> list[ClientWindow]:
        """Every window that passed the filters, of clients with a request somewhere."""
        ev = self._view()._eval
        out: list[ClientWindow] = []
        for c in np.flatnonzero(ev.included).tolist():
            out += ev.windows(c, np.flatnonzero(ev.keep[c]))
        return out

    def get_cdfs(self) -> dict[str, Any]:
        """Per window start, CDFs across clients: ``{"rate": {t: (values, probs)}, ...}``.

        ``rate`` is unweighted; ``cv`` and every dataset field's ``avg``/``p50``/``p95``/
        ``p99`` (``cdfs[field][stat][t]``) are weighted by the client's rate in the window.
        """
        return self._view()._eval.cdfs()

    def to_clients(self) -> dict[int, NativeClient]:
        """The view as native ``servegen.Client`` objects (so ``sg.Workload(view)`` works)."""
        return self._view()._eval.native_clients()


class ClientPool(_Views):
    """A pool of clients of one ``(category, model)``.

    Parameters
    ----------
    category, model
        ``Category.LANGUAGE`` with ``"m-large"``, ``"m-mid"``, ``"m-small"``;
        ``Category.MULTIMODAL`` with ``"mm-image"``; ``Category.REASON`` with
        ``"deepseek-r1"`` — the profiles shipped with servegen.
    clients
        ``{client_id: Client}`` to build a custom pool instead (validated).
    include_imputed
        Embedded pools only. ``False`` drops the clients whose length file is missing
        from the release (upstream skipped them; servegen imputes their lengths).
    """

    def __init__(
        self,
        category: Category | str,
        model: str,
        clients: Mapping[int, Client] | None = None,
        *,
        include_imputed: bool = True,
    ) -> None:
        self.category = _category(category)
        self.model = model
        if clients is None:
            base = profile_tables(_pool_name(self.category, model))
            assert base.profile is not None
            rows = (
                np.arange(base.client_ids.size) if include_imputed else np.flatnonzero(~base.profile.imputed)
            )
            self._tables = base if rows.size == base.client_ids.size else base.subset(rows)
            self._list = [
                Client(int(base.client_ids[r]), ProfileTrace(base, r), ProfileDataset(base, r))
                for r in rows.tolist()
            ]
        else:
            if not include_imputed:
                raise ValueError("ClientPool: `include_imputed` applies to embedded pools, not to `clients`")
            if not isinstance(clients, Mapping):
                raise TypeError(
                    f"ClientPool: `clients` must be a dict of client_id -> Client, got {clients!r}"
                )
            for key, c in clients.items():
                if not isinstance(c, Client):
                    raise TypeError(f"ClientPool: `clients[{key!r}]` must be a Client, got {c!r}")
                if key != c.client_id:
                    raise ValueError(
                        f"ClientPool: `clients[{key!r}]` has client_id {c.client_id!r}; keys must equal ids"
                    )
            self._list = list(clients.values())
            self.validate()
            self._tables = tables_from_clients(self._list)
        self.clients: Mapping[int, Client] = MappingProxyType({c.client_id: c for c in self._list})

    @classmethod
    def from_clients(cls, category: Category | str, model: str, clients: list[Client]) -> ClientPool:
        """A pool of the given clients; a repeated ``client_id`` is an error."""
        seen: set[int] = set()
        for c in clients:
            if not isinstance(c, Client):
                raise TypeError(f"ClientPool.from_clients: expected Client objects, got {c!r}")
            if c.client_id in seen:
                raise ValueError(
                    f"ClientPool.from_clients: duplicate client_id {c.client_id!r}; ids must be unique"
                )
            seen.add(c.client_id)
        return cls(category, model, clients={c.client_id: c for c in clients})

    def validate(self) -> None:
        """Check every client, that all share trace timestamps, and that each dataset
        timestamp is a trace timestamp."""
        if not self._list:
            raise ValueError("ClientPool: `clients` must not be empty")
        for c in self._list:
            c.validate()
        first = self._list[0]
        expected = list(first.trace)
        known = set(expected)
        for c in self._list[1:]:
            got = list(c.trace)
            if got != expected:
                missing, extra = sorted(known - set(got)), sorted(set(got) - known)
                raise ValueError(
                    f"ClientPool: client {c.client_id!r} has trace timestamps differing from client "
                    f"{first.client_id!r} (missing {missing[:6]!r}, extra {extra[:6]!r}); all clients "
                    "must share the same trace timestamps"
                )
        for c in self._list:
            extra = sorted(set(c.dataset) - known)
            if extra:
                raise ValueError(
                    f"ClientPool: client {c.client_id!r} has dataset timestamps {extra[:6]!r} that are not "
                    "trace timestamps; dataset timestamps must be a subset of the trace timestamps"
                )

    def span(self, start_time: float, end_time: float) -> ClientPoolView:
        """A view of [``start_time``, ``end_time``) seconds, shifted so it starts at 0."""
        return ClientPoolView(self, start_time, end_time)

    def _view(self) -> ClientPoolView:
        return ClientPoolView(self, 0, math.inf)

    def __repr__(self) -> str:
        return f"<ClientPool {self.category.value}/{self.model}: {len(self._list)} clients>"

    @property
    def _input_field(self) -> str | None:
        fields = self._tables.fields
        return "input_tokens" if "input_tokens" in fields else self._field("text_tokens")

    def _field(self, name: str) -> str | None:
        return name if name in self._tables.fields else None


class ClientPoolView(_Views):
    """A time range of a pool (shifted to start at 0) with filters; immutable.

    Windows are the pool's trace windows that overlap [``start_time``, ``end_time``),
    truncated at the edges. Embedded pools end where their data ends: asking past it is
    an error. A custom pool's last trace window holds on indefinitely (as upstream).
    """

    def __init__(
        self,
        pool: ClientPool,
        start_time: float,
        end_time: float,
        filters: tuple[Callable[[ClientWindow], bool], ...] = (),
    ) -> None:
        for name, v in (("start_time", start_time), ("end_time", end_time)):
            if not is_number(v) or math.isnan(v):
                raise ValueError(f"span: `{name}` must be a number of seconds, got {v!r}")
        if not (math.isfinite(start_time) and start_time >= 0):
            raise ValueError(f"span: `start_time` must be finite and >= 0, got {start_time!r}")
        if not end_time > start_time:
            raise ValueError(f"span: `end_time` must be > `start_time`, got {start_time!r} and {end_time!r}")
        end = pool._tables.data_end
        if pool._tables.profile is not None:
            if end_time > end and math.isfinite(end_time):
                name = pool._tables.profile.name
                raise ValueError(
                    f"span: `end_time` {end_time!r} s is past the end of the {name} data "
                    f"({end:g} s); upstream silently stretched the last 600 s window instead. Stay inside "
                    "the data, or repeat whole days with sg.load_pool(name).span(start, end, wrap=True)"
                )
            end_time = min(end_time, end)
        self.pool = pool
        self.start_time = as_number(float(start_time))
        self.end_time = as_number(float(end_time))
        self.filters = tuple(filters)

    def span(self, start_time: float, end_time: float) -> ClientPoolView:
        """A sub-range relative to this view's start (it may reach past this view's end)."""
        for name, v in (("start_time", start_time), ("end_time", end_time)):
            if not is_number(v):
                raise ValueError(f"span: `{name}` must be a number of seconds, got {v!r}")
        a = self.start_time
        return ClientPoolView(self.pool, a + start_time, a + end_time, self.filters)

    def _view(self) -> ClientPoolView:
        return self

    def __repr__(self) -> str:
        return (
            f"<ClientPoolView {self.pool.category.value}/{self.pool.model} "
            f"[{self.start_time}, {self.end_time}) filters={len(self.filters)}>"
        )

    @cached_property
    def _eval(self) -> _Eval:
        return _Eval(self)


# -- evaluation ------------------------------------------------------------------------------
class _Eval:
    """A view evaluated once: its windows, the filter mask and the kept windows."""

    def __init__(self, view: ClientPoolView) -> None:
        t = view.pool._tables
        self.t, self.pool = t, view.pool
        a, b = float(view.start_time), float(view.end_time)
        self.start, self.end = a, b
        self.sel = np.flatnonzero((t.ends > a) & (t.window_start < b))
        lo = np.maximum(t.window_start[self.sel], a)
        self.ts = lo - a
        self.size = np.minimum(t.ends[self.sel], b) - lo
        self.ts_keys = [as_number(x) for x in self.ts.tolist()]
        self.shape = (t.client_ids.size, self.sel.size)
        self.active = ~np.isnan(t.rate[:, self.sel])
        mask = np.ones(self.shape, dtype=bool)
        for f in view.filters:
            if isinstance(f, _Filter):
                mask &= f.mask(self)
            else:  # a user's condition: one ClientWindow per window still in, like upstream
                for c in np.flatnonzero(mask.any(axis=1)).tolist():
                    js = np.flatnonzero(mask[c])
                    ok = [bool(f(w)) for w in self.windows(c, js)]
                    mask[c, js] = ok
        self.mask = mask
        self.included = np.asarray((mask & self.active).any(axis=1))
        self.keep = mask & self.included[:, None]

    def arr(self, name: str) -> NDArray[Any]:
        return getattr(self.t, name)[:, self.sel]

    def stat(self, field: str, stat: str) -> NDArray[np.float64]:
        f = self.t.fields.index(field)
        return self.t.stat(field, stat, self.t.win_pmf[:, self.sel, f])

    def windows(self, c: int, js: NDArray[np.intp]) -> list[ClientWindow]:
        """``ClientWindow`` objects of client row ``c`` at view windows ``js``."""
        t, client = self.t, self.pool._list[c]
        w = self.sel[js]
        rate, cv = t.rate[c, w].tolist(), t.cv[c, w].tolist()
        law, shape, scale = t.law[c, w].tolist(), t.shape[c, w].tolist(), t.scale[c, w].tolist()
        dkey = t.win_dkey[c, w].tolist()
        datasets: dict[float, Any] = {}
        out = []
        for k, j in enumerate(js.tolist()):
            ds = None
            if not math.isnan(dkey[k]):
                if dkey[k] not in datasets:
                    datasets[dkey[k]] = client.dataset[as_number(dkey[k])]
                ds = datasets[dkey[k]] or None  # an empty dataset entry counts as none
            on = law[k] > 0
            out.append(
                ClientWindow(
                    client_id=client.client_id,
                    timestamp=self.ts_keys[j],
                    window_size=as_number(float(self.size[j])),
                    rate=rate[k] if on else None,
                    cv=cv[k] if on else None,
                    arrival_pat=(RELEASE_NAMES[law[k]], (shape[k], scale[k])) if on else None,
                    dataset=ds,
                )
            )
        return out

    # -- summaries ---------------------------------------------------------------------
    def totals(self) -> NDArray[np.float64]:
        """The kept clients' summed rate in each view window."""
        return np.where(self.keep & self.active, self.arr("rate"), 0.0).sum(axis=0)

    def window_starts(self) -> tuple[list[Any], NDArray[np.float64]]:
        """Start of every window present in ``get()``, and the total client rate there."""
        js = np.flatnonzero(self.keep.any(axis=0))
        return [self.ts_keys[j] for j in js.tolist()], self.totals()[js]

    def cdfs(self) -> dict[str, Any]:
        c, j = np.nonzero(self.keep)
        if c.size == 0:
            return {}
        w = self.sel[j]
        t = self.t
        rate = t.rate[c, w]
        act = ~np.isnan(rate)
        out: dict[str, Any] = {
            "rate": grouped_cdfs(j[act], rate[act], None, self.ts_keys),
            "cv": grouped_cdfs(j[act], t.cv[c, w][act], rate[act], self.ts_keys),
        }
        weight = np.where(act, rate, 0.0)  # upstream: a window without requests weighs 0
        for f, field in enumerate(t.fields):
            pmf = t.win_pmf[c, w, f]
            has = pmf >= 0
            if has.any():
                out[field] = {
                    stat: grouped_cdfs(j[has], t.stat(field, stat, pmf[has]), weight[has], self.ts_keys)
                    for stat in ("avg", "p50", "p95", "p99")
                }
        return out

    # -- native clients ----------------------------------------------------------------
    def native_clients(self, dead: NDArray[np.bool_] | None = None) -> dict[int, NativeClient]:
        """Native clients of the kept windows; windows flagged ``dead`` send nothing."""
        keep = self.keep if dead is None else self.keep & ~dead[None, :]
        t = self.t
        if t.profile is not None:
            assert t.rows is not None
            full = np.zeros((t.profile.client_ids.size, self.sel.size), dtype=bool)
            full[t.rows] = keep
            return masked_pool(t.profile, start=self.start, end=self.end, keep=full).to_clients()
        return {
            int(t.client_ids[c]): self._custom_client(c, keep[c] & self.active[c])
            for c in np.flatnonzero((keep & self.active).any(axis=1)).tolist()
        }

    def _custom_client(self, c: int, live: NDArray[np.bool_]) -> NativeClient:
        t, w = self.t, self.sel
        law = np.where(live, t.law[c, w], 0)
        # The recorded CV is what the window showed; a recorded 0 (a degenerate fit) falls
        # back to the CV of the fitted law's shape, which is what upstream sampled.
        cv = t.cv[c, w]
        cv = np.where(cv > 0, cv, fitted_cv(law, np.nan_to_num(t.shape[c, w])))
        times = self.ts
        rates = np.where(live, t.rate[c, w], 0.0)
        laws = law_names(law)
        cvs = np.where(live, cv, 1.0)
        pad = times[0] > 0  # the pool's trace starts after the view: nothing before it
        if pad:
            times, rates, cvs = np.r_[0.0, times], np.r_[0.0, rates], np.r_[1.0, cvs]
            laws = ["poisson", *laws]
        arrival = ArrivalSchedule(times=times, rates=rates, cvs=cvs, laws=laws)
        return NativeClient(arrival=arrival, **self._custom_lengths(c, live, times, pad))

    def _custom_lengths(self, c: int, live: NDArray[np.bool_], times: NDArray[np.float64], pad: bool) -> dict:
        t, w = self.t, self.sel
        cid = int(t.client_ids[c])
        pmf = t.win_pmf[c, w]  # (J, F)
        present = [f for k, f in enumerate(t.fields) if (pmf[live, k] >= 0).any()]
        for k, f in enumerate(t.fields):
            gap = live & (pmf[:, k] < 0)
            if f in present and gap.any():
                j = int(np.argmax(gap))
                what = "no dataset" if np.isnan(t.win_dkey[c, w[j]]) else f"no {f!r} pdf"
                raise ValueError(
                    f"generate_workload: client {cid} has requests at timestamp {self.ts_keys[j]} but "
                    f"{what} in force there; give it a dataset entry at or before that trace timestamp"
                )
        if not present:
            j = int(np.argmax(live))
            raise ValueError(
                f"generate_workload: no dataset found for client {cid} at timestamp {self.ts_keys[j]}"
            )
        inputs = [f for f in ("input_tokens", "text_tokens") if f in present]
        unknown = [f for f in present if f not in _SUPPORTED]
        if len(inputs) != 1 or "output_tokens" not in present or unknown:
            raise ValueError(
                f"generate_workload: client {cid} has fields {present!r}; a request needs exactly one of "
                "'input_tokens'/'text_tokens', plus 'output_tokens', and optionally 'reason_ratio' and "
                "'<m>_count' with '<m>_tokens' for m in image/audio/video"
            )
        change = np.r_[True, (pmf[1:] != pmf[:-1]).any(axis=1)]
        starts = np.flatnonzero(change)

        def model(field: str) -> Any:
            k = t.fields.index(field)
            ids = pmf[starts, k]
            fallback = int(ids[ids >= 0][0])  # pieces without requests need some model
            models = []
            for p in ids.tolist():
                values, probs = t.tables[field].pmf(p if p >= 0 else fallback)
                models.append(Empirical(values=values, probs=probs))
            piece_times = self.ts[starts]
            if pad:
                piece_times, models = np.r_[0.0, piece_times], [models[0], *models]
            return models[0] if len(models) == 1 else Piecewise(piece_times, models)

        out: dict[str, Any] = {"input_tokens": model(inputs[0]), "output_tokens": model("output_tokens")}
        mods = {}
        for m in MODALITIES:
            has = [f"{m}_count" in present, f"{m}_tokens" in present]
            if any(has) and not all(has):
                raise ValueError(
                    f"generate_workload: client {cid} needs both '{m}_count' and '{m}_tokens', got one"
                )
            if all(has):
                mods[m] = Modality(count=model(f"{m}_count"), tokens=model(f"{m}_tokens"))
        if mods:
            out["multimodal"] = Multimodal(**mods)
        if "reason_ratio" in present:
            out["reasoning"] = Reasoning(ratio=model("reason_ratio"))
        return out


_SUPPORTED = frozenset(
    {"input_tokens", "text_tokens", "output_tokens", "reason_ratio"}
    | {f"{m}_{k}" for m in MODALITIES for k in ("count", "tokens")}
)


def _category(category: Any) -> Category:
    try:
        return category if isinstance(category, Category) else Category(category)
    except ValueError:
        raise ValueError(
            f"ClientPool: `category` must be one of {[c.value for c in Category]!r}, got {category!r}"
        ) from None


def _pool_name(category: Category, model: Any) -> str:
    names = [p["name"] for p in list_profiles()]
    name = f"{category.value}/{model}"
    if name not in names:
        raise ValueError(
            f"ClientPool: no embedded pool {name!r}; the embedded pools are {names!r}. Upstream read "
            "data/<category>/<model> below the working directory; for your own data build Client objects "
            "and use ClientPool.from_clients"
        )
    return name
