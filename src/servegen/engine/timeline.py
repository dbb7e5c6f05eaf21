"""Every client's effective rate over time, one block of stream windows at a time.

A sample call needs, for each client, the rate in force (its own rate times its share of
a target) and the arrival law in force, over the whole duration. Materializing that per
600 s window made planning cost grow with the duration even where nothing happens, so
here time is cut into blocks of ``BLOCK_WINDOWS`` windows computed on demand. A block
holds its segments (window edges, piece breaks, rate-target breaks, callable steps), the
effective rate and law of every client on each, and each client's *runs*: maximal
stretches inside one window where its own rate and law stay the same.

A run's operational length (rate x width) is computed once per run, never summed over
segments, so a break that belongs to another client, or to a rate target that does not
change this client's rate, leaves its stream bit-identical. A client's renewal *clock*
(the running sum of its run lengths) tells in which later window its next arrival falls,
so windows where a slow client sends nothing cost nothing.

>>> import numpy as np
>>> start, op = runs(np.array([[2.0, 2.0, 3.0]]), np.zeros((1, 3), int), np.array([0.0, 1, 4, 6]),
...                  np.array([True, False, False]))
>>> op.tolist()  # the first two segments are one run of rate 2 over 4 s
[[8.0, 0.0, 6.0]]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .kernels import OBJECT, Pieces, draw_residual, renewal_points

__all__ = [
    "BLOCK_WINDOWS",
    "CALLABLE_STEP",
    "STREAM_WINDOW",
    "Block",
    "Timeline",
    "eval_rate",
    "runs",
    "sample_process",
    "segment_points",
    "window_points",
]

#: Seconds per stream window: the unit of random-stream independence and of merging.
STREAM_WINDOW = 600.0
#: A callable rate target is evaluated once per step of this many seconds.
CALLABLE_STEP = STREAM_WINDOW / 10
#: Windows per block (fixed, so a client's arithmetic never depends on the others).
BLOCK_WINDOWS = 1024

Float64 = NDArray[np.float64]


@dataclass
class Block:
    """Windows ``[w0, w1)``: ``S`` segments and each client's rate, law and runs on them."""

    w0: int
    w1: int
    edges: Float64  # (S + 1,) segment edges; the last is the block's end (or the duration)
    win_seg: NDArray[np.intp]  # (w1 - w0 + 1,) first segment of each window, then S
    eff: Float64  # (n, S) effective rate
    piece: NDArray[np.intp]  # (n, S) index of the piece in force
    law: NDArray[np.intp]  # (n, S) law id (equal ids: the same unit-rate renewal law)
    uniform: bool  # one segment per window, every row constant

    @cached_property
    def clock(self) -> Float64:
        """(n, S) running sum of each client's run lengths from the block's start."""
        if self.uniform:  # every window is one run: what runs() computes, cheaper
            op = self.eff * np.diff(self.edges)
        else:
            window_start = np.zeros(self.eff.shape[1], dtype=bool)
            window_start[self.win_seg[:-1]] = True
            op = runs(self.eff, self.law, self.edges, window_start)[1]
        return np.cumsum(op, axis=1)

    def segments(self, w: int) -> tuple[int, int]:
        """The segment range of window ``w``."""
        return int(self.win_seg[w - self.w0]), int(self.win_seg[w - self.w0 + 1])

    def window_of(self, s: int) -> int:
        """The window holding segment ``s``."""
        return self.w0 + int(np.searchsorted(self.win_seg, s, side="right")) - 1


def runs(
    eff: Float64, law: NDArray[np.intp], edges: Float64, window_start: NDArray[np.bool_]
) -> tuple[NDArray[np.bool_], Float64]:
    """Run starts and run lengths (op-time, at each run's first segment, else 0) per row.

    A run starts at a window start and wherever a row's rate or law changes; its length
    is ``rate * (end - start)`` of the whole run, whatever segments it spans.
    """
    n, s = eff.shape
    start = np.empty((n, s), dtype=bool)
    start[:, 0] = True
    start[:, 1:] = (eff[:, 1:] != eff[:, :-1]) | (law[:, 1:] != law[:, :-1])
    start |= window_start
    pos = np.where(start, np.arange(s), s)
    after = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]  # first start at or after
    nxt = np.concatenate([after[:, 1:], np.full((n, 1), s)], axis=1)
    op = np.where(start, eff * (edges[nxt] - edges[:-1]), 0.0)
    return start, op


