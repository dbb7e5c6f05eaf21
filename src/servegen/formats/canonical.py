"""servegen's own files (Parquet, CSV, JSON Lines) and generic traces with a column mapping.

Canonical columns (as :class:`~servegen.Requests` holds them):

==================== ============ ======================================================
column               type         meaning
==================== ============ ======================================================
timestamp            float64      arrival, seconds from the start of the workload
client               key          the client key (int or str; categorical in Parquet)
input_tokens         int64        prompt (text) tokens
output_tokens        int64        generated tokens
*optional flat*      as stored    e.g. ``input_tokens_total`` (text + item tokens),
                                  ``image_count``, ``reasoning_tokens``,
                                  ``answer_tokens``, ``session``, ``turn``, ``parent``
*ragged*             list         e.g. ``hash_ids`` (ints per request), item tokens
==================== ============ ======================================================

Writers (``parquet``, ``csv``, ``jsonl``) keep every column of the requests, so nothing
is lost; they differ only in encoding:

* ``parquet``: :meth:`Requests.to_arrow` (``client`` dictionary-encoded, ragged columns
  as list arrays, the client keys, duration and ``meta`` in the schema metadata, so
  :func:`servegen.read_parquet` rebuilds the exact :class:`Requests`). Option
  ``compression`` (Parquet codec, default ``"zstd"``).
* ``csv``: one column per flat column, the client *key* in ``client``, ragged columns as
  quoted ``"[1, 2, 3]"`` cells.
* ``jsonl``: one object per request with the same keys, ragged columns as JSON lists.

Floats are written with the shortest decimal that reads back as the same float64.

Client keys (ints, strs, or both) read back exactly, with their types
(see ``servegen._keys``): Parquet lists them in its metadata; JSON has types; in CSV a
``client`` cell that is an integer literal (``7``, ``-3``) is an int key and any other
cell a str key, so a str key that looks like an integer (``"7"``) is refused when
writing CSV, with a pointer to ``parquet``/``jsonl``. Strings a CSV reader would take for
a missing value (``""``, ``"NaN"``, ``"null"``, ``"NA"`` ...) are written quoted, and a
quoted cell is never missing. Keys that differ only in type (``1`` and ``"1"``) are
refused by Parquet and CSV, which store mixed keys as text. An empty stream writes a
file that reads back as zero rows (a CSV header, an empty JSON Lines file, a Parquet
file without rows).

Reading (``parquet``, ``csv``, ``jsonl``; ``servegen`` picks one of them by the file
extension) also takes traces from other tools: ``columns={canonical: source}`` names
the file's columns (unmapped columns are kept under their own names) and ``time_unit``
(``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or ``"datetime"`` for date-time strings; Arrow
timestamp columns are detected) gives the timestamp unit:

>>> import tempfile, os
>>> from pathlib import Path
>>> from servegen.formats import read_trace
>>> p = os.path.join(tempfile.mkdtemp(), "log.csv")
>>> _ = Path(p).write_text("ts,prompt_len,gen_len,user\\n2000,10,5,a\\n1500,20,7,b\\n")
>>> df = read_trace(p, "csv", columns={"timestamp": "ts", "input_tokens": "prompt_len",
...                                     "output_tokens": "gen_len", "client": "user"}, time_unit="ms")
>>> df.values.tolist(), df.attrs["time_origin"]
([[0.0, 20, 7, 'b'], [0.5, 10, 5, 'a']], 1.5)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import _keys
from ..requests import META_KEY as _META_KEY
from ..requests import Ragged, Requests
from . import _io, _tables

__all__ = ["CsvWriter", "JsonlWriter", "ParquetWriter", "read_generic"]

_LIST_TEXT = r"^\[[-+0-9., eE]*\]$"


def _load(path: Path, kind: str, client: str) -> pa.Table:
    if kind == "parquet":
        return _tables.read_parquet_table(path)
    if kind == "csv":
        return _io.read_csv_table(path, text=[client])
    table = _io.read_json_table(path)
    if table.num_columns == 0:  # an empty file: an empty stream (see _tables)
        core = ("timestamp", "input_tokens", "output_tokens")
        table = pa.table({n: pa.array([], type=pa.float64()) for n in core})
    return table


def _kind_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".gz", ".bz2", ".zst", ".lz4"):
        name = name.removesuffix(suffix)
    for ext, kind in (
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".csv", "csv"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if name.endswith(ext):
            return kind
    raise ValueError(
        f"format 'servegen': cannot tell the encoding of {str(path)!r} from its extension; "
        "use format='parquet', 'csv' or 'jsonl'"
    )


def _mapping(columns: Any, names: list[str], path: Path, fmt: str) -> dict[str, str]:
    """source -> canonical renames, checked against the file's columns."""
    if columns is None:
        return {}
    if not isinstance(columns, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
    ):
        raise TypeError(
            f"`columns` must map canonical names to the file's column names (str -> str), got {columns!r}"
        )
    _io.require(names, list(columns.values()), path, fmt)
    rename = {src: dst for dst, src in columns.items()}
    clash = [dst for dst in columns if dst in names and dst not in rename]
    if clash:
        raise ValueError(
            f"{str(path)!r}: `columns` maps another column onto {clash!r}, which the file already has; "
            "map that one too (e.g. to a new name)"
        )
    return rename


