"""Read the traces people have; write the files their tools read.

:func:`read_trace` turns a trace file into one canonical :class:`pandas.DataFrame`;
:func:`write` and :func:`write_chunks` turn :class:`~servegen.Requests` (or such a
DataFrame) into a benchmark's or simulator's input file, atomically (a temporary file
renamed on success) and, for chunks, in bounded memory. ``Requests.to_format(path,
format)`` calls :func:`write`, which it finds by name among the entry points of the group
``servegen.formats`` (another installed package can add a format there).

>>> import servegen as sg, tempfile, os
>>> from servegen.formats import read_trace, write
>>> reqs = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=sg.LogNormal(mu=5, sigma=1),
...                               output_tokens=sg.Exponential(mean=100))]).sample(60, rng=0)
>>> path = write(reqs, os.path.join(tempfile.mkdtemp(), "trace.jsonl"), "mooncake")
>>> df = read_trace(path, "mooncake")
>>> len(df) == len(reqs), list(df.columns)
(True, ['timestamp', 'input_tokens', 'output_tokens', 'hash_ids'])

The canonical DataFrame
-----------------------
``timestamp`` (float64 s from the first request, unless ``relative=False``),
``input_tokens``, ``output_tokens`` (int64), then when the format has them ``client``,
``session``, ``turn``, ``parent``, ``hash_ids`` (an int64 array per row),
``image_count``, then every other field of the file under its own name. Rows are
sorted by time (stable). ``df.attrs`` holds ``format``, ``path``, ``time_unit``,
``time_origin`` (what was subtracted, in the file's clock: seconds, or an ISO string
for date-times) and ``block_size`` (tokens per ``hash_ids`` block).

Formats and how servegen columns map
------------------------------------
"total input" is ``input_tokens_total`` when the requests have it (text plus image,
audio and video item tokens: what the engine prefills), else ``input_tokens``. Output
lengths are ``output_tokens`` (every generated token; ``reasoning_tokens`` and
``answer_tokens`` travel only in the canonical formats). "fresh" hash ids: without a
``hash_ids`` column each request gets ``ceil(total input / block)`` new ids from a
running counter (no false prefix sharing).

============= ====== ========= =============== ============= ============= ====================
format        read / time      input length    hash_ids      sessions      images, other
              write                            (block)
============= ====== ========= =============== ============= ============= ====================
parquet       r w    s float   every column    kept          kept          every column kept
csv           r w    s float   every column    ``"[..]"``    kept          every column kept
jsonl         r w    s float   every column    JSON list     kept          every column kept
servegen      r      s float   every column    kept          kept          by file extension
mooncake      r w    ms int    total input     512 / fresh   --            --
vllm          r w    s float   total input     16 / fresh    --            --
guidellm      r w    s float   total input     --            --            --
aiperf        r w    ms int    total input;    512 / fresh   session_id,   --
                                 later turns:                  delay (ms)
                                 new tokens
vidur         r w    s float   total input     --            --            counts >= 1 (clamp),
                                                                           fit ``max_tokens``
vidur_pip     r w    s float   total input     --            --            as vidur; ``Date``
azure         r w    datetime  total input     --            --            NumImages
burstgpt      r w    s float   total input     --            Session ID    Model, Log Type;
                                                                           failures flagged
llmservingsim r w    ns int    total input     --            --            --
bailian       r      s float   input_length    16            chat chains   ``type`` kept
============= ====== ========= =============== ============= ============= ====================

Counts below 1: a consumer replays a request with at least one prompt and one output
token. The ``mooncake``, ``vllm``, ``aiperf`` and ``guidellm`` writers refuse a request
with a 0 (which traces read from files can have: BurstGPT failures), naming the column,
the number of such requests and the first; their option ``clamp=True`` (CLI
``--clamp``) writes such counts as 1 and reports how many requests it changed as a
:class:`ContextWarning`, which the ``vidur`` formats always do.

``servegen`` reads a ``parquet``, ``csv`` or ``jsonl`` file chosen by its extension.
Each format's module (``servegen.formats.mooncake`` ...) documents its fields, units and
options. A column a format cannot carry is simply not written; the canonical formats
carry everything.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_write
from ..requests import Requests
from . import aiperf, azure, bailian, burstgpt, canonical, guidellm, llmservingsim, mooncake, vidur, vllm
from ._context import ContextWarning
from ._detect import detect_format
from ._io import Writer, check_options, requests_from_frame, to_path

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "ContextWarning",
    "detect_format",
    "read_trace",
    "write",
    "write_chunks",
]

_MODULES = (canonical, mooncake, vllm, guidellm, aiperf, vidur, azure, burstgpt, llmservingsim, bailian)
_READERS: dict[str, Callable[..., pd.DataFrame]] = {}
_WRITERS: dict[str, type[Writer]] = {}
for _m in _MODULES:
    _READERS.update(_m.READERS)
    _WRITERS.update(_m.WRITERS)

#: Names accepted by :func:`read_trace`.
READ_FORMATS: tuple[str, ...] = tuple(_READERS)
#: Names accepted by :func:`write` and :func:`write_chunks`.
WRITE_FORMATS: tuple[str, ...] = tuple(_WRITERS)
_GENERIC = ("parquet", "csv", "jsonl", "servegen")


def read_trace(
    path: str | os.PathLike[str],
    format: str,
    columns: dict[str, str] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Read a trace file into the canonical DataFrame.

    Parameters
    ----------
    path
        The file (``.gz`` and other compressed CSV / JSON Lines are read as they are).
    format
        One of :data:`~servegen.formats.READ_FORMATS`.
    columns
        For the generic formats (``parquet``, ``csv``, ``jsonl``, ``servegen``) only:
        ``{canonical name: the file's column}``.
    **options
        ``relative`` (bool, default True: the first request at time 0); for the generic
        formats ``time_unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``, ``"datetime"``);
        for formats with ``hash_ids``, ``block_size`` (the tokens per block to record).

    Raises
    ------
    ValueError
        Unknown format, a missing column (named, with the file), an unreadable row
        (named by line).

    Examples
    --------
    >>> import tempfile, os
    >>> from pathlib import Path
    >>> p = os.path.join(tempfile.mkdtemp(), "t.jsonl")
    >>> line = '{"timestamp": 500, "input_length": 9, "output_length": 2, "hash_ids": [1]}'
    >>> _ = Path(p).write_text(line + "\\n")
    >>> read_trace(p, "mooncake", relative=False).timestamp.tolist()
    [0.5]
    """
    reader = _pick(format, _READERS, "read_trace")
    file = to_path(path)
    if columns is not None:
        if format not in _GENERIC:
            raise ValueError(
                f"read_trace: `columns` is for the generic formats {list(_GENERIC)!r}, not {format!r}; "
                f"read the file with format='csv' / 'jsonl' / 'parquet' and a mapping instead"
            )
        options["columns"] = columns
    allowed = [p for p in inspect.signature(reader).parameters if p not in ("path", "fmt")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"read_trace: format {format!r} takes no option(s) {unknown!r}; its options are {allowed!r}"
        )
    if "relative" in options and not isinstance(options["relative"], bool):
        raise TypeError(f"read_trace: `relative` must be True or False, got {options['relative']!r}")
    if not file.is_file():
        raise FileNotFoundError(f"read_trace: no such file: {str(file)!r}")
    return reader(file, **options)


