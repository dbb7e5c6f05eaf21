"""Machinery shared by the format readers and writers (private).

Text output is built column-wise with Arrow compute kernels: numbers are cast to strings
and whole lines are joined element-wise, so a JSON Lines or CSV file is encoded without a
Python call per request. ``hash_ids`` lists become ``"[1, 2, 3]"`` strings through Arrow's
list ``binary_join``. The joined lines are one contiguous Arrow buffer, which is written
to the file as is.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ..requests import Ragged, Requests
from ._tables import is_json_text, parse_floats, to_float, values
from ._tables import read_csv_table as read_csv_table
from ._tables import read_json_table as read_json_table

#: Rows encoded at once: bounds the memory of one encoded batch (and keeps every Arrow
#: string array far below its 2 GiB offset limit).
BATCH_ROWS = 1 << 18

#: Canonical columns of :func:`read_trace` output, in this order when present.
CANONICAL = (
    "timestamp",
    "input_tokens",
    "output_tokens",
    "client",
    "session",
    "turn",
    "parent",
    "hash_ids",
    "image_count",
)
_COUNTS = ("input_tokens", "output_tokens", "turn", "image_count")
# Divisors, not factors: one correctly rounded division gives 0.04 for 40 ms (40 * 1e-3
# would give 0.04000000000000001).
_TIME_DIVISORS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


# -- encoding: numpy columns -> Arrow string arrays --------------------------------------
def ints(values: NDArray[Any]) -> pa.Array:
    """Decimal strings of integers."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def floats(values: NDArray[Any], name: str) -> pa.Array:
    """Shortest round-trip decimal strings of finite floats (valid JSON and CSV numbers)."""
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"`{name}` must be finite to be written, got {values[i].item()!r} at row {i}")
    return pc.cast(pa.array(values), pa.string())


def _missing_floats(values: NDArray[np.float64], name: str, missing: str) -> pa.Array:
    # NaN marks a missing value of an optional float column: null / an empty CSV cell.
    nan = np.isnan(values)
    if not nan.any():
        return floats(values, name)
    text = floats(np.where(nan, 0.0, values), name)
    return pc.if_else(pa.array(nan), missing, text)


def labels(codes: NDArray[np.integer], uniques: Sequence[Any], render: Callable[[Any], str]) -> pa.Array:
    """Render each distinct label once, then gather by code (code -1: missing)."""
    table = pa.array([render(u) for u in uniques] + [render(None)], type=pa.string())
    codes = np.where(np.asarray(codes) < 0, len(uniques), codes)
    return table.take(pa.array(codes))


def json_text(u: Any) -> str:
    if u is None:
        return "null"
    if isinstance(u, np.generic):
        u = u.item()
    return json.dumps(u if isinstance(u, (str, int, float, bool)) else str(u))


# Cells Arrow's CSV reader takes for a missing value unless quoted (its default list).
_NULL_TOKENS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"]
)  # fmt: skip


def csv_text(u: Any) -> str:
    if u is None:
        return ""
    s = str(u.item() if isinstance(u, np.generic) else u)
    # Quoted, a string that reads as missing ("NaN", "null", "") stays that string.
    if any(c in s for c in ',"\r\n') or (isinstance(u, str) and s in _NULL_TOKENS):
        return '"' + s.replace('"', '""') + '"'
    return s


def _typed(
    values: NDArray[Any], name: str, bools: tuple[str, str], missing: str, render: Callable[[Any], str]
) -> pa.Array:
    values = np.asarray(values)
    if values.dtype == bool:
        return pc.if_else(pa.array(values), *bools)
    if np.issubdtype(values.dtype, np.integer):
        return ints(values)
    if np.issubdtype(values.dtype, np.floating):
        return _missing_floats(values.astype(np.float64), name, missing)
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    return labels(codes, list(uniques), render)


def json_values(values: NDArray[Any], name: str) -> pa.Array:
    """JSON literals: numbers, ``true``/``false``, quoted strings; missing values are ``null``."""
    return _typed(values, name, ("true", "false"), "null", json_text)


def csv_values(values: NDArray[Any], name: str) -> pa.Array:
    """CSV fields: bare numbers, strings quoted only when needed (RFC 4180); missing: empty."""
    return _typed(values, name, ("True", "False"), "", csv_text)


