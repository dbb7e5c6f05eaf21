"""One trace normalizer: a canonical DataFrame or ``Requests`` as sorted numpy columns.

:func:`as_trace` is the single path by which metrics, fitting and plots read a trace:
it checks the canonical columns (``timestamp`` seconds >= 0, whole token counts >= 0),
factorizes client columns into codes and keys, and sorts by time (stably, carrying every
column).

>>> import pandas as pd
>>> tr = as_trace(pd.DataFrame({"timestamp": [2.0, 1.0], "input_tokens": [5, 7],
...                             "output_tokens": [1, 2]}))
>>> tr.timestamp.tolist(), tr.input_tokens.tolist(), tr.resorted
([1.0, 2.0], [7, 5], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .clock import Quantization, clock_resolution, dequantize

__all__ = ["REQUIRED", "Trace", "as_trace", "client_column"]

Float64 = NDArray[np.float64]

#: Canonical columns every trace must have.
REQUIRED = ("timestamp", "input_tokens", "output_tokens")


@dataclass
class Trace:
    """A validated, timestamp-sorted trace as numpy columns (for metrics, fitting, plots)."""

    timestamp: Float64
    input_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    codes: NDArray[np.intp] | None  # client index per request, or None
    keys: list[Any] = field(default_factory=list)  # client key of each code
    duration: float | None = None  # the span the stream covers when known (Requests)
    resorted: bool = False
    quantization: Quantization | None = None
    dequantized: bool = False
    extra: dict[str, NDArray[Any]] = field(default_factory=dict)  # other flat columns, if asked

    def __len__(self) -> int:
        return self.timestamp.size

    @property
    def span(self) -> float:
        """End of the observed span: the recorded duration if known.

        Otherwise the last timestamp plus one mean gap: a trace is cut some time after its
        last request, and ending it exactly there would count that request in a window
        shorter than the traffic that produced it (biasing the last window's rate up).
        """
        last = float(self.timestamp[-1])
        if self.duration:
            return max(last, float(self.duration))
        n = self.timestamp.size
        return last + last / (n - 1) if n > 1 else last

    def take(self, order: NDArray[np.intp]) -> None:
        self.timestamp = self.timestamp[order]
        self.input_tokens = self.input_tokens[order]
        self.output_tokens = self.output_tokens[order]
        if self.codes is not None:
            self.codes = self.codes[order]
        self.extra = {k: v[order] for k, v in self.extra.items()}

    def dequantize(self, mode: bool | None, rng: np.random.Generator) -> None:
        """Detect the clock and, if ``mode`` says so, spread the ticks (see :func:`dequantize`)."""
        if mode not in (None, True, False):
            raise TypeError(f"`dequantize` must be None (auto), True or False, got {mode!r}")
        q = clock_resolution(self.timestamp)
        self.quantization = q
        if mode is False or q.resolution <= 0 or (mode is None and not q.quantized):
            return
        t = dequantize(self.timestamp, q.resolution, rng=rng)
        order = np.argsort(t, kind="stable")
        self.take(order)
        self.timestamp = t[order]
        self.dequantized = True


def _token_column(values: Any, name: str, owner: str = "trace") -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64, copy=False)
    else:
        try:
            f = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{owner}: column {name!r} must hold token counts, got dtype {arr.dtype}"
            ) from None
        bad = ~np.isfinite(f) | (f != np.floor(f))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{owner}: column {name!r} must hold whole token counts, got {float(f[i])!r} at row {i}"
            )
        out = f.astype(np.int64)
    if (out < 0).any():
        i = int(np.argmax(out < 0))
        raise ValueError(f"{owner}: column {name!r} must be >= 0, got {int(out[i])!r} at row {i}")
    return out


def _column(df: pd.DataFrame, name: str, owner: str) -> NDArray[Any]:
    """A numeric column as numpy: integers stay integers, missing values become NaN."""
    col = df[name]
    if pd.api.types.is_integer_dtype(col.dtype) and not col.hasnans:
        return col.to_numpy(dtype=np.int64)
    try:
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: column {name!r} must be numeric, got dtype {col.dtype}") from None


def _key_of(value: Any, as_int: bool) -> Any:
    return int(value) if as_int else str(value)


def _client_codes(df: pd.DataFrame, columns: list[str]) -> tuple[NDArray[np.intp], list[Any]]:
    """Factorize one or more columns into client codes and keys (ints or strs)."""
    for c in columns:
        if c not in df.columns:
            raise ValueError(
                f"trace: missing column {c!r} (named as a client column); columns: {list(df.columns)!r}"
            )
    if len(columns) == 1:
        col = df[columns[0]]
        codes, uniques = pd.factorize(col, sort=True)
        if (codes < 0).any():
            i = int(np.argmax(codes < 0))
            raise ValueError(f"trace: column {columns[0]!r} has a missing value at row {i}")
        dtype = getattr(uniques, "dtype", None)
        as_int = (dtype is not None and pd.api.types.is_integer_dtype(dtype)) or all(
            isinstance(u, (int, np.integer)) and not isinstance(u, (bool, np.bool_)) for u in uniques
        )
        return codes.astype(np.intp), [_key_of(u, as_int) for u in uniques]
    joint_codes, joint_keys = pd.MultiIndex.from_frame(df[columns].astype(str)).factorize(sort=True)
    return joint_codes.astype(np.intp), ["|".join(map(str, u)) for u in joint_keys]


def client_column(data: Any) -> str | None:
    """``"client"`` when ``data`` names a client per request (``Requests`` always do), else None."""
    from .requests import Requests  # the core; imported here to keep this module light

    if isinstance(data, Requests):
        return "client"
    return "client" if isinstance(data, pd.DataFrame) and "client" in data.columns else None


def as_trace(
    data: Any,
    *,
    client: str | None = None,
    by: str | list[str] | None = None,
    name: str = "trace",
    extra: bool = False,
) -> Trace:
    """Validate a trace (canonical DataFrame or ``Requests``) into sorted numpy columns.

    Unsorted timestamps are sorted (stably, carrying every column): merged logs are often
    slightly out of order, and nothing else in the analysis depends on the row order.
    ``client`` and ``by`` name the column(s) whose values make the client codes; ``name``
    starts every error message; with ``extra`` the other flat columns (not the canonical
    ones, not ``client``, not ragged lists) ride along in ``Trace.extra``.
    """
    from .requests import Requests  # the core; imported here to keep this module light

    if isinstance(data, Trace):  # already validated (e.g. a partition of an out-of-core trace)
        return data
    duration = None
    cols = ([client] if client else []) + ([by] if isinstance(by, str) else list(by or []))
    codes: NDArray[np.intp] | None = None
    keys: list[Any] = []
    if isinstance(data, Requests):
        duration = data.duration
        for c in cols:
            if c not in data:
                raise ValueError(f"{name}: missing column {c!r}; columns: {data.columns!r}")
        if cols == ["client"]:
            codes, keys = data.client.astype(np.intp), list(data.clients)
        elif cols:
            df = pd.DataFrame({c: (data.client_keys if c == "client" else data[c]) for c in cols})
            codes, keys = _client_codes(df, cols)
        t = np.asarray(data.timestamp, dtype=np.float64)
        inp, out = np.asarray(data.input_tokens), np.asarray(data.output_tokens)
        others = [c for c in data.columns if not hasattr(data[c], "offsets")] if extra else []
        columns = {c: np.asarray(data[c]) for c in others if c not in REQUIRED and c != "client"}
    elif isinstance(data, pd.DataFrame):
        for c in REQUIRED:
            if c not in data.columns:
                raise ValueError(
                    f"{name}: missing column {c!r}; a trace needs {', '.join(REQUIRED)}, "
                    f"got {list(data.columns)!r}"
                )
        if cols:
            codes, keys = _client_codes(data, cols)
        t = _column(data, "timestamp", name)
        inp, out = _column(data, "input_tokens", name), _column(data, "output_tokens", name)
        others = list(data.columns) if extra else []
        columns = {c: data[c].to_numpy() for c in others if c not in REQUIRED and c != "client"}
    else:
        raise TypeError(f"{name} must be a pandas DataFrame or servegen Requests, got {type(data).__name__}")
    if len(t) == 0:
        raise ValueError(f"{name} is empty (0 requests)")
    try:
        t = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: column 'timestamp' must be numeric seconds, got dtype {np.asarray(t).dtype}"
        ) from None
    bad = ~np.isfinite(t) | (t < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name}: column 'timestamp' must be finite seconds >= 0, got {float(t[i])!r} at row {i}"
        )
    tr = Trace(
        t,
        _token_column(inp, "input_tokens", name),
        _token_column(out, "output_tokens", name),
        codes,
        keys,
        duration,
        extra=columns,
    )
    if t.size > 1 and (np.diff(t) < 0).any():
        tr.take(np.argsort(t, kind="stable"))
        tr.resorted = True
    return tr
