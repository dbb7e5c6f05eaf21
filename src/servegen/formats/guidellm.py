"""GuideLLM trace replay: JSON Lines with ``timestamp`` (s), ``input_length``, ``output_length``.

GuideLLM's format-agnostic trace kind (``trace_synthetic``; ``trace_minimal`` in older
releases) reads exactly these three fields under their default column names and
generates a synthetic prompt of ``input_length`` tokens per row::

    guidellm benchmark --profile replay \\
        --data "kind=trace_synthetic,source.kind=json_file,source.path=trace.jsonl"

=============== ======= ====================================================
field           type    meaning
=============== ======= ====================================================
timestamp       float   arrival, seconds from the start of the trace
input_length    int     prompt tokens (``input_tokens_total`` when present)
output_length   int     generated tokens
=============== ======= ====================================================

No prefix information is written (each GuideLLM row is an independent request with a
fresh prompt); for prefix sharing write ``mooncake`` and replay it with GuideLLM's
``kind=mooncake`` (512-token blocks, timestamps in ms). Clients, sessions, image counts
and reasoning tokens are not carried.

Options: ``max_tokens`` (None; the server's context window, as for :mod:`.mooncake`),
``clamp`` (False; counts below 1 refused or, with True, written as 1, as for
:mod:`.mooncake`: GuideLLM 0.8.1 sends no ``max_tokens`` for an ``output_length`` of 0,
so the answer would be unbounded).

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write
>>> r = sg.Requests({"timestamp": np.array([0.25]), "client": np.zeros(1, np.int32),
...                  "input_tokens": np.array([40]), "output_tokens": np.array([8])}, clients=[0])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.jsonl"), "guidellm")
>>> print(p.read_text().strip())
{"timestamp": 0.25, "input_length": 40, "output_length": 8}
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io
from ._context import ContextFit, check_clamp, check_max_tokens
from .mooncake import SOURCES, read_length_trace

__all__ = ["GuidellmWriter", "read_guidellm"]


def read_guidellm(path: Path, *, relative: bool = True) -> pd.DataFrame:
    """Read a GuideLLM replay trace (seconds)."""
    data, _, attrs = read_length_trace(path, "guidellm", unit="s", relative=relative, block_size=None)
    return _io.finish(data, path=path, fmt="guidellm", sources=SOURCES, first_line=1, attrs=attrs)


class GuidellmWriter(_io.TextWriter):
    """GuideLLM replay JSON Lines (seconds, no hash ids)."""

    name = "guidellm"

    def __init__(self, *, max_tokens: int | None = None, clamp: bool = False) -> None:
        super().__init__()
        self.fit = ContextFit(check_max_tokens(max_tokens, self.name), clamp=check_clamp(clamp, self.name))

    def encode(self, req: Requests) -> pa.Array:
        prompt, output = self.fit(_io.input_total(req), np.asarray(req.output_tokens, dtype=np.int64))
        return _io.json_lines(
            [
                ("timestamp", _io.floats(req.timestamp, "timestamp")),
                ("input_length", _io.ints(prompt)),
                ("output_length", _io.ints(output)),
            ]
        )

    def close(self) -> None:
        super().close()
        if sys.exc_info()[0] is None:  # a finished file, not an error on the way out
            self.fit.report(self.name)


READERS = {"guidellm": read_guidellm}
WRITERS = {"guidellm": GuidellmWriter}