def int_lists(offsets: NDArray[np.int64], values: NDArray[Any]) -> pa.Array:
    """``"[1, 2, 3]"`` for each row of a ragged integer column."""
    lists = pa.LargeListArray.from_arrays(
        pa.array(np.asarray(offsets, dtype=np.int64)), pa.array(np.asarray(values, dtype=np.int64))
    )
    joined = pc.binary_join(pc.cast(lists, pa.large_list(pa.string())), ", ")
    return pc.binary_join_element_wise("[", joined, "]", "")


def join(*parts: pa.Array | str) -> pa.Array:
    """Concatenate literals and string arrays element-wise; null pieces become empty."""
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")


def optional(mask: NDArray[np.bool_], *parts: pa.Array | str) -> pa.Array:
    """``join(*parts)`` where ``mask`` is true, null elsewhere (a field left out of a row)."""
    return pc.if_else(pa.array(mask), join(*parts), pa.scalar(None, pa.string()))


def write_lines(fh: IO[bytes], lines: pa.Array) -> None:
    """Write the concatenated bytes of a string array (each element one full line)."""
    if len(lines) == 0:
        return
    lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64, count=len(lines) + 1, offset=lines.offset * 8)
    data = lines.buffers()[2]
    fh.write(memoryview(data)[int(offsets[0]) : int(offsets[-1])])


# -- writers ---------------------------------------------------------------------------
class Writer:
    """Turns a stream of :class:`~servegen.Requests` chunks into one file.

    Subclasses take their options as keyword arguments of ``__init__`` (validated there,
    before any file is created) and implement :meth:`open`, :meth:`write`, :meth:`close`.
    State that spans chunks (a running hash-id counter, the last turn of each session)
    lives on the instance, so chunked output equals one-shot output.
    """

    name = ""

    def open(self, path: str) -> None:
        raise NotImplementedError

    def write(self, req: Requests) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @classmethod
    def option_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters
        return [p for p in params if p != "self"]


class TextWriter(Writer):
    """A writer of line-oriented text: an optional header, then encoded batches."""

    def __init__(self) -> None:
        self._fh: IO[bytes] | None = None

    def header(self) -> bytes:
        return b""

    def encode(self, req: Requests) -> pa.Array:
        """One string per request, each ending in a newline."""
        raise NotImplementedError

    def open(self, path: str) -> None:
        self._fh = open(path, "wb")
        self._fh.write(self.header())

    def write(self, req: Requests) -> None:
        assert self._fh is not None
        for part in batches(req):
            write_lines(self._fh, self.encode(part))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def csv_header(names: Sequence[str]) -> bytes:
    return (",".join(csv_text(n) for n in names) + "\n").encode()


def csv_lines(fields: Sequence[pa.Array]) -> pa.Array:
    parts: list[pa.Array | str] = []
    for i, f in enumerate(fields):
        if i:
            parts.append(",")
        parts.append(f)
    parts.append("\n")
    return join(*parts)


def json_lines(fields: Sequence[tuple[str, pa.Array]]) -> pa.Array:
    """``{"a": 1, "b": [2, 3]}`` lines from (key, JSON literal strings) pairs."""
    parts: list[pa.Array | str] = []
    for i, (key, arr) in enumerate(fields):
        parts.append(("{" if i == 0 else ", ") + json.dumps(key) + ": ")
        parts.append(arr)
    parts.append("}\n")
    return join(*parts)


def check_options(cls: type[Writer], fmt: str, options: Mapping[str, Any]) -> None:
    allowed = cls.option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"format {fmt!r} takes no option(s) {unknown!r}; its options are {allowed!r}")


def check_block_size(block_size: Any) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"`block_size` must be an integer >= 1, got {block_size!r}")
    return int(block_size)


# -- request columns -------------------------------------------------------------------
def batches(req: Requests, size: int = BATCH_ROWS) -> Iterator[Requests]:
    """Consecutive row slices of ``req`` (views, not copies)."""
    n = len(req)
    if n <= size:
        yield req
        return
    for lo in range(0, n, size):
        yield slice_rows(req, lo, min(lo + size, n))


def slice_rows(req: Requests, lo: int, hi: int) -> Requests:
    cols = {name: req[name][lo:hi] for name in req.columns if not isinstance(req[name], Ragged)}
    ragged = {}
    for name in req.columns:
        rg = req[name]
        if isinstance(rg, Ragged):
            a, b = int(rg.offsets[lo]), int(rg.offsets[hi])
            ragged[name] = Ragged(rg.values[a:b], rg.offsets[lo : hi + 1] - a)
    return Requests(cols, clients=req.clients, ragged=ragged, duration=req.duration, meta=req.meta)


