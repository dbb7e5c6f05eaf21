"""Qwen-Bailian usage traces: JSON Lines with chat chains and 16-token prefix blocks (read only).

The anonymized Alibaba Bailian (Qwen) release (``qwen_traceA_blksz_16.jsonl`` ...)::

    {"chat_id": 159, "parent_chat_id": -1, "timestamp": 61.114, "input_length": 521,
     "output_length": 132, "type": "text", "turn": 1, "hash_ids": [1089, 1090, ...]}

================ ============ =========================================================
field            type         meaning
================ ============ =========================================================
chat_id          int          request id
parent_chat_id   int          the previous turn's ``chat_id``; -1 for a first turn
timestamp        float        arrival, seconds
input_length     int          prompt tokens (the whole context of the turn)
output_length    int          generated tokens
type             str          ``text``, ``search``, ``image`` or ``file``
turn             int          turn number in the conversation (1 for the first)
hash_ids         list of int  salted SipHash ids of 16-token prompt blocks
================ ============ =========================================================

Read as: ``session`` = the ``chat_id`` of the first turn of the chain (found by
following ``parent_chat_id`` links, vectorized by pointer jumping; a parent missing
from the file ends the chain and its id names the session), ``turn`` = ``turn``,
``parent`` = ``parent_chat_id`` (-1 for first turns), ``hash_ids`` kept
(``attrs["block_size"]`` = 16); ``chat_id`` and ``type`` stay as extra columns (split
clients by ``type``). Duplicate ``chat_id`` values or a cycle of parents are errors.
There is no Bailian writer: use ``aiperf`` (sessions) or ``vllm`` (16-token blocks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _io
from .mooncake import read_length_trace

__all__ = ["read_bailian", "session_roots"]

_SOURCES = {
    "timestamp": "timestamp",
    "input_tokens": "input_length",
    "output_tokens": "output_length",
    "turn": "turn",
    "parent": "parent_chat_id",
}


def session_roots(chat_id: np.ndarray, parent: np.ndarray, path: str = "<array>") -> np.ndarray:
    """The first-turn id of every request's chain.

    >>> session_roots(np.array([5, 6, 7, 9]), np.array([-1, 5, 6, 8])).tolist()
    [5, 5, 5, 8]
    """
    chat_id = np.asarray(chat_id, dtype=np.int64)
    parent = np.asarray(parent, dtype=np.int64)
    n = len(chat_id)
    order = np.argsort(chat_id, kind="stable")
    sorted_ids = chat_id[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if dup.size:
        raise ValueError(f"{path!r}: chat_id {int(sorted_ids[dup[0]])!r} appears more than once")
    pos = np.minimum(np.searchsorted(sorted_ids, parent), max(n - 1, 0))
    found = (parent >= 0) & (sorted_ids[pos] == parent) if n else np.zeros(0, bool)
    # up[i] is the row of i's parent, or i itself at the top of its chain; squaring the
    # pointer (up = up[up]) halves every chain's remaining length per step.
    up = np.where(found, order[pos], np.arange(n))
    for _ in range(64):
        nxt = up[up]
        if np.array_equal(nxt, up):
            break
        up = nxt
    else:
        raise ValueError(f"{path!r}: parent_chat_id links form a cycle")
    if found[up].any():  # a cycle collapses onto a row that still has a parent
        i = int(np.argmax(found[up]))
        raise ValueError(
            f"{path!r}: parent_chat_id links form a cycle through chat_id {int(chat_id[up[i]])!r}"
        )
    top_parent = parent[up]
    return np.where(top_parent >= 0, top_parent, chat_id[up])


def read_bailian(path: Path, *, relative: bool = True, block_size: int = 16) -> pd.DataFrame:
    """Read a Qwen-Bailian trace, linking turns into sessions."""
    data, table, attrs = read_length_trace(
        path,
        "bailian",
        unit="s",
        relative=relative,
        block_size=block_size,
    )
    _io.require(table.column_names, ("chat_id", "parent_chat_id"), path, "bailian")
    chat = _io.counts(_io.numbers(table, "chat_id", path, 1), "chat_id", path, 1)
    parent_raw = _io.numbers(table, "parent_chat_id", path, 1)
    parent = np.where(np.isnan(parent_raw.astype(np.float64)), -1, parent_raw).astype(np.int64)
    out: dict[str, Any] = dict(data)
    out["session"] = session_roots(chat, parent, str(path))
    out["parent"] = parent
    if "turn" in table.column_names:
        out["turn"] = _io.numbers(table, "turn", path, 1)
    out["chat_id"] = chat
    out.pop("parent_chat_id", None)
    return _io.finish(out, path=path, fmt="bailian", sources=_SOURCES, first_line=1, attrs=attrs)


READERS = {"bailian": read_bailian}
WRITERS: dict[str, Any] = {}
