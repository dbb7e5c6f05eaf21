"""KV-block hash ids per request at a given block size, carried across chunks (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validate import check_whole
from ..requests import Ragged, Requests
from ._writer import input_total


def check_block_size(block_size: Any) -> int:
    """Tokens per KV block: a whole number >= 1.

    >>> check_block_size(16)
    16
    >>> check_block_size(16.0)
    Traceback (most recent call last):
    ...
    ValueError: `block_size` must be a whole number >= 1, got 16.0
    """
    return check_whole(block_size, "block_size", low=1)


class HashIds:
    """Per-request KV-block hash ids at a given block size, carried across chunks.

    * Ids from a ragged ``hash_ids`` column (at block size ``meta["block_size"]``, or at
      the output block size when the requests do not say) are written as they are when
      the sizes match. Block ids are prefix hashes (equal ids mean an equal prefix up to that
      block), which re-blocking keeps: when the output block is ``k`` source blocks, it
      takes the id of its last source block; when a source block is ``k`` output blocks,
      source id ``h`` becomes ``h*k, h*k+1, ...`` (as many as the input length needs), so
      sharing is kept at the source granularity. Sizes where neither divides the other
      are an error.
    * No ``hash_ids`` column: ``ceil(input / block_size)`` fresh ids per request from a
      running counter (starting at ``start``), so no two requests share a block. Rows of a
      ``hash_ids`` column that are empty although the prompt is not (a trace that gave ids
      to some rows only) get fresh ids too, numbered above the largest id seen so far.
    """

    def __init__(self, block_size: int, start: int = 0) -> None:
        self.block_size = check_block_size(block_size)
        self.next_id = check_whole(start, "hash_start", low=0)

    def __call__(self, req: Requests, total: Any = None) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        total = input_total(req) if total is None else total  # (prompt lengths, when not the requests')
        if "hash_ids" in req and isinstance(req["hash_ids"], Ragged):
            source = int(req.meta.get("block_size", self.block_size))
            offsets, values = self._convert(req["hash_ids"], source, total)
            return self._fill(offsets, values, total)
        lengths = -(-total // self.block_size)
        offsets = np.zeros(len(total) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return offsets, self._fresh(int(offsets[-1]))

    def _fresh(self, count: int) -> NDArray[np.int64]:
        values = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
        self.next_id += count
        return values

    def _fill(
        self, offsets: NDArray[np.int64], values: NDArray[np.int64], total: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Fresh ids for rows with a prompt but no ids (a trace that left them out)."""
        lengths = np.diff(offsets)
        fresh = np.where((lengths == 0) & (total > 0), -(-total // self.block_size), 0)
        if not fresh.any():
            return offsets, values
        if len(values):  # start above the file's own ids, so none is shared by accident
            self.next_id = max(self.next_id, int(values.max()) + 1)
        row, j, new_off = _expand(lengths + fresh)
        old = j < lengths[row]
        out = np.empty(len(row), dtype=np.int64)
        out[old] = values
        out[~old] = self._fresh(int((~old).sum()))
        return new_off, out

    def _convert(
        self, rg: Ragged, source: int, total: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        offsets = rg.offsets - rg.offsets[0]
        values = np.asarray(rg.values, dtype=np.int64)[rg.offsets[0] : rg.offsets[-1]]
        lengths = np.diff(offsets)
        dst = self.block_size
        if source == dst:
            return offsets, values
        if dst % source == 0:  # coarser: the last source id inside each output block
            k = dst // source
            new_len = -(-lengths // k)
            row, j, new_off = _expand(new_len)
            pick = offsets[:-1][row] + np.minimum(j * k + k - 1, lengths[row] - 1)
            return new_off, values[pick]
        if source % dst == 0:  # finer: source block h splits into ids h*k .. h*k + k-1
            k = source // dst
            if len(values) and (values.min() < 0 or values.max() >= np.iinfo(np.int64).max // k):
                raise ValueError(
                    f"cannot split hash_ids of block size {source} into blocks of {dst}: ids must be "
                    f"in [0, 2**63 / {k}); write with block_size={source} instead"
                )
            new_len = np.minimum(-(-total // dst), lengths * k)
            row, j, new_off = _expand(new_len)
            return new_off, values[offsets[:-1][row] + j // k] * k + j % k
        raise ValueError(
            f"cannot re-block hash_ids of block size {source} into blocks of {dst}: one must divide "
            f"the other; write with block_size={source} instead"
        )


def _expand(lengths: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Row index and position within the row of every element of a ragged layout."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    row = np.repeat(np.arange(len(lengths)), lengths)
    return row, np.arange(offsets[-1]) - offsets[:-1][row], offsets
