"""Trace files -> Arrow tables, robust to damaged and unusual input (private).

Every failure is a ``ValueError`` naming the file (and the line, where there is one).

* JSON Lines go through Arrow's reader. Arrow cannot type a field whose rows mix
  numbers and strings (servegen's ``client`` with int and str keys) or hold an integer
  beyond int64, and reports a bad row only within a block; for such files (and only
  then) the standard library parses the file line by line. A field that still has no
  single Arrow type is kept as the JSON text of each value, flagged in the field's
  metadata (:func:`is_json_text`), and :func:`values` decodes it exactly.
* CSV: a quoted cell is never a missing value (``"NaN"`` and ``"null"`` are strings; the
  writers quote such strings), and the ``text`` columns are read as strings, not inferred.
* An empty stream is a valid file: a header-only CSV, an empty JSON Lines file or a
  Parquet file without rows reads as zero rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from numpy.typing import NDArray

__all__ = [
    "is_json_text", "parse_floats", "read_csv_table", "read_json_table", "read_parquet_table", "to_float",
    "values",
]  # fmt: skip

_JSON_TEXT = {b"servegen.json": b"1"}


def _unique_names(table: pa.Table, path: Path) -> pa.Table:
    names = table.column_names
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{str(path)!r}: column(s) {dup!r} appear more than once")
    return table


def read_json_table(path: Path, types: Mapping[str, pa.DataType] | None = None) -> pa.Table:
    """A JSON Lines file as an Arrow table; known fields get fixed types, others inferred."""
    types = dict(types or {})
    schema = pa.schema(list(types.items()))
    opts = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    try:
        table = pa_json.read_json(path, parse_options=opts)
        table.validate(full=True)  # Arrow's parser lets invalid UTF-8 through
        table.column_names  # noqa: B018 (field names are decoded here)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
        table = _json_fallback(path, types, duplicates="specified twice" in str(exc))
    except OSError as exc:  # e.g. a damaged .gz
        raise ValueError(f"{str(path)!r}: cannot read: {exc}") from None
    if table.num_rows:
        # Arrow adds every field of an explicit schema, as nulls when the file lacks it.
        names = set(table.column_names)
        absent = [n for n in schema.names if n in names and table.column(n).null_count == table.num_rows]
        table = table.drop_columns(absent)
    return _unique_names(table, path)


def _json_fallback(path: Path, types: Mapping[str, pa.DataType], duplicates: bool) -> pa.Table:
    try:
        with pa.input_stream(str(path), compression="detect") as fh:
            data = fh.read()
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{str(path)!r}: cannot read: {exc}") from None
    # The slow path (one stdlib parse per line) runs only for files Arrow cannot read. The
    # pairs hook (slower) names a repeated field, which Arrow reported without its line.
    decode = json.JSONDecoder(object_pairs_hook=_no_duplicates if duplicates else None).decode
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = decode(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{str(path)!r}: not valid JSON Lines (line {number}): {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{str(path)!r}: line {number} is not a JSON object: {raw[:80]!r}")
        records.append(obj)
    if not records:  # an empty stream: the scalar fields a reader requires, no rows
        return pa.table({n: pa.array([], type=t) for n, t in types.items() if not pa.types.is_list(t)})
    names = list(dict.fromkeys(k for r in records for k in r))
    arrays, fields = [], []
    for name in names:
        column = [r.get(name) for r in records]
        arr = _typed(column, types.get(name))
        meta = None
        if arr is None:  # no single Arrow type: keep each value's JSON text
            arr = pa.array(_json_texts(column), type=pa.string())
            meta = _JSON_TEXT
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, metadata=meta))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _json_texts(column: list[Any]) -> list[str | None]:
    """Each value's JSON text, encoded once per distinct scalar (keyed by type: 1 and True differ)."""
    cache: dict[tuple[type, Any], str] = {}
    out: list[str | None] = []
    for v in column:
        if v is None:
            out.append(None)
        elif isinstance(v, (list, dict)):
            out.append(json.dumps(v))
        else:
            key = (type(v), v)
            text = cache.get(key)
            if text is None:
                text = cache[key] = json.dumps(v)
            out.append(text)
    return out


