"""vLLM ``timed_trace``: Mooncake-style JSON Lines in seconds with 16-token blocks.

``vllm bench serve --dataset-name timed_trace`` replays a Mooncake-shaped file; its
``--timed-trace-sec-multiplier`` converts the file's time unit to seconds and
``--timed-trace-chunk-hash-size`` states the tokens per ``hash_ids`` block. servegen
writes seconds and vLLM's own KV-cache block size (16 tokens), so replay with::

    vllm bench serve --dataset-name timed_trace --dataset-path trace.jsonl \\
        --timed-trace-sec-multiplier 1 --timed-trace-chunk-hash-size 16

(pass your ``block_size`` there if you change it).

=============== ============ ===================================================
field           type         meaning
=============== ============ ===================================================
timestamp       float        arrival, seconds from the start of the trace
input_length    int          prompt tokens (``input_tokens_total`` when present)
output_length   int          generated tokens
hash_ids        list of int  one id per ``block_size`` (16) prompt tokens
=============== ============ ===================================================

The mapping of servegen columns is the Mooncake one (see :mod:`.mooncake`): fresh,
unshared ids when the requests carry no ``hash_ids``; clients, sessions, image counts
and reasoning tokens are not carried. Timestamps are written with the shortest decimal
that reads back as the same float64, so a round trip is exact.

Options: ``block_size`` (16), ``hash_start`` (0), ``max_tokens`` (None; the server's
``--max-model-len``, as for :mod:`.mooncake`: vLLM refuses a longer request), ``clamp``
(False; counts below 1 refused or, with True, written as 1, as for :mod:`.mooncake`:
vLLM's server refuses ``max_tokens=0``). Reading: ``block_size`` (16).

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write
>>> r = sg.Requests({"timestamp": np.array([0.25]), "client": np.zeros(1, np.int32),
...                  "input_tokens": np.array([40]), "output_tokens": np.array([8])}, clients=[0])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.jsonl"), "vllm")
>>> print(p.read_text().strip())
{"timestamp": 0.25, "input_length": 40, "output_length": 8, "hash_ids": [0, 1, 2]}
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io
from .mooncake import SOURCES, MooncakeWriter, read_length_trace

__all__ = ["VllmWriter", "read_vllm"]


def read_vllm(path: Path, *, relative: bool = True, block_size: int = 16) -> pd.DataFrame:
    """Read a ``timed_trace`` file written in seconds."""
    data, _, attrs = read_length_trace(path, "vllm", unit="s", relative=relative, block_size=block_size)
    return _io.finish(data, path=path, fmt="vllm", sources=SOURCES, first_line=1, attrs=attrs)


class VllmWriter(MooncakeWriter):
    """``timed_trace`` JSON Lines: float seconds, ``hash_ids`` at 16 tokens per block."""

    name = "vllm"

    def __init__(
        self, *, block_size: int = 16, hash_start: int = 0, max_tokens: int | None = None, clamp: bool = False
    ) -> None:
        super().__init__(block_size=block_size, hash_start=hash_start, max_tokens=max_tokens, clamp=clamp)

    def time_field(self, req: Requests) -> pa.Array:
        return _io.floats(req.timestamp, "timestamp")


READERS = {"vllm": read_vllm}
WRITERS = {"vllm": VllmWriter}
