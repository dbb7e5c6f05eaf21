"""Argument checks of ``Workload``: duration, rate, scale, workers, and JSON spec shape.

Every check raises ``ValueError``/``TypeError`` naming the field, showing the bad value
and stating the rule, so a spec read from a file fails with a message that says what to fix.

>>> check_duration(3600)
3600.0
>>> check_duration(1e300)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: `duration` must be <= 1e+10 s (317 years: ...), got 1e+300
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from ._validate import check_whole

__all__ = [
    "MAX_DEPTH",
    "MAX_DURATION",
    "SPEC_FIELDS",
    "check_depth",
    "check_duration",
    "check_rate",
    "check_scale",
    "check_workers",
    "spec_pairs",
]

#: Longest duration a workload samples: float64 timestamps keep ~2 microseconds there.
MAX_DURATION = 1e10
#: Deepest nesting a JSON spec may have (a real one is about 12 levels deep).
MAX_DEPTH = 64
#: The top-level fields of a workload spec (``Workload.to_dict``).
SPEC_FIELDS = ("kind", "clients", "rate", "scale", "block_size")


def check_duration(duration: Any) -> float:
    """``duration`` as a float of seconds in (0, ``MAX_DURATION``]."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float, np.integer, np.floating)):
        raise TypeError(f"`duration` must be a number of seconds, got {duration!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"`duration` must be finite and > 0, got {duration!r}")
    if duration > MAX_DURATION:
        raise ValueError(
            f"`duration` must be <= {MAX_DURATION:g} s (317 years: float64 timestamps still "
            f"resolve microseconds there), got {duration!r}"
        )
    return float(duration)


def check_workers(workers: Any) -> int:
    """Threads for merging: ``None`` means 2 on a multi-core machine, else 1."""
    if workers is None:
        return 2 if (os.cpu_count() or 1) > 1 else 1
    return check_whole(workers, "workers", low=1)


def check_rate(rate: Any) -> Any:
    """A rate target: ``None``, a callable, a ``{time: rate}`` step function or a number."""
    if rate is None or callable(rate):
        return rate
    if isinstance(rate, Mapping):
        if not rate:
            raise ValueError("Workload: `rate` mapping must not be empty")
        out: dict[float, float] = {}
        for t, r in sorted(rate.items()):
            t, r = float(t), float(r)
            if not (math.isfinite(t) and math.isfinite(r)) or r < 0:
                raise ValueError(
                    f"Workload: `rate` mapping needs finite times and rates >= 0, got {t!r}: {r!r}"
                )
            out[t] = r
        if min(out) != 0:
            raise ValueError(f"Workload: `rate` mapping must start at time 0, first time is {min(out)!r}")
        return out
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"Workload: `rate` must be None, a number, a {{time: rate}} mapping or a callable, got {rate!r}"
        )
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"Workload: `rate` must be finite and > 0, got {rate!r}")
    return float(rate)


def check_scale(scale: Any, clients: Mapping[Hashable, Any]) -> Any:
    """A factor for every client, or ``{key: factor}`` naming known clients."""
    if isinstance(scale, Mapping):
        out = {}
        for k, v in scale.items():
            if k not in clients:
                raise ValueError(
                    f"Workload: `scale` names unknown client {k!r}; clients are {list(clients)[:10]!r}"
                )
            if not (math.isfinite(float(v)) and v >= 0):
                raise ValueError(f"Workload: `scale[{k!r}]` must be finite and >= 0, got {v!r}")
            out[k] = float(v)
        return out
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"Workload: `scale` must be a number or a {{client: factor}} mapping, got {scale!r}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"Workload: `scale` must be finite and > 0, got {scale!r}")
    return float(scale)


def check_depth(spec: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse a JSON value nested deeper than ``limit`` (before any recursive parsing).

    Walks with an explicit stack, so a hostile spec cannot exhaust Python's recursion.

    >>> check_depth({"a": [[[1]]]}, limit=3)
    Traceback (most recent call last):
    ...
    ValueError: Workload.from_dict: the spec is nested more than 3 levels deep; a workload spec needs about 12
    """
    stack = [(spec, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth >= limit:
            raise ValueError(
                f"Workload.from_dict: the spec is nested more than {limit} levels deep; "
                "a workload spec needs about 12"
            )
        stack.extend((c, depth + 1) for c in children)


def spec_pairs(raw: Any, field: str, *, keys: str = "client keys") -> list[tuple[Any, Any]]:
    """A spec's ``[[key, value], ...]`` list as pairs, refusing malformed rows and duplicates.

    >>> spec_pairs([["a", 1], ["a", 2]], "clients")
    Traceback (most recent call last):
    ...
    ValueError: Workload.from_dict: `clients` repeats the key 'a' (client keys must be unique)
    """
    if not isinstance(raw, (list, tuple)):
        raise ValueError(
            f"Workload.from_dict: `{field}` must be a list of [key, value] pairs, got {type(raw).__name__}"
        )
    out: list[tuple[Any, Any]] = []
    seen: set[Any] = set()
    for i, row in enumerate(raw):
        if not (isinstance(row, (list, tuple)) and len(row) == 2):
            raise ValueError(
                f"Workload.from_dict: `{field}[{i}]` must be a [key, value] pair, got {_short(row)}"
            )
        key = row[0]
        if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
            raise ValueError(f"Workload.from_dict: `{field}[{i}]` has an unhashable key {_short(key)}")
        marker = (type(key) is str, key)  # 1 and "1" are different client keys
        if marker in seen:
            raise ValueError(f"Workload.from_dict: `{field}` repeats the key {key!r} ({keys} must be unique)")
        seen.add(marker)
        out.append((key, row[1]))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
