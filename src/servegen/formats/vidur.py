"""Vidur trace replay: CSV ``arrived_at`` (s), ``num_prefill_tokens``, ``num_decode_tokens``.

The request file of Vidur's ``trace_replay`` request generator (a simulator of LLM
inference clusters)::

    arrived_at,num_prefill_tokens,num_decode_tokens
    0.0312,811,97

=================== ======= ==========================================================
column              type    meaning
=================== ======= ==========================================================
arrived_at          float   arrival, seconds from the start of the trace
num_prefill_tokens  int     prompt tokens: ``input_tokens_total`` when present (text
                            plus multimodal item tokens, all prefilled), else
                            ``input_tokens``
num_decode_tokens   int     generated tokens (``output_tokens``; reasoning included)
=================== ======= ==========================================================

Vidur needs every count to be >= 1. The rule chosen here: with ``clamp=True`` (the
default) a count of 0 is written as 1, which is what Vidur's own trace loader does to
the traces it reads (a 0-token prompt or answer still costs one scheduler step); with
``clamp=False`` a 0 is a ``ValueError`` naming the row, so nothing changes silently.
Clients, sessions, hash ids and image counts are not carried.

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write
>>> r = sg.Requests({"timestamp": np.array([0.0, 0.25]), "client": np.zeros(2, np.int32),
...                  "input_tokens": np.array([811, 0]), "output_tokens": np.array([97, 0])},
...                 clients=[0])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.csv"), "vidur")
>>> print(p.read_text().strip())
arrived_at,num_prefill_tokens,num_decode_tokens
0,811,97
0.25,1,1
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io

__all__ = ["VidurWriter", "read_vidur"]

_COLS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
_SOURCES = {
    "timestamp": "arrived_at",
    "input_tokens": "num_prefill_tokens",
    "output_tokens": "num_decode_tokens",
}


def read_vidur(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read a Vidur trace-replay CSV."""
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


class VidurWriter(_io.TextWriter):
    """Vidur trace-replay CSV; counts below 1 become 1 (``clamp=True``) or raise."""

    name = "vidur"

    def __init__(self, *, clamp: bool = True) -> None:
        super().__init__()
        if not isinstance(clamp, bool):
            raise TypeError(f"`clamp` must be True or False, got {clamp!r}")
        self.clamp = clamp
        self._row = 0

    def header(self) -> bytes:
        return _io.csv_header(_COLS)

    def _count(self, values: np.ndarray, name: str) -> np.ndarray:
        low = values < 1
        if low.any() and not self.clamp:
            i = int(np.argmax(low))
            raise ValueError(
                f"vidur: `{name}` must be >= 1, got {int(values[i])!r} at request {self._row + i} "
                "(pass clamp=True to write such counts as 1)"
            )
        return np.maximum(values, 1)

    def encode(self, req: Requests) -> pa.Array:
        prefill = self._count(_io.input_total(req), "num_prefill_tokens")
        decode = self._count(req.output_tokens, "num_decode_tokens")
        self._row += len(req)
        return _io.csv_lines([_io.floats(req.timestamp, "timestamp"), _io.ints(prefill), _io.ints(decode)])


READERS = {"vidur": read_vidur}
WRITERS = {"vidur": VidurWriter}