def law_ids(p: Pieces) -> NDArray[np.intp]:
    """Per piece, an id shared with the piece before it when both have the same
    unit-rate renewal law (so a run of equal laws is one renewal process)."""
    fam = p.family
    same = (fam[1:] == fam[:-1]) & (p.shape[1:] == p.shape[:-1]) & (p.scale[1:] == p.scale[:-1])
    same &= fam[1:] != OBJECT  # every object piece is its own law
    first = np.where(np.r_[True, ~same], np.arange(fam.size), 0)
    return np.maximum.accumulate(first).astype(np.intp)


class Timeline:
    """Effective rates of every client, one :class:`Block` at a time.

    ``rate`` and ``scale`` are the checked target and factor of a ``Workload``;
    ``per_arrival`` is each client's requests per arrival (targets count requests).
    """

    def __init__(
        self,
        pieces: Sequence[Pieces],
        keys: Sequence[Hashable],
        per_arrival: Float64,
        rate: Any,
        scale: Any,
        duration: float,
    ) -> None:
        self.pieces, self.keys, self.rate, self.duration = list(pieces), list(keys), rate, duration
        self.n_windows = max(1, math.ceil(duration / STREAM_WINDOW))
        self.n_blocks = math.ceil(self.n_windows / BLOCK_WINDOWS)
        if rate is not None:
            bad = np.flatnonzero(~np.isfinite(per_arrival))
            if bad.size:
                raise ValueError(
                    f"Workload: client {keys[bad[0]]!r} has `session.turns` with mean "
                    f"{float(per_arrival[bad[0]])!r}, so a rate target cannot be shared out over it "
                    "(turns per session need a finite mean: bound the law with Clipped(..., high=...))"
                )
        # Without a target, requests per arrival only cancel out (kept for identical rounding).
        self.per_arrival = np.where(np.isfinite(per_arrival), per_arrival, 1.0)
        self.factor = np.array([scale.get(k, 1.0) for k in keys]) if isinstance(scale, dict) else None
        self.scale = None if isinstance(scale, dict) else float(scale)
        self.laws = [law_ids(p) for p in self.pieces]
        self.has_objects = np.array([bool((p.family == OBJECT).any()) for p in self.pieces])
        breaks = [p.times for p in self.pieces]
        if isinstance(rate, dict):
            breaks.append(np.array(list(rate), dtype=np.float64))
        b = np.unique(np.concatenate(breaks))
        self.breaks = b[(b > 0) & (b < duration)]
        self._cache: dict[int, Block] = {}
        self._cached = 0
        self._used: dict[tuple[int, int], float] = {}  # op-time each recording has played

    def block(self, b: int) -> Block:
        """Block ``b`` (computed, or kept from an earlier call when small)."""
        if b in self._cache:
            return self._cache[b]
        blk = self._compute(b)
        if self._cached + blk.eff.size <= 2**17:
            self._cache[b] = blk  # a callable rate is then evaluated once per step
            self._cached += blk.eff.size
        return blk

    def _compute(self, b: int) -> Block:
        w0 = b * BLOCK_WINDOWS
        w1 = min(w0 + BLOCK_WINDOWS, self.n_windows)
        win = np.minimum(np.arange(w0, w1 + 1) * STREAM_WINDOW, self.duration)
        t0, t1 = float(win[0]), float(win[-1])
        inner = self.breaks[(self.breaks > t0) & (self.breaks < t1)]
        pa = self.per_arrival[:, None]
        if inner.size == 0 and not callable(self.rate):
            # Nothing changes inside: one segment per window, rates and laws constant
            # (the same numbers the general path computes, with no (n, S) rate arrays).
            n, k = len(self.pieces), w1 - w0
            piece1 = np.array([[np.searchsorted(p.times, t0, side="right") - 1] for p in self.pieces])
            native = np.array([p.rates[i] for p, i in zip(self.pieces, piece1, strict=True)])
            eff = np.broadcast_to(self._effective(native * pa, win[:1]) / pa, (n, k))
            law1 = np.array([ids[i] for ids, i in zip(self.laws, piece1, strict=True)])
            piece, law = np.broadcast_to(piece1, (n, k)), np.broadcast_to(law1, (n, k))
            return Block(w0, w1, win, np.arange(k + 1), eff, piece, law, True)
        parts = [win, inner]
        if callable(self.rate):
            steps = np.arange(math.ceil(t0 / CALLABLE_STEP), math.ceil(t1 / CALLABLE_STEP))
            parts.append(steps * CALLABLE_STEP)
        edges = np.unique(np.concatenate(parts))
        starts = edges[:-1]
        win_seg = np.append(np.searchsorted(edges, win[:-1]), starts.size)
        piece = np.stack([np.searchsorted(p.times, starts, side="right") - 1 for p in self.pieces])
        native = np.stack([p.rates[i] for p, i in zip(self.pieces, piece, strict=True)])
        eff = self._effective(native * pa, starts) / pa
        law = np.stack([ids[i] for ids, i in zip(self.laws, piece, strict=True)])
        return Block(w0, w1, edges, win_seg, eff, piece, law, False)

    def _effective(self, native: Float64, starts: Float64) -> Float64:
        rate = self.rate
        if rate is None:
            eff = native.copy()
        else:
            if isinstance(rate, dict):
                times = np.array(list(rate))
                target = np.array(list(rate.values()))[np.searchsorted(times, starts, side="right") - 1]
            elif callable(rate):
                # the middle of the step holding each segment (piece breaks do not move it)
                target = eval_rate(rate, (np.floor(starts / CALLABLE_STEP) + 0.5) * CALLABLE_STEP)
            else:
                target = np.full(starts.size, rate)
            total = native.sum(axis=0)
            dead = (total <= 0) & (target > 0)
            if dead.any():
                j = int(np.argmax(dead))
                raise ValueError(
                    f"Workload: target rate {float(target[j])!r} req/s at t={float(starts[j]):g}s, "
                    "but no client is active then (all native rates are 0)"
                )
            with np.errstate(invalid="ignore", divide="ignore"):
                eff = np.where(total > 0, native * (target / np.where(total > 0, total, 1.0)), 0.0)
        if self.factor is not None:
            eff *= self.factor[:, None]
        elif self.scale is not None:  # always, when there is no per-client factor
            eff *= self.scale
        return eff

    def expected(self, selected: NDArray[np.bool_]) -> float:
        """Expected requests of the selected clients over the whole duration (one pass)."""
        total = 0.0
        weight = self.per_arrival * selected
        for b in range(self.n_blocks):
            blk = self.block(b)
            total += float((blk.eff * np.diff(blk.edges)).sum(axis=1) @ weight)
            self._check_objects(blk)
        return total

    def expected_until(self, times: NDArray[np.float64]) -> Float64:
        """Expected requests of each client in [0, t) for each t of ``times``: (clients, times).

        Rates are constant within a segment, so the counts grow linearly between edges.
        """
        weight = self.per_arrival
        edges, cums = [np.zeros(1)], [np.zeros((len(self.pieces), 1))]
        for b in range(self.n_blocks):
            blk = self.block(b)
            seg = blk.eff * np.diff(blk.edges) * weight[:, None]  # each segment's expected requests
            cums.append(cums[-1][:, -1:] + np.cumsum(seg, axis=1))
            edges.append(blk.edges[1:])
        e, cum = np.concatenate(edges), np.concatenate(cums, axis=1)
        t = np.clip(np.asarray(times, dtype=np.float64), 0.0, e[-1])
        j = np.clip(np.searchsorted(e, t, side="right") - 1, 0, e.size - 2)
        width = e[j + 1] - e[j]
        frac = np.divide(t - e[j], width, out=np.zeros_like(t), where=width > 0)
        return cum[:, j] + (cum[:, j + 1] - cum[:, j]) * frac

    def _check_objects(self, blk: Block) -> None:
        """A rate target must not outrun a client whose recording ends (``Replay``)."""
        if self.rate is None:
            return
        for i in np.flatnonzero(self.has_objects).tolist():
            p = self.pieces[i]
            for k in np.flatnonzero(p.family == OBJECT).tolist():
                span = getattr(p.objects[k] if p.objects else None, "_op_span", None)
                if span is None:
                    continue
                used = self._used.get((i, k), 0.0)
                op = np.where(blk.piece[i] == k, blk.eff[i] * np.diff(blk.edges), 0.0)
                cum = used + np.cumsum(op)
                if cum.size and cum[-1] > span * (1 + 1e-9):
                    s = int(np.argmax(cum > span * (1 + 1e-9)))
                    t = float(blk.edges[s] + (span - (cum[s] - op[s])) / blk.eff[i, s])
                    raise ValueError(
                        f"Workload: client {self.keys[i]!r} replays a recording that this rate target "
                        f"plays through by t~{t:g} s, before the {self.duration:g} s asked, so the target "
                        "would fall short; sample less, lower the target, or replay a longer recording"
                    )
                self._used[(i, k)] = float(cum[-1]) if cum.size else used


