"""The frozen-model base shared by every description in servegen (distributions,
arrival processes, attributes, clients)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError, ValidationInfo

from ._validate import describe_pydantic, model_error

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

__all__ = [
    "FloatArray",
    "Frozen",
    "as_1d_float",
    "describe_error",
    "parse_model",
    "register_kind",
    "registered_kinds",
]

#: kind -> class, filled as the model classes are defined; read by ``parse_model``.
_REGISTRY: dict[str, type[BaseModel]] = {}
#: kind -> builder of a spec that is not one frozen model (e.g. ``"pool"``), see ``register_kind``.
_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {}
#: kind -> the module that registers it, loaded on first use: ``import servegen`` loads its
#: modules lazily, so a spec may name a kind whose module nobody has imported yet.
_HOMES = {"pool": "servegen.pools"}


def as_1d_float(value: Any, name: str = "array") -> np.ndarray:
    """A read-only 1-D float64 copy of ``value`` (lists, tuples, arrays)."""
    try:
        arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a sequence of numbers, got {value!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


def _to_array(value: Any, info: ValidationInfo) -> np.ndarray:
    # Every array field of a model holds finite numbers (times, weights, probabilities):
    # NaN passes every comparison-based check after it, so it is refused here, once.
    owner, name = (info.config or {}).get("title", "model"), info.field_name or "array"
    if isinstance(value, np.ndarray) and value.dtype == np.float64 and not value.flags.writeable:
        arr = value
    else:
        try:
            arr = as_1d_float(value, name)
        except ValueError as e:
            raise ValueError(f"{owner}: {e}") from None
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{owner}: `{name}` must hold finite numbers, got {arr[i].item()!r} at index {i}")
    return arr


#: A 1-D float64 numpy array field: validated from any sequence, dumped as a JSON list.
FloatArray = Annotated[
    np.ndarray,
    BeforeValidator(_to_array),
    PlainSerializer(lambda a: a.tolist(), return_type=list),
]


class Frozen(BaseModel):
    """Immutable, strictly validated description; equality compares array fields by value.

    pydantic's ``ValidationError`` never leaves a model: building, validating or assigning
    to one raises :class:`~servegen._validate.ModelError` (a ``ValueError``; also a
    ``TypeError`` when an argument has the wrong type) worded in the project's template.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, arbitrary_types_allowed=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise model_error(e, _field_names(type(self))) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as e:
            raise model_error(e, _field_names(cls)) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as e:
            raise model_error(e, _field_names(cls)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:  # frozen: say how to get a changed copy
            raise model_error(e) from None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("kind")
        if field is not None and isinstance(field.default, str):
            _REGISTRY[field.default] = cls

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        for name in type(self).model_fields:
            a, b = getattr(self, name), getattr(other, name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b)):
                    return False
            elif a != b:
                return False
        return True

    def __hash__(self) -> int:
        parts = []
        for name in type(self).model_fields:
            v = getattr(self, name)
            parts.append(v.tobytes() if isinstance(v, np.ndarray) else v)
        try:
            return hash((type(self).__name__, *parts))
        except TypeError:  # a list-valued field: hash its JSON form instead
            return hash(self.model_dump_json())

    def __repr__(self) -> str:
        def fmt(v: Any) -> str:
            if isinstance(v, np.ndarray):
                if v.size <= 6:
                    return repr(v.tolist())
                return f"array(size={v.size}, [{v[0].item()!r}, ..., {v[-1].item()!r}])"
            return repr(v)

        fields = ", ".join(
            f"{f.alias or k}={fmt(getattr(self, k))}"
            for k, f in type(self).model_fields.items()
            if k != "kind"
        )
        return f"{type(self).__name__}({fields})"

    def __str__(self) -> str:
        return repr(self)


def _field_names(cls: type[BaseModel]) -> list[str]:
    """The names a spec uses for the fields of ``cls`` (aliases: ``mean``, not ``mean_``)."""
    return [f.alias or name for name, f in cls.model_fields.items()]


def registered_kinds() -> list[str]:
    """The ``kind`` names that :func:`parse_model` understands."""
    return sorted(_REGISTRY)


def register_kind(kind: str, build: Callable[[Mapping[str, Any]], Any]) -> None:
    """Let :func:`parse_model` build specs of ``kind`` with ``build(spec)``.

    A subsystem registers its own spec kinds (the pools register ``"pool"``), so the
    modules that read specs (``Workload.from_dict``) need not import it.
    """
    _BUILDERS[kind] = build


def parse_model(data: Any) -> Any:
    """Build the servegen model a JSON-like dict describes, by its ``kind``.

    >>> import servegen as sg
    >>> parse_model({"kind": "gamma", "rate": 2.0, "cv": 3.0})
    Gamma(rate=2.0, cv=3.0)
    """
    if isinstance(data, Frozen):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"a model spec must be a dict with a `kind`, got {data!r}")
    kind = data.get("kind")
    if kind in _HOMES and kind not in _BUILDERS:
        importlib.import_module(_HOMES[kind])  # registers the kind (a lookup, not a layer edge)
    if kind in _BUILDERS:
        return _BUILDERS[kind](data)
    if kind not in _REGISTRY:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {', '.join(registered_kinds())}")
    # A Frozen model re-words its own errors (naming itself, not the model whose
    # validator parses this spec); a plain pydantic model's are re-worded here.
    try:
        return _REGISTRY[kind].model_validate(data)
    except ValidationError as e:
        raise model_error(e, _field_names(_REGISTRY[kind])) from None


def describe_error(e: ValidationError) -> str:
    """The errors of ``e`` in the project's template (:func:`servegen._validate.describe_pydantic`).

    >>> try:
    ...     parse_model({"kind": "lognormal", "mu": 1, "sigma": 0})
    ... except ValueError as e:
    ...     print(e)
    LogNormal: `sigma` must be > 0, got 0
    """
    return describe_pydantic(e)
