"""The sampling plan: rate targeting, window order, and each client's state across windows.

A :class:`Plan` is everything fixed for one sample call (clients, target rate and
scale through the :class:`~servegen.engine.timeline.Timeline`, the columns) plus each
client's arrival state (renewal offset, clock target, object states); :class:`Turns`
carries session turns, shared prefixes and block ids across stream windows.
:func:`sample` and :func:`iter_chunks` drive a plan and gather its windows
(:mod:`servegen.engine.merge`). ``Workload`` and ``Client.sample`` call these; nothing
here imports a model: clients are used through the methods of :class:`ClientLike`.

>>> import servegen as sg
>>> from servegen.engine import plan
>>> c = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=10, output_tokens=5)
>>> r = plan.sample({"a": c}, 600.0, np.random.SeedSequence(0), rate=4.0)
>>> round(len(r) / 600)
4
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .. import _rng
from .._checks import check_workers
from ..requests import CORE_DTYPES, Ragged, Requests
from .kernels import Pieces
from .merge import Cutter, Sink, chunk_of, merge_runs
from .timeline import STREAM_WINDOW, Block, Timeline, window_points

__all__ = ["ClientLike", "Plan", "Turns", "iter_chunks", "sample"]


class ClientLike(Protocol):
    """What the engine uses of a client (``servegen.Client`` has all of it)."""

    @property
    def session(self) -> Any: ...

    @property
    def prefix(self) -> Any: ...

    @property
    def requests_per_arrival(self) -> float: ...

    def _pieces(self) -> Pieces: ...

    def value_columns(self) -> dict[str, Any]: ...

    def ragged_columns(self) -> dict[str, Any]: ...

    def sample_values(self, t: NDArray[np.float64], rng: Any, flat: Any, ragged: Any, /) -> Any: ...

    def turns(self, starts: NDArray[np.float64], rng: Any, /, *args: Any) -> Any: ...

    def warm_starts(self, pieces: Pieces, piece: int, rate: float, rng: np.random.Generator, /) -> Any: ...

    def block_ids(self, index: int, prefix_tokens: Any, block_size: int, /) -> Any: ...


def sample(
    clients: Mapping[Hashable, ClientLike],
    duration: float,
    root: np.random.SeedSequence,
    *,
    start: float = 0.0,
    **plan: Any,
) -> Requests:
    """All requests of ``clients`` in [``start``, ``duration``), sorted by timestamp.

    ``plan`` takes :class:`Plan`'s keywords (``rate``, ``scale``, ``block_size``,
    ``workers``, ``only``); ``start`` is :meth:`Plan.skip_to`'s.
    """
    p = Plan(clients, duration, root, **plan)
    p.skip_to(start)
    sink = Sink(p.flat_cols, p.expected_requests())
    for _ in p.windows(sink):
        pass
    return sink.result(p, duration)


def expected_until(
    clients: Mapping[Hashable, ClientLike], duration: float, times: Any, **plan: Any
) -> NDArray[np.float64]:
    """Expected requests of each client of :func:`sample` in [0, t) for each t of ``times``:
    an array (clients, times); nothing is drawn."""
    return Plan(clients, duration, np.random.SeedSequence(0), **plan).expected_until(times)


def iter_chunks(
    clients: Mapping[Hashable, ClientLike],
    duration: float,
    chunk: float,
    root: np.random.SeedSequence,
    *,
    start: float = 0.0,
    **plan: Any,
) -> Iterator[Requests]:
    """The stream of :func:`sample` from ``start`` on, as consecutive ``chunk``-second parts."""
    p = Plan(clients, duration, root, **plan)
    p.skip_to(start)
    cutter = Cutter(p, duration)
    start, edge = float(start), float(start) + float(chunk)
    for w, part in p.windows():
        assert part is not None
        cutter.add(part)
        covered = min((w + 1) * STREAM_WINDOW, duration)
        while edge < duration and edge <= covered:
            yield chunk_of(cutter.take(edge), start, edge)
            start, edge = edge, edge + chunk
    while edge < duration:  # chunks after the last window with requests
        yield chunk_of(cutter.take(edge), start, edge)
        start, edge = edge, edge + chunk
    yield chunk_of(cutter.take(None), start, duration)


_NEVER = np.iinfo(np.int64).max
_SMALL = 20_000  # rows: a window this small is merged on the drawing thread


class Plan:
    """Everything fixed for one sample call, and each client's arrival state.

    Windows are visited in order, but only those where some client has an arrival due
    (found from its renewal clock, see :mod:`servegen.engine.timeline`) or a pending session
    turn: a slow client costs nothing in the windows where it sends nothing.
    """

    def __init__(
        self,
        clients: Mapping[Hashable, ClientLike],
        duration: float,
        root: np.random.SeedSequence,
        *,
        rate: Any = None,
        scale: Any = 1.0,
        block_size: int | None = None,
        workers: int | None = None,
        only: Iterable[Hashable] | None = None,
    ) -> None:
        self.root = root
        self.workers = check_workers(workers)
        self.selected = np.ones(len(clients), dtype=bool)
        if only is not None:
            keys = list(clients)
            wanted = list(only)
            unknown = [k for k in wanted if k not in clients]
            if unknown:
                raise ValueError(f"sample: `clients` names unknown client(s) {unknown[:10]!r}")
            self.selected[:] = False
            self.selected[[keys.index(k) for k in wanted]] = True
        self.duration = duration
        self.keys = list(clients)
        self.clients = list(clients.values())
        self.hashes = [_rng.key_hash(k) for k in self.keys]
        self.seeds = _rng.LeafSeeds(root, self.hashes)  # each window's streams, seeded in one batch
        self.pieces: list[Pieces] = [c._pieces() for c in self.clients]
        if rate is not None or scale != 1.0:
            for i, p in enumerate(self.pieces):
                # a user's process without a `rate` (see Client) cannot be time-changed
                if any(not getattr(o, "has_rate", True) for o in p.objects or ()):
                    raise ValueError(
                        f"Workload: client {self.keys[i]!r} has a custom arrival process without a "
                        "`rate`, so it cannot be rate-scaled"
                    )
        self.per_arrival = np.array([c.requests_per_arrival for c in self.clients], dtype=np.float64)
        self.timeline = Timeline(self.pieces, self.keys, self.per_arrival, rate, scale, duration)
        self.n_windows = self.timeline.n_windows
        # one pass over the blocks: checks the target everywhere before any work is done
        self._expected = self.timeline.expected(self.selected)
        n = len(self.clients)
        self.offsets: list[float | None] = [None] * n  # renewal offset after the last draw
        self.last_w = [-2] * n  # window of the last draw
        self.target: list[float | None] = [None] * n  # next arrival on the block's clock
        self.obj_states: list[dict[int, Any]] = [{} for _ in self.clients]
        self.first = 0  # windows before it draw arrivals only (skip_to)
        self.flat_cols: dict[str, Any] = dict(CORE_DTYPES)
        self.ragged_cols: dict[str, Any] = {}
        for c in self.clients:
            self.flat_cols.update(c.value_columns())
            self.ragged_cols.update(c.ragged_columns())
        self.block_size = block_size
        if self.block_size is not None:
            self.ragged_cols["hash_ids"] = np.int64
        if any(c.session is not None for c in self.clients):
            self.flat_cols["_final"] = np.bool_  # internal: a session's last turn
        self.turns = (
            Turns(self)
            if any(c.session is not None or c.prefix is not None for c in self.clients)
            or self.block_size is not None
            else None
        )

    def meta(self) -> dict[str, Any]:
        """Facts recorded with the result (seed entropy, block size of ``hash_ids``)."""
        out: dict[str, Any] = {"seed": str(self.root.entropy)}
        if self.block_size is not None:
            out["block_size"] = self.block_size
        return out

    def skip_to(self, start: Any) -> None:
        """Draw no requests before ``start``: windows before it only move the arrival state on."""
        n = start / STREAM_WINDOW if isinstance(start, (int, float)) and not isinstance(start, bool) else None
        if n is None or not (0 <= n < self.n_windows and n == int(n)):
            raise ValueError(
                f"sample: `start` must be a multiple of {STREAM_WINDOW!r} s below the duration, got {start!r}"
            )
        if n and self.turns is not None:
            raise ValueError(
                f"sample: `start` {start!r} > 0 needs a workload without sessions, shared prefixes or block "
                "ids: their turns and ids carry over from earlier windows, so its stream is drawn from 0"
            )
        self.first = int(n)

    def expected_requests(self) -> float:
        """Expected request count of the whole run (sizes the output buffers)."""
        return self._expected

    def expected_until(self, times: Any) -> NDArray[np.float64]:
        """Expected requests of each client in [0, t) for each t of ``times``: (clients,
        times), rows of clients not selected zero."""
        out = self.timeline.expected_until(np.asarray(times, dtype=np.float64))
        return out * self.selected[:, None]

    def windows(self, sink: Sink | None = None) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """Yield (window index, merged columns) per visited stream window; with ``sink``,
        the merged columns are written into it instead (and None is yielded).

        With ``workers > 1`` and a sink, window w's merge (a run-aware argsort and the
        column gathers: numpy calls that release the GIL) runs on a background thread
        while the next window's clients are drawn. Merges stay in window order, so the
        result does not depend on it.
        """
        if self.workers > 1 and sink is not None:
            with ThreadPoolExecutor(1) as merger:
                pending = None
                for w, results in self._draws():
                    if pending is not None:
                        pending.result()  # at most one merge in flight bounds memory
                        pending = None
                    if sum(r[1].size for r in results) < _SMALL:  # not worth a thread hand-off
                        self._merge_window(results, sink)
                    else:
                        pending = merger.submit(self._merge_window, results, sink)
                    yield w, None
                if pending is not None:
                    pending.result()
        else:
            for w, results in self._draws():
                yield w, self._merge_window(results, sink)

    def _draws(self) -> Iterator[tuple[int, list[tuple[int, Any, Any, Any]]]]:
        """(window, every visited client's requests in it), for windows where any are due."""
        n = len(self.clients)
        todo = np.flatnonzero(self.selected)
        pend = np.full(n, _NEVER, dtype=np.int64)  # window of each client's next pending turn
        if self.turns is not None:  # warm-started sessions are pending from the start
            for i in todo.tolist():
                pend[i] = self.turns.next_window(i)
        for b in range(self.timeline.n_blocks):
            blk = self.timeline.block(b)
            due = np.full(n, _NEVER, dtype=np.int64)  # window of each client's next arrivals
            for i in todo.tolist():
                due[i] = self._due(blk, i, blk.w0 - 1, self.target[i])
            while True:
                w = int(min(due.min(), pend.min()))
                if w >= blk.w1:
                    break
                results = []
                idx = np.flatnonzero((due == w) | (pend == w))
                for i, streams in zip(idx.tolist(), self.seeds.streams(idx, w), strict=True):
                    r = self._client_window(blk, i, w, bool(due[i] == w), streams)
                    if r is not None:
                        results.append(r)
                    if due[i] == w:
                        due[i] = self._due(blk, i, w, self.target[i])
                    if self.turns is not None:
                        pend[i] = self.turns.next_window(i)
                yield w, results
            for i in todo.tolist():  # carry each clock target into the next block
                t = self.target[i]
                self.target[i] = None if t is None else t - float(blk.clock[i, -1])

    def _due(self, blk: Block, i: int, after: int, target: float | None) -> int:
        """The first window after ``after`` in this block where client ``i`` has arrivals."""
        if self.timeline.has_objects[i]:  # objects run in every window where they are on
            lo = blk.segments(max(after + 1, blk.w0))[0] if after + 1 < blk.w1 else blk.eff.shape[1]
            on = np.flatnonzero(blk.eff[i, lo:] > 0)
            return blk.window_of(lo + int(on[0])) if on.size else _NEVER
        s = int(np.searchsorted(blk.clock[i], 0.0 if target is None else target, side="right"))
        return blk.window_of(s) if s < blk.clock.shape[1] else _NEVER

    def _merge_window(self, results: list[tuple[int, Any, Any, Any]], sink: Sink | None) -> dict[str, Any]:
        times = [r[1] for r in results]
        codes = [np.full(r[1].size, r[0], dtype=np.int32) for r in results]
        out = merge_runs(times, codes, [r[2] for r in results], [r[3] for r in results], self.flat_cols,
                     self.ragged_cols, sink=sink)  # fmt: skip
        if self.turns is not None:
            self.turns.link_parents(out if sink is None else sink.last_window())
        if sink is not None:
            sink.commit()
        return out

    def _client_window(
        self, blk: Block, i: int, w: int, due: bool, streams: _rng.WindowStreams
    ) -> tuple[int, Any, Any, Any] | None:
        """One client's requests in window ``w``: (client index, times, columns, ragged).

        One stream per (client, window, purpose): arrivals, sessions, prefixes and each
        value column draw from their own ``streams``, so no model can shift another's draws.
        """
        t = self._arrivals(blk, i, w, streams("arrivals")) if due else np.empty(0)
        if w < self.first:
            return None
        if w == self.n_windows - 1:
            t = t[t < self.duration]
        if self.turns is not None:
            t, cols, rag = self.turns.window(i, w, t, streams)
        elif t.size:
            cols, rag = self.clients[i].sample_values(t, streams, self.flat_cols, self.ragged_cols)
        if t.size == 0:
            return None
        return i, t, cols, rag

    def _arrivals(self, blk: Block, i: int, w: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Arrivals in window ``w``, continuing the client's renewal offset or clock."""
        lo, hi = blk.segments(w)
        offset, target = self.offsets[i], self.target[i]
        if self.last_w[i] != w - 1 and target is not None and not self.timeline.has_objects[i]:
            # skipped windows: the next arrival's place on the clock, from this window's start
            offset = target - (float(blk.clock[i, lo - 1]) if lo > 0 else 0.0)
        t, offset = window_points(blk, i, w, self.pieces[i], offset, self.obj_states[i], rng)
        self.offsets[i], self.last_w[i] = offset, w
        self.target[i] = None if offset is None else float(blk.clock[i, hi - 1]) + offset
        return t


class Turns:
    """Per-client state for sessions, prefixes and block ids across stream windows.

    Sessions that start in a window may run into later windows: their later turns wait
    in a per-client pending buffer and are emitted in the window they fall in, so
    chunking never loses or duplicates a turn.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        n = len(plan.clients)
        self.pending: list[dict[str, Any] | None] = [None] * n
        self.sessions_started = [0] * n
        self.rows_before = 0
        self.last_row: dict[int, int] = {}
        self.prefix_tokens: list[NDArray[np.int64] | None] = []
        self.ids: list[Any] = []  # per-client block id counters (client hook `block_ids`)
        for i, c in enumerate(plan.clients):
            pt = None
            if c.prefix is not None:
                rng = _rng.stream(plan.root, plan.hashes[i], 0, _rng.PREFIX)
                pt = np.rint(c.prefix.tokens.sample(c.prefix.groups, rng=rng)).astype(np.int64)
            self.prefix_tokens.append(pt)
            self.ids.append(None if plan.block_size is None else c.block_ids(i, pt, plan.block_size))
            if plan.selected[i] and c.session is not None:  # sessions in progress at t = 0
                streams = _rng.WindowStreams(plan.root, plan.hashes[i], 0, base=_rng.WARM)
                blk = plan.timeline.block(0)
                lo, hi = blk.segments(0)  # the mean rate over window 0: robust to short pieces
                rate = float(np.average(blk.eff[i, lo:hi], weights=np.diff(blk.edges[lo : hi + 1])))
                piece = int(blk.piece[i, 0])
                warm, turns = c.warm_starts(plan.pieces[i], piece, rate, streams("arrivals"))
                if warm.size:
                    self._push(i, *self._rows(i, warm, streams, turns))

    def pending_rows(self, i: int) -> int:
        p = self.pending[i]
        return 0 if p is None else len(p["timestamp"])

    def next_window(self, i: int) -> int:
        """The window of client ``i``'s next pending turn (never, if past the duration)."""
        p = self.pending[i]
        if p is None or not (len(p["timestamp"]) and p["timestamp"][0] < self.plan.duration):
            return _NEVER
        return int(p["timestamp"][0] // STREAM_WINDOW)

    def window(
        self, i: int, w: int, starts: NDArray[np.float64], streams: _rng.WindowStreams
    ) -> tuple[NDArray[np.float64], Any, Any]:
        if starts.size:
            self._push(i, *self._rows(i, starts, streams))
        return self._pop(i, min((w + 1) * STREAM_WINDOW, self.plan.duration))

    def _rows(self, i: int, starts: NDArray[np.float64], streams: _rng.WindowStreams, k: Any = None) -> Any:
        """Time-ordered turns at t >= 0 of sessions starting at ``starts`` (< 0: warm start)."""
        first = (i << 32) + self.sessions_started[i]
        self.sessions_started[i] += starts.size
        plan, pt, ids = self.plan, self.prefix_tokens[i], self.ids[i]
        return plan.clients[i].turns(starts, streams, pt, ids, first, plan.flat_cols, plan.ragged_cols, k)

    def _push(self, i: int, t: NDArray[np.float64], cols: dict[str, Any], rag: dict[str, Any]) -> None:
        runs = [(t, cols, rag)]
        p = self.pending[i]
        if p is not None:
            flat = {k: v for k, v in p.items() if not isinstance(v, Ragged) and k != "timestamp"}
            runs.insert(0, (p["timestamp"], flat, {k: v for k, v in p.items() if isinstance(v, Ragged)}))
        self.pending[i] = merge_runs(
            [r[0] for r in runs],
            [np.zeros(len(r[0]), np.int32) for r in runs],
            [r[1] for r in runs],
            [r[2] for r in runs],
            self.plan.flat_cols,
            self.plan.ragged_cols,
        )

    def _pop(self, i: int, end: float) -> tuple[NDArray[np.float64], Any, Any]:
        p = self.pending[i]
        if p is None:
            return np.empty(0), {}, {}
        cut = int(np.searchsorted(p["timestamp"], end, side="left"))
        now_idx, later_idx = np.arange(cut), np.arange(cut, len(p["timestamp"]))
        cols, rag, keep = {}, {}, {}
        for name, v in p.items():
            if isinstance(v, Ragged):
                rag[name], keep[name] = v.take(now_idx), v.take(later_idx)
            else:
                cols[name], keep[name] = v[:cut], v[cut:]
        self.pending[i] = keep if len(keep["timestamp"]) else None
        cols.pop("client")
        return cols.pop("timestamp"), cols, rag

    def link_parents(self, out: dict[str, Any]) -> None:
        """Fill ``parent`` with the global row index of each turn's previous turn."""
        n = len(out["timestamp"])
        final = out.pop("_final", None)
        if "session" in out:
            sess = out["session"]
            idx = np.flatnonzero(sess >= 0)
            parent = np.full(n, -1, dtype=np.int64)
            if idx.size:
                o = np.argsort(sess[idx], kind="stable")
                rows, s = idx[o], sess[idx][o]
                same = np.r_[False, s[1:] == s[:-1]]
                prev = np.r_[-1, rows[:-1] + self.rows_before]
                parent[rows[same]] = prev[same]
                for r in rows[~same & (out["turn"][rows] > 1)].tolist():
                    parent[r] = self.last_row.get(int(sess[r]), -1)
                last = np.r_[~same[1:], True]
                for r in rows[last].tolist():
                    key = int(sess[r])
                    if final is not None and final[r]:
                        self.last_row.pop(key, None)
                    else:
                        self.last_row[key] = r + self.rows_before
            out["parent"][:] = parent
        self.rows_before += n