def input_total(req: Requests) -> NDArray[np.int64]:
    """Prompt tokens as a serving engine sees them: text plus multimodal item tokens."""
    if "input_tokens_total" in req:
        return np.asarray(req["input_tokens_total"], dtype=np.int64)
    return req.input_tokens


def sessions(req: Requests) -> tuple[NDArray[Any], NDArray[np.bool_]] | None:
    """The ``session`` column and which rows belong to a session (ints < 0 and nulls do not)."""
    if "session" not in req or isinstance(req["session"], Ragged):
        return None
    s = np.asarray(req["session"])
    if np.issubdtype(s.dtype, np.integer):
        return s, s >= 0
    if np.issubdtype(s.dtype, np.floating):
        return s, np.isfinite(s) & (s >= 0)
    return s, ~pd.isna(s)


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
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"`hash_start` must be an integer >= 0, got {start!r}")
        self.next_id = int(start)

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


def ms_int(t: NDArray[np.float64]) -> NDArray[np.int64]:
    """Seconds -> integer milliseconds, rounding half up (monotone, so order is kept)."""
    return np.floor(np.asarray(t, dtype=np.float64) * 1000.0 + 0.5).astype(np.int64)


def ns_int(t: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.floor(np.asarray(t, dtype=np.float64) * 1e9 + 0.5).astype(np.int64)


# -- reading ---------------------------------------------------------------------------
def require(present: Sequence[str], needed: Sequence[str], path: Path, fmt: str) -> None:
    missing = [c for c in needed if c not in present]
    if missing:
        raise ValueError(
            f"{str(path)!r} is missing column(s) {missing!r} required by format {fmt!r}; "
            f"its columns are {list(present)!r}"
        )


def column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def numbers(table: pa.Table, name: str, path: Path, first_line: int) -> NDArray[Any]:
    """A numeric column as numpy (nulls become NaN); a text column is an error naming a line."""
    arr = column(table, name)
    if pa.types.is_integer(arr.type) and arr.null_count == 0:
        return arr.to_numpy()
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
        return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(arr.type):
        return arr.to_numpy(zero_copy_only=False).astype(np.float64)
    # Text cells: parse each distinct one (JSON texts of a mixed field are decoded first).
    decode = json.loads if is_json_text(table, name) else str
    codes, uniques = pd.factorize(arr.cast(pa.string()).to_pandas(), use_na_sentinel=True)
    table_of = np.array([to_float(decode(u)) for u in uniques] + [np.nan], dtype=np.float64)
    parsed = table_of[np.where(codes < 0, len(uniques), codes)]
    bad = np.isnan(parsed) & (codes >= 0)
    if not bad.any():  # numbers Arrow could not type (beyond int64): counts() checks the range
        return parsed
    i = int(np.argmax(bad))
    raise ValueError(
        f"{str(path)!r}: column {name!r} must be numeric, got {arr[i].as_py()!r} at line {i + first_line}"
    )


def timeline(values: NDArray[Any], unit: str, relative: bool) -> tuple[NDArray[np.float64], float]:
    """Seconds (from the first request when ``relative``) and the origin, in source seconds."""
    if unit not in _TIME_DIVISORS:
        raise ValueError(f"`time_unit` must be one of {[*_TIME_DIVISORS, 'datetime']!r}, got {unit!r}")
    div = _TIME_DIVISORS[unit]
    if np.issubdtype(values.dtype, np.integer):
        # Subtract in the integer domain first: ns epochs do not fit a float64 exactly.
        origin = int(values.min()) if relative and len(values) else 0
        return _int_seconds(values.astype(np.int64) - origin, int(div)), origin / div
    v = np.asarray(values, dtype=np.float64)
    # Subtract before dividing: whole-number times (ms) then give exact differences.
    origin = float(np.nanmin(v)) if relative and len(v) else 0.0
    return (v - origin) / div, origin / div


def datetimes(values: Any, name: str, path: Path, first_line: int) -> NDArray[np.int64]:
    """Date-time strings (or Arrow timestamps) -> int64 ns since the Unix epoch (UTC)."""
    series = pd.Series(values)
    try:
        parsed = pd.to_datetime(series, format="ISO8601", utc=True)
    except (ValueError, TypeError):
        parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna() & series.notna()
        i = int(np.argmax(bad.to_numpy()))
        raise ValueError(
            f"{str(path)!r}: column {name!r} must hold date-times, "
            f"got {series.iloc[i]!r} at line {i + first_line}"
        ) from None
    if parsed.isna().any():
        i = int(np.argmax(parsed.isna().to_numpy()))
        raise ValueError(f"{str(path)!r}: column {name!r} is empty at line {i + first_line}")
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    out = ((parsed < lo) | (parsed > hi)).to_numpy()
    if out.any():  # int64 nanoseconds span the years 1677-2262
        i = int(np.argmax(out))
        raise ValueError(
            f"{str(path)!r}: column {name!r} must be a date-time in the years 1677-2262, "
            f"got {series.iloc[i]!r} at line {i + first_line}"
        )
    return parsed.dt.as_unit("ns").to_numpy().view(np.int64).copy()


def epoch_ns(arr: pa.Array, name: str, path: Path, first_line: int) -> NDArray[np.int64]:
    """An Arrow timestamp column (or date-time strings) as int64 ns since the epoch (UTC)."""
    if len(arr) == 0:  # an empty stream (a header-only file)
        return np.zeros(0, dtype=np.int64)
    if pa.types.is_timestamp(arr.type):
        if arr.null_count:
            i = int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))
            raise ValueError(f"{str(path)!r}: column {name!r} is empty at line {i + first_line}")
        ticks = arr.cast(pa.int64()).to_numpy()
        per_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[arr.type.unit]
        bad = np.abs(ticks) > (2**63 - 1) // per_ns
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{str(path)!r}: column {name!r} must be a date-time in the years 1677-2262, "
                f"got {arr[i].as_py()} at line {i + first_line}"
            )
        return ticks.astype(np.int64) * per_ns
    return datetimes(arr.to_pandas(), name, path, first_line)


