"""Vidur trace replay, for both Vidur codebases: ``vidur`` and ``vidur_pip``.

Vidur (a simulator of LLM inference clusters) exists as two different codebases whose
trace-replay request generators read different CSV files:

============= ============================================ ===============================
format        codebase                                     columns
============= ============================================ ===============================
``vidur``     the GitHub source (``microsoft/vidur``,      ``arrived_at`` (s),
              installed from a clone)                      ``num_prefill_tokens``,
                                                           ``num_decode_tokens``
``vidur_pip`` the package index release (``pip install     ``Date``, ``Time`` (s),
              vidur``, 0.0.26)                             ``PromptTokenCount``,
                                                           ``CompletionTokenCount``
============= ============================================ ===============================

::

    arrived_at,num_prefill_tokens,num_decode_tokens
    0.0312,811,97

    Date,Time,PromptTokenCount,CompletionTokenCount
    2023-08-21,0.0312,811,97

=================== ======= ==========================================================
column              type    meaning
=================== ======= ==========================================================
arrived_at / Time   float   arrival, seconds from the start of the trace
num_prefill_tokens  int     prompt tokens: ``input_tokens_total`` when present (text
/ PromptTokenCount          plus multimodal item tokens, all prefilled), else
                            ``input_tokens``
num_decode_tokens   int     generated tokens (``output_tokens``; reasoning included)
/ CompletionTok...
Date                str     ``vidur_pip`` only: the release keeps only the rows whose
                            ``Date`` equals its ``trace_request_generator_config_date``
                            (default ``2023-08-21``); every row gets option ``date``
=================== ======= ==========================================================

Counts below 1: Vidur needs every count to be >= 1. With ``clamp=True`` (the default) a
count below 1 is written as 1, which is what Vidur's own loader does, and the number of
requests changed is reported as a :class:`~servegen.formats.ContextWarning`; with
``clamp=False`` it is a ``ValueError`` naming the column, the number of such requests
and the first one (the rule of ``servegen.formats._context``, shared with the other
consumer formats, whose default is ``clamp=False``). servegen's own requests never have
0 (see :doc:`/concepts`); traces read from files may.

Context window: Vidur shortens a prompt silently when prompt + output exceeds its
``max_tokens`` (4096 by default) and crashes when an output alone reaches it. The
``max_tokens`` option (default 4096, Vidur's default; pass the value you give Vidur,
or None to keep every length) applies the rule of ``servegen.formats._context``:
``output = min(output, max_tokens - 1)``, then ``prompt = min(prompt, max_tokens -
output)``, and reports how many requests it changed as a
:class:`~servegen.formats.ContextWarning`.

The ``vidur_pip`` release also scales what it reads by default (prefill x 0.3, time x
0.04): replay with the scale factors set to 1 (``servegen generate`` prints the command).
Clients, sessions, hash ids and image counts are not carried.

>>> import numpy as np, servegen as sg, tempfile, os, warnings
>>> from servegen.formats import write
>>> r = sg.Requests({"timestamp": np.array([0.0, 0.25]), "client": np.zeros(2, np.int32),
...                  "input_tokens": np.array([811, 0]), "output_tokens": np.array([97, 0])},
...                 clients=[0])
>>> with warnings.catch_warnings(record=True) as notes:
...     warnings.simplefilter("always")
...     p = write(r, os.path.join(tempfile.mkdtemp(), "t.csv"), "vidur")
>>> print(notes[0].message)  # doctest: +ELLIPSIS
vidur: 1 of 2 requests had a count below 1 (num_prefill_tokens: 1, ...), written as 1 (clamp=True)
>>> print(p.read_text().strip())
arrived_at,num_prefill_tokens,num_decode_tokens
0,811,97
0.25,1,1
>>> p = write(r.take(np.array([0])), os.path.join(tempfile.mkdtemp(), "t.csv"), "vidur_pip")
>>> print(p.read_text().strip())
Date,Time,PromptTokenCount,CompletionTokenCount
2023-08-21,0,811,97
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io
from ._context import ContextFit, check_clamp, check_max_tokens

__all__ = ["VidurPipWriter", "VidurWriter", "read_vidur", "read_vidur_pip"]

_COLS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
_SOURCES = {
    "timestamp": "arrived_at",
    "input_tokens": "num_prefill_tokens",
    "output_tokens": "num_decode_tokens",
}
_PIP_COLS = ("Date", "Time", "PromptTokenCount", "CompletionTokenCount")
_PIP_SOURCES = {
    "timestamp": "Time",
    "input_tokens": "PromptTokenCount",
    "output_tokens": "CompletionTokenCount",
}
#: The date Vidur 0.0.26's trace replay keeps by default.
DEFAULT_DATE = "2023-08-21"


def read_vidur(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read a Vidur trace-replay CSV (the GitHub source's columns)."""
    table = _io.read_csv_table(path)
    return _io.read_flat(
        table,
        path=path,
        fmt="vidur",
        required=_COLS,
        sources=_SOURCES,
        unit="s",
        first_line=2,
        relative=relative,
    )


