"""Reading a trace file into the canonical DataFrame: the steps every reader shares (private).

Columns are checked as they are read (numbers, whole counts, date-times), with errors
that name the file, the column and the line; :func:`finish` orders, validates and sorts
them into what :func:`servegen.formats.read_trace` returns.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ._tables import is_json_text, parse_floats, to_float, values

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
        ticks = int(values.min()) if relative and len(values) else 0
        return _int_seconds(values.astype(np.int64) - ticks, int(div)), ticks / div
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
