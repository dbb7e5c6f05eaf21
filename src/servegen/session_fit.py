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

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._rng import SeedLike, generator
from .arrivals import ArrivalSchedule, Gamma, Poisson
from .client import Client
from .clock import clock_resolution, dequantize
from .distributions import Constant, Empirical
from .session_starts import starts_schedule
from .sessions import Session, SharedPrefix
from .trace import as_trace

__all__ = [
    "SESSION_COLUMNS",
    "client_links",
    "fit_conversations",
    "fit_sessions",
    "infer_block_size",
    "link_turns",
    "session_client",
]


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


#: Columns that carry conversation or prefix structure (``fit`` models them by default).
SESSION_COLUMNS = ("hash_ids", "session", "parent")


class _Links(NamedTuple):
    """A time-sorted trace's structure: shared prefixes and turn links."""

    prefix: SharedPrefix | None
    n_pre: NDArray[np.int64]  # leading prefix blocks of each request
    parent: NDArray[np.int64]  # row of the previous turn, -1 for a session's first seen turn
    cont: NDArray[np.bool_]  # the request continues an earlier one


def infer_block_size(hash_ids: Any, input_tokens: Any) -> int | None:
    """The block size (a power of two, 1 to 4096 tokens) for which ``len(hash_ids)`` is
    ``ceil(input_tokens / block_size)`` on at least 99 % of the requests, else None.

    >>> infer_block_size([[1, 2], [3]], [1000, 300])
    512
    """
    lengths = np.array([len(h) for h in hash_ids], dtype=np.int64)
    inp = np.asarray(input_tokens, dtype=np.int64)
    best, agree = None, 0.99
    for bs in 2 ** np.arange(13):
        a = float(np.mean(-(-inp // bs) == lengths)) if lengths.size else 0.0
        if a >= agree:
            best, agree = int(bs), a
    return best


def _session_parents(df: pd.DataFrame) -> NDArray[np.int64]:
    """Parent rows from a ``session`` column: each turn follows the previous one in its
    session by time (then ``turn``); rows without a session (null or < 0) start none."""
    s = df["session"]
    codes = pd.factorize(s)[0]  # -1 for nulls
    if pd.api.types.is_numeric_dtype(s):
        codes[s.fillna(-1).to_numpy() < 0] = -1  # servegen writes -1 for requests outside sessions
    turn = df["turn"].to_numpy(dtype=np.float64) if "turn" in df.columns else np.zeros(len(df))
    order = np.lexsort((turn, df["timestamp"].to_numpy(dtype=np.float64), codes))
    same = (codes[order][1:] == codes[order][:-1]) & (codes[order][1:] >= 0)
    parent = np.full(len(df), -1, dtype=np.int64)
    parent[order[1:][same]] = order[:-1][same]
    return parent


def _links(df: pd.DataFrame, block_size: int | None) -> _Links:
    """Shared prefixes and turn links of a time-sorted trace (see the module notes)."""
    n = len(df)
    prefix, n_pre = None, np.zeros(n, dtype=np.int64)
    ids = df["hash_ids"].tolist() if "hash_ids" in df.columns and block_size is not None else None
    if ids is not None:
        # shared prefixes: group by first block; the prompt is the run all members share
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
            tokens = np.rint(np.average(shared[order], weights=counts[order])) * block_size
            prefix = SharedPrefix(
                groups=order.size,
                popularity=Empirical(
                    values=np.arange(1, order.size + 1), probs=counts[order] / counts[order].sum()
                ),
                tokens=Constant(value=float(tokens)),
            )
    # sessions: an explicit session column, explicit parent rows, or continuations
    # beyond the shared prefix (a ``session`` column wins: Bailian's ``parent`` holds
    # chat ids, not rows)
    if "session" in df.columns:
        parent = _session_parents(df)
        cont = parent >= 0
    elif "parent" in df.columns:
        parent = df["parent"].to_numpy(dtype=np.int64)
        cont = parent >= 0
    elif ids is not None:
        match, parent = link_turns(ids)
        cont = match > n_pre
    else:
        parent, cont = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
    return _Links(prefix, n_pre, parent, cont)


def _session_client(df: pd.DataFrame, links: _Links, block_size: int | None, response_rate: float) -> Client:
    """The client of a time-sorted trace and its links, with a Poisson placeholder arrival."""
    ts = df["timestamp"].to_numpy(dtype=np.float64)
    inp = df["input_tokens"].to_numpy(dtype=np.int64)
    out = df["output_tokens"].to_numpy(dtype=np.int64)
    cont, parent = links.cont, links.parent
    root = np.arange(len(df))
    for i in np.flatnonzero(cont):  # parents precede children: one pass resolves roots
        root[i] = root[parent[i]]
    turns = np.bincount(np.unique(root, return_inverse=True)[1])
    p = parent[cont]
    think = np.maximum(ts[cont] - ts[p] - out[p] / response_rate, 0.0)
    growth = np.maximum(inp[cont] - inp[p] - out[p], 0)
    user = np.maximum(inp[~cont] - links.n_pre[~cont] * (block_size or 0), 1)
    session = None
    if cont.any():
        session = Session(
            turns=Empirical(values=np.arange(1, turns.max() + 1), probs=np.bincount(turns)[1:] / turns.size),
            think_time=_empirical(think),
            new_tokens=_empirical(growth),
            response_rate=response_rate,
        )
    rate = float((~cont).sum()) / (float(ts.max() - ts.min()) or 1.0)
    return Client(
        arrival=Poisson(rate=rate),
        input_tokens=_empirical(user),
        output_tokens=_empirical(out),
        session=session,
        prefix=links.prefix,
    )


def session_client(df: pd.DataFrame, links: _Links, block_size: int | None) -> Client:
    """:func:`_session_client` at ``fit``'s response rate (50 tokens/s)."""
    return _session_client(df, links, block_size, 50.0)


def _local_parents(parent: Any, ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """``parent`` row ids as rows of a client's time-sorted sub-trace whose rows have ``ids``.

    A parent that is not one of the client's rows (another client's request) makes the
    turn a session start: a conversation stays with one client in the model.
    """
    p = np.asarray(parent, dtype=np.int64)
    pos = pd.Index(ids).get_indexer(pd.Index(p))  # -1: not a row of this client
    pos[p < 0] = -1
    late = np.flatnonzero(pos >= np.arange(p.size))
    if late.size:
        i = int(late[0])
        raise ValueError(
            f"fit: `parent` of row {int(ids[i])!r} is row {int(p[i])!r}, which does not come before it "
            "in time: a turn's parent must be an earlier request"
        )
    return pos


def client_links(
    df: pd.DataFrame, codes: NDArray[np.intp], keys: list[Any], block_size: int | None
) -> list[tuple[NDArray[np.intp], pd.DataFrame, _Links]]:
    """Per client: its rows in ``df``, its sub-trace and its links (``_links``).

    ``df`` is time-sorted (ties in trace order) with a ``_row`` column: each row's position
    in the trace as given, which explicit ``parent`` values refer to; they are remapped to
    rows of the client's sub-trace (:func:`_local_parents`).
    """
    ids = df["_row"].to_numpy(dtype=np.int64)
    remap = "parent" in df.columns and "session" not in df.columns
    parts = []
    for code in range(len(keys)):
        rows = np.flatnonzero(codes == code)
        g = df.iloc[rows].reset_index(drop=True)
        if remap:
            g["parent"] = _local_parents(g["parent"], ids[rows])
        parts.append((rows, g, _links(g, block_size)))
    return parts


def _check_trace(trace: pd.DataFrame, who: str) -> pd.DataFrame:
    for col in ("timestamp", "input_tokens", "output_tokens"):
        if col not in trace.columns:
            raise ValueError(f"{who}: the trace has no {col!r} column")
    if not set(SESSION_COLUMNS) & set(trace.columns):
        raise ValueError(f"{who}: the trace needs a 'hash_ids' column (or 'session' or 'parent' links)")
    if len(trace) < 10:
        raise ValueError(f"{who}: need at least 10 requests, got {len(trace)}")
    return trace.sort_values("timestamp", kind="stable").reset_index(drop=True)


def fit_sessions(
    trace: pd.DataFrame,
    *,
    block_size: int | None,
    response_rate: float = 50.0,
    rng: SeedLike = 0,
) -> Client:
    """A :class:`~servegen.Client` with sessions and shared prefixes fitted to ``trace``.

    ``trace``: canonical columns ``timestamp`` (s), ``input_tokens``, ``output_tokens``
    and ``hash_ids`` (lists of block ids of ``block_size`` tokens), or explicit links: a
    ``session`` column (turns ordered by time, then ``turn``) or ``parent`` row
    indices. The arrival is one Gamma process of session starts (:func:`~servegen.fit`
    fits a schedule of them instead). ``rng`` seeds the de-quantization jitter only.
    """
    gen = generator(rng)  # checked up front, though only a quantized clock uses it
    df = _check_trace(trace, "fit_sessions")
    links = _links(df, block_size)
    client = _session_client(df, links, block_size, response_rate)
    ts = df["timestamp"].to_numpy(dtype=np.float64)
    starts = ts[~links.cont]
    clock = clock_resolution(ts)
    if clock.quantized:  # spread requests sharing a clock tick over the tick (as fit does)
        starts = np.sort(dequantize(starts, clock.resolution, rng=gen))
    gaps = np.diff(starts)
    cv = float(gaps.std() / gaps.mean()) if gaps.size > 2 and gaps.mean() > 0 else 1.0
    rate = client.mean_rate
    arrival = Poisson(rate=rate) if abs(cv - 1) < 0.05 else Gamma(rate=rate, cv=max(cv, 0.05))
    return client.model_copy(update={"arrival": arrival})


def fit_conversations(trace: Any, fit: Callable[..., Any], args: dict[str, Any], *, sessions: Any) -> Any:
    """``fit``'s conversation path: sessions and prefixes per client, arrivals of starts.

    Each client's turns are linked (:func:`fit_sessions`' rules) and its session model
    fitted; ``fit`` (given by the caller: this module does not import it) then fits the
    arrival schedule of ALL the requests with ``args`` (rates per window, burstiness and
    clock handling as for any trace), and the schedule of session starts is the one
    whose whole regenerated stream follows it (:func:`~servegen.session_starts.starts_schedule`:
    the whole stream's rate minus the expected later turns, warm-started ones included,
    so the first turns of conversations begun before the recording are not doubled).
    ``sessions``:
    ``True`` requires the structure; ``None`` returns None when the trace has none.
    """
    if sessions not in (None, True):
        raise TypeError(f"fit: `sessions` must be None, True or False, got {sessions!r}")
    required = sessions is True
    from .requests import Requests  # the core; imported here to keep this module light

    block_size = args.get("block_size")
    if isinstance(trace, Requests):
        block_size = block_size or trace.meta.get("block_size")
        trace = trace.to_pandas()
    if (
        not isinstance(trace, pd.DataFrame)
        or not set(SESSION_COLUMNS) & set(trace.columns)
        or len(trace) < 10
    ):
        if required:
            raise ValueError(
                "fit(sessions=True): the trace has no session or prefix information "
                "(a 'hash_ids', 'session' or 'parent' column)"
            )
        return None
    block_size = block_size or trace.attrs.get("block_size")
    if block_size is None and "hash_ids" in trace.columns:
        block_size = infer_block_size(trace["hash_ids"], trace["input_tokens"])
        if block_size is None and required and not {"session", "parent"} & set(trace.columns):
            raise ValueError("fit(sessions=True): give `block_size` (the trace does not record one)")
    df = _check_trace(trace.assign(_row=np.arange(len(trace))), "fit")
    if "parent" in df.columns and "session" not in df.columns and (df["parent"] >= len(df)).any():
        raise ValueError(f"fit: `parent` holds row {int(df['parent'].max())!r} of a {len(df)}-row trace")
    tr = as_trace(df, client=args.get("client"), by=args.get("by"))
    codes = np.zeros(len(df), dtype=np.intp) if tr.codes is None else tr.codes
    keys = [0] if tr.codes is None else tr.keys
    parts = client_links(df, codes, keys, block_size)
    if not required and not any(lk.cont.any() or lk.prefix is not None for _, _, lk in parts):
        return None
    n_starts = sum(int((~lk.cont).sum()) for _, _, lk in parts)
    whole = fit(df.drop(columns="_row"), **{**args, "sessions": False})
    end, seeds = float(df["timestamp"].max()), generator(args.get("rng", 0))
    clients = {}
    for key, (_, g, lk) in zip(keys, parts, strict=True):
        c = session_client(g, lk, block_size)
        total = whole.clients[key].arrival
        if not isinstance(total, ArrivalSchedule):  # fit gives schedules; keep it exact otherwise
            raise TypeError(f"fit: conversations need an ArrivalSchedule of the whole stream, got {total!r}")
        share = float((~lk.cont).mean())
        shrink = whole.info.get("rate_shrink", {}).get(key)
        arrival = starts_schedule(
            c,
            total,
            end,
            start_share=share,
            rng=int(seeds.integers(2**62)),
            window=args["window"],
            shrink=shrink,
        )
        clients[key] = c.model_copy(update={"arrival": arrival})
    info = {**whole.info, "sessions": True, "n_requests": len(df), "session_starts": n_starts}
    info["block_size"] = block_size
    wl = type(whole)(clients, report=whole.report, info=info)
    wl.block_size = None if block_size is None or "hash_ids" not in df.columns else int(block_size)
    return wl