def window_points(
    blk: Block,
    i: int,
    w: int,
    p: Pieces,
    offset: float | None,
    objects: dict[int, Any],
    rng: np.random.Generator,
) -> tuple[Float64, float | None]:
    """Client ``i``'s arrival times in window ``w`` and its renewal offset after it.

    Consecutive runs with the same law are one renewal call in operational time, mapped
    back to time run by run; a window with one run maps as ``start + points / rate``.
    """
    lo, hi = blk.segments(w)
    if hi - lo == 1:  # one segment, one run: what the general path computes, cheaper
        r, t0 = float(blk.eff[i, lo]), float(blk.edges[lo])
        length = r * (float(blk.edges[hi]) - t0)
        if not length > 0:
            return np.empty(0), offset
        pts, offset = segment_points(p, int(blk.piece[i, lo]), length, offset, objects, rng)
        return t0 + pts / r, offset
    eff, law, edges = blk.eff[i : i + 1, lo:hi], blk.law[i : i + 1, lo:hi], blk.edges[lo : hi + 1]
    first = np.zeros(hi - lo, dtype=bool)
    first[0] = True
    start, op = runs(eff, law, edges, first)
    idx = np.flatnonzero(start[0] & (op[0] > 0))
    out = []
    g = 0
    while g < idx.size:  # one iteration per group of runs with one law (usually one)
        h = g + 1
        while h < idx.size and law[0, idx[h]] == law[0, idx[g]]:
            h += 1
        sel = idx[g:h]
        ops = op[0, sel]
        total = float(ops[0]) if ops.size == 1 else float(np.cumsum(ops)[-1])
        pts, offset = segment_points(p, int(blk.piece[i, lo + sel[0]]), total, offset, objects, rng)
        if pts.size:
            rates, starts = eff[0, sel], edges[sel]
            if sel.size == 1:
                out.append(starts[0] + pts / rates[0])
            else:
                ends = np.cumsum(ops)
                j = np.minimum(np.searchsorted(ends, pts, side="right"), sel.size - 1)
                out.append(starts[j] + (pts - (ends - ops)[j]) / rates[j])
        g = h
    if not out:
        return np.empty(0), offset
    return (out[0] if len(out) == 1 else np.concatenate(out)), offset


