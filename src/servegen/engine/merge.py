"""Merging: clients' sorted runs into one window, windows into a result, parts into one stream.

:func:`merge_runs` merges the clients' time-sorted runs of one stream window with one
stable argsort (run-aware); :class:`Sink` gathers windows into growing column buffers;
:class:`Cutter` cuts merged windows into chunks; :func:`merge` joins the samples of
disjoint client groups (``servegen.merge``).

>>> import numpy as np
>>> out = merge_runs([np.array([0.0, 2.0]), np.array([1.0])], [np.zeros(2, np.int32), np.ones(1, np.int32)],
...                  [{}, {}], [{}, {}], {"timestamp": np.float64, "client": np.int32}, {})
>>> out["timestamp"].tolist(), out["client"].tolist()
([0.0, 1.0, 2.0], [0, 1, 0])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..requests import Ragged, Requests

__all__ = ["Cutter", "Sink", "chunk_of", "merge", "merge_runs", "parents"]


def merge_runs(
    times: list[NDArray[np.float64]],
    codes: list[NDArray[np.int32]],
    flats: list[dict[str, NDArray[Any]]],
    raggeds: list[dict[str, Ragged]],
    flat_cols: dict[str, Any],
    ragged_cols: dict[str, Any],
    sink: Sink | None = None,
) -> dict[str, Any]:
    """Merge the clients' sorted runs of one window into one sorted column dict.

    With a ``sink``, each column is gathered straight into the sink's buffers (no
    intermediate sorted copy) and the returned dict is empty.
    """
    n = sum(len(t) for t in times)
    t = np.concatenate(times) if len(times) > 1 else times[0] if times else np.empty(0)
    # Stable argsort of concatenated sorted runs is a run-aware merge (timsort/radix).
    order = np.argsort(t, kind="stable") if len(times) > 1 else None
    out: dict[str, Any] = {}

    def put(name: str, arr: NDArray[Any]) -> None:
        if sink is not None:
            sink.write(name, arr, order)
        else:
            out[name] = arr if order is None else arr[order]

    if sink is not None:
        sink.reserve(n)
    put("timestamp", t)
    put("client", np.concatenate(codes) if codes else np.empty(0, np.int32))
    for name, dtype in flat_cols.items():
        if name in ("timestamp", "client"):
            continue
        parts = [
            f[name] if name in f else np.zeros(len(tt), dtype=dtype)
            for f, tt in zip(flats, times, strict=True)
        ]
        put(name, np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.empty(0, dtype))
    for name, dtype in ragged_cols.items():
        rparts = [
            r[name] if name in r else Ragged(np.empty(0, dtype=dtype), np.zeros(len(tt) + 1, np.int64))
            for r, tt in zip(raggeds, times, strict=True)
        ]
        rg = Ragged.concat(rparts)
        rg = rg if order is None else rg.take(order)
        if sink is not None:
            sink.write_ragged(name, rg)
        else:
            out[name] = rg
    return out


class Sink:
    """Growing column buffers that windows are gathered into (one copy per request).

    Capacity starts at the expected request count; it grows by half when exceeded.
    """

    def __init__(self, flat_cols: dict[str, Any], expected: float) -> None:
        cap = int(expected * 1.02 + 4096)
        self.bufs = {name: np.empty(cap, dtype=dtype) for name, dtype in flat_cols.items()}
        self.ragged: dict[str, list[Ragged]] = {}
        self.pos = 0
        self.n = 0

    def reserve(self, n: int) -> None:
        self.n = n
        cap = len(self.bufs["timestamp"])
        if self.pos + n > cap:
            new = max(int(cap * 1.5), self.pos + n)
            for name, buf in self.bufs.items():
                grown = np.empty(new, dtype=buf.dtype)
                grown[: self.pos] = buf[: self.pos]
                self.bufs[name] = grown

    def write(self, name: str, arr: NDArray[Any], order: NDArray[np.intp] | None) -> None:
        dst = self.bufs[name][self.pos : self.pos + self.n]
        if order is None:
            dst[:] = arr
        else:
            np.take(arr, order, out=dst)

    def write_ragged(self, name: str, rg: Ragged) -> None:
        self.ragged.setdefault(name, []).append(rg)

    def last_window(self) -> dict[str, Any]:
        """Views of the window just written (for in-place session linking)."""
        return {name: buf[self.pos : self.pos + self.n] for name, buf in self.bufs.items()}

    def commit(self) -> None:
        self.pos += self.n
        self.n = 0

    def result(self, plan: Any, duration: float) -> Requests:
        cols = {}
        for name in list(self.bufs):
            buf = self.bufs.pop(name)
            # trim: keep a view when the slack is small, copy otherwise to free it
            cols[name] = buf[: self.pos] if self.pos >= 0.9 * len(buf) else buf[: self.pos].copy()
            del buf
        cols.pop("_final", None)
        ragged = {name: Ragged.concat(parts) for name, parts in self.ragged.items()}
        for name in plan.ragged_cols:
            ragged.setdefault(name, Ragged(np.empty(0, np.int64), np.zeros(self.pos + 1, np.int64)))
        return Requests(cols, clients=plan.keys, ragged=ragged, duration=duration, meta=plan.meta())


def chunk_of(req: Requests, start: float, end: float) -> Requests:
    req.meta["chunk"] = [start, end]
    return req


class Cutter:
    """Merged windows waiting to be cut into chunks; each row is copied at most once.

    Cutting keeps a position in the oldest window instead of re-copying what is left of
    it, so many small chunks cost what one big chunk does.
    """

    def __init__(self, plan: Any, duration: float) -> None:
        self.plan, self.duration = plan, duration
        self.parts: list[list[Any]] = []  # [columns of one window, first row not yet taken]

    def add(self, part: dict[str, Any]) -> None:
        if len(part["timestamp"]):
            self.parts.append([part, 0])

    def take(self, edge: float | None) -> Requests:
        """The waiting rows before ``edge`` (all of them when ``edge`` is None)."""
        pieces = []
        while self.parts:
            part, pos = self.parts[0]
            ts = part["timestamp"]
            cut = len(ts) if edge is None else pos + int(np.searchsorted(ts[pos:], edge, side="left"))
            if cut > pos:
                pieces.append((part, pos, cut))
            if cut < len(ts):
                self.parts[0][1] = cut
                break
            self.parts.pop(0)
        plan = self.plan
        cols: dict[str, NDArray[Any]] = {}
        ragged: dict[str, Ragged] = {}
        if not pieces:
            cols = {k: np.empty(0, dtype=v) for k, v in plan.flat_cols.items() if k != "_final"}
            ragged = {
                k: Ragged(np.empty(0, dtype=v), np.zeros(1, np.int64)) for k, v in plan.ragged_cols.items()
            }
        for name in pieces[0][0] if pieces else ():
            if name in plan.ragged_cols:
                ragged[name] = Ragged.concat([_rows(p[name], a, b) for p, a, b in pieces])
            else:
                arrs = [p[name][a:b] for p, a, b in pieces]
                cols[name] = np.concatenate(arrs) if len(arrs) != 1 else arrs[0]
        return Requests(cols, clients=plan.keys, ragged=ragged, duration=self.duration, meta=plan.meta())


def _rows(rg: Ragged, lo: int, hi: int) -> Ragged:
    """Rows ``lo:hi`` of a ragged column (a slice, not a gather)."""
    off = rg.offsets
    return Ragged(rg.values[off[lo] : off[hi]], off[lo : hi + 1] - off[lo])


def merge(parts: Iterable[Requests]) -> Requests:
    """Join streams of disjoint client groups of one workload into one sorted stream.

    The parts come from ``Workload.sample(..., clients=group)`` with the same seed and
    duration (in any order, e.g. from separate processes or machines). Requests are
    ordered by timestamp, ties by client index as in a single call, and ``parent`` row
    indices of sessions are recomputed for the merged order.

    >>> import servegen as sg
    >>> wl = sg.Workload([sg.Client(arrival=sg.Poisson(rate=1), input_tokens=3, output_tokens=2)] * 2)
    >>> parts = [wl.sample(60, rng=4, clients=[1]), wl.sample(60, rng=4, clients=[0])]
    >>> merge(parts).equals(wl.sample(60, rng=4))
    True
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge: need at least one part")
    joined = Requests.concat(parts)
    # stable: a client's own requests keep their order; ties across clients by index
    order = np.lexsort((joined.client, joined.timestamp))
    out = joined.take(order)
    if "parent" in out and "session" in out and "turn" in out:
        out["parent"][:] = parents(out["session"], out["turn"])  # `take` made fresh columns
    return out


def parents(session: NDArray[np.int64], turn: NDArray[np.int64]) -> NDArray[np.int64]:
    """Row of each turn's previous turn in the same session (-1 for first turns)."""
    parent = np.full(session.size, -1, dtype=np.int64)
    rows = np.flatnonzero(session >= 0)
    if rows.size == 0:  # no row belongs to a session (e.g. a part of other clients)
        return parent
    o = rows[np.lexsort((turn[rows], session[rows]))]
    same = np.r_[False, session[o][1:] == session[o][:-1]]
    parent[o[same]] = o[np.flatnonzero(same) - 1]
    return parent
