"""Warm start: the sessions already in progress at t = 0.

A real trace is a window of a service that was already running: at its first second,
conversations started earlier are still sending turns. A workload whose sessions all
start at t >= 0 instead ramps up over the length of a session (8 % of the requests of
Mooncake's conversation hour are missing that way). With ``Session(warm_start=True)``
(the default) a session client starts in its stationary state instead.

The rule (exact up to the burn-in span)
---------------------------------------
For a session client whose session-start rate at t = 0 is ``r > 0``:

1. The burn-in span ``B`` is the longest duration (first turn to last turn) of
   ``PILOT`` sessions drawn from the client's models in force at t = 0.
2. Session starts on ``[-B, 0)`` are drawn from the stationary version of the client's
   arrival law in force at t = 0, at its effective rate ``r`` (so a workload ``rate``
   target or ``scale`` applies to them too): a renewal law starts from its equilibrium
   residual, :class:`~servegen.OnOff` from its long-run on/off probabilities.
3. Each such session is built exactly like one that starts at t >= 0 (turn count,
   lengths, think times, context growth, block ids), with the models in force at t = 0;
   only its turns at t >= 0 are kept. The first kept turn of such a session may have
   ``turn > 1`` and ``parent == -1`` (its earlier turns happened before the trace), as
   in a recorded trace; its ``hash_ids`` still repeat the blocks of those earlier turns.

Everything is drawn from the client's own warm-start stream, derived from ``(seed,
client key)``, so the same seed gives the same stream and chunked or per-group
sampling gives the same requests as one call.

Limits: sessions that started before ``-B`` and still run at 0 are missed. They are a
fraction ``E[(D - B)+] / E[D]`` of the sessions in progress (``D``: a session's
duration): nothing for bounded durations, well under 1 % for light tails, a few
percent for heavy-tailed durations (e.g. Pareto think times with tail index < 2). The
cost is the start times over ``[-B, 0)`` plus the sessions that can still run at 0
(see :func:`warm_starts`), drawn once per run. Arrivals that
are not stationary processes (:class:`~servegen.Replay`, custom processes) and
clients without sessions are not warm-started; a rate that varies before t = 0 is not
modelled (the workload is taken to have run at its t = 0 state forever).

>>> import servegen as sg
>>> chat = sg.Client(arrival=sg.Poisson(rate=1), input_tokens=100, output_tokens=50,
...     session=sg.Session(turns=5, think_time=60, new_tokens=20))
>>> r = chat.sample(300, rng=0)
>>> bool(r["turn"][:10].max() > 1)  # turns of sessions started before t = 0
True
>>> cold = chat.model_copy(update={"session": chat.session.model_copy(update={"warm_start": False})})
>>> cold.sample(300, rng=0)["turn"][:10].tolist()
[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .arrivals import OnOff
from .engine.kernels import OBJECT, Pieces, draw_residual, renewal_points
from .piecewise import Piecewise

__all__ = ["PILOT", "burn_in_span", "max_gap", "warm_starts"]

#: Pilot sessions whose longest duration is the burn-in span (about their 99.98th
#: percentile).
PILOT = 4000


def burn_in_span(client: Any, rng: np.random.Generator) -> float:
    """Seconds before t = 0 from which sessions can still be running: the longest
    duration of :data:`PILOT` sessions drawn from ``client``'s models at t = 0.

    A session's duration is the sum of its gaps between turns (the previous turn's
    output at ``response_rate`` plus a think time), as ``servegen.sessions.build_turns``
    places them.
    """
    s = client.session
    k = np.rint(s.turns.sample(PILOT, rng=rng)).astype(np.int64)
    n = int(k.sum())
    if n == PILOT:  # every session has one turn: none is ever in progress at t = 0
        return 0.0
    cols, _ = client.sample_values(np.zeros(n), rng)
    session = np.repeat(np.arange(PILOT), k)
    later = np.ones(n, dtype=bool)
    later[np.cumsum(k) - k] = False
    prev = np.flatnonzero(later) - 1
    gaps = cols["output_tokens"][prev] / s.response_rate + s.think_time.sample(prev.size, rng=rng)
    return float(np.bincount(session[later], weights=gaps, minlength=PILOT).max())


def max_gap(client: Any) -> float:
    """The longest possible gap between two turns of ``client``'s sessions (inf when a
    model does not bound it): the longest think time plus the longest output at
    ``response_rate``."""
    s = client.session
    out = client.output_tokens
    if client.reasoning is not None and client.reasoning.mode != "ratio":
        return np.inf  # reasoning tokens are added to the output
    pieces: list[Any] = out.models if isinstance(out, Piecewise) else [out]  # any may be a custom model
    try:
        out_hi = max(float(m.support[1]) for m in pieces)
        think_hi = float(s.think_time.support[1])
    except (AttributeError, NotImplementedError):  # a custom model need not state its support
        return np.inf
    return think_hi + (out_hi + 1.0) / s.response_rate  # + 1: draws are rounded to tokens


def warm_starts(
    client: Any, pieces: Pieces, piece: int, rate: float, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Start times (< 0, sorted) and turn counts of the sessions that may be in progress
    at t = 0.

    ``pieces``/``piece``: the client's compiled arrival model and the piece in force at
    t = 0; ``rate``: its effective session-start rate. Empty when the client is not
    warm-started (see the module notes). Sessions that cannot reach t = 0 are dropped
    before any of their values is drawn (exactly: one turn, or fewer turns than the gap
    to 0 needs at :func:`max_gap` each), which saves most of the burn-in's cost.
    """
    none = np.empty(0), np.empty(0, dtype=np.int64)
    if client.session is None or not client.session.warm_start or rate <= 0:
        return none
    family = int(pieces.family[piece])
    obj = pieces.objects[piece] if family == OBJECT and pieces.objects else None
    if family == OBJECT and not isinstance(obj, OnOff):
        return none  # a replay or custom process has no stationary state to start from
    span = burn_in_span(client, rng)
    if span <= 0:
        return none
    length = rate * span  # operational time: the unit-rate process over the span
    if obj is not None:
        pts, _ = obj._op_points(None, length, rng)  # None: OnOff's stationary start
    else:
        shape, scale = float(pieces.shape[piece]), float(pieces.scale[piece])
        pts, _ = renewal_points(family, shape, scale, draw_residual(family, shape, scale, rng), length, rng)
    starts = pts / rate - span
    turns = np.rint(client.session.turns.sample(starts.size, rng=rng)).astype(np.int64)
    alive, gap = turns > 1, max_gap(client)
    if np.isfinite(gap):
        alive &= (turns - 1) * gap >= -starts
    return starts[alive], turns[alive]
