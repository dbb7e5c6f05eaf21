"""Encoding numpy columns as Arrow string arrays, for the text formats (private).

Text output is built column-wise with Arrow compute kernels: numbers are cast to strings
and whole lines are joined element-wise, so a JSON Lines or CSV file is encoded without a
Python call per request. ``hash_ids`` lists become ``"[1, 2, 3]"`` strings through Arrow's
list ``binary_join``. The joined lines are one contiguous Arrow buffer, which is written
to the file as is.

>>> import numpy as np
>>> lines = json_lines([("t", floats(np.array([0.5, 2.0]), "t")), ("n", ints(np.array([3, 4])))])
>>> print("".join(lines.to_pylist()), end="")
{"t": 0.5, "n": 3}
{"t": 2, "n": 4}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray


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


def ms_int(t: NDArray[np.float64]) -> NDArray[np.int64]:
    """Seconds -> integer milliseconds, rounding half up (monotone, so order is kept)."""
    return np.floor(np.asarray(t, dtype=np.float64) * 1000.0 + 0.5).astype(np.int64)


def ns_int(t: NDArray[np.float64]) -> NDArray[np.int64]:
    return np.floor(np.asarray(t, dtype=np.float64) * 1e9 + 0.5).astype(np.int64)
