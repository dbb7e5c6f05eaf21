"""LLMServingSim requests: JSON Lines ``input_toks``, ``output_toks``, ``arrival_time_ns``.

The request file of the LLMServingSim simulator::

    {"input_toks": 811, "output_toks": 97, "arrival_time_ns": 31250000}

================ ===== ==============================================================
field            type  meaning
================ ===== ==============================================================
input_toks       int   prompt tokens (``input_tokens_total`` when present)
output_toks      int   generated tokens (``output_tokens``; reasoning included)
arrival_time_ns  int   arrival, integer nanoseconds from the start (rounded half up)
================ ===== ==============================================================

Clients, sessions, hash ids and image counts are not carried.

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write
>>> r = sg.Requests({"timestamp": np.array([0.03125]), "client": np.zeros(1, np.int32),
...                  "input_tokens": np.array([811]), "output_tokens": np.array([97])}, clients=[0])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.jsonl"), "llmservingsim")
>>> print(p.read_text().strip())
{"input_toks": 811, "output_toks": 97, "arrival_time_ns": 31250000}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io

__all__ = ["LlmServingSimWriter", "read_llmservingsim"]

_COLS = ("input_toks", "output_toks", "arrival_time_ns")
_SOURCES = {"timestamp": "arrival_time_ns", "input_tokens": "input_toks", "output_tokens": "output_toks"}


def read_llmservingsim(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read an LLMServingSim request file."""
    table = _io.read_json_table(
        path, {"input_toks": pa.int64(), "output_toks": pa.int64(), "arrival_time_ns": pa.int64()}
    )
    return _io.read_flat(
        table, path=path, fmt="llmservingsim", required=_COLS, sources=_SOURCES, unit="ns", first_line=1,
        relative=relative,
    )  # fmt: skip


class LlmServingSimWriter(_io.TextWriter):
    """LLMServingSim JSON Lines (integer nanoseconds)."""

    name = "llmservingsim"

    def __init__(self) -> None:
        super().__init__()

    def encode(self, req: Requests) -> pa.Array:
        return _io.json_lines(
            [
                ("input_toks", _io.ints(_io.input_total(req))),
                ("output_toks", _io.ints(req.output_tokens)),
                ("arrival_time_ns", _io.ints(_io.ns_int(req.timestamp))),
            ]
        )


READERS = {"llmservingsim": read_llmservingsim}
WRITERS = {"llmservingsim": LlmServingSimWriter}
