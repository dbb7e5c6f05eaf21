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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "ModelError",
    "ModelTypeError",
    "check_number",
    "check_times",
    "check_whole",
    "check_whole_or_none",
    "describe_pydantic",
    "is_number",
    "message",
    "model_error",
]


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


# -- pydantic's errors, re-worded -------------------------------------------------------
class ModelError(ValueError):
    """A model rejected its arguments; the message is in the project's template.

    Raised instead of pydantic's ``ValidationError`` (also a ``ValueError``), whose text
    speaks pydantic's vocabulary ("Input should be greater than 0 [type=...]").
    """


class ModelTypeError(ModelError, TypeError):
    """A model argument of the wrong type: both a ``TypeError`` and, as before, a ``ValueError``."""


#: pydantic error type -> the rule, formatted with the error's ``ctx``.
_RULES = {
    "greater_than": "be > {gt}",
    "greater_than_equal": "be >= {ge}",
    "less_than": "be < {lt}",
    "less_than_equal": "be <= {le}",
    "finite_number": "be a finite number",
    "float_type": "be a number",
    "float_parsing": "be a number",
    "int_type": "be a whole number",
    "int_parsing": "be a whole number",
    "int_from_float": "be a whole number",
    "bool_type": "be True or False",
    "bool_parsing": "be True or False",
    "string_type": "be a string",
    "literal_error": "be {expected}",
    "list_type": "be a list",
    "tuple_type": "be a tuple",
    "dict_type": "be a dict",
    "model_type": "be a {class_name} or a dict",
    "model_attributes_type": "be a model or a dict",
    "is_instance_of": "be a {class}",
    "too_short": "have at least {min_length} items",
    "too_long": "have at most {max_length} items",
}
_TYPE_ERRORS = {"float_type", "float_parsing", "int_type", "int_parsing", "int_from_float", "bool_type"}
_TYPE_ERRORS |= {"bool_parsing", "string_type", "list_type", "tuple_type", "dict_type", "model_type"}
_TYPE_ERRORS |= {"model_attributes_type", "is_instance_of"}


def _where(loc: tuple[str | int, ...]) -> str:
    """``("components", 0, "sigma")`` -> ``components[0].sigma``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_pydantic(e: ValidationError, fields: Iterable[str] = ()) -> str:
    """The errors of ``e`` in the template, one clause per error, joined by ``"; "``.

    ``fields`` (the model's field names) are listed when an argument is unknown.

    >>> from pydantic import BaseModel, Field, ValidationError
    >>> class Gamma(BaseModel):
    ...     rate: float = Field(ge=0)
    ...     cv: float = Field(gt=0)
    >>> try:
    ...     Gamma(rate=1, cv=-1.0)
    ... except ValidationError as e:
    ...     print(describe_pydantic(e))
    Gamma: `cv` must be > 0, got -1.0
    >>> try:
    ...     Gamma(rate="fast")
    ... except ValidationError as e:
    ...     print(describe_pydantic(e))
    Gamma: `rate` must be a number, got 'fast'; Gamma: `cv` must be given (no default)
    """
    owner, known = e.title, ", ".join(f for f in fields if f != "kind")
    lines: list[str] = []
    missing: list[str] = []  # one clause for all of them
    for err in e.errors(include_url=False):
        kind, name, value = err["type"], _where(err["loc"]), err.get("input")
        text = str(err["msg"])
        if kind in ("value_error", "assertion_error"):  # our validators' own text names it all
            text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            lines.append(f"{owner}: `{name}`: {text}" if name and not text.startswith(f"{owner}:") else text)
        elif kind == "missing":
            if not missing:
                lines.append("")  # filled in below, in the place of the first one
            missing.append(f"`{name}`")
        elif kind == "extra_forbidden":
            fields_are = f" (its fields: {known})" if known and len(err["loc"]) == 1 else ""
            lines.append(f"{owner}: `{name}` is not a field{fields_are}, got {value!r}")
        elif kind == "frozen_instance":
            lines.append(
                f"{owner}: `{name}` cannot be changed (models are frozen: use "
                f"model_copy(update={{{name!r}: ...}})), got {value!r}"
            )
        elif kind in _RULES:
            ctx = {k: _number(v) for k, v in err.get("ctx", {}).items()}
            lines.append(message(owner, name, _RULES[kind].format(**ctx), value))
        else:  # a rule not in the table: pydantic's words, in the template's shape
            lines.append(f"{owner}: `{name}` {text[:1].lower() + text[1:]}, got {value!r}")
    if missing:
        names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        lines[lines.index("")] = f"{owner}: {names} must be given (no default)"
    return "; ".join(lines)


def _number(bound: Any) -> Any:
    """A bound as written: ``gt=0`` on a float field reads ``0``, not ``0.0``."""
    return int(bound) if isinstance(bound, float) and bound.is_integer() else bound


def model_error(e: ValidationError, fields: Iterable[str] = ()) -> ModelError:
    """``e`` as a :class:`ModelError` (a :class:`ModelTypeError` when every error is about type)."""
    text = describe_pydantic(e, fields)
    wrong_type = all(err["type"] in _TYPE_ERRORS for err in e.errors())
    return ModelTypeError(text) if wrong_type else ModelError(text)
