"""Fit conversation structure and prefix sharing from a trace with KV-cache block hashes.

A trace with ``hash_ids`` (Mooncake: 512-token blocks; Qwen-Bailian: 16) shows which
requests continue earlier ones: a request whose leading blocks repeat an earlier
request's blocks beyond the shared system prompt is that request's next turn. From the
links this module estimates, per :mod:`servegen.sessions`' model:

* shared prefixes: requests grouped by their first block; a group's prompt is the run of
  leading blocks every member shares; popularity = group frequencies;
* sessions: chains of continuations; turns per session, think time (gap minus the
  parent's response time at ``response_rate``), new user tokens per turn (growth beyond
  the parent's input + output, floored at 0), first-turn user tokens, outputs;
* session starts: rate and CV of the roots' arrivals (timestamps de-quantized within
  their clock tick when the trace is logged on a coarse clock).

When the trace has explicit ``parent`` row indices (Bailian's ``parent_chat_id``, mapped
by the reader), those links are used instead of inferred ones.

>>> import servegen as sg, pandas as pd
>>> c = sg.Client(arrival=sg.Poisson(rate=1), input_tokens=sg.LogNormal(mu=6, sigma=1),
...     output_tokens=sg.Exponential(mean=100),
...     session=sg.Session(turns=sg.Empirical(values=[1, 3], probs=[.5, .5]), think_time=30, new_tokens=50),
...     prefix=sg.SharedPrefix(groups=1, popularity=1, tokens=512))
>>> trace = sg.Workload([c], block_size=512).sample(3600, rng=0).to_pandas()
>>> fitted = fit_sessions(trace, block_size=512)
>>> round(fitted.session.mean_turns(), 1), fitted.prefix.tokens
(2.0, Constant(value=512.0))
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._rng import generator
from .arrivals import Gamma, Poisson
from .client import Client
from .distributions import Constant, Empirical
from .metrics import clock_resolution, dequantize
from .sessions import Session, SharedPrefix

__all__ = ["fit_sessions", "link_turns"]


def link_turns(hash_ids: Any) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each request, the longest run of leading blocks seen before, and whose it was.

    Returns ``(match, parent)``: ``match[i]`` leading blocks of request ``i`` equal those
    of the latest earlier request ``parent[i]`` (-1 when ``match`` is 0). Requests must
    be in time order. Each block prefix is keyed by a running hash of the ids, one dict
    lookup per block (0.3 s for the 290k blocks of the Mooncake conversation trace).
    """
    n = len(hash_ids)
    match = np.zeros(n, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    owner: dict[tuple[int, int], int] = {}
    for i, ids in enumerate(hash_ids):
        keys = []
        key = 0
        for depth, b in enumerate(ids):
            key = hash((key, int(b)))
            keys.append((depth, key))
        k = 0
        for kk in keys:
            if kk not in owner:
                break
            k += 1
        if k:
            match[i], parent[i] = k, owner[keys[k - 1]]
        for kk in keys:
            owner[kk] = i
    return match, parent


def _empirical(x: NDArray[Any], points: int = 512) -> Empirical:
    """An Empirical over at most ``points`` quantiles of ``x`` (masses of nearest ranks)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    if x.size == 0:
        raise ValueError("cannot fit a distribution to no data")
    q = np.unique(np.quantile(x, (np.arange(points) + 0.5) / points, method="inverted_cdf"))
    idx = np.minimum(np.searchsorted(q, x, side="left"), q.size - 1)
    probs = np.bincount(idx, minlength=q.size) / x.size
    keep = probs > 0
    return Empirical(values=q[keep], probs=probs[keep] / probs[keep].sum())


def fit_sessions(
    trace: pd.DataFrame,
    *,
    block_size: int,
    response_rate: float = 50.0,
    rng: Any = 0,
) -> Client:
    """A :class:`~servegen.Client` with sessions and shared prefixes fitted to ``trace``.

    ``trace``: canonical columns ``timestamp`` (s), ``input_tokens``, ``output_tokens``
    and ``hash_ids`` (lists of block ids of ``block_size`` tokens), or explicit
    ``parent`` row indices. ``rng`` seeds the de-quantization jitter only.
    """
    gen = generator(rng)  # checked up front, though only a quantized clock uses it
    for col in ("timestamp", "input_tokens", "output_tokens"):
        if col not in trace.columns:
            raise ValueError(f"fit_sessions: the trace has no {col!r} column")
    if "hash_ids" not in trace.columns and "parent" not in trace.columns:
        raise ValueError("fit_sessions: the trace needs a 'hash_ids' column (or explicit 'parent' links)")
    if len(trace) < 10:
        raise ValueError(f"fit_sessions: need at least 10 requests, got {len(trace)}")
    df = trace.sort_values("timestamp", kind="stable").reset_index(drop=True)
    ts = df["timestamp"].to_numpy(dtype=np.float64)
    inp = df["input_tokens"].to_numpy(dtype=np.int64)
    out = df["output_tokens"].to_numpy(dtype=np.int64)
    n = len(df)

    # shared prefixes: group by first block; the prompt is the run all members share
    prefix = None
    n_pre = np.zeros(n, dtype=np.int64)
    if "hash_ids" in df.columns:
        ids = df["hash_ids"].tolist()
        first = np.array([int(h[0]) if len(h) else -1 for h in ids])
        groups, inverse, counts = np.unique(first, return_inverse=True, return_counts=True)
        shared = np.zeros(groups.size, dtype=np.int64)
        for g in range(groups.size):
            members = [ids[i] for i in np.flatnonzero(inverse == g)]
            if len(members) < 2 or groups[g] < 0:
                continue
            length = min(len(m) for m in members)
            k = 0
            while k < length and all(m[k] == members[0][k] for m in members[1:]):
                k += 1
            shared[g] = k
        n_pre = shared[inverse]
        popular = np.flatnonzero(shared > 0)
        if popular.size:
            order = popular[np.argsort(-counts[popular], kind="stable")]
            probs = counts[order] / counts[order].sum()
            tokens = np.rint(np.average(shared[order], weights=counts[order])) * block_size
            prefix = SharedPrefix(
                groups=order.size,
                popularity=Empirical(values=np.arange(1, order.size + 1), probs=probs),
                tokens=Constant(value=float(tokens)),
            )

    # sessions: explicit parents, or continuations beyond the shared prefix
    if "parent" in df.columns:
        parent = df["parent"].to_numpy(dtype=np.int64)
        cont = parent >= 0
    else:
        match, parent = link_turns(ids)
        cont = match > n_pre
    root = np.arange(n)
    for i in np.flatnonzero(cont):  # parents precede children: one pass resolves roots
        root[i] = root[parent[i]]
    turns = np.bincount(np.unique(root, return_inverse=True)[1])
    p = parent[cont]
    think = np.maximum(ts[cont] - ts[p] - out[p] / response_rate, 0.0)
    growth = np.maximum(inp[cont] - inp[p] - out[p], 0)
    user = np.maximum(inp[~cont] - n_pre[~cont] * block_size, 1)

    starts = ts[~cont]
    span = float(ts.max() - ts.min()) or 1.0
    clock = clock_resolution(ts)
    if clock.quantized:  # spread requests sharing a clock tick over the tick (as fit does)
        starts = np.sort(dequantize(starts, clock.resolution, rng=gen))
    gaps = np.diff(starts)
    cv = float(gaps.std() / gaps.mean()) if gaps.size > 2 and gaps.mean() > 0 else 1.0
    rate = starts.size / span
    arrival = Poisson(rate=rate) if abs(cv - 1) < 0.05 else Gamma(rate=rate, cv=max(cv, 0.05))

    session = None
    if cont.any():
        session = Session(
            turns=Empirical(values=np.arange(1, turns.max() + 1), probs=np.bincount(turns)[1:] / turns.size),
            think_time=_empirical(think),
            new_tokens=_empirical(growth),
            response_rate=response_rate,
        )
    return Client(
        arrival=arrival,
        input_tokens=_empirical(user),
        output_tokens=_empirical(out),
        session=session,
        prefix=prefix,
    )
