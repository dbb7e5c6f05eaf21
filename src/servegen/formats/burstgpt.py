"""BurstGPT traces: CSV of ChatGPT / GPT-4 requests served on Azure, timestamps in seconds.

The BurstGPT release (``BurstGPT_1.csv`` ...; v1.1 adds ``Session ID`` and
``Elapsed time``)::

    Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
    5,ChatGPT,472,18,490,Conversation log

================ ====== ==============================================================
column           type   meaning
================ ====== ==============================================================
Timestamp        float  arrival, seconds from the start of the trace
Session ID       int    conversation id (v1.1 files)
Elapsed time     float  request latency in the source service (v1.1 files)
Model            str    ``ChatGPT`` or ``GPT-4``
Request tokens   int    prompt tokens
Response tokens  int    generated tokens; **0 marks a failed request**
Total tokens     int    request + response tokens
Log Type         str    ``Conversation log`` (ChatGPT UI) or ``API log``
================ ====== ==============================================================

Reading keeps every row. The releases' ``BurstGPT_*.csv`` files include failed requests
(``Response tokens`` 0), which are kept and flagged in a boolean ``failed`` column
(``attrs["failed"]`` counts them): drop them with ``df[~df.failed]`` to match the
``*_without_fails`` files. ``Model`` -> ``model`` and ``Log Type`` -> ``log_type`` (split
clients by them, e.g. ``df.groupby(["model", "log_type"])``), ``Session ID`` ->
``session``, ``Elapsed time`` -> ``elapsed_time``, ``Total tokens`` -> ``total_tokens``.

Writing: ``Timestamp`` in seconds, ``Request tokens`` = ``input_tokens_total`` when
present else ``input_tokens``, ``Response tokens`` = ``output_tokens``, ``Total tokens``
their sum; ``Session ID`` when the requests have a ``session`` column (-1 for requests
outside a session); ``Model`` from a ``model`` column, else the ``model`` option, else
the request's client key; ``Log Type`` from a ``log_type`` column, else the ``log_type``
option (``"API log"``). Hash ids, image counts and reasoning tokens are not carried.

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write, read_trace
>>> r = sg.Requests({"timestamp": np.array([5.0, 7.25]), "client": np.array([0, 1], np.int32),
...                  "input_tokens": np.array([472, 30]), "output_tokens": np.array([18, 0])},
...                 clients=["ChatGPT", "GPT-4"])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.csv"), "burstgpt")
>>> print(p.read_text().strip())
Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,API log
7.25,GPT-4,30,0,30,API log
>>> df = read_trace(p, "burstgpt", relative=False)
>>> df[["timestamp", "model", "failed"]].values.tolist()
[[5.0, 'ChatGPT', False], [7.25, 'GPT-4', True]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io

__all__ = ["BurstgptWriter", "read_burstgpt"]

_REQUIRED = ("Timestamp", "Request tokens", "Response tokens")
_RENAME = {
    "Session ID": "session",
    "Elapsed time": "elapsed_time",
    "Model": "model",
    "Log Type": "log_type",
    "Total tokens": "total_tokens",
}
_SOURCES = {
    "timestamp": "Timestamp",
    "input_tokens": "Request tokens",
    "output_tokens": "Response tokens",
    "session": "Session ID",
}


def read_burstgpt(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read a BurstGPT CSV (failed requests kept, flagged in ``failed``)."""
    table = _io.read_csv_table(path)
    _io.require(table.column_names, _REQUIRED, path, "burstgpt")
    t, origin = _io.timeline(_io.numbers(table, "Timestamp", path, 2), "s", relative)
    data: dict[str, Any] = {
        "timestamp": t,
        "input_tokens": _io.numbers(table, "Request tokens", path, 2),
        "output_tokens": _io.numbers(table, "Response tokens", path, 2),
    }
    for src, dst in _RENAME.items():
        if src in table.column_names:
            data[dst] = _io.column(table, src).to_pandas()
    data.update(_io.extras(table, [*_REQUIRED, *_RENAME], path))
    df = _io.finish(
        data,
        path=path,
        fmt="burstgpt",
        sources=_SOURCES,
        first_line=2,
        attrs={"time_unit": "s", "time_origin": origin},
    )
    df["failed"] = df["output_tokens"].to_numpy() == 0
    df.attrs["failed"] = int(df["failed"].sum())
    return df


class BurstgptWriter(_io.TextWriter):
    """BurstGPT CSV (``Model`` from a ``model`` column, the option, or the client key)."""

    name = "burstgpt"

    def __init__(self, *, model: str | None = None, log_type: str = "API log") -> None:
        super().__init__()
        for key, value in (("model", model), ("log_type", log_type)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"burstgpt: `{key}` must be a str, got {value!r}")
        self.model = model
        self.log_type = log_type
        self._session: bool | None = None

    def write(self, req: Requests) -> None:
        if self._session is None:
            self._session = _io.sessions(req) is not None
            names = [
                "Timestamp",
                "Session ID",
                "Model",
                "Request tokens",
                "Response tokens",
                "Total tokens",
                "Log Type",
            ]
            if not self._session:
                names.remove("Session ID")
            assert self._fh is not None
            self._fh.write(_io.csv_header(names))
        super().write(req)

    def encode(self, req: Requests) -> pa.Array:
        n = len(req)
        if "model" in req:
            model = _io.csv_values(req["model"], "model")
        elif self.model is not None:
            model = _io.csv_values(np.full(n, self.model, dtype=object), "model")
        else:
            model = _io.labels(req.client, list(req.clients), _io.csv_text)
        if "log_type" in req:
            log_type = _io.csv_values(req["log_type"], "log_type")
        else:
            log_type = _io.csv_values(np.full(n, self.log_type, dtype=object), "log_type")
        prompt = _io.input_total(req)
        fields = [_io.floats(req.timestamp, "timestamp")]
        if self._session:
            info = _io.sessions(req)
            assert info is not None
            s, member = info
            if np.issubdtype(s.dtype, np.number):
                fields.append(_io.ints(np.where(member, s, -1)))
            else:
                fields.append(_io.csv_values(np.where(member, s, "").astype(object), "session"))
        fields += [
            model,
            _io.ints(prompt),
            _io.ints(req.output_tokens),
            _io.ints(prompt + req.output_tokens),
            log_type,
        ]
        return _io.csv_lines(fields)


READERS = {"burstgpt": read_burstgpt}
WRITERS = {"burstgpt": BurstgptWriter}