def write(
    requests: Requests | pd.DataFrame,
    path: str | os.PathLike[str],
    format: str,
    **options: Any,
) -> Path:
    """Write ``requests`` to ``path`` in ``format`` (atomically); return the path.

    ``requests`` is a :class:`~servegen.Requests` or a canonical DataFrame (as
    :func:`read_trace` returns, so traces convert between formats). ``format`` is one of
    :data:`WRITE_FORMATS`; ``options`` are the format's (see its module).

    >>> import servegen as sg, tempfile, os
    >>> r = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=100,
    ...                            output_tokens=9)]).sample(10, rng=0)
    >>> p = write(r, os.path.join(tempfile.mkdtemp(), "vidur.csv"), "vidur")
    >>> p.read_text().splitlines()[0]
    'arrived_at,num_prefill_tokens,num_decode_tokens'
    >>> write(r, p, "sharegpt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: write: unknown format 'sharegpt'; valid formats are ['parquet', 'csv', 'jsonl', ...]
    """
    return write_chunks([requests], path, format, **options)


def write_chunks(
    chunks: Iterable[Requests | pd.DataFrame],
    path: str | os.PathLike[str],
    format: str,
    **options: Any,
) -> Path:
    """Write consecutive parts of one stream (e.g. ``Workload.iter_chunks``) as one file.

    Memory stays bounded by one chunk: each is encoded and appended as it arrives, with
    the state that spans chunks (hash-id counter, session turns) carried over, so the
    file equals what :func:`write` makes of the concatenated requests. The chunks must
    share their columns and follow each other in time. On any error nothing is left at
    ``path`` (nor any temporary file).

    >>> import servegen as sg, tempfile, os
    >>> wl = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=100, output_tokens=9)])
    >>> d = tempfile.mkdtemp()
    >>> a = write_chunks(wl.iter_chunks(120, chunk=30, rng=1), os.path.join(d, "a.jsonl"), "mooncake")
    >>> b = write(wl.sample(120, rng=1), os.path.join(d, "b.jsonl"), "mooncake")
    >>> a.read_text() == b.read_text()
    True
    """
    if isinstance(chunks, (Requests, pd.DataFrame)):  # one chunk, not an iterable of them
        chunks = [chunks]
    cls = _pick(format, _WRITERS, "write")
    check_options(cls, format, options)
    writer = cls(**options)
    file = to_path(path)

    def run(tmp: str) -> None:
        writer.open(tmp)
        try:
            first: Requests | None = None
            last_t = -np.inf
            for i, chunk in enumerate(chunks):
                req = _as_requests(chunk, i)
                if first is None:
                    first = req
                elif req.columns != first.columns:
                    raise ValueError(
                        f"write_chunks: chunk {i} has columns {req.columns!r}, "
                        f"the first had {first.columns!r}"
                    )
                t = req.timestamp
                if len(t):
                    unsorted = np.flatnonzero(np.diff(t) < 0)
                    if unsorted.size or t[0] < last_t:
                        row = int(unsorted[0]) + 1 if unsorted.size else 0
                        raise ValueError(
                            f"write: requests must be sorted by timestamp; chunk {i} row {row} "
                            f"has {float(t[row])!r} after {float(t[row - 1] if row else last_t)!r}"
                        )
                    last_t = float(t[-1])
                writer.write(req)
            if first is None:
                raise ValueError("write_chunks: `chunks` is empty; nothing to write")
        finally:
            writer.close()

    return atomic_write(file, run)


def _as_requests(obj: Any, i: int) -> Requests:
    if isinstance(obj, Requests):
        return obj
    if isinstance(obj, pd.DataFrame):
        return requests_from_frame(obj)
    raise TypeError(
        f"write: chunk {i} must be servegen Requests or a pandas DataFrame, got {type(obj).__name__}"
    )


def _pick(fmt: Any, table: dict[str, Any], verb: str) -> Any:
    if not isinstance(fmt, str) or fmt not in table:
        raise ValueError(f"{verb}: unknown format {fmt!r}; valid formats are {list(table)!r}")
    return table[fmt]