def read_vidur_pip(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read a ``pip install vidur`` (0.0.26) trace-replay CSV; ``Date`` is kept as a column."""
    table = _io.read_csv_table(path, {"Date": pa.string()})
    _io.require(table.column_names, _PIP_COLS, path, "vidur_pip")
    return _io.read_flat(
        table,
        path=path,
        fmt="vidur_pip",
        required=_PIP_COLS[1:],  # Date travels as an extra column
        sources=_PIP_SOURCES,
        unit="s",
        first_line=2,
        relative=relative,
    )


class VidurWriter(_io.TextWriter):
    """Vidur trace-replay CSV (GitHub source); counts below 1 become 1 or raise, lengths fit
    ``max_tokens``."""

    name = "vidur"
    columns: tuple[str, ...] = _COLS

    def __init__(self, *, clamp: bool = True, max_tokens: int | None = 4096) -> None:
        super().__init__()
        self.fit = ContextFit(
            check_max_tokens(max_tokens, self.name),
            clamp=check_clamp(clamp, self.name),
            fields=(self.columns[-2], self.columns[-1]),
        )

    def header(self) -> bytes:
        return _io.csv_header(self.columns)

    def lengths(self, req: Requests) -> tuple[pa.Array, pa.Array]:
        prefill, decode = self.fit(_io.input_total(req), np.asarray(req.output_tokens, dtype=np.int64))
        return _io.ints(prefill), _io.ints(decode)

    def encode(self, req: Requests) -> pa.Array:
        return _io.csv_lines([_io.floats(req.timestamp, "timestamp"), *self.lengths(req)])

    def close(self) -> None:
        super().close()
        if sys.exc_info()[0] is None:  # a finished file, not an error on the way out
            self.fit.report(self.name)


class VidurPipWriter(VidurWriter):
    """``pip install vidur`` (0.0.26) trace-replay CSV: ``Date``, ``Time`` and token counts."""

    name = "vidur_pip"
    columns = _PIP_COLS

    def __init__(
        self, *, clamp: bool = True, max_tokens: int | None = 4096, date: Any = DEFAULT_DATE
    ) -> None:
        super().__init__(clamp=clamp, max_tokens=max_tokens)
        try:
            self.date = dt.date.fromisoformat(str(date)).isoformat()
        except ValueError:
            raise ValueError(
                f"vidur_pip: `date` must be an ISO date like '2023-08-21', got {date!r}"
            ) from None

    def encode(self, req: Requests) -> pa.Array:
        return _io.join(
            self.date + ",", _io.csv_lines([_io.floats(req.timestamp, "timestamp"), *self.lengths(req)])
        )


READERS = {"vidur": read_vidur, "vidur_pip": read_vidur_pip}
WRITERS = {"vidur": VidurWriter, "vidur_pip": VidurPipWriter}
