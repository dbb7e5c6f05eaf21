"""The writer protocol and what every writer reads off a ``Requests`` (private).

A :class:`Writer` turns a stream of ``Requests`` chunks into one file; the helpers here
slice the requests into batches of bounded memory and give the columns every format
derives from (total prompt tokens, session membership). :func:`requests_from_frame`
turns a canonical DataFrame (what ``read_trace`` returns) into ``Requests``, so a trace
converts from one format to another.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ..requests import Ragged, Requests
from ._encode import write_lines

#: Rows encoded at once: bounds the memory of one encoded batch (and keeps every Arrow
#: string array far below its 2 GiB offset limit).
BATCH_ROWS = 1 << 18


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


def check_options(cls: type[Writer], fmt: str, options: Mapping[str, Any]) -> None:
    allowed = cls.option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"format {fmt!r} takes no option(s) {unknown!r}; its options are {allowed!r}")


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
                codes, found = pd.factorize(s, sort=True)
                uniques = list(found)
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