def datetime_timeline(ns: NDArray[np.int64], relative: bool) -> tuple[NDArray[np.float64], str]:
    origin = int(ns.min()) if relative and len(ns) else 0
    iso = pd.Timestamp(origin, unit="ns", tz="UTC").isoformat()
    return _int_seconds(ns - origin, 10**9), iso


def _int_seconds(ticks: NDArray[np.int64], per_second: int) -> NDArray[np.float64]:
    """Integer ticks -> float seconds with one rounding (whole seconds, then the fraction)."""
    whole, frac = np.divmod(ticks, per_second)
    return whole.astype(np.float64) + frac.astype(np.float64) / per_second


def counts(
    values: NDArray[Any], name: str, path: Path, first_line: int, where: str = "line"
) -> NDArray[np.int64]:
    """Token or item counts: present, whole and >= 0, as int64."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer):
        bad = values < 0
        rule = "must be >= 0"
    else:
        v = parse_floats(values)
        whole = v == np.floor(np.where(np.isfinite(v), v, 0))
        bad = ~((v >= 0) & (v < 2.0**63) & whole)
        rule = "must be a whole number >= 0 and below 2**63 (no empty cells)"
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{str(path)!r}: column {name!r} {rule}, got {_py(values[i])!r} at {where} {i + first_line}"
        )
    return v.astype(np.int64) if not np.issubdtype(values.dtype, np.integer) else values.astype(np.int64)


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def list_column(arr: pa.Array, name: str, path: Path) -> pd.Series:
    """An Arrow list column as a Series of int64 numpy arrays (one per row)."""
    if pa.types.is_null(arr.type):
        return pd.Series([np.empty(0, np.int64)] * len(arr), dtype=object)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise ValueError(f"{str(path)!r}: column {name!r} must hold lists of integers, got type {arr.type}")
    arr = arr.cast(pa.large_list(pa.int64()))
    offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
    lengths = np.diff(offsets)
    if arr.null_count:
        lengths = np.where(arr.is_null().to_numpy(zero_copy_only=False), 0, lengths)
    values = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    cuts = np.cumsum(lengths)[:-1]
    out = np.empty(len(arr), dtype=object)
    out[:] = np.split(values, cuts) if len(arr) else []
    return pd.Series(out, dtype=object)


def extras(table: pa.Table, skip: Sequence[str], path: Path) -> dict[str, Any]:
    """Every column not in ``skip``, kept under its own name (nothing is dropped)."""
    out: dict[str, Any] = {}
    for name in table.column_names:
        if name in skip:
            continue
        arr = column(table, name)
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            try:
                out[name] = list_column(arr, name, path)
                continue
            except pa.ArrowInvalid:
                pass
        out[name] = values(table, name)
    return out


def read_flat(
    table: pa.Table,
    *,
    path: Path,
    fmt: str,
    required: Sequence[str],
    sources: Mapping[str, str],
    unit: str,
    first_line: int,
    relative: bool,
) -> pd.DataFrame:
    """A trace of one time column and two length columns (``sources`` names them in the
    file); every other column is kept as an extra."""
    require(table.column_names, required, path, fmt)
    t, origin = timeline(numbers(table, sources["timestamp"], path, first_line), unit, relative)
    data = {
        "timestamp": t,
        "input_tokens": numbers(table, sources["input_tokens"], path, first_line),
        "output_tokens": numbers(table, sources["output_tokens"], path, first_line),
        **extras(table, required, path),
    }
    attrs = {"time_unit": unit, "time_origin": origin}
    return finish(data, path=path, fmt=fmt, sources=sources, first_line=first_line, attrs=attrs)


def finish(
    data: dict[str, Any],
    *,
    path: Path,
    fmt: str,
    sources: Mapping[str, str],
    first_line: int,
    attrs: Mapping[str, Any],
    where: str = "line",
) -> pd.DataFrame:
    """Validate, order and sort the columns of a trace into the canonical DataFrame.

    ``data`` maps canonical and extra column names to arrays (timestamp already in
    seconds); ``sources`` maps canonical names to the file's names for error messages.
    """
    for name in _COUNTS:
        if name in data:
            data[name] = counts(data[name], sources.get(name, name), path, first_line, where)
    t = np.asarray(data["timestamp"], dtype=np.float64)
    bad = ~np.isfinite(t)
    if bad.any():
        i = int(np.argmax(bad))
        src = sources.get("timestamp", "timestamp")
        raise ValueError(f"{str(path)!r}: column {src!r} is empty or not finite at {where} {i + first_line}")
    data["timestamp"] = t
    order = [c for c in CANONICAL if c in data] + [c for c in data if c not in CANONICAL]
    df = pd.DataFrame({c: data[c] for c in order})
    if len(t) > 1 and not (np.diff(t) >= 0).all():
        df = df.iloc[np.argsort(t, kind="stable")].reset_index(drop=True)
    df.attrs.update({"format": fmt, "path": str(path), **attrs})
    return df


def to_path(path: str | os.PathLike[str]) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or path-like, got {path!r}")
    return Path(path).expanduser()


# -- DataFrame -> Requests (so read_trace output can be written to any format) ------------
def requests_from_frame(df: pd.DataFrame) -> Requests:
    """A :class:`Requests` from a canonical DataFrame (as :func:`read_trace` returns)."""
    missing = [c for c in ("timestamp", "input_tokens", "output_tokens") if c not in df.columns]
    if missing:
        raise ValueError(f"write: the DataFrame is missing canonical column(s) {missing!r}")
    cols: dict[str, NDArray[Any]] = {}
    ragged: dict[str, Ragged] = {}
    clients: list[Any] = [0]
    for name in df.columns:
        s = df[name]
        if name == "client":
            if isinstance(s.dtype, pd.CategoricalDtype):
                codes, uniques = s.cat.codes.to_numpy(), list(s.cat.categories)
            else:
                codes, uniques = pd.factorize(s, sort=True)
                uniques = list(uniques)
            if (codes < 0).any():
                raise ValueError(f"write: `client` is missing at row {int(np.argmax(codes < 0))}")
            cols["client"] = np.asarray(codes, dtype=np.int32)
            clients = [u.item() if isinstance(u, np.generic) else u for u in uniques]
        elif s.dtype == object and len(s) and _is_list_like(s):
            arr = pa.array(list(s)).cast(pa.large_list(pa.int64()))
            offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
            ragged[name] = Ragged(pc.list_flatten(arr).to_numpy(zero_copy_only=False), offsets - offsets[0])
        else:
            cols[name] = s.to_numpy()
    if "client" not in cols:
        cols["client"] = np.zeros(len(df), dtype=np.int32)
    meta = {"block_size": df.attrs["block_size"]} if "block_size" in df.attrs else {}
    return Requests(cols, clients=clients, ragged=ragged, meta=meta)


def _is_list_like(s: pd.Series) -> bool:
    first = s.dropna()
    return len(first) > 0 and isinstance(first.iloc[0], (list, tuple, np.ndarray))
