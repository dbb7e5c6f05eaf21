"""``Piecewise``: any arrival process or distribution that changes over time."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
from pydantic import SerializeAsAny, field_validator, model_validator

from ._base import FloatArray, Frozen
from ._validate import check_times, message
from .arrivals import ArrivalModel, ArrivalProcess, ArrivalSchedule
from .distributions import Distribution, ValueModel, as_distribution
from .engine.kernels import Pieces

__all__ = ["ArrivalLike", "Piecewise", "ValueLike"]


class Piecewise(Frozen):
    """Model ``models[i]`` holds from ``times[i]`` (s) to ``times[i+1]``; the last holds on.

    ``times`` start at 0 and increase strictly. All models are arrival processes, or all
    are value models (numbers are read as ``Constant``). For arrivals, renewal processes
    run on continuously across the breaks (see :mod:`servegen.arrivals`); for values, a
    request takes the model in force at its arrival time.

    >>> import servegen as sg
    >>> day = sg.Piecewise([0, 8 * 3600], [sg.Poisson(rate=1), sg.Gamma(rate=5, cv=2)])
    >>> day.model_at(9 * 3600)
    Gamma(rate=5.0, cv=2.0)
    """

    kind: Literal["piecewise"] = "piecewise"
    times: FloatArray
    # Checked by `_check` (all arrival processes or all distributions), not by pydantic;
    # SerializeAsAny dumps each model with its own fields.
    models: list[SerializeAsAny[ArrivalProcess | Distribution]]

    def __init__(self, times: Any = None, models: Any = None, **kw: Any) -> None:
        super().__init__(times=times, models=models, **kw)

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), (list, tuple)):
            data = {**data, "models": [as_distribution(m) for m in data["models"]]}
        return data

    @field_validator("models", mode="plain")
    @classmethod
    def _models(cls, v: Any) -> list[ArrivalProcess | Distribution]:
        if not isinstance(v, (list, tuple)):
            raise ValueError(message("Piecewise", "models", "be a list of models", v))
        return list(v)

    @model_validator(mode="after")
    def _check(self) -> Piecewise:
        if len(self.models) != self.times.size:
            raise ValueError(
                "Piecewise: `times` and `models` must have the same length, "
                f"got {self.times.size} and {len(self.models)}"
            )
        check_times("Piecewise", self.times)
        arrivals = [isinstance(m, ArrivalProcess) for m in self.models]
        values = [isinstance(m, Distribution) for m in self.models]
        if not (all(arrivals) or all(values)):
            raise TypeError(
                "Piecewise: `models` must be all arrival processes or all distributions "
                "(nested Piecewise is not supported), got " + ", ".join(type(m).__name__ for m in self.models)
            )
        if all(arrivals) and any(isinstance(m, ArrivalSchedule) for m in self.models):
            raise TypeError("Piecewise: an ArrivalSchedule is already piecewise; merge its arrays instead")
        return self

    @property
    def is_arrival(self) -> bool:
        """True when the pieces are arrival processes."""
        return isinstance(self.models[0], ArrivalProcess)

    def model_at(self, t: float) -> ArrivalProcess | Distribution:
        """The model in force at time ``t``."""
        return self.models[int(np.searchsorted(self.times, t, side="right")) - 1]

    @property
    def mean_rate(self) -> float:
        """Time-average rate (arrivals only), the last piece counted as the mean width."""
        rates = np.array([m.mean_rate for m in self._arrivals()])
        if rates.size == 1:
            return float(rates[0])
        widths = np.append(np.diff(self.times), np.diff(self.times).mean())
        return float((rates * widths).sum() / widths.sum())

    def _pieces(self) -> Pieces:
        return Pieces.concat(self.times, [m._pieces() for m in self._arrivals()])

    def _arrivals(self) -> list[ArrivalProcess]:
        arrivals = [m for m in self.models if isinstance(m, ArrivalProcess)]
        if len(arrivals) != len(self.models):
            raise AttributeError("Piecewise: these are distributions; only arrival processes have a rate")
        return arrivals

    def sample(self, *args: Any, **kw: Any) -> Any:
        """Arrivals: ``sample(start, end, *, rng)``. Values need an arrival time: use a Client."""
        if not self.is_arrival:
            raise TypeError("Piecewise distributions are sampled by time; use them in a Client")
        return ArrivalProcess.sample(self, *args, **kw)  # type: ignore[arg-type]


#: What an arrival field holds (``Client.arrival``): a built-in process, a ``Piecewise``
#: of them, or a user's object with ``sample(start, end, *, rng)``.
ArrivalLike: TypeAlias = ArrivalProcess | Piecewise | ArrivalModel
#: What a value field holds (``Client.input_tokens``, ``Session.think_time``, ...): a
#: built-in distribution (a number is read as ``Constant``), a ``Piecewise`` of them, or a
#: user's object with ``sample(n, *, rng)``.
ValueLike: TypeAlias = Distribution | Piecewise | ValueModel
