"""Azure LLM (2023, 2024) and LMM (2025) inference traces: CSV with date-time arrivals.

The public Azure traces (Splitwise, DynamoLLM; ModServe for the multimodal one)::

    TIMESTAMP,ContextTokens,GeneratedTokens
    2023-11-16 18:15:46.6805900,4808,10

================ ========= ===========================================================
column           type      meaning
================ ========= ===========================================================
TIMESTAMP        datetime  wall-clock arrival (any ISO 8601 form, with or without a
                           zone offset; offsets are converted to UTC)
NumImages        int       images in the request (2025 multimodal trace only)
ContextTokens    int       prompt tokens
GeneratedTokens  int       generated tokens
================ ========= ===========================================================

Reading: ``timestamp`` is seconds from the first request (computed in integer
nanoseconds, so the 100 ns ticks survive), ``attrs["time_origin"]`` the first
arrival as an ISO string; ``relative=False`` gives seconds since the Unix epoch
instead. ``NumImages`` -> ``image_count``. Gzipped files (``.csv.gz``) are read as is.

Writing: ``TIMESTAMP`` is ``origin`` (default ``"2024-01-01 00:00:00"``) plus the
request time, printed as ``YYYY-MM-DD HH:MM:SS.ffffff`` (microseconds, rounded half
up); ``ContextTokens`` is ``input_tokens_total`` when present (text plus image tokens)
else ``input_tokens``; ``GeneratedTokens`` is ``output_tokens``; ``NumImages`` is
written, in the 2025 column order, when the requests have ``image_count``. Clients,
sessions, hash ids and reasoning tokens are not carried.

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write, read_trace
>>> r = sg.Requests({"timestamp": np.array([0.0, 1.5]), "client": np.zeros(2, np.int32),
...                  "input_tokens": np.array([4808, 12]), "output_tokens": np.array([10, 3])},
...                 clients=[0])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.csv"), "azure", origin="2023-11-16 18:15:46")
>>> print(p.read_text().strip())
TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.000000,4808,10
2023-11-16 18:15:47.500000,12,3
>>> read_trace(p, "azure").timestamp.tolist()
[0.0, 1.5]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..requests import Requests
from . import _io

__all__ = ["AzureWriter", "read_azure"]

_SOURCES = {
    "timestamp": "TIMESTAMP",
    "input_tokens": "ContextTokens",
    "output_tokens": "GeneratedTokens",
    "image_count": "NumImages",
}


def read_azure(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read an Azure LLM/LMM inference trace CSV."""
    table = _io.read_csv_table(path)
    _io.require(table.column_names, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"), path, "azure")
    ns = _io.epoch_ns(_io.column(table, "TIMESTAMP"), "TIMESTAMP", path, 2)
    t, origin = _io.datetime_timeline(ns, relative)
    data: dict[str, Any] = {
        "timestamp": t,
        "input_tokens": _io.numbers(table, "ContextTokens", path, 2),
        "output_tokens": _io.numbers(table, "GeneratedTokens", path, 2),
    }
    if "NumImages" in table.column_names:
        data["image_count"] = _io.numbers(table, "NumImages", path, 2)
    data.update(_io.extras(table, list(_SOURCES.values()), path))
    attrs = {"time_unit": "datetime", "time_origin": origin}
    return _io.finish(data, path=path, fmt="azure", sources=_SOURCES, first_line=2, attrs=attrs)


class AzureWriter(_io.TextWriter):
    """Azure inference-trace CSV (date-time ``TIMESTAMP``; ``NumImages`` when known)."""

    name = "azure"

    def __init__(self, *, origin: Any = "2024-01-01 00:00:00") -> None:
        super().__init__()
        try:
            start = pd.Timestamp(origin)
        except (ValueError, TypeError):
            raise ValueError(f"azure: `origin` must be a date-time, got {origin!r}") from None
        if start is pd.NaT:
            raise ValueError(f"azure: `origin` must be a date-time, got {origin!r}")
        if start.tzinfo is not None:
            start = start.tz_convert("UTC").tz_localize(None)
        self.origin_us = int(start.to_datetime64().astype("datetime64[us]").astype(np.int64))
        self._images: bool | None = None

    def write(self, req: Requests) -> None:
        images = "image_count" in req
        if self._images is None:
            self._images = images
            assert self._fh is not None
            names = ["TIMESTAMP", "NumImages", "ContextTokens", "GeneratedTokens"]
            self._fh.write(_io.csv_header(names if images else [n for n in names if n != "NumImages"]))
        super().write(req)

    def encode(self, req: Requests) -> pa.Array:
        us = self.origin_us + np.floor(req.timestamp * 1e6 + 0.5).astype(np.int64)
        # Arrow prints %S with the fraction of the unit: microseconds here.
        stamps = pc.strftime(pa.array(us, type=pa.timestamp("us")), format="%Y-%m-%d %H:%M:%S")
        fields = [stamps]
        if self._images:
            fields.append(_io.ints(req["image_count"]))
        fields += [_io.ints(_io.input_total(req)), _io.ints(req.output_tokens)]
        return _io.csv_lines(fields)


READERS = {"azure": read_azure}
WRITERS = {"azure": AzureWriter}