def _typed(column: list[Any], want: pa.DataType | None) -> pa.Array | None:
    for t in (want, None) if want is not None else (None,):
        try:
            return pa.array(column, type=t)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            continue
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        dup = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise ValueError(f"field {dup!r} appears more than once")
    return out


def is_json_text(table: pa.Table, name: str) -> bool:
    """Whether ``name`` holds JSON texts (a field no single Arrow type could hold)."""
    meta = table.schema.field(name).metadata or {}
    return meta.get(b"servegen.json") == b"1"


def values(table: pa.Table, name: str) -> pd.Series:
    """A column as pandas; JSON-text columns decoded to their values (once per distinct text)."""
    arr = table.column(name)
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if not is_json_text(table, name):
        return arr.to_pandas()
    codes, uniques = pd.factorize(arr.to_pandas(), use_na_sentinel=True)
    decoded = np.empty(len(uniques) + 1, dtype=object)
    decoded[:-1] = [json.loads(u) for u in uniques]
    decoded[-1] = None
    return pd.Series(decoded[np.where(codes < 0, len(uniques), codes)], dtype=object)


def read_csv_table(
    path: Path, types: Mapping[str, pa.DataType] | None = None, text: Sequence[str] = ()
) -> pa.Table:
    """A CSV file as an Arrow table (``text`` columns kept as strings)."""
    column_types = {**{n: pa.string() for n in text}, **dict(types or {})}
    opts = pa_csv.ConvertOptions(
        column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    try:
        table = pa_csv.read_csv(path, convert_options=opts)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(path)!r}: cannot read as CSV: {_csv_error(path, opts, exc)}") from None
    except OSError as exc:
        raise ValueError(f"{str(path)!r}: cannot read: {exc}") from None
    try:
        table.column_names  # noqa: B018 (header names are decoded here)
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r}: the header (line 1) is not UTF-8 text") from None
    _unique_names(table, path)
    for name in table.column_names:  # Arrow keeps cells that are not UTF-8 as bytes
        arr = table.column(name)
        if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            line = 2 + next(i for i, v in enumerate(arr.to_pylist()) if v is not None and not _utf8(v))
            raise ValueError(f"{str(path)!r}: column {name!r} is not UTF-8 text at line {line}")
    return table


def _csv_error(path: Path, opts: pa_csv.ConvertOptions, exc: Exception) -> str:
    """Arrow's message, with the line: only a single-threaded read knows it (error path only)."""
    try:
        pa_csv.read_csv(path, convert_options=opts, read_options=pa_csv.ReadOptions(use_threads=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as again:
        return re.sub(r"Row #(\d+): ", r"line \1: ", str(again))
    return str(exc)


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_parquet_table(path: Path) -> pa.Table:
    """A Parquet file as an Arrow table."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:  # a damaged file: thrift, page or codec errors
        raise ValueError(f"{str(path)!r}: cannot read as Parquet: {exc}") from None
    return _unique_names(table, path)


def to_float(v: Any) -> float:
    """A number from a JSON value or a text cell; NaN when it is not one."""
    if isinstance(v, bool):
        return np.nan
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:  # an integer beyond float64: out of every count's range
            return np.inf
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return np.nan
    return np.nan


def parse_floats(values: NDArray[Any]) -> NDArray[np.float64]:
    """Numbers as float64; text and other objects (a damaged column) parse or become NaN."""
    if values.dtype != object and values.dtype.kind not in "USb":
        return np.asarray(values, dtype=np.float64)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object).astype(str), use_na_sentinel=True)
    table = np.array([to_float(u) for u in uniques] + [np.nan], dtype=np.float64)
    return table[np.where(codes < 0, len(uniques), codes)]