def segment_points(
    p: Pieces,
    k: int,
    length: float,
    offset: float | None,
    obj_states: dict[int, Any],
    rng: np.random.Generator,
) -> tuple[Float64, float | None]:
    """Operational-time points of piece ``k`` over one segment of length ``length``."""
    fam = int(p.family[k])
    if fam == OBJECT:
        assert p.objects is not None
        pts, obj_states[k] = p.objects[k]._op_points(obj_states.get(k), length, rng)
        return pts, offset
    shape, scale = float(p.shape[k]), float(p.scale[k])
    if offset is None:  # the process switches on: start in its stationary state
        offset = draw_residual(fam, shape, scale, rng)
    return renewal_points(fam, shape, scale, offset, length, rng)


def sample_process(proc: Any, start: float, end: float, rng: np.random.Generator) -> Float64:
    """Arrivals of one process at its native rate on [start, end), from one generator."""
    p: Pieces = proc._pieces()
    edges = np.unique(np.concatenate([[start, end], p.times[(p.times > start) & (p.times < end)]]))
    offset: float | None = None
    states: dict[int, Any] = {}
    out = []
    for t0, t1 in itertools.pairwise(edges):
        k = int(np.searchsorted(p.times, t0, side="right")) - 1
        r = float(p.rates[k])
        if r <= 0:
            continue
        pts, offset = segment_points(p, k, r * (t1 - t0), offset, states, rng)
        out.append(t0 + pts / r)
    return np.concatenate(out) if out else np.empty(0)


def eval_rate(fn: Callable[[Any], Any], t: Float64) -> Float64:
    """A callable rate at times ``t`` (vectorized if it can be), checked finite and >= 0."""
    try:
        vals = np.asarray(fn(t), dtype=np.float64)
        if vals.shape != t.shape:
            raise ValueError
    except Exception:
        vals = np.array([float(fn(float(x))) for x in t])
    bad = ~(np.isfinite(vals) & (vals >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"Workload: `rate({t[i]:g})` returned {float(vals[i])!r}; rates must be finite and >= 0"
        )
    return vals
