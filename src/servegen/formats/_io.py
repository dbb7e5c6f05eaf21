"""The toolkit the format modules share (private), gathered under one name.

Each format module reads ``_io.<name>``; the names live in modules of one concept each:

=================== ===================================================================
:mod:`._encode`     numpy columns -> Arrow string arrays, CSV / JSON Lines lines
:mod:`._writer`     the ``Writer`` protocol, batches of requests, derived columns,
                    a canonical DataFrame -> ``Requests``
:mod:`._hash_ids`   KV-block hash ids at a block size, carried across chunks
:mod:`._read`       reading a file into the canonical DataFrame (checks, time units)
:mod:`._tables`     Arrow readers of CSV and JSON Lines files
=================== ===================================================================
"""

from __future__ import annotations

from ._encode import (
    csv_header,
    csv_lines,
    csv_text,
    csv_values,
    floats,
    int_lists,
    ints,
    join,
    json_lines,
    json_text,
    json_values,
    labels,
    ms_int,
    ns_int,
    optional,
    write_lines,
)
from ._hash_ids import HashIds, check_block_size
from ._read import (
    CANONICAL,
    column,
    counts,
    datetime_timeline,
    datetimes,
    epoch_ns,
    extras,
    finish,
    list_column,
    numbers,
    read_flat,
    require,
    timeline,
    to_path,
)
from ._tables import read_csv_table, read_json_table
from ._writer import (
    BATCH_ROWS,
    TextWriter,
    Writer,
    batches,
    check_options,
    input_total,
    requests_from_frame,
    sessions,
    slice_rows,
)

__all__ = [
    "BATCH_ROWS",
    "CANONICAL",
    "HashIds",
    "TextWriter",
    "Writer",
    "batches",
    "check_block_size",
    "check_options",
    "column",
    "counts",
    "csv_header",
    "csv_lines",
    "csv_text",
    "csv_values",
    "datetime_timeline",
    "datetimes",
    "epoch_ns",
    "extras",
    "finish",
    "floats",
    "input_total",
    "int_lists",
    "ints",
    "join",
    "json_lines",
    "json_text",
    "json_values",
    "labels",
    "list_column",
    "ms_int",
    "ns_int",
    "numbers",
    "optional",
    "read_csv_table",
    "read_flat",
    "read_json_table",
    "requests_from_frame",
    "require",
    "sessions",
    "slice_rows",
    "timeline",
    "to_path",
    "write_lines",
]
