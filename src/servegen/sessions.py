"""Conversations and shared prefixes: multi-turn sessions and KV-cache block hashes.

Model
-----
A client with a :class:`Session` has its arrival process start *sessions*. A session
has ``turns`` requests. Turn 1's input is the shared prefix (if any) plus the client's
``input_tokens`` draw; turn k's input is turn k-1's input + its answer (the output, or
``answer_tokens`` for reasoning clients, whose reasoning is not kept in context) + a
``new_tokens`` draw. Turn k arrives ``output_{k-1} / response_rate + think_time`` seconds
after turn k-1 (``response_rate``: an assumed decode speed in tokens/s). Every turn's
other fields (output, items, reasoning) are drawn from the client's models in force at
the session's start.

Context limit: when the grown context exceeds ``context_limit`` tokens, the oldest turns
are dropped (the shared prefix is kept) so that the input is exactly the limit. Dropping
shifts every position after the prefix, so such a turn shares only the prefix blocks.

Block hashes (``Workload(block_size=...)``): a request's ``hash_ids`` are its prefix
group's blocks, then the blocks of its session's earlier context that it repeats whole,
then fresh blocks. Only full blocks are shared: the block holding the end of turn k-1's
input also holds new content in turn k, so it is fresh. Identical content gives
identical ids; nothing else ever collides (ids are ``client_index << 40`` + a counter).

A :class:`SharedPrefix` without sessions prepends a system prompt to every request.

>>> import servegen as sg
>>> chat = sg.Client(arrival=sg.Poisson(rate=0.5), input_tokens=sg.LogNormal(mu=5, sigma=1),
...     output_tokens=sg.Exponential(mean=200),
...     session=sg.Session(turns=sg.Empirical(values=[1, 2, 3], probs=[.5, .3, .2]),
...                        think_time=sg.LogNormal(mu=3, sigma=1), new_tokens=sg.LogNormal(mu=4.5, sigma=1)),
...     prefix=sg.SharedPrefix(groups=5, popularity=sg.Zipf(s=1.1, n=5), tokens=1024))
>>> r = sg.Workload([chat], block_size=512).sample(3600, rng=0)
>>> {"session", "turn", "parent", "hash_ids"} <= set(r.columns)
True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, SerializeAsAny, ValidationInfo, field_validator, model_validator

from ._base import Frozen
from .attributes import value_field
from .distributions import Constant, Distribution, Empirical, Zipf
from .piecewise import ValueLike
from .requests import Ragged

__all__ = ["Session", "SharedPrefix"]

#: Bits of a block id reserved for one client's counter (1e12 blocks per client).
CLIENT_BITS = 40


class Session(Frozen):
    """Multi-turn conversations started by a client's arrival process.

    Parameters
    ----------
    turns
        Requests per session (>= 1), e.g. ``Empirical(values=[1, 2, 3, 5, 8], probs=...)``.
    think_time
        Seconds between a response and the user's next turn.
    new_tokens
        User tokens added per turn after the first.
    response_rate
        Assumed decode speed, tokens/s: a response of n tokens takes n / response_rate s.
    context_limit
        Optional cap on a turn's input tokens (see the module notes for truncation).
    warm_start
        Start the workload in its stationary state (default): sessions already in
        progress at t = 0 contribute their remaining turns, so the request rate has no
        ramp-up. ``False`` starts with no session in progress. See
        the ``servegen.warm_start`` module notes for the rule and its limits.

    >>> Session(turns=2, think_time=10, new_tokens=50).mean_turns()
    2.0
    """

    kind: Literal["session"] = "session"
    turns: SerializeAsAny[Distribution]  # `_check`: not a Piecewise, not a user's object
    think_time: SerializeAsAny[ValueLike]
    new_tokens: SerializeAsAny[ValueLike]
    response_rate: float = Field(default=50.0, gt=0)
    context_limit: int | None = Field(default=None, gt=0)
    warm_start: bool = True

    @field_validator("turns", mode="plain")
    @classmethod
    def _coerce_turns(cls, v: Any) -> Any:  # checked to be a Distribution by `_check`
        return value_field(v, "Session", "turns", low=1.0)

    @field_validator("think_time", "new_tokens", mode="plain")
    @classmethod
    def _coerce(cls, v: Any, info: ValidationInfo) -> ValueLike:
        return value_field(v, "Session", info.field_name or "value")

    @model_validator(mode="after")
    def _check(self) -> Session:
        if not isinstance(self.turns, Distribution):
            raise TypeError(f"Session: `turns` must be a distribution (not Piecewise), got {self.turns!r}")
        return self

    def mean_turns(self) -> float:
        """Expected requests per session, ``E[rint(turns)]`` (draws are rounded), or ``inf``.

        Exact for point masses (``Empirical``, ``Zipf``, ``Constant``: numpy's round half
        to even included). Otherwise (exact for continuous laws) the sum over ``k`` of
        ``k P(k - 1/2 < X <= k + 1/2)`` up to ``K`` = the top of the support or 100,000
        turns past its bottom, plus the tail ``E[X; X > K + 1/2]`` (off by at most half of
        ``P(X > K + 1/2)``). Computed once per session model.

        >>> half = Empirical(values=[1.5, 2.5], probs=[0.5, 0.5])  # both round to 2
        >>> Session(turns=half, think_time=1, new_tokens=1).mean_turns()
        2.0
        """
        return self._mean_turns

    @cached_property
    def _mean_turns(self) -> float:
        t = self.turns
        if isinstance(t, Constant):
            return float(np.rint(t.value))
        if isinstance(t, Empirical):
            return float(np.rint(t.values) @ t.probs / t.probs.sum())
        if isinstance(t, Zipf):  # whole ranks: rounding changes nothing
            return t.mean()
        mean = t.mean()
        if not np.isfinite(mean):
            return float("inf")
        lo, hi = t.support
        k = np.arange(np.floor(lo), min(np.ceil(hi), np.floor(lo) + 100_000) + 1)
        head = float(k @ np.diff(t.cdf(np.r_[k - 0.5, k[-1] + 0.5])))
        return head + (mean - t.partial_mean(k[-1] + 0.5))


class SharedPrefix(Frozen):
    """System prompts shared across requests: ``groups`` prompts chosen by ``popularity``.

    ``popularity`` draws a group rank in ``1..groups`` (e.g. ``Zipf(s=1.1, n=groups)``);
    ``tokens`` is the prompt length of each group (drawn once per group per workload run).

    >>> SharedPrefix(groups=3, popularity=sg.Zipf(s=1.0, n=3), tokens=1024).groups
    3
    """

    kind: Literal["shared_prefix"] = "shared_prefix"
    groups: int = Field(ge=1)
    popularity: SerializeAsAny[Distribution]  # `_check`: not a Piecewise, not a user's object
    tokens: SerializeAsAny[Distribution]

    @field_validator("popularity", "tokens", mode="plain")
    @classmethod
    def _coerce(cls, v: Any, info: ValidationInfo) -> Any:  # checked to be a Distribution by `_check`
        return value_field(v, "SharedPrefix", info.field_name or "value")

    @model_validator(mode="after")
    def _check(self) -> SharedPrefix:
        for name in ("popularity", "tokens"):
            if not isinstance(getattr(self, name), Distribution):
                raise TypeError(f"SharedPrefix: `{name}` must be a distribution (not Piecewise)")
        lo, hi = self.popularity.support
        if lo < 1 or hi > self.groups:
            raise ValueError(
                f"SharedPrefix: `popularity` must draw ranks in [1, {self.groups}], "
                f"but it spans [{lo!r}, {hi!r}]"
            )
        return self


class BlockIds:
    """Deterministic, collision-free block ids for one client (see module notes)."""

    def __init__(self, client_index: int, prefix_tokens: NDArray[np.int64] | None, block_size: int) -> None:
        self.base = np.int64(client_index) << np.int64(CLIENT_BITS)
        self.block = block_size
        # prefix group g owns ids base + offsets[g] ... (full blocks of its prompt only)
        self.prefix_blocks = (
            np.zeros(0, np.int64) if prefix_tokens is None else prefix_tokens // block_size
        ).astype(np.int64)
        self.prefix_offsets = np.concatenate([[0], np.cumsum(self.prefix_blocks)]).astype(np.int64)
        self.counter = int(self.prefix_offsets[-1])

    def fresh(self, n: int) -> NDArray[np.int64]:
        ids = self.base + np.arange(self.counter, self.counter + n, dtype=np.int64)
        self.counter += n
        return ids


def client_turns(
    client: Any,
    starts: NDArray[np.float64],
    rng: np.random.Generator | Callable[[str], np.random.Generator],
    prefix_tokens: NDArray[np.int64] | None,
    ids: BlockIds | None,
    first_session: int,
    flat_cols: dict[str, Any],
    ragged_cols: dict[str, Any],
    turns: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.float64], dict[str, NDArray[Any]], dict[str, Ragged]]:
    """A client's turn rows at t >= 0 for sessions starting at ``starts``, in time order.

    Draws, in this fixed order: turns per session (unless given), the client's fields (with the models
    in force at each session's start; at t = 0 for a session started before 0, the warm
    start of :mod:`servegen.warm_start`), then :func:`build_turns`' draws. Turns before
    t = 0 are dropped. Returns (times, columns, ragged columns); ``_final`` marks each
    session's last turn. ``rng`` is one generator, or ``streams(purpose) -> Generator``
    (the workload's per-column streams: ``"sessions"``, ``"prefix"`` and the fields').
    """
    session, n = client.session, starts.size
    gen: Callable[[str], np.random.Generator] = rng if callable(rng) else (lambda _purpose: rng)
    k = turns
    if k is None:
        k = (
            np.ones(n, np.int64)
            if session is None
            else np.rint(session.turns.sample(n, rng=gen("sessions"))).astype(np.int64)
        )
    t_model = np.repeat(np.maximum(starts, 0.0), k)
    cols, rag = client.sample_values(t_model, rng, flat_cols, ragged_cols)
    times, cols, hashes = build_turns(
        session, client.prefix, prefix_tokens, starts, k, cols, gen("sessions"), ids, first_session,
        rng_prefix=gen("prefix"),
    )  # fmt: skip
    if session is not None:
        cols["_final"] = np.zeros(times.size, dtype=bool)
        cols["_final"][np.cumsum(k) - 1] = True
    kept = np.flatnonzero(times >= 0)  # a warm-started session keeps its turns from t = 0 on
    order = kept[np.argsort(times[kept], kind="stable")]  # session-major -> time order
    rag = {c: v.take(order) for c, v in rag.items()}
    if hashes is not None:  # (built for the kept rows only, session-major)
        rag["hash_ids"] = hashes.take(np.argsort(times[kept], kind="stable"))
    return times[order], {c: v[order] for c, v in cols.items()}, rag


def build_turns(
    session: Session | None,
    prefix: SharedPrefix | None,
    prefix_tokens: NDArray[np.int64] | None,
    starts: NDArray[np.float64],
    turns: NDArray[np.int64],
    cols: dict[str, NDArray[Any]],
    rng: np.random.Generator,
    ids: BlockIds | None,
    first_session: int,
    *,
    rng_prefix: np.random.Generator | None = None,
) -> tuple[NDArray[np.float64], dict[str, NDArray[Any]], Ragged | None]:
    """Turn rows for sessions starting at ``starts`` (one row per turn, session-major).

    ``cols`` holds the per-turn draws of the client's fields (drawn at the session start
    times); this adds context growth, turn times, session/turn/prefix columns and block
    ids. Returns (times, columns, hash_ids); ``hash_ids`` hold the rows at t >= 0 only.
    ``rng_prefix`` (default ``rng``) draws the prefix group of each session, so a prefix
    model can have its own stream.
    """
    n_sessions = starts.size
    n = int(turns.sum())
    sess = np.repeat(np.arange(n_sessions), turns)
    first_row = np.concatenate([[0], np.cumsum(turns)[:-1]]).astype(np.int64)
    turn_no = np.arange(n, dtype=np.int64) - np.repeat(first_row, turns) + 1
    is_first = turn_no == 1
    later = ~is_first

    # prefix group per session (every turn of a session shares its system prompt)
    if prefix is not None:
        assert prefix_tokens is not None
        pick = rng if rng_prefix is None else rng_prefix
        group = np.rint(prefix.popularity.sample(n_sessions, rng=pick)).astype(np.int64) - 1
        pre = prefix_tokens[group][sess]
    else:
        group = np.full(n_sessions, -1, dtype=np.int64)
        pre = np.zeros(n, dtype=np.int64)

    user = cols["input_tokens"]
    inc = np.where(is_first, pre + user, 0)
    truncated = np.zeros(n, dtype=bool)
    times = np.repeat(starts, turns)
    if session is not None and n > n_sessions:
        kept = cols["answer_tokens"] if "answer_tokens" in cols else cols["output_tokens"]
        # A later turn adds at least one token (the user says something): the length rule.
        new = np.maximum(np.rint(session.new_tokens.sample(int(later.sum()), rng=rng)).astype(np.int64), 1)
        think = session.think_time.sample(int(later.sum()), rng=rng)
        prev = np.flatnonzero(later) - 1
        inc[later] = kept[prev] + new
        gaps = np.zeros(n)
        gaps[later] = cols["output_tokens"][prev] / session.response_rate + think
        times = times + _group_cumsum(gaps, first_row, turns)
    context = _group_cumsum(inc.astype(np.float64), first_row, turns).astype(np.int64)
    if session is not None and session.context_limit is not None:
        truncated = context > session.context_limit
        context = np.minimum(context, session.context_limit)

    out = dict(cols)
    out["input_tokens"] = context
    if "input_tokens_total" in out:
        out["input_tokens_total"] = cols["input_tokens_total"] - user + context
    if session is not None:
        out["session"] = np.repeat(
            np.arange(first_session, first_session + n_sessions, dtype=np.int64), turns
        )
        out["turn"] = turn_no
    if prefix is not None:
        out["prefix_group"] = group[sess]
    hashes = None
    if ids is not None:
        total = out.get("input_tokens_total", context)
        keep = np.flatnonzero(times >= 0)
        hashes = _hash_ids(ids, total, context, pre, group[sess], turn_no, truncated, first_row, turns, keep)
    return times, out, hashes


def _group_cumsum(x: NDArray[Any], first_row: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[Any]:
    """Cumulative sum restarting at each group (groups are contiguous runs)."""
    c = np.cumsum(x)
    before = np.concatenate([[0], c])[first_row]
    return c - np.repeat(before, lengths)


def _hash_ids(
    ids: BlockIds,
    total: NDArray[np.int64],
    context: NDArray[np.int64],
    pre: NDArray[np.int64],
    group: NDArray[np.int64],
    turn_no: NDArray[np.int64],
    truncated: NDArray[np.bool_],
    first_row: NDArray[np.int64],
    turns: NDArray[np.int64],
    keep: NDArray[np.int64],
) -> Ragged:
    """Block ids of the turn rows ``keep`` (vectorized; see module notes for the content
    model). Every row's fresh blocks are counted, so dropped rows (turns before t = 0)
    still own the ids later turns repeat, but only kept rows' ids are materialized."""
    b = ids.block
    n = total.size
    n_blocks = -(-total // b)  # ceil
    n_pre = np.where(group >= 0, pre // b, 0)
    # shared with the previous turn: its full input blocks, unless this turn was truncated
    prev_full = np.zeros(n, dtype=np.int64)
    later = turn_no > 1
    prev_full[later] = context[np.flatnonzero(later) - 1] // b
    m = np.where(later & ~truncated, np.maximum(prev_full, n_pre), n_pre)
    m = np.minimum(m, n_blocks)
    fresh_count = n_blocks - m
    fresh_start = ids.counter + np.concatenate([[0], np.cumsum(fresh_count)[:-1]])
    ids.counter += int(fresh_count.sum())

    # A chain restarts at each session's first turn and at each truncated turn; inside a
    # chain m is non-decreasing, so block j of turn k was created by the last turn c <= k
    # of the chain with m_c <= j.
    chain_start = (turn_no == 1) | truncated
    chain = np.cumsum(chain_start) - 1
    nb = n_blocks[keep]
    row = np.repeat(keep, nb)
    j = np.arange(int(nb.sum()), dtype=np.int64) - np.repeat(np.cumsum(nb) - nb, nb)
    out = np.empty(j.size, dtype=np.int64)

    is_pre = j < n_pre[row]
    g = group[row[is_pre]]
    out[is_pre] = ids.base + ids.prefix_offsets[g] + j[is_pre]

    rest = ~is_pre
    r_rows, r_j = row[rest], j[rest]
    # sorted key (chain, m) -> count of chain turns with m <= j, capped at the row itself
    span = np.int64(int(n_blocks.max(initial=0)) + 2)
    key = chain * span + m
    chain_first = np.flatnonzero(chain_start)
    k_in_chain = np.searchsorted(key, chain[r_rows] * span + r_j, side="right") - 1
    creator = np.minimum(k_in_chain, r_rows)
    creator = np.maximum(creator, chain_first[chain[r_rows]])
    out[rest] = ids.base + fresh_start[creator] + (r_j - m[creator])
    return Ragged.from_lengths(nb, out)
