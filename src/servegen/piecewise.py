"""``Piecewise``: any arrival process or distribution that changes over time."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import model_validator

from ._base import FloatArray, Frozen
from ._validate import check_times
from .arrivals import ArrivalProcess, ArrivalSchedule
from .distributions import Distribution, as_distribution
from .engine.kernels import Pieces

__all__ = ["Piecewise"]


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
    models: list[Any]

    def __init__(self, times: Any = None, models: Any = None, **kw: Any) -> None:
        super().__init__(times=times, models=models, **kw)

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), (list, tuple)):
            data = {**data, "models": [as_distribution(m) for m in data["models"]]}
        return data

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

    def model_at(self, t: float) -> Any:
        """The model in force at time ``t``."""
        return self.models[int(np.searchsorted(self.times, t, side="right")) - 1]

    @property
    def mean_rate(self) -> float:
        """Time-average rate (arrivals only), the last piece counted as the mean width."""
        rates = np.array([m.mean_rate for m in self.models])
        if rates.size == 1:
            return float(rates[0])
        widths = np.append(np.diff(self.times), np.diff(self.times).mean())
        return float((rates * widths).sum() / widths.sum())

    def _pieces(self) -> Pieces:
        return Pieces.concat(self.times, [m._pieces() for m in self.models])

    def sample(self, *args: Any, **kw: Any) -> Any:
        """Arrivals: ``sample(start, end, *, rng)``. Values need an arrival time: use a Client."""
        if not self.is_arrival:
            raise TypeError("Piecewise distributions are sampled by time; use them in a Client")
        return ArrivalProcess.sample(self, *args, **kw)  # type: ignore[arg-type]
