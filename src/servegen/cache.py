"""KV-cache block reuse: how much of a workload's prompt blocks a prefix cache could serve.

Both functions walk requests in time order over their ``hash_ids`` (see
:mod:`servegen.sessions`). A block *hits* when the same id was seen before and, as in
prefix caching (vLLM, SGLang, Mooncake), every earlier block of the same request hit
too: the first miss ends the reusable prefix.

>>> import servegen as sg
>>> ids = sg.Ragged.from_lengths(np.array([3, 4, 2]), np.array([1, 2, 3, 1, 2, 3, 9, 1, 7]))
>>> prefix_hit_rate(ids)  # 1, 2, 3 of the second request and 1 of the third
0.4444444444444444
>>> lru_hit_rate(ids, capacity=3)  # block 9 evicts block 1 before the third request
0.3333333333333333
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from ._validate import check_whole
from .requests import Ragged

__all__ = ["lru_hit_rate", "prefix_hit_rate"]


def _ids(x: Any) -> Ragged:
    if isinstance(x, Ragged):
        return x
    if hasattr(x, "columns") and "hash_ids" in getattr(x, "columns", []):
        col = x["hash_ids"]
        if isinstance(col, Ragged):
            return col
        lengths = np.array([len(v) for v in col])
        return Ragged.from_lengths(
            lengths, np.concatenate([np.asarray(v, np.int64) for v in col] or [np.empty(0, np.int64)])
        )
    raise TypeError(f"expected Requests or a DataFrame with `hash_ids`, or a Ragged, got {type(x).__name__}")


def prefix_hit_rate(requests: Any) -> float:
    """Fraction of blocks served by an infinite prefix cache (vectorized).

    ``requests``: :class:`~servegen.Requests`, a trace DataFrame with ``hash_ids``, or a
    :class:`~servegen.Ragged` of ids in time order.
    """
    ids = _ids(requests)
    if ids.values.size == 0:
        raise ValueError("prefix_hit_rate: no blocks (empty hash_ids)")
    # first occurrence of every id is a miss; later ones hit if the prefix before them hit
    _, first = np.unique(ids.values, return_index=True)
    seen_before = np.ones(ids.values.size, dtype=bool)
    seen_before[first] = False
    # a block hits iff it and every earlier block of its request were seen before:
    # count misses so far within the request; hit iff that count is zero.
    misses = np.cumsum(~seen_before)
    start = np.concatenate([[0], misses])[ids.offsets[:-1]]
    hit = (misses - np.repeat(start, ids.lengths)) == 0
    return float(hit.mean())


def lru_hit_rate(requests: Any, capacity: int) -> float:
    """Fraction of blocks served by an LRU prefix cache holding ``capacity`` blocks.

    Simulated block by block with an ``OrderedDict`` (an exact LRU needs the sequential
    state; about 1 µs per block access).
    """
    capacity = check_whole(capacity, "capacity", owner="lru_hit_rate", low=1, unit="blocks")
    ids = _ids(requests)
    if ids.values.size == 0:
        raise ValueError("lru_hit_rate: no blocks (empty hash_ids)")
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    values = ids.values.tolist()
    offsets = ids.offsets.tolist()
    for r in range(len(offsets) - 1):
        prefix = True
        for b in values[offsets[r] : offsets[r + 1]]:
            if b in cache:
                cache.move_to_end(b)
                hits += prefix
            else:
                prefix = False
                cache[b] = None
                if len(cache) > capacity:
                    cache.popitem(last=False)
    return hits / len(values)
