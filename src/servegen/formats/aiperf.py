"""AIPerf ``mooncake_trace``: Mooncake JSON Lines plus ``session_id`` / ``delay`` for sessions.

Replay with ``aiperf profile --input-file trace.jsonl --custom-dataset-type mooncake_trace``
(a first record with ``timestamp`` switches AIPerf to its fixed schedule).

=============== ============ ==========================================================
field           type         meaning
=============== ============ ==========================================================
session_id      str          the servegen ``session`` (only on rows of a session)
timestamp       int          arrival in ms; on every row outside a session and on the
                             first turn of each session
delay           int          ms to wait before sending a later turn of a session (the
                             gap to the previous turn's arrival); replaces ``timestamp``
input_length    int          prompt tokens (``input_tokens_total`` when present)
output_length   int          generated tokens
hash_ids        list of int  512-token prefix blocks, as for :mod:`.mooncake`
=============== ============ ==========================================================

Without a ``session`` column the output is exactly the ``mooncake`` format. With one,
rows whose ``session`` is >= 0 (or non-null for text ids) are turns of that session, in
time order; the session ids must be unique across the stream (servegen's are). AIPerf
waits ``delay`` after the previous turn *completes*, while servegen's gap runs from its
*arrival*, so a replayed session can drift later than generated: the gap is an upper
bound of the think time. ``delay`` is the difference of the rounded millisecond times,
so ``timestamp + sum(delay)`` recovers each turn's rounded arrival exactly. ``turn``,
``parent``, clients, image counts and reasoning tokens are not written.

Options: ``block_size`` (512), ``hash_start`` (0).

Reading rebuilds each turn's time as its session's last ``timestamp`` plus the
following delays (a missing ``delay`` is 0) and keeps ``session_id`` as ``session``.

>>> import numpy as np, servegen as sg, tempfile, os
>>> from servegen.formats import write
>>> r = sg.Requests({"timestamp": np.array([0.0, 1.0, 2.5]), "client": np.zeros(3, np.int32),
...                  "input_tokens": np.array([600, 10, 700]), "output_tokens": np.array([5, 5, 5]),
...                  "session": np.array([7, -1, 7])}, clients=["chat"])
>>> p = write(r, os.path.join(tempfile.mkdtemp(), "t.jsonl"), "aiperf")
>>> print(p.read_text().strip())
{"session_id": "7", "timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}
{"timestamp": 1000, "input_length": 10, "output_length": 5, "hash_ids": [2]}
{"session_id": "7", "delay": 2500, "input_length": 700, "output_length": 5, "hash_ids": [3, 4]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..requests import Requests
from . import _io
from .mooncake import SOURCES, MooncakeWriter, read_length_trace

__all__ = ["AiperfWriter", "read_aiperf"]


def read_aiperf(path: Path, *, relative: bool = True, block_size: int = 512) -> pd.DataFrame:
    """Read an AIPerf ``mooncake_trace`` file, resolving ``delay`` into arrival times."""
    data, table, attrs = read_length_trace(
        path,
        "aiperf",
        unit="ms",
        relative=relative,
        block_size=block_size,
        required=("input_length", "output_length"),
    )
    names = table.column_names
    if "timestamp" not in names:
        raise ValueError(f"{str(path)!r}: no row has a 'timestamp', so arrival times are unknown")
    ts = _io.numbers(table, "timestamp", path, 1).astype(np.float64)
    data.pop("timestamp", None)
    n = len(ts)
    if "session_id" in names:
        sid = data.pop("session_id")
        sid = sid.astype(object).where(sid.notna(), None)
    else:
        sid = pd.Series([None] * n, dtype=object)
    delay = np.zeros(n)
    if "delay" in names:
        delay = np.nan_to_num(_io.numbers(table, "delay", path, 1).astype(np.float64), nan=0.0)
        data.pop("delay")
    has_ts = ~np.isnan(ts)
    lone = sid.isna().to_numpy()
    bad = lone & ~has_ts
    # Rows outside sessions are groups of their own; within a session, a timestamp opens a
    # segment whose later rows add their delays to it.
    codes, uniques = pd.factorize(sid)
    group = np.where(lone, len(uniques) + np.arange(n), codes)
    seg = pd.Series(has_ts).groupby(group, sort=False).cumsum().to_numpy()
    bad |= seg == 0
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{str(path)!r}: line {i + 1} has no 'timestamp' and no earlier turn to delay from")
    keys = [pd.Series(group), pd.Series(seg)]
    base = pd.Series(np.where(has_ts, ts, np.nan)).groupby(keys, sort=False).transform("first").to_numpy()
    step = pd.Series(np.where(has_ts, 0.0, delay)).groupby(keys, sort=False).cumsum().to_numpy()
    data["timestamp"], attrs["time_origin"] = _io.timeline(base + step, "ms", relative)
    if not lone.all():
        data["session"] = sid
    return _io.finish(data, path=path, fmt="aiperf", sources=SOURCES, first_line=1, attrs=attrs)


class AiperfWriter(MooncakeWriter):
    """AIPerf ``mooncake_trace`` JSON Lines (ms), with ``session_id`` and ``delay`` turns."""

    name = "aiperf"

    def __init__(self, *, block_size: int = 512, hash_start: int = 0) -> None:
        super().__init__(block_size=block_size, hash_start=hash_start)
        self._last = pd.Series(dtype=np.float64)  # session -> last turn's ms, across chunks

    def encode(self, req: Requests) -> pa.Array:
        info = _io.sessions(req)
        if info is None:
            return super().encode(req)
        s, member = info
        offsets, values = self.hash_ids(req)
        ms = _io.ms_int(req.timestamp)
        idx = np.flatnonzero(member)
        keys = s[idx]
        prev = pd.Series(ms[idx], dtype=np.float64).groupby(keys, sort=False).shift(1)
        first = prev.isna().to_numpy()
        if first.any() and len(self._last):
            prev[first] = pd.Series(keys[first]).map(self._last).to_numpy()
        later = np.zeros(len(ms), dtype=bool)
        later[idx] = prev.notna().to_numpy()
        delay = np.zeros(len(ms), dtype=np.int64)
        delay[idx[later[idx]]] = ms[idx][later[idx]] - prev.to_numpy()[later[idx]].astype(np.int64)
        if len(idx):
            last = pd.Series(ms[idx], dtype=np.float64).groupby(keys, sort=False).last()
            self._last = last.combine_first(self._last) if len(self._last) else last
        session_id = _session_strings(s)
        time_piece = _io.join(
            _io.optional(later, '"delay": ', _io.ints(delay)),
            _io.optional(~later, '"timestamp": ', _io.ints(ms)),
        )
        return _io.join(
            "{",
            _io.optional(member, '"session_id": ', session_id, ", "),
            time_piece,
            ', "input_length": ',
            _io.ints(_io.input_total(req)),
            ', "output_length": ',
            _io.ints(req.output_tokens),
            ', "hash_ids": ',
            _io.int_lists(offsets, values),
            "}\n",
        )


def _session_strings(s: Any) -> pa.Array:
    if np.issubdtype(s.dtype, np.integer):
        return _io.join('"', _io.ints(s), '"')
    if np.issubdtype(s.dtype, np.floating):
        return _io.join('"', _io.ints(np.where(np.isfinite(s), s, -1)), '"')
    # Text ids: json_values renders each distinct id once (a factorized gather).
    return _io.json_values(np.asarray(pd.Series(s, dtype=object).astype(str), dtype=object), "session")


READERS = {"aiperf": read_aiperf}
WRITERS = {"aiperf": AiperfWriter}
