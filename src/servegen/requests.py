"""``Requests``: the columnar result of sampling a workload.

One numpy array per column with fixed dtypes, never a list of per-request objects:

==================== ======== ==========================================================
column               dtype    meaning
==================== ======== ==========================================================
timestamp            float64  arrival time, seconds from the start of the workload
client               int32    index into ``Requests.clients`` (the client keys)
input_tokens         int64    prompt (text) tokens
output_tokens        int64    generated tokens
==================== ======== ==========================================================

Optional columns (reasoning, multimodal, sessions) appear only when generated. Ragged
columns (tokens of each image, KV-cache block hashes) are a flat ``values`` array plus
``offsets`` (:class:`Ragged`), which map directly to Arrow list arrays.

>>> import servegen as sg
>>> r = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=100,
...                            output_tokens=sg.Exponential(mean=50))]).sample(60, rng=0)
>>> r.columns
['timestamp', 'client', 'input_tokens', 'output_tokens']
>>> r.to_pandas().dtypes["input_tokens"]
dtype('int64')
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from . import _keys
from ._atomic import atomic_write
from ._format_writers import format_writer

__all__ = ["Ragged", "Requests", "read_parquet"]

CORE_DTYPES: dict[str, Any] = {
    "timestamp": np.float64,
    "client": np.int32,
    "input_tokens": np.int64,
    "output_tokens": np.int64,
}
_META_KEY = b"servegen"
META_KEY = _META_KEY  # servegen's key in Arrow schema metadata, shared with formats/canonical


@dataclass(frozen=True)
class Ragged:
    """A column with a variable number of values per request.

    Request ``i`` owns ``values[offsets[i]:offsets[i + 1]]``.

    >>> r = Ragged.from_lengths(np.array([2, 0, 1]), np.array([7, 8, 9]))
    >>> r[0].tolist(), r[1].tolist(), r.lengths.tolist()
    ([7, 8], [], [2, 0, 1])
    """

    values: NDArray[Any]
    offsets: NDArray[np.int64]

    @staticmethod
    def from_lengths(lengths: NDArray[Any], values: NDArray[Any]) -> Ragged:
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] != len(values):
            raise ValueError(f"Ragged: lengths sum to {offsets[-1]} but there are {len(values)} values")
        return Ragged(values, offsets)

    @property
    def lengths(self) -> NDArray[np.int64]:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> NDArray[Any]:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def take(self, idx: NDArray[np.integer]) -> Ragged:
        """The rows ``idx`` in that order (vectorized gather of the flat values)."""
        lengths = self.lengths[idx]
        out_off = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_off[1:])
        total = int(out_off[-1])
        # Position k of the output maps to offsets[idx[row]] + (k - out_off[row]).
        shift = np.repeat(self.offsets[:-1][idx] - out_off[:-1], lengths)
        return Ragged(self.values[np.arange(total, dtype=np.int64) + shift], out_off)

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        if not parts:
            return Ragged(np.empty(0, dtype=np.int64), np.zeros(1, dtype=np.int64))
        values = np.concatenate([p.values for p in parts])
        lengths = np.concatenate([p.lengths for p in parts])
        return Ragged.from_lengths(lengths, values)

    def to_arrow(self) -> pa.ListArray:
        return pa.LargeListArray.from_arrays(pa.array(self.offsets), pa.array(self.values))

    def equals(self, other: Ragged) -> bool:
        return np.array_equal(self.values, other.values) and np.array_equal(self.offsets, other.offsets)


class Requests:
    """A timestamp-sorted stream of requests, stored by column.

    Parameters
    ----------
    columns
        Name -> 1-D array (all the same length); must include the core columns.
    clients
        The client keys; ``columns["client"]`` holds indices into it.
    ragged
        Name -> :class:`Ragged` for per-item columns.
    duration
        The time span the stream covers, seconds (``None`` when unknown).
    meta
        JSON-serializable facts about how the stream was made (seed, block size, ...).
    """

    __slots__ = ("_cols", "_ragged", "clients", "duration", "meta")

    def __init__(
        self,
        columns: dict[str, NDArray[Any]],
        *,
        clients: Sequence[Hashable],
        ragged: dict[str, Ragged] | None = None,
        duration: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        missing = [c for c in CORE_DTYPES if c not in columns]
        if missing:
            raise ValueError(f"Requests: missing core column(s) {missing!r}")
        n = len(columns["timestamp"])
        for name, arr in columns.items():
            if arr.ndim != 1 or len(arr) != n:
                raise ValueError(
                    f"Requests: column {name!r} must be 1-D of length {n}, got shape {arr.shape}"
                )
        ragged = dict(ragged or {})
        for name, rg in ragged.items():
            if len(rg) != n:
                raise ValueError(f"Requests: ragged column {name!r} has {len(rg)} rows, expected {n}")
        self._cols = {k: np.asarray(v, dtype=CORE_DTYPES.get(k, v.dtype)) for k, v in columns.items()}
        self._ragged = ragged
        self.clients = tuple(clients)
        self.duration = duration
        self.meta = dict(meta or {})

    # -- access -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._cols["timestamp"])

    @property
    def columns(self) -> list[str]:
        """Column names, flat then ragged."""
        return [*self._cols, *self._ragged]

    def __getitem__(self, name: str) -> Any:
        if name in self._cols:
            return self._cols[name]
        if name in self._ragged:
            return self._ragged[name]
        raise KeyError(f"Requests has no column {name!r}; columns: {', '.join(self.columns)}")

    def __contains__(self, name: object) -> bool:
        return name in self._cols or name in self._ragged

    def __getattr__(self, name: str) -> Any:
        """Every column as an attribute: ``r.input_tokens_total`` is ``r["input_tokens_total"]``."""
        if name.startswith("_"):  # private names, and unpickling's probes before _cols exists
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            pass
        raise AttributeError(
            f"'Requests' object has no attribute or column {name!r}; columns: {self.columns}"
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.columns})

    @property
    def timestamp(self) -> NDArray[np.float64]:
        return self._cols["timestamp"]

    @property
    def client(self) -> NDArray[np.int32]:
        return self._cols["client"]

    @property
    def input_tokens(self) -> NDArray[np.int64]:
        return self._cols["input_tokens"]

    @property
    def output_tokens(self) -> NDArray[np.int64]:
        return self._cols["output_tokens"]

    @property
    def client_keys(self) -> NDArray[Any]:
        """The client key of every request (object array)."""
        keys = np.empty(len(self.clients), dtype=object)
        keys[:] = list(self.clients)
        return keys[self.client]

    @property
    def nbytes(self) -> int:
        """Bytes held by the column arrays."""
        flat = sum(a.nbytes for a in self._cols.values())
        return flat + sum(r.values.nbytes + r.offsets.nbytes for r in self._ragged.values())

    def __repr__(self) -> str:
        span = f", duration={self.duration:g}s" if self.duration else ""
        return f"<Requests n={len(self)}, clients={len(self.clients)}{span}, columns={self.columns}>"

    # -- transforms ---------------------------------------------------------------
    def take(self, idx: NDArray[np.integer]) -> Requests:
        """The rows ``idx`` (indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Requests(
            {k: v[idx] for k, v in self._cols.items()},
            clients=self.clients,
            ragged={k: r.take(idx) for k, r in self._ragged.items()},
            duration=self.duration,
            meta=self.meta,
        )

    def between(self, start: float, end: float) -> Requests:
        """Requests with ``start <= timestamp < end`` (timestamps kept as they are)."""
        lo, hi = np.searchsorted(self.timestamp, [start, end], side="left")
        return self.take(np.arange(lo, hi))

    @staticmethod
    def concat(parts: Iterable[Requests], *, duration: float | None = None) -> Requests:
        """Join consecutive parts of one stream (same clients, already in time order)."""
        parts = list(parts)
        if not parts:
            raise ValueError("Requests.concat: need at least one part")
        first = parts[0]
        for p in parts[1:]:
            if p.clients != first.clients or p.columns != first.columns:
                raise ValueError("Requests.concat: parts must have the same clients and columns")
        cols: dict[str, NDArray[Any]] = {}
        for name in first._cols:
            cols[name] = np.concatenate([p._cols[name] for p in parts])
        ragged = {name: Ragged.concat([p._ragged[name] for p in parts]) for name in first._ragged}
        if duration is None and all(p.duration is not None for p in parts):
            duration = max(p.duration for p in parts)  # type: ignore[type-var]
        return Requests(cols, clients=first.clients, ragged=ragged, duration=duration, meta=first.meta)

    def equals(self, other: Requests) -> bool:
        """Same clients, columns and values (exact)."""
        return (
            self.clients == other.clients
            and self.columns == other.columns
            and all(np.array_equal(self._cols[k], other._cols[k]) for k in self._cols)
            and all(self._ragged[k].equals(other._ragged[k]) for k in self._ragged)
        )

    # -- conversions --------------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame: ``client`` is categorical over the keys, ragged columns hold arrays."""
        data: dict[str, Any] = dict(self._cols)
        # The keys as they are (an object index when ints and strs mix): nothing converted.
        categories = pd.Index(list(self.clients), dtype=object if len(self.clients) else None)
        data["client"] = pd.Categorical.from_codes(self.client, categories=categories)
        for name, rg in self._ragged.items():
            data[name] = pd.Series(np.split(rg.values, rg.offsets[1:-1]) if len(rg) else [], dtype=object)
        return pd.DataFrame(data, copy=False)

    def to_arrow(self) -> pa.Table:
        """An Arrow table (``client`` dictionary-encoded, ragged columns as list arrays)."""
        keys = _keys.storable(self.clients)
        arrays, names = [], []
        for name, arr in self._cols.items():
            if name == "client":
                arrays.append(pa.DictionaryArray.from_arrays(pa.array(arr), _keys.arrow_dictionary(keys)))
            else:
                arrays.append(pa.array(arr))
            names.append(name)
        for name, rg in self._ragged.items():
            arrays.append(rg.to_arrow())
            names.append(name)
        meta = {"clients": keys, "duration": self.duration, **self.meta}
        schema_meta = {_META_KEY: json.dumps(meta, default=_json_default).encode()}
        table = pa.Table.from_arrays(arrays, names=names)
        return table.replace_schema_metadata(schema_meta)

    @staticmethod
    def from_arrow(table: pa.Table) -> Requests:
        """Rebuild from :meth:`to_arrow` output (or any table with the core columns).

        The columns are checked as :func:`read_parquet` checks them (``ValueError``).
        """
        return _from_table(table, "Requests.from_arrow")

    def to_parquet(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write a Parquet file atomically (a temporary file renamed on success)."""
        table = self.to_arrow()
        return _atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp, **kwargs))

    def to_format(self, path: str | os.PathLike[str], format: str, **options: Any) -> Path:
        """Write in one of the formats other tools read (see :mod:`servegen.formats`).

        The same as ``servegen.formats.write(self, path, format, **options)``. The writer
        is found by name among the installed entry points of the group
        ``servegen.formats`` (servegen's own formats and any that another package declares), so
        this data class does not import the formats built on it.

        >>> import servegen as sg, tempfile, os
        >>> r = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=600, output_tokens=9).sample(10, rng=0)
        >>> p = r.to_format(os.path.join(tempfile.mkdtemp(), "t.jsonl"), "mooncake")
        >>> import json
        >>> sorted(json.loads(p.read_text().splitlines()[0]))
        ['hash_ids', 'input_length', 'output_length', 'timestamp']
        """
        return format_writer(format)(self, path, format, **options)


def read_parquet(path: str | os.PathLike[str]) -> Requests:
    """Read a file written by :meth:`Requests.to_parquet`.

    The client keys come back with their types and order, and the columns are checked
    as :func:`servegen.formats.read_trace` checks them: timestamps finite, >= 0 and
    sorted; token and item counts (``*_tokens``, ``*_tokens_total``, ``*_count``) whole
    and >= 0; no empty core cells; every ``client`` one of the listed keys. A damaged or
    failing file is a ``ValueError`` naming the file (and the column and row).

    >>> import servegen as sg, tempfile, os
    >>> c = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=8, output_tokens=4)
    >>> r = sg.Workload([c]).sample(30, rng=1)
    >>> p = r.to_parquet(os.path.join(tempfile.mkdtemp(), "r.parquet"))
    >>> sg.read_parquet(p).equals(r)
    True
    """
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:  # a damaged or foreign file
        raise ValueError(f"{str(path)!r}: cannot read as Parquet: {exc}") from None
    return _from_table(table, repr(str(path)))


def _is_count(name: str) -> bool:
    """Flat columns that count tokens or items: whole numbers >= 0 (as read_trace requires)."""
    return name.endswith(("_tokens", "_tokens_total", "_count"))


def _from_table(table: pa.Table, where: str) -> Requests:
    """A checked :class:`Requests` from an Arrow table (``where`` names it in errors)."""
    names = table.column_names
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: column(s) {dup!r} appear more than once")
    missing = [c for c in CORE_DTYPES if c not in names]
    if missing:
        raise ValueError(f"{where}: missing core column(s) {missing!r}; its columns are {names!r}")
    try:
        meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    except ValueError:
        raise ValueError(f"{where}: the servegen schema metadata is not valid JSON") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: the servegen schema metadata must be a JSON object, got {meta!r}")
    clients: Any = meta.pop("clients", None)
    if clients is not None and not (
        isinstance(clients, list) and all(isinstance(k, (int, str)) for k in clients)
    ):
        raise ValueError(f"{where}: the metadata's client keys must be a list of ints and strs")
    cols: dict[str, NDArray[Any]] = {}
    ragged: dict[str, Ragged] = {}
    for name in names:
        chunked = table.column(name)
        if name == "client":
            cols[name], clients = _keys.decode_arrow(chunked, clients, where)
            continue
        col = chunked.combine_chunks() if chunked.num_chunks else pa.array([], type=chunked.type)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = col.fill_null(pa.scalar([], type=col.type)) if col.null_count else col
            offsets = np.asarray(col.offsets.to_numpy(), dtype=np.int64)
            values = pc.list_flatten(col).to_numpy(zero_copy_only=False)
            if _is_count(name):
                values = _counts(values, name, where, "value")
            ragged[name] = Ragged(values, offsets - offsets[0])
            continue
        if name == "timestamp" or _is_count(name):
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
                raise ValueError(f"{where}: column {name!r} must be numeric, got type {col.type}")
            if col.null_count:
                i = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
                raise ValueError(f"{where}: column {name!r} is empty at row {i}")
        arr = col.to_numpy(zero_copy_only=False)
        cols[name] = _counts(arr, name, where, "row") if _is_count(name) else arr
    t = np.asarray(cols["timestamp"], dtype=np.float64)
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.argmax(bad))
        got = t[i].item()
        raise ValueError(f"{where}: column 'timestamp' must be finite and >= 0, got {got!r} at row {i}")
    down = np.flatnonzero(np.diff(t) < 0)
    if down.size:
        i = int(down[0]) + 1
        raise ValueError(
            f"{where}: column 'timestamp' must be sorted, got {t[i].item()!r} after {t[i - 1].item()!r} "
            f"at row {i}"
        )
    duration = meta.pop("duration", None)
    return Requests(cols, clients=clients, ragged=ragged, duration=duration, meta=meta)


def _counts(arr: NDArray[Any], name: str, where: str, what: str) -> NDArray[np.int64]:
    """Whole numbers in [0, 2**63) as int64 (floats too: other tools may store counts so)."""
    if np.issubdtype(arr.dtype, np.integer):
        bad = arr < 0
    elif np.issubdtype(arr.dtype, np.floating):
        whole = arr == np.floor(np.where(np.isfinite(arr), arr, 0))
        bad = ~((arr >= 0) & (arr < 2.0**63) & whole)
    else:
        raise ValueError(f"{where}: column {name!r} must hold whole numbers, got {arr.dtype}")
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{where}: column {name!r} must be a whole number >= 0 (below 2**63), "
            f"got {arr[i].item()!r} at {what} {i}"
        )
    return arr.astype(np.int64, copy=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {obj!r}")


def _atomic_write(path: Path, write: Any) -> Path:
    """Kept for the modules that import it from here; see :mod:`servegen._atomic`."""
    return atomic_write(path, write)
