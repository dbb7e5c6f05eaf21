"""Argument checks that fail in the project's one error template.

Every message names the owner and the argument, states the rule and shows the bad value
with ``!r``: ``Owner: `name` must <rule>, got <value>``. Use these instead of writing the
``isinstance`` tests again, so that ``True`` is never taken for 1 and every check reads
the same.

>>> check_whole(3, "capacity", owner="lru_hit_rate", low=1)
3
>>> check_whole(2.0, "capacity", owner="lru_hit_rate", low=1, unit="blocks")
Traceback (most recent call last):
...
ValueError: lru_hit_rate: `capacity` must be a whole number of blocks >= 1, got 2.0
>>> check_number(float("nan"), "rate", owner="Gamma", low=0, strict=True)
Traceback (most recent call last):
...
ValueError: Gamma: `rate` must be a finite number > 0, got nan
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_number", "check_times", "check_whole", "check_whole_or_none", "is_number", "message"]


def message(owner: str, name: str, rule: str, value: Any) -> str:
    """The template: ``Owner: `name` must <rule>, got <value!r>`` (no prefix without owner).

    >>> message("Gamma", "cv", "be > 0", -1.0)
    'Gamma: `cv` must be > 0, got -1.0'
    >>> message("", "workers", "be a whole number >= 1", 0)
    '`workers` must be a whole number >= 1, got 0'
    """
    return f"{owner + ': ' if owner else ''}`{name}` must {rule}, got {value!r}"


def is_number(value: Any) -> bool:
    """A real number (Python or numpy, NaN and inf included); ``bool`` is not a number here.

    >>> [is_number(v) for v in (1, 2.5, np.int8(3), np.float32("nan"), True, "1", None)]
    [True, True, True, True, False, False, False]
    """
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _bound(low: float, strict: bool) -> str:
    return f"{'>' if strict else '>='} {low:g}"


def check_whole(value: Any, name: str, *, owner: str = "", low: int = 0, unit: str = "") -> int:
    """``value`` as an ``int``: a Python or numpy integer (not ``bool``, not ``2.0``) ``>= low``.

    Raises ``ValueError`` ``<owner>: `<name>` must be a whole number [of <unit>] >= <low>``.
    """
    if not _is_whole(value, low):
        raise ValueError(message(owner, name, f"be {_whole(unit)} >= {low}", value))
    return int(value)


def check_whole_or_none(
    value: Any, name: str, *, owner: str = "", low: int = 0, unit: str = ""
) -> int | None:
    """:func:`check_whole` that also lets ``None`` (no limit) through.

    >>> check_whole_or_none(None, "max_tokens", owner="vidur", low=2) is None
    True
    >>> check_whole_or_none(1, "max_tokens", owner="vidur", low=2)
    Traceback (most recent call last):
    ...
    ValueError: vidur: `max_tokens` must be a whole number >= 2 or None, got 1
    """
    if value is None:
        return None
    if not _is_whole(value, low):
        raise ValueError(message(owner, name, f"be {_whole(unit)} >= {low} or None", value))
    return int(value)


def _is_whole(value: Any, low: int) -> bool:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    return ok and value >= low


def _whole(unit: str) -> str:
    return f"a whole number of {unit}" if unit else "a whole number"


def check_number(
    value: Any, name: str, *, owner: str = "", low: float | None = None, strict: bool = False, unit: str = ""
) -> float:
    """``value`` as a ``float``: a finite real number (not ``bool``), ``>= low`` (``> low`` if ``strict``).

    Raises ``ValueError`` ``<owner>: `<name>` must be a finite number [of <unit>] [>= <low>]``.

    >>> check_number(0, "start", owner="Pool.span", low=0, unit="seconds")
    0.0
    >>> check_number(True, "start", owner="Pool.span", low=0, unit="seconds")
    Traceback (most recent call last):
    ...
    ValueError: Pool.span: `start` must be a finite number of seconds >= 0, got True
    """
    ok = is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        what = f"a finite number of {unit}" if unit else "a finite number"
        rule = f"be {what}" if low is None else f"be {what} {_bound(low, strict)}"
        raise ValueError(message(owner, name, rule, value))
    return float(value)


def check_times(owner: str, times: np.ndarray) -> None:
    """Piece start ``times``: starting at 0 and strictly increasing.

    >>> check_times("Piecewise", np.array([0.0, 5.0]))
    >>> check_times("Piecewise", np.array([1.0]))
    Traceback (most recent call last):
    ValueError: Piecewise: `times` must start at 0, got [1.0]
    """
    if times.size == 0 or times[0] != 0:
        raise ValueError(f"{owner}: `times` must start at 0, got {times[:1].tolist()!r}")
    if (np.diff(times) <= 0).any():
        raise ValueError(f"{owner}: `times` must be strictly increasing, got {times.tolist()[:8]!r}")