def _text_lists(arr: pa.Array) -> pa.Array | None:
    """``"[1, 2]"`` cells (servegen's CSV encoding of ragged columns) as a list array."""
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        return None
    if arr.null_count or len(arr) == 0 or not pc.all(pc.match_substring_regex(arr, _LIST_TEXT)).as_py():
        return None
    inner = pc.utf8_trim(arr, "[] ")
    parts = pc.split_pattern(inner, ", ")
    flat = pc.list_flatten(parts)
    empty = pc.equal(inner, "").to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False) - empty
    keep = pc.not_equal(flat, "")
    values = pc.filter(flat, keep)
    try:
        numbers = values.cast(pa.int64())
    except pa.ArrowInvalid:
        try:
            numbers = values.cast(pa.float64())
        except pa.ArrowInvalid:  # e.g. "[1, 2,3]": not servegen's encoding, keep the text
            return None
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeListArray.from_arrays(pa.array(offsets), numbers)


def read_generic(
    path: Path,
    fmt: str,
    *,
    columns: Mapping[str, str] | None = None,
    time_unit: str = "s",
    relative: bool = True,
    block_size: int | None = None,
) -> pd.DataFrame:
    """Read a Parquet / CSV / JSON Lines trace into the canonical DataFrame."""
    kind = _kind_of(path) if fmt == "servegen" else fmt
    client = columns.get("client", "client") if isinstance(columns, Mapping) else "client"
    table = _load(path, kind, client if isinstance(client, str) else "client")
    rename = _mapping(columns, table.column_names, path, fmt)
    sources = {dst: src for src, dst in rename.items()}
    first_line = {"csv": 2, "jsonl": 1}.get(kind, 0)
    where = "row" if kind == "parquet" else "line"
    names = [rename.get(n, n) for n in table.column_names]
    _io.require(names, ("timestamp", "input_tokens", "output_tokens"), path, fmt)
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    attrs: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for src, name in zip(table.column_names, names, strict=True):
        arr = _io.column(table, src)
        label = sources.get(name, name)
        if name == "timestamp":
            if time_unit == "datetime" or pa.types.is_timestamp(arr.type):
                ns = _io.epoch_ns(arr, label, path, first_line)
                data[name], attrs["time_origin"] = _io.datetime_timeline(ns, relative)
                attrs["time_unit"] = "datetime"
            else:
                raw = _io.numbers(table, src, path, first_line)
                data[name], attrs["time_origin"] = _io.timeline(raw, time_unit, relative)
                attrs["time_unit"] = time_unit
            continue
        lists = _text_lists(arr) if kind == "csv" else None
        if lists is not None:
            arr = lists
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            try:
                data[name] = _io.list_column(arr, label, path)
            except pa.ArrowInvalid:  # float lists: keep as arrays of floats
                data[name] = arr.to_pandas()
        elif name in ("input_tokens", "output_tokens"):
            data[name] = _io.numbers(table, src, path, first_line)
        elif name == "client":
            data[name] = _client_values(table, src, kind, meta, path)
        else:
            data[name] = _tables.values(table, src)
    block = block_size if block_size is not None else meta.get("block_size")
    if "hash_ids" in data and block is not None:
        attrs["block_size"] = _io.check_block_size(block)
    if meta:
        attrs["servegen"] = meta
    return _io.finish(
        data, path=path, fmt=fmt, sources=sources, first_line=first_line, attrs=attrs, where=where
    )


