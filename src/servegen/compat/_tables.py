"""The array form of a compat pool, and read-only dict views of the shipped profiles.

Every compat view, filter, summary and rate function computes on ``Tables``: one row
per client, one column per trace window, and per length field a table of compact PMFs
with their statistics. Embedded pools get theirs straight from the shipped profile
arrays (no per-window Python objects); custom pools are converted from their dicts
once. Upstream's dict-of-dicts per client is offered on top, lazily: ``ProfileTrace``,
``ProfileDataset`` and ``ProfilePdfs`` build a window's dict or a dense PDF list only
when someone reads it (dense PDFs of the whole m-large pool would take gigabytes).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servegen.engine.kernels import RELEASE_CODES, RELEASE_NAMES
from servegen.pools import _pmf
from servegen.pools._profiles import LENGTH_WINDOW_S, WINDOW_S, Profile, load_profile
from servegen.pools._record import PoolRecord

__all__ = [
    "REASON_GRID",
    "FieldTable",
    "ProfileDataset",
    "ProfilePdfs",
    "ProfileTrace",
    "Tables",
    "dense_pdf",
    "grouped_cdfs",
    "profile_tables",
    "tables_from_clients",
]

#: The release's ``reason_ratio`` PMFs sit on the grid ``i / 501`` (i = 0..500). Dense
#: lists get 502 entries (the last, for 1.0, with probability 0) so that upstream's
#: reading of entry ``i`` as ``i / (len - 1)`` gives back the exact ratio.
REASON_GRID = 501
_STATS = ("avg", "p50", "p95", "p99", "max")


@dataclass(frozen=True, eq=False)
class FieldTable:
    """Distinct compact PMFs of one field; statistics end with a NaN for id -1."""

    offsets: NDArray[np.int64]
    values: NDArray[np.float64]
    probs: NDArray[np.float64]
    stats: Mapping[str, NDArray[np.float64]]

    @staticmethod
    def build(offsets: NDArray[np.int64], values: NDArray[Any], probs: NDArray[np.float64]) -> FieldTable:
        values = np.asarray(values, dtype=np.float64)
        mean, q = _pmf.stats(offsets, values, probs, (0.5, 0.95, 0.99))
        top = values[offsets[1:] - 1] if offsets.size > 1 else np.empty(0)
        cols = (mean, q[:, 0], q[:, 1], q[:, 2], top)
        stats = {k: np.append(c, np.nan) for k, c in zip(_STATS, cols, strict=True)}
        return FieldTable(offsets, values, probs, stats)

    def pmf(self, p: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lo, hi = self.offsets[p], self.offsets[p + 1]
        return self.values[lo:hi], self.probs[lo:hi]


@dataclass(frozen=True, eq=False)
class Tables(PoolRecord[np.float64]):
    """A pool as arrays: the pool record in float64, with compat's length tables.

    ``C`` clients, ``W`` trace windows (``window_start``, float64 seconds), ``F`` fields.
    ``rate``/``cv``/``shape``/``scale`` are NaN and ``law`` 0 where the trace entry is
    ``None``. ``win_pmf[c, w, f]`` is the row of ``tables[fields[f]]`` in force in window
    ``w`` (the latest dataset window at or before it), -1 for none; ``win_dkey`` is that
    dataset window's start (NaN for none). ``ends[-1]`` is the data's end: 600 s after
    the last window for embedded pools, infinity for custom ones (upstream's last trace
    entry holds on forever).
    """

    ends: NDArray[np.float64]
    tables: Mapping[str, FieldTable]
    win_pmf: NDArray[np.int32]
    win_dkey: NDArray[np.float64]
    profile: Profile | None = None
    rows: NDArray[np.intp] | None = None  # profile row of each client (embedded pools)

    @property
    def data_end(self) -> float:
        return float(self.ends[-1])

    @cached_property
    def time_keys(self) -> list[Any]:
        return [as_number(t) for t in self.window_start.tolist()]

    def subset(self, idx: Sequence[int] | NDArray[np.intp]) -> Tables:
        idx = np.asarray(idx, dtype=np.intp)
        return replace(
            self,
            client_ids=self.client_ids[idx],
            rate=self.rate[idx],
            cv=self.cv[idx],
            shape=self.shape[idx],
            scale=self.scale[idx],
            law=self.law[idx],
            win_pmf=self.win_pmf[idx],
            win_dkey=self.win_dkey[idx],
            rows=None if self.rows is None else self.rows[idx],
        )

    def stat(self, field: str, stat: str, pmf_ids: NDArray[np.int32]) -> NDArray[np.float64]:
        """``stat`` (avg/p50/p95/p99/max) of the PMFs ``pmf_ids`` of ``field`` (NaN for -1)."""
        return self.tables[field].stats[stat][pmf_ids]


def as_number(x: float) -> Any:
    """An int when ``x`` is integral (upstream's timestamps are ints), else the float."""
    return int(x) if math.isfinite(x) and x == int(x) else x


# -- embedded pools ----------------------------------------------------------------------
@cache
def profile_tables(name: str) -> Tables:
    """The ``Tables`` of a shipped pool (cached: shared by every compat pool of it)."""
    p = load_profile(name)
    n_win, n_len = p.rate.shape[1], p.length_window_start.size
    active = p.law > 0

    def f64(a: NDArray[np.float32]) -> NDArray[np.float64]:
        return np.where(active, a.astype(np.float64), np.nan)

    # Upstream skipped a length window without requests, so the previous one stays in
    # force: forward-fill each client's valid length windows.
    valid = p.length_source != _pmf.SOURCE_NONE
    src = np.maximum.accumulate(np.where(valid, np.arange(n_len), -1), axis=1)
    dsel = src[:, np.arange(n_win) * WINDOW_S // LENGTH_WINDOW_S]
    rows = np.arange(len(p.client_ids))[:, None]
    win_pmf = np.where(dsel[..., None] >= 0, p.pmf_id[rows, np.maximum(dsel, 0)], -1).astype(np.int32)
    tables = {
        f: FieldTable.build(t.offsets, t.values, t.probs) for f, t in zip(p.fields, p.tables, strict=True)
    }
    times = p.window_start.astype(np.float64)
    return Tables(
        name=p.name,
        client_ids=p.client_ids,
        window_start=times,
        ends=times + WINDOW_S,
        rate=f64(p.rate),
        cv=f64(p.cv),
        shape=f64(p.shape),
        scale=f64(p.scale),
        law=p.law,
        fields=p.fields,
        tables=tables,
        win_pmf=win_pmf,
        win_dkey=np.where(dsel >= 0, dsel * float(LENGTH_WINDOW_S), np.nan),
        profile=p,
        rows=np.arange(len(p.client_ids)),
    )


def dense_pdf(field: str, values: NDArray[np.float64], probs: NDArray[np.float64]) -> list[float]:
    """Upstream's dense PDF list of a compact PMF (``pdf[i]`` = P(value i))."""
    if field == "reason_ratio":
        idx = np.rint(values * REASON_GRID).astype(np.int64)
        size = REASON_GRID + 1
    else:
        idx = values.astype(np.int64)
        size = int(idx[-1]) + 1 if idx.size else 0
    pdf = np.zeros(size)
    pdf[idx] = probs
    return pdf.tolist()


class ProfileTrace(Mapping[Any, "dict[str, Any] | None"]):
    """One embedded client's ``trace``: ``{window start: {"rate", "cv", "pat"} | None}``."""

    __slots__ = ("_c", "_t")

    def __init__(self, tables: Tables, c: int) -> None:
        self._t, self._c = tables, c

    def __getitem__(self, ts: Any) -> dict[str, Any] | None:
        t, c = self._t, self._c
        w = int(np.searchsorted(t.window_start, ts)) if isinstance(ts, (int, float, np.number)) else -1
        if not (0 <= w < t.window_start.size and t.window_start[w] == ts):
            raise KeyError(ts)
        if t.law[c, w] == 0:
            return None
        pat = (RELEASE_NAMES[int(t.law[c, w])], (float(t.shape[c, w]), float(t.scale[c, w])))
        return {"rate": float(t.rate[c, w]), "cv": float(t.cv[c, w]), "pat": pat}

    def __iter__(self) -> Iterator[Any]:
        return iter(self._t.time_keys)

    def __len__(self) -> int:
        return self._t.window_start.size

    def __repr__(self) -> str:
        return f"<trace of client {int(self._t.client_ids[self._c])}: {len(self)} windows (read-only)>"


class ProfileDataset(Mapping[Any, "ProfilePdfs"]):
    """One embedded client's ``dataset``: ``{length window start: {field: pdf}}``."""

    __slots__ = ("_c", "_keys", "_t")

    def __init__(self, tables: Tables, c: int) -> None:
        assert tables.profile is not None and tables.rows is not None
        self._t, self._c = tables, c
        valid = tables.profile.length_source[tables.rows[c]] != _pmf.SOURCE_NONE
        self._keys = [int(d) * LENGTH_WINDOW_S for d in np.flatnonzero(valid).tolist()]

    def __getitem__(self, ts: Any) -> ProfilePdfs:
        if ts not in self._keys:
            raise KeyError(ts)
        return ProfilePdfs(self._t, self._c, int(ts) // LENGTH_WINDOW_S)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return (
            f"<dataset of client {int(self._t.client_ids[self._c])}: {len(self)} length windows (read-only)>"
        )


class ProfilePdfs(Mapping[str, list[float]]):
    """``{field: dense pdf}`` of one embedded client and length window, built on access."""

    __slots__ = ("_c", "_d", "_t")

    def __init__(self, tables: Tables, c: int, d: int) -> None:
        self._t, self._c, self._d = tables, c, d

    def compact(self, field: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The PMF's support points and probabilities (what sampling uses)."""
        t = self._t
        assert t.profile is not None and t.rows is not None
        if field not in t.fields:
            raise KeyError(field)
        values, probs = t.profile.pmf(int(t.rows[self._c]), self._d, field)
        return np.asarray(values, dtype=np.float64), probs

    def __getitem__(self, field: str) -> list[float]:
        return dense_pdf(field, *self.compact(field))

    def __iter__(self) -> Iterator[str]:
        return iter(self._t.fields)

    def __len__(self) -> int:
        return len(self._t.fields)

    def __repr__(self) -> str:
        return (
            f"<pdfs of client {int(self._t.client_ids[self._c])} at {self._d * LENGTH_WINDOW_S}: "
            f"{list(self._t.fields)} (dense lists built on access)>"
        )


# -- custom pools ------------------------------------------------------------------------
def compact_pdf(field: str, pdf: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Support and normalized probabilities of a dense PDF (reason_ratio: grid i/(n-1))."""
    arr = np.asarray(pdf, dtype=np.float64)
    idx = np.flatnonzero(arr > 0)
    probs = arr[idx] / arr[idx].sum()
    if field == "reason_ratio":
        return idx / max(arr.size - 1, 1), probs
    return idx.astype(np.float64), probs


def grouped_cdfs(
    group: NDArray[np.intp], values: NDArray[np.float64], weights: NDArray[np.float64] | None, keys: list[Any]
) -> dict[Any, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Per group (view window), the sorted values and their cumulative probabilities.

    Unweighted: ``k / n``; weighted: cumulative normalized weight (ties sorted by
    weight, as upstream's sort of (value, weight) pairs); a group whose weights sum to 0
    gets empty arrays, as upstream.
    """
    n = values.size
    if n == 0:
        return {}
    w = np.zeros(n) if weights is None else weights
    order = np.lexsort((w, values, group))
    g, v, w = group[order], values[order], w[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    counts = np.diff(np.r_[starts, n])
    pos = np.arange(n) - np.repeat(starts, counts)
    if weights is None:
        probs = (pos + 1) / np.repeat(counts, counts)
        totals = counts.astype(np.float64)
    else:
        cum = np.cumsum(w)
        seg = cum - np.repeat(np.r_[0.0, cum][starts], counts)
        totals = seg[starts + counts - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            probs = seg / np.repeat(totals, counts)
    probs[starts + counts - 1] = 1.0  # exact top, whatever the rounding of the sums
    out = {}
    empty = (np.empty(0), np.empty(0))
    for s, k, tot in zip(starts.tolist(), counts.tolist(), totals.tolist(), strict=True):
        out[keys[int(g[s])]] = (v[s : s + k], probs[s : s + k]) if tot > 0 else empty
    return out


def tables_from_clients(clients: Sequence[Any]) -> Tables:
    """``Tables`` of validated compat ``Client`` objects (sharing trace timestamps)."""
    base = _common_profile(clients)
    if base is not None:  # all read from one shipped profile: just pick the rows
        return base.subset([c.trace._c for c in clients])
    n = len(clients)
    times = np.array(list(clients[0].trace), dtype=np.float64)
    n_win = times.size
    rate, cv, shape, scale = (np.full((n, n_win), np.nan) for _ in range(4))
    law = np.zeros((n, n_win), dtype=np.uint8)
    pieces: dict[str, tuple[list[Any], list[Any]]] = {}
    per_client = []
    for c, client in enumerate(clients):
        for w, entry in enumerate(client.trace.values()):
            if entry is None:
                continue
            name, (k, theta) = entry["pat"]
            name = getattr(name, "value", name)
            rate[c, w], cv[c, w] = float(entry["rate"]), float(entry["cv"])
            shape[c, w], scale[c, w], law[c, w] = float(k), float(theta), RELEASE_CODES[name]
        keys, rows = [], []
        for dts, pdfs in client.dataset.items():
            row = {}
            for field in pdfs:
                v, p = (
                    pdfs.compact(field) if isinstance(pdfs, ProfilePdfs) else compact_pdf(field, pdfs[field])
                )
                vals, probs = pieces.setdefault(field, ([], []))
                row[field] = len(vals)
                vals.append(v)
                probs.append(p)
            keys.append(float(dts))
            rows.append(row)
        dsel = np.searchsorted(np.array(keys, dtype=np.float64), times, side="right") - 1
        per_client.append((np.array(keys, dtype=np.float64), rows, dsel))
    fields = tuple(pieces)
    tables = {}
    for f, (vals, probs) in pieces.items():
        offsets = np.zeros(len(vals) + 1, dtype=np.int64)
        np.cumsum([v.size for v in vals], out=offsets[1:])
        tables[f] = FieldTable.build(offsets, np.concatenate(vals), np.concatenate(probs))
    win_pmf = np.full((n, n_win, len(fields)), -1, dtype=np.int32)
    win_dkey = np.full((n, n_win), np.nan)
    for c, (dkeys, rows, dsel) in enumerate(per_client):
        for k, row in enumerate(rows):
            at = dsel == k
            win_pmf[c, at] = [row.get(f, -1) for f in fields]
            win_dkey[c, at] = dkeys[k]
    return Tables(
        name="custom",
        client_ids=np.array([c.client_id for c in clients], dtype=np.int64),
        window_start=times,
        ends=np.append(times[1:], np.inf),
        rate=rate,
        cv=cv,
        shape=shape,
        scale=scale,
        law=law,
        fields=fields,
        tables=tables,
        win_pmf=win_pmf,
        win_dkey=win_dkey,
    )


def _common_profile(clients: Sequence[Any]) -> Tables | None:
    """The shared embedded ``Tables`` when every client is an untouched embedded one."""
    first = clients[0].trace
    if not isinstance(first, ProfileTrace):
        return None
    base = first._t
    for c in clients:
        tr, ds = c.trace, c.dataset
        if not (
            isinstance(tr, ProfileTrace) and isinstance(ds, ProfileDataset)
            and tr._t is base and ds._t is base and tr._c == ds._c
            and int(base.client_ids[tr._c]) == c.client_id
        ):  # fmt: skip
            return None
    return base
