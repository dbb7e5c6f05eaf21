"""Mooncake traces: JSON Lines with millisecond timestamps and 512-token prefix blocks.

One request per line (the FAST'25 Mooncake release; read by vLLM ``timed_trace``,
SGLang, AIPerf ``mooncake_trace``, GuideLLM ``kind=mooncake`` and AIBrix)::

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 1000]}

=============== ============ ===================================================
field           type         meaning
=============== ============ ===================================================
timestamp       int          arrival, milliseconds from the start of the trace
input_length    int          prompt tokens
output_length   int          generated tokens
hash_ids        list of int  one id per 512-token prompt block; equal ids at the
                             same position mean a shared prefix (KV-cache reuse)
=============== ============ ===================================================

Writing
-------
``timestamp`` is servegen's time rounded to the nearest millisecond (half up; rounding
is monotone, so the order is kept). ``input_length`` is ``input_tokens_total`` when the
requests have it (text plus image/audio/video item tokens: what the engine prefills),
else ``input_tokens``. ``output_length`` is ``output_tokens``. ``hash_ids`` come from the
requests' ragged ``hash_ids`` column when present (re-blocked to ``block_size`` if the
source used a smaller block that divides it), otherwise every request gets
``ceil(input_length / block_size)`` fresh ids from a running counter, so no two requests
share a block (no false prefix sharing). The format cannot carry clients, sessions,
image counts or reasoning tokens; use ``aiperf`` for sessions or ``parquet`` for all.

Options: ``block_size`` (512), ``hash_start`` (first fresh id, 0), ``max_tokens`` (None:
the server's context window; when given, outputs are cut to ``max_tokens - 1`` and
prompts so that prompt + output fits, keeping their first blocks, and the number of
requests changed is reported as a :class:`~servegen.formats.ContextWarning`; see
``servegen.formats._context``), ``clamp`` (False: a request with 0 prompt or output
tokens, e.g. a BurstGPT failure read from a file, is a ``ValueError`` naming the column,
the number of such requests and the first; True: such counts are written as 1, with a
fresh hash block for a 1-token prompt, and the number changed is reported as a
:class:`~servegen.formats.ContextWarning`).

Reading
-------
``timestamp`` (ms) -> seconds, ``input_length`` -> ``input_tokens``,
``output_length`` -> ``output_tokens``, ``hash_ids`` kept (``attrs["block_size"]`` =
``block_size``, 512), any other field kept as an extra column.

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write, read_trace
>>> r = sg.Requests({"timestamp": np.array([0.1504, 0.19]), "client": np.zeros(2, np.int32),
...                  "input_tokens": np.array([1000, 300]), "output_tokens": np.array([20, 5])},
...                 clients=[0])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.jsonl"), "mooncake")
>>> print(p.read_text().strip())
{"timestamp": 150, "input_length": 1000, "output_length": 20, "hash_ids": [0, 1]}
{"timestamp": 190, "input_length": 300, "output_length": 5, "hash_ids": [2]}
>>> df = read_trace(p, "mooncake")
>>> df.timestamp.tolist(), df.attrs["time_origin"], df.attrs["block_size"]
([0.0, 0.04], 0.15, 512)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from ..requests import Requests
from . import _io
from ._context import ContextFit, check_clamp, check_max_tokens

__all__ = ["MooncakeWriter", "read_mooncake"]

_TYPES = {
    "timestamp": pa.float64(),
    "input_length": pa.int64(),
    "output_length": pa.int64(),
    "hash_ids": pa.list_(pa.int64()),
}


def read_length_trace(
    path: Path,
    fmt: str,
    *,
    unit: str,
    relative: bool,
    block_size: int | None,
    time_key: str = "timestamp",
    required: tuple[str, ...] = ("timestamp", "input_length", "output_length"),
) -> tuple[dict[str, Any], pa.Table, dict[str, Any]]:
    """The shared reader of the Mooncake family (timestamp, input/output_length, hash_ids)."""
    types = dict(_TYPES)
    if time_key != "timestamp":
        types[time_key] = types.pop("timestamp")
    table = _io.read_json_table(path, types)
    _io.require(table.column_names, required, path, fmt)
    data: dict[str, Any] = {}
    attrs: dict[str, Any] = {"time_unit": unit}
    if time_key in table.column_names and time_key in required:
        raw = _io.numbers(table, time_key, path, 1)
        if np.issubdtype(raw.dtype, np.floating) and np.isnan(raw).any():
            i = int(np.argmax(np.isnan(raw)))
            raise ValueError(f"{str(path)!r}: field {time_key!r} is missing at line {i + 1}")
        data["timestamp"], attrs["time_origin"] = _io.timeline(raw, unit, relative)
    data["input_tokens"] = _io.numbers(table, "input_length", path, 1)
    data["output_tokens"] = _io.numbers(table, "output_length", path, 1)
    if "hash_ids" in table.column_names:
        data["hash_ids"] = _io.list_column(_io.column(table, "hash_ids"), "hash_ids", path)
        if block_size is not None:
            attrs["block_size"] = _io.check_block_size(block_size)
    data.update(_io.extras(table, [time_key, "input_length", "output_length", "hash_ids"], path))
    return data, table, attrs


SOURCES = {"timestamp": "timestamp", "input_tokens": "input_length", "output_tokens": "output_length"}


def read_mooncake(path: Path, *, relative: bool = True, block_size: int = 512) -> pd.DataFrame:
    """Read a Mooncake JSON Lines trace (see the module docs)."""
    data, _, attrs = read_length_trace(path, "mooncake", unit="ms", relative=relative, block_size=block_size)
    return _io.finish(data, path=path, fmt="mooncake", sources=SOURCES, first_line=1, attrs=attrs)


class MooncakeWriter(_io.TextWriter):
    """Mooncake JSON Lines: integer ms ``timestamp``, lengths, ``hash_ids`` at ``block_size``."""

    name = "mooncake"

    def __init__(
        self,
        *,
        block_size: int = 512,
        hash_start: int = 0,
        max_tokens: int | None = None,
        clamp: bool = False,
    ) -> None:
        super().__init__()
        self.hash_ids = _io.HashIds(block_size, hash_start)
        self.fit = ContextFit(check_max_tokens(max_tokens, self.name), clamp=check_clamp(clamp, self.name))

    def time_field(self, req: Requests) -> pa.Array:
        return _io.ints(_io.ms_int(req.timestamp))

    def lengths(
        self, req: Requests
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Prompt and output lengths fitted to ``max_tokens``, and each prompt's block ids."""
        total = _io.input_total(req)
        # A prompt clamped from 0 to 1 token gets one block like any other prompt.
        offsets, values = self.hash_ids(req, np.maximum(total, 1) if self.fit.clamp else total)
        prompt, output = self.fit(total, np.asarray(req.output_tokens, dtype=np.int64))
        if self.fit.max_tokens is not None:  # a shortened prompt keeps its first blocks
            offsets, values = take_blocks(offsets, values, -(-prompt // self.hash_ids.block_size))
        return prompt, output, offsets, values

    def encode(self, req: Requests) -> pa.Array:
        prompt, output, offsets, values = self.lengths(req)
        return _io.json_lines(
            [
                ("timestamp", self.time_field(req)),
                ("input_length", _io.ints(prompt)),
                ("output_length", _io.ints(output)),
                ("hash_ids", _io.int_lists(offsets, values)),
            ]
        )

    def close(self) -> None:
        super().close()
        if sys.exc_info()[0] is None:  # a finished file, not an error on the way out
            self.fit.report(self.name)


def take_blocks(
    offsets: NDArray[np.int64], values: NDArray[np.int64], keep: NDArray[np.int64], *, tail: bool = False
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The first (or with ``tail`` the last) ``keep[i]`` ids of each row of a ragged column."""
    keep = np.minimum(keep, np.diff(offsets))
    new_off = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=new_off[1:])
    row = np.repeat(np.arange(len(keep)), keep)
    j = np.arange(new_off[-1]) - new_off[:-1][row]
    start = offsets[1:][row] - keep[row] if tail else offsets[:-1][row]
    return new_off, values[start + j]


READERS = {"mooncake": read_mooncake}
WRITERS = {"mooncake": MooncakeWriter}
