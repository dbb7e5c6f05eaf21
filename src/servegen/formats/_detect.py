"""Telling a trace's format from its content (the ``servegen`` CLI's default).

A file's suffix says ``.jsonl`` or ``.csv``; its first record says which tool wrote
it. The rules, first match wins:

* CSV header: ``arrived_at`` -> ``vidur``; ``PromptTokenCount`` -> ``vidur_pip``;
  ``ContextTokens`` -> ``azure``; ``Request tokens`` -> ``burstgpt``; else ``csv``.
* JSON Lines keys: ``arrival_time_ns`` -> ``llmservingsim``; ``chat_id`` ->
  ``bailian``; ``session_id`` or ``delay`` -> ``aiperf``; ``input_length`` with
  ``hash_ids`` -> ``vllm`` or ``mooncake`` (``vllm``/``mooncake``/``aiperf`` in the file
  name decides; else timestamps with a fraction in the first 1000 lines mean seconds,
  ``vllm``, and whole numbers mean milliseconds, ``mooncake``); ``input_length``
  without ``hash_ids`` -> ``guidellm``; else ``jsonl``.
* ``.parquet`` / ``.pq`` -> ``parquet``.

>>> import tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "x.jsonl"
>>> _ = p.write_text('{"timestamp": 0.25, "input_length": 9, "output_length": 2, "hash_ids": [1]}\\n')
>>> detect_format(p)
'vllm'
"""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

__all__ = ["detect_format"]

_CSV = (("arrived_at", "vidur"), ("PromptTokenCount", "vidur_pip"), ("ContextTokens", "azure"),
        ("Request tokens", "burstgpt"))  # fmt: skip
_NAMED = ("vllm", "mooncake", "aiperf")


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of a trace file, from its suffix and first records (see the module)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    try:
        with open(p, encoding="utf-8") as fh:
            lines = [line for line in islice(fh, 1000) if line.strip()]
    except UnicodeDecodeError:
        raise ValueError(f"cannot tell the format of {str(p)!r}: it is not text; pass --format") from None
    if not lines:
        raise ValueError(f"cannot tell the format of {str(p)!r}: it is empty")
    first = lines[0].strip()
    if not first.startswith("{"):
        header = [c.strip().strip('"') for c in first.split(",")]
        return next((fmt for col, fmt in _CSV if col in header), "csv")
    try:
        keys = set(json.loads(first))
    except (json.JSONDecodeError, TypeError):
        raise ValueError(
            f"cannot tell the format of {str(p)!r}: line 1 is not a JSON object; pass --format"
        ) from None
    if "arrival_time_ns" in keys:
        return "llmservingsim"
    if "chat_id" in keys:
        return "bailian"
    if keys & {"session_id", "delay"}:
        return "aiperf"
    if "input_length" not in keys:
        return "jsonl"
    if "hash_ids" not in keys:
        return "guidellm"
    named = [fmt for fmt in _NAMED if f".{fmt}." in f".{p.name.lower()}"]
    if named:
        return named[0]
    stamps = (json.loads(line).get("timestamp") for line in lines)
    return "vllm" if any(isinstance(t, float) and not t.is_integer() for t in stamps) else "mooncake"
