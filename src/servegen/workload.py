"""``Workload``: clients composed into one timestamp-sorted request stream.

How a workload is sampled
-------------------------
Time is cut into stream windows of ``STREAM_WINDOW`` (600) seconds. Each (client,
window) pair draws from its own random streams, derived from ``(seed, client key,
window index)``, so adding a client leaves the others' requests unchanged and
``iter_chunks`` with any chunk size concatenates to exactly ``sample``. Inside a window
each client's arrivals are drawn with one vectorized call per stretch of one arrival law
(see :mod:`servegen._timeline`), then all of its request values at once; the clients'
sorted runs are merged with one stable argsort per window (which exploits the runs)
rather than one sort of the whole stream. Only windows where some client has an arrival
due or a session turn pending are visited, and the last is cut at ``duration``, so the
cost follows the requests produced, not the number of windows.

Rate targets
------------
``rate=None`` keeps every client's own rates. A target (a number, a ``{time: rate}``
step function, or a callable of time evaluated every ``STREAM_WINDOW / 10`` seconds)
scales every client in proportion to its own rate at that moment, so the aggregate
follows the target; ``scale`` (a number, or a per-client mapping) multiplies the result.
Scaling is a time change, so it keeps each client's inter-arrival CV.

>>> import servegen as sg
>>> wl = sg.Workload({"a": sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=5),
...                   "b": sg.Client(arrival=sg.Poisson(rate=3), input_tokens=20, output_tokens=5)},
...                  rate=40.0)
>>> r = wl.sample(600, rng=0)
>>> round(len(r) / 600), round(float((r.client == 1).mean()), 2)
(40, 0.75)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _rng
from ._checks import (
    SPEC_FIELDS,
    check_depth,
    check_duration,
    check_rate,
    check_scale,
    check_workers,
    spec_pairs,
)
from ._timeline import STREAM_WINDOW, Block, Timeline, window_points
from .arrivals import Pieces
from .client import Client, _CustomArrival
from .requests import CORE_DTYPES, Ragged, Requests
from .sessions import BlockIds, client_turns
from .warm_start import warm_starts

__all__ = ["STREAM_WINDOW", "Workload"]


class Workload:
    """Clients merged into one stream, optionally scaled to a target aggregate rate.

    Parameters
    ----------
    clients
        ``{key: Client}`` (keys are ints or strs), a list of clients (keys 0..n-1), or a
        client pool or pool view (anything with a ``to_clients()`` method).
    rate
        ``None`` (native rates), a number (req/s), ``{time_s: rate}`` (a step function
        starting at time 0) or a callable ``rate(t)`` (vectorized over a numpy array, or
        scalar).
    scale
        A factor applied after ``rate`` to every client, or ``{key: factor}`` per client.
    block_size
        Tokens per KV-cache block; when given, requests get ``hash_ids`` (see
        :mod:`servegen.sessions`): 512 for Mooncake traces, 16 for vLLM/Bailian.

    Notes
    -----
    For clients with sessions, rates count requests (session starts x mean turns), and
    the stream starts warm, with the sessions in progress at t = 0 (``servegen.warm_start``).
    """

    def __init__(
        self,
        clients: Any,
        rate: float | Mapping[float, float] | Callable[[Any], Any] | None = None,
        scale: float | Mapping[Hashable, float] = 1.0,
        block_size: int | None = None,
    ) -> None:
        self._source = clients if hasattr(clients, "to_clients") else None
        if self._source is not None:
            clients = clients.to_clients()
        if isinstance(clients, Mapping):
            items = list(clients.items())
        elif isinstance(clients, Sequence) and not isinstance(clients, (str, bytes)):
            items = list(enumerate(clients))
        else:
            raise TypeError(f"Workload: `clients` must be a mapping, a list or a pool, got {clients!r}")
        if not items:
            raise ValueError("Workload: `clients` must not be empty")
        self.clients: dict[Hashable, Client] = {}
        for key, c in items:
            _rng.key_hash(key)  # validates the key type
            if isinstance(c, dict):
                c = Client.model_validate(c)
            if not isinstance(c, Client):
                raise TypeError(f"Workload: client {key!r} must be a servegen Client, got {c!r}")
            self.clients[key] = c
        self.rate = check_rate(rate)
        self.scale = check_scale(scale, self.clients)
        if block_size is not None and (
            isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1
        ):
            raise ValueError(
                f"Workload: `block_size` must be a whole number of tokens >= 1, got {block_size!r}"
            )
        self.block_size = None if block_size is None else int(block_size)

    @property
    def keys(self) -> list[Hashable]:
        return list(self.clients)

    def __repr__(self) -> str:
        return f"Workload(clients={len(self.clients)}, rate={self.rate!r}, scale={self.scale!r})"

    # -- sampling -------------------------------------------------------------------
    def sample(
        self,
        duration: float,
        *,
        rng: Any = None,
        workers: int | None = None,
        clients: Iterable[Hashable] | None = None,
        start: float = 0.0,
    ) -> Requests:
        """All requests in [0, ``duration``) seconds, sorted by timestamp.

        ``rng`` is a seed (int), ``SeedSequence``, ``Generator`` or ``None``. With
        ``workers`` >= 2 (the default on a multi-core machine) each window is merged on a
        background thread while the next is drawn; the result does not depend on it.

        ``clients`` (keys) samples only those clients' requests, exactly as they are in
        the full sample (a target rate is still shared out over every client). Sampling
        disjoint groups in separate processes or on separate machines and joining them
        with :func:`servegen.merge` gives the full sample:

        >>> import servegen as sg
        >>> wl = sg.Workload({k: sg.Client(arrival=sg.Gamma(rate=k + 1, cv=2), input_tokens=9,
        ...                                output_tokens=9) for k in range(4)}, rate=50.0)
        >>> parts = [wl.sample(600, rng=1, clients=g) for g in ([0, 2], [1, 3])]
        >>> sg.merge(parts).equals(wl.sample(600, rng=1))
        True

        ``start`` (a multiple of ``STREAM_WINDOW``, 600 s) keeps only the requests from
        ``start`` on, exactly as in the full sample (earlier windows draw their arrivals, to
        carry the arrival state, but no request values), so time ranges too can be sampled
        apart. Not for sessions, shared prefixes or block ids: their turns carry over.
        """
        duration = check_duration(duration)
        plan = _Plan(self, duration, _rng.root_seed(rng), workers, clients)
        plan.skip_to(start)
        sink = _Sink(plan.flat_cols, plan.expected_requests())
        for _ in plan.windows(sink):
            pass
        return sink.result(plan, duration)

    def iter_chunks(
        self,
        duration: float,
        chunk: float,
        *,
        rng: Any = None,
        workers: int | None = None,
        clients: Iterable[Hashable] | None = None,
    ) -> Iterator[Requests]:
        """Yield the stream of :meth:`sample` as consecutive ``chunk``-second parts.

        Memory stays bounded by one chunk plus one stream window; the parts concatenate
        to exactly ``sample(duration, rng=rng)`` for the same seed.
        """
        duration = check_duration(duration)
        if not (isinstance(chunk, (int, float)) and math.isfinite(chunk) and chunk > 0):
            raise ValueError(f"iter_chunks: `chunk` must be a finite number > 0, got {chunk!r}")
        plan = _Plan(self, duration, _rng.root_seed(rng), workers, clients)
        cutter = _Cutter(plan, duration)
        start, edge = 0.0, float(chunk)
        for w, part in plan.windows():
            assert part is not None
            cutter.add(part)
            covered = min((w + 1) * STREAM_WINDOW, duration)
            while edge < duration and edge <= covered:
                yield _chunk(cutter.take(edge), start, edge)
                start, edge = edge, edge + chunk
        while edge < duration:  # chunks after the last window with requests
            yield _chunk(cutter.take(edge), start, edge)
            start, edge = edge, edge + chunk
        yield _chunk(cutter.take(None), start, duration)

    def to_dask(self, duration: float, *, rng: Any = None, partitions: Any = None, chunk: Any = None) -> Any:
        """A lazy Dask DataFrame of :meth:`sample`, sampled by client group on the workers.

        See :func:`servegen.dask_sample.to_dask` (needs ``servegen[dask]``).
        """
        from .dask_sample import to_dask  # Dask only when asked for

        return to_dask(self, duration, rng=rng, partitions=partitions, chunk=chunk)

    # -- specs ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (callable rates and custom models cannot be saved)."""
        if callable(self.rate):
            raise ValueError("Workload.to_dict: a callable `rate` cannot be saved; use {time: rate}")
        rate: Any = self.rate
        if isinstance(rate, dict):
            rate = [[t, r] for t, r in rate.items()]
        if self._source is not None and hasattr(self._source, "to_spec"):
            clients: Any = self._source.to_spec()
        else:
            clients = [[k, c.model_dump(mode="json")] for k, c in self.clients.items()]
        scale = [[k, v] for k, v in self.scale.items()] if isinstance(self.scale, dict) else self.scale
        spec = {"kind": "workload", "clients": clients, "rate": rate, "scale": scale}
        if self.block_size is not None:
            spec["block_size"] = self.block_size
        return spec

    def to_json(self, **kw: Any) -> str:
        """:meth:`to_dict` as JSON text; ``Workload.from_json`` reads it back exactly."""
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Workload:
        """Rebuild a workload from :meth:`to_dict` output.

        Unknown fields, repeated client keys and malformed pairs are errors, never dropped.
        """
        if not isinstance(spec, Mapping):
            raise ValueError(f"Workload.from_dict: a spec must be a JSON object, got {type(spec).__name__}")
        check_depth(spec)  # before pydantic recurses into it
        if spec.get("kind") != "workload":
            raise ValueError(f"Workload.from_dict: expected kind 'workload', got {spec.get('kind')!r}")
        unknown = [k for k in spec if k not in SPEC_FIELDS]
        if unknown:
            raise ValueError(
                f"Workload.from_dict: unknown field(s) {unknown!r}; a workload spec has {list(SPEC_FIELDS)!r}"
            )
        if "clients" not in spec:
            raise ValueError("Workload.from_dict: the spec has no 'clients' field")
        raw = spec["clients"]
        if isinstance(raw, Mapping) and raw.get("kind") == "pool":
            from .pools import _pool_from_spec

            clients: Any = _pool_from_spec(raw)
        else:
            if isinstance(raw, Mapping) and raw.get("kind") == "clients":
                raw = raw.get("clients")
            clients = {k: Client.model_validate(c) for k, c in spec_pairs(raw, "clients")}
        rate = spec.get("rate")
        if isinstance(rate, list):
            rate = {float(t): float(r) for t, r in spec_pairs(rate, "rate", keys="rate times")}
        scale = spec.get("scale", 1.0)
        if isinstance(scale, list):
            scale = {k: float(v) for k, v in spec_pairs(scale, "scale")}
        return cls(clients, rate=rate, scale=scale, block_size=spec.get("block_size"))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workload):
            return NotImplemented
        return (
            list(self.clients) == list(other.clients)
            and all(self.clients[k] == other.clients[k] for k in self.clients)
            and self.rate == other.rate
            and self.scale == other.scale
            and self.block_size == other.block_size
        )

    __hash__ = None  # type: ignore[assignment]


