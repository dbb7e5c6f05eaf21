"""Client keys in files: how int and str keys are stored and read back exactly (private).

A :class:`~servegen.Requests` holds per-request *codes* into its tuple of client keys;
files hold the keys themselves, so a reader never mistakes a key for a code:

* Arrow / Parquet: ``client`` is dictionary-encoded over the keys (an ``int64``
  dictionary when every key is an int, else the keys' text), and the schema metadata
  lists the keys with their JSON types, so ``1`` and ``"a"`` come back as ``1`` and
  ``"a"``. Parquet may hand the column back decoded (plain values): the values are
  matched to the listed keys by their text, never taken as codes.
* CSV (untyped text): a cell that is a canonical integer literal (``-?(0|[1-9][0-9]*)``)
  is an int key, any other cell a str key. A str key that looks like an integer (``"7"``)
  would come back as the int 7, so the CSV writer refuses it (:func:`check_text_keys`).
* JSON Lines: keys are JSON numbers or strings, typed by JSON itself.

Keys must be ints within int64 or strs (what :class:`~servegen.Workload` accepts, bounded
by what Arrow stores); anything else is refused when written (:func:`storable`).

>>> storable([np.int64(3), "chat"])
[3, 'chat']
>>> text_keys(["7", "-2", "007", "a"])
[7, -2, '007', 'a']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = ["arrow_dictionary", "check_text_keys", "decode_arrow", "storable", "text_keys"]

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_I64 = (-(2**63), 2**63 - 1)


def storable(keys: Iterable[Any]) -> list[int | str]:
    """The keys as plain Python ints and strs; anything else cannot be stored exactly."""
    out: list[int | str] = []
    for k in keys:
        if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            k = int(k)
            if not _I64[0] <= k <= _I64[1]:
                raise ValueError(f"client key {k!r} does not fit in int64, so it cannot be written")
        elif isinstance(k, (str, np.str_)):
            k = str(k)
        else:
            raise TypeError(f"client keys must be int or str to be written, got {k!r} ({type(k).__name__})")
        out.append(k)
    return out


def arrow_dictionary(keys: Sequence[int | str]) -> pa.Array:
    """The Arrow dictionary of the ``client`` column (ints, or the keys' text)."""
    if all(isinstance(k, int) for k in keys):
        return pa.array(keys, type=pa.int64())
    text = [str(k) for k in keys]
    if len(set(text)) < len(text):
        seen: dict[str, Any] = {}
        for k in keys:
            if str(k) in seen:
                raise ValueError(
                    f"client keys {seen[str(k)]!r} and {k!r} differ only in type; Arrow, Parquet and "
                    "CSV store mixed int/str keys as text and could not tell them apart: rename one"
                )
            seen[str(k)] = k
    return pa.array(text, type=pa.string())


def decode_arrow(
    col: pa.Array | pa.ChunkedArray, keys: Sequence[Any] | None, where: str
) -> tuple[NDArray[np.int32], list[Any]]:
    """Codes and keys of a ``client`` column read from Arrow (dictionary or plain values).

    ``keys`` is the typed list from servegen's schema metadata; each value is matched to
    it by text. Without it (a file from another tool) the keys are the dictionary, or the
    sorted distinct values.
    """
    if isinstance(col, pa.ChunkedArray):
        chunks = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in col.chunks]
        value_type = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        col = pa.concat_arrays(chunks) if chunks else pa.array([], type=value_type)
    if col.null_count:
        i = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
        raise ValueError(f"{where}: column 'client' is empty at row {i}")
    enc = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    values = enc.dictionary.to_pylist()
    idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if keys is None:
        if not pa.types.is_dictionary(col.type):  # plain values: sorted keys, as a factorize
            order = np.argsort(np.asarray(values, dtype=object)) if values else np.zeros(0, np.int64)
            rank = np.empty(len(values), dtype=np.int64)
            rank[order] = np.arange(len(values))
            return rank[idx].astype(np.int32), [values[i] for i in order]
        return idx.astype(np.int32), values
    keys = list(keys)
    lookup = {str(k): i for i, k in enumerate(keys)}
    remap = np.empty(len(values), dtype=np.int64)
    for j, v in enumerate(values):  # one entry per distinct key, not per request
        if str(v) not in lookup:
            raise ValueError(f"{where}: client {v!r} is not one of the file's client keys {keys!r}")
        remap[j] = lookup[str(v)]
    return remap[idx].astype(np.int32), keys


def text_keys(texts: Sequence[str]) -> list[int | str]:
    """Keys read from text cells: canonical integer literals are ints, the rest strs."""
    return [int(t) if _INT.fullmatch(t) and _I64[0] <= int(t) <= _I64[1] else t for t in texts]


def check_text_keys(keys: Sequence[Any], fmt: str) -> None:
    """Refuse str keys that a text reader would take for ints (``"7"`` reads back as 7)."""
    for k in keys:
        if isinstance(k, str) and text_keys([k]) != [k]:
            raise ValueError(
                f"{fmt}: client key {k!r} is a str that reads back as the int {int(k)!r} (CSV has no "
                "types); write parquet or jsonl, or rename the key"
            )