def _client_values(table: pa.Table, src: str, kind: str, meta: dict[str, Any], path: Path) -> Any:
    """The client key of every row, exactly as written (see :mod:`servegen._keys`)."""
    arr = table.column(src)
    if kind == "parquet" and isinstance(meta.get("clients"), list):
        codes, keys = _keys.decode_arrow(arr, meta["clients"], repr(str(path)))
        return _take(keys, codes)
    if kind == "csv" and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        codes, uniques = pd.factorize(_io.column(table, src).to_pandas(), use_na_sentinel=True)
        return _take(_keys.text_keys(list(uniques)), codes)
    return _tables.values(table, src)


def _take(keys: list[Any], codes: np.ndarray) -> Any:
    """Keys gathered by code (-1: missing); an int64 array when every key is an int."""
    lookup = np.empty(len(keys) + 1, dtype=object)
    lookup[:-1] = keys
    lookup[-1] = None
    out = lookup[np.where(np.asarray(codes) < 0, len(keys), codes)]
    if all(isinstance(k, int) for k in keys) and (np.asarray(codes) >= 0).all():
        return out.astype(np.int64)
    return out


# -- writers ---------------------------------------------------------------------------
class ParquetWriter(_io.Writer):
    """Parquet through :meth:`Requests.to_arrow`, one row group per chunk."""

    name = "parquet"

    def __init__(self, *, compression: str = "zstd") -> None:
        if not isinstance(compression, str):
            raise TypeError(f"parquet: `compression` must be a str, got {compression!r}")
        self.compression = compression
        self._path: str | None = None
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def open(self, path: str) -> None:
        self._path = path

    def write(self, req: Requests) -> None:
        table = req.to_arrow()
        if self._writer is None:
            meta = json.loads(table.schema.metadata[_META_KEY])
            meta.pop("chunk", None)  # a chunk's window is not a fact of the whole file
            table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
            self._schema = table.schema
            assert self._path is not None
            try:
                self._writer = pq.ParquetWriter(self._path, self._schema, compression=self.compression)
            except (pa.ArrowException, ValueError) as exc:
                raise ValueError(
                    f"parquet: cannot write with compression={self.compression!r}: {exc}"
                ) from None
        else:
            assert self._schema is not None
            table = table.replace_schema_metadata(self._schema.metadata)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _cells(req: Requests, name: str, render: str) -> pa.Array:
    col = req[name]
    if isinstance(col, Ragged):
        lists = _num_lists(col)
        return _io.join('"', lists, '"') if render == "csv" else lists
    if name == "client":  # render each client key once, gather by code
        text = _io.csv_text if render == "csv" else _io.json_text
        return _io.labels(req.client, list(req.clients), text)
    return _io.csv_values(col, name) if render == "csv" else _io.json_values(col, name)


def _num_lists(rg: Ragged) -> pa.Array:
    values = np.asarray(rg.values)[rg.offsets[0] : rg.offsets[-1]]
    if np.issubdtype(values.dtype, np.integer):
        text = _io.ints(values)
    else:
        text = _io.floats(values, "ragged value")
    lists = pa.LargeListArray.from_arrays(pa.array(rg.offsets - rg.offsets[0]), text)
    return _io.join("[", pc.binary_join(lists, ", "), "]")


class CsvWriter(_io.TextWriter):
    """Every column as CSV: client keys, ragged columns as ``"[1, 2]"`` cells."""

    name = "csv"

    def __init__(self) -> None:
        super().__init__()
        self._header = False

    def write(self, req: Requests) -> None:
        if not self._header:
            _keys.check_text_keys(_keys.storable(req.clients), "csv")
            assert self._fh is not None
            self._fh.write(_io.csv_header(req.columns))
            self._header = True
        super().write(req)

    def encode(self, req: Requests) -> pa.Array:
        return _io.csv_lines([_cells(req, name, "csv") for name in req.columns])


class JsonlWriter(_io.TextWriter):
    """Every column as one JSON object per request."""

    name = "jsonl"

    def __init__(self) -> None:
        super().__init__()
        self._checked = False

    def write(self, req: Requests) -> None:
        if not self._checked:
            _keys.storable(req.clients)
            self._checked = True
        super().write(req)

    def encode(self, req: Requests) -> pa.Array:
        return _io.json_lines([(name, _cells(req, name, "json")) for name in req.columns])


READERS = {kind: partial(read_generic, fmt=kind) for kind in ("parquet", "csv", "jsonl", "servegen")}
WRITERS = {"parquet": ParquetWriter, "csv": CsvWriter, "jsonl": JsonlWriter}