# -- the sampling plan -----------------------------------------------------------------
_NEVER = np.iinfo(np.int64).max
_SMALL = 20_000  # rows: a window this small is merged on the drawing thread


class _Plan:
    """Everything fixed for one sample call, and each client's arrival state.

    Windows are visited in order, but only those where some client has an arrival due
    (found from its renewal clock, see :mod:`servegen._timeline`) or a pending session
    turn: a slow client costs nothing in the windows where it sends nothing.
    """

    def __init__(
        self,
        wl: Workload,
        duration: float,
        root: np.random.SeedSequence,
        workers: int | None = None,
        only: Iterable[Hashable] | None = None,
    ) -> None:
        self.root = root
        self.workers = check_workers(workers)
        check_source = getattr(wl._source, "check_sample", None)  # a pool view ends
        if check_source is not None:
            check_source(duration)
        self.selected = np.ones(len(wl.clients), dtype=bool)
        if only is not None:
            keys = list(wl.clients)
            wanted = list(only)
            unknown = [k for k in wanted if k not in wl.clients]
            if unknown:
                raise ValueError(f"sample: `clients` names unknown client(s) {unknown[:10]!r}")
            self.selected[:] = False
            self.selected[[keys.index(k) for k in wanted]] = True
        self.duration = duration
        self.keys = list(wl.clients)
        self.clients = list(wl.clients.values())
        self.hashes = [_rng.key_hash(k) for k in self.keys]
        self.pieces: list[Pieces] = [c._pieces() for c in self.clients]
        if wl.rate is not None or wl.scale != 1.0:
            for i, p in enumerate(self.pieces):
                if any(isinstance(o, _CustomArrival) and not o.has_rate for o in p.objects or ()):
                    raise ValueError(
                        f"Workload: client {self.keys[i]!r} has a custom arrival process without a "
                        "`rate`, so it cannot be rate-scaled"
                    )
        self.per_arrival = np.array([c.requests_per_arrival for c in self.clients], dtype=np.float64)
        self.timeline = Timeline(self.pieces, self.keys, self.per_arrival, wl.rate, wl.scale, duration)
        self.n_windows = self.timeline.n_windows
        # one pass over the blocks: checks the target everywhere before any work is done
        self._expected = self.timeline.expected(self.selected, self.per_arrival)
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
        self.block_size = wl.block_size
        if self.block_size is not None:
            self.ragged_cols["hash_ids"] = np.int64
        if any(c.session is not None for c in self.clients):
            self.flat_cols["_final"] = np.bool_  # internal: a session's last turn
        self.turns = (
            _Turns(self)
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

    def windows(self, sink: _Sink | None = None) -> Iterator[tuple[int, dict[str, Any] | None]]:
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
                for i in np.flatnonzero((due == w) | (pend == w)).tolist():
                    r = self._client_window(blk, i, w, bool(due[i] == w))
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

    def _merge_window(self, results: list[tuple[int, Any, Any, Any]], sink: _Sink | None) -> dict[str, Any]:
        times = [r[1] for r in results]
        codes = [np.full(r[1].size, r[0], dtype=np.int32) for r in results]
        out = _merge(times, codes, [r[2] for r in results], [r[3] for r in results], self.flat_cols,
                     self.ragged_cols, sink=sink)  # fmt: skip
        if self.turns is not None:
            self.turns.link_parents(out if sink is None else sink.last_window())
        if sink is not None:
            sink.commit()
        return out

    def _client_window(self, blk: Block, i: int, w: int, due: bool) -> tuple[int, Any, Any, Any] | None:
        """One client's requests in window ``w``: (client index, times, columns, ragged)."""
        # One stream per (client, window, purpose): arrivals, sessions, prefixes and each
        # value column draw from their own, so no model can shift another's draws.
        streams = _rng.WindowStreams(self.root, self.hashes[i], w)
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


class _Turns:
    """Per-client state for sessions, prefixes and block ids across stream windows.

    Sessions that start in a window may run into later windows: their later turns wait
    in a per-client pending buffer and are emitted in the window they fall in, so
    chunking never loses or duplicates a turn.
    """

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        n = len(plan.clients)
        self.pending: list[dict[str, Any] | None] = [None] * n
        self.sessions_started = [0] * n
        self.rows_before = 0
        self.last_row: dict[int, int] = {}
        self.prefix_tokens: list[NDArray[np.int64] | None] = []
        self.ids: list[BlockIds | None] = []
        for i, c in enumerate(plan.clients):
            pt = None
            if c.prefix is not None:
                rng = _rng.stream(plan.root, plan.hashes[i], 0, _rng.PREFIX)
                pt = np.rint(c.prefix.tokens.sample(c.prefix.groups, rng=rng)).astype(np.int64)
            self.prefix_tokens.append(pt)
            self.ids.append(None if plan.block_size is None else BlockIds(i, pt, plan.block_size))
            if plan.selected[i] and c.session is not None:  # sessions in progress at t = 0
                streams = _rng.WindowStreams(plan.root, plan.hashes[i], 0, base=_rng.WARM)
                blk = plan.timeline.block(0)
                lo, hi = blk.segments(0)  # the mean rate over window 0: robust to short pieces
                rate = float(np.average(blk.eff[i, lo:hi], weights=np.diff(blk.edges[lo : hi + 1])))
                piece = int(blk.piece[i, 0])
                warm, turns = warm_starts(c, plan.pieces[i], piece, rate, streams("arrivals"))
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
        return client_turns(
            plan.clients[i], starts, streams, pt, ids, first, plan.flat_cols, plan.ragged_cols, k
        )

    def _push(self, i: int, t: NDArray[np.float64], cols: dict[str, Any], rag: dict[str, Any]) -> None:
        runs = [(t, cols, rag)]
        p = self.pending[i]
        if p is not None:
            flat = {k: v for k, v in p.items() if not isinstance(v, Ragged) and k != "timestamp"}
            runs.insert(0, (p["timestamp"], flat, {k: v for k, v in p.items() if isinstance(v, Ragged)}))
        self.pending[i] = _merge(
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


# -- merging ---------------------------------------------------------------------------
def _merge(
    times: list[NDArray[np.float64]],
    codes: list[NDArray[np.int32]],
    flats: list[dict[str, NDArray[Any]]],
    raggeds: list[dict[str, Ragged]],
    flat_cols: dict[str, Any],
    ragged_cols: dict[str, Any],
    sink: _Sink | None = None,
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


class _Sink:
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

    def result(self, plan: _Plan, duration: float) -> Requests:
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


def _chunk(req: Requests, start: float, end: float) -> Requests:
    req.meta["chunk"] = [start, end]
    return req


class _Cutter:
    """Merged windows waiting to be cut into chunks; each row is copied at most once.

    Cutting keeps a position in the oldest window instead of re-copying what is left of
    it, so many small chunks cost what one big chunk does.
    """

    def __init__(self, plan: _Plan, duration: float) -> None:
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
