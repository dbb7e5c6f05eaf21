"""Arrival processes: when requests come.

Every process has a mean ``rate`` (requests/s) and ``sample(start, end, *, rng)``
returning sorted float64 timestamps. Renewal processes take serving-native parameters:
``rate`` and ``cv``, the coefficient of variation of inter-arrival times; the shape and
scale of the Gamma or Weibull law follow from them.

How time-varying rates keep the CV: a process is generated in *operational time*
``Λ(t) = ∫ rate(s) ds``, where it is a unit-rate renewal process, and mapped back through
``Λ⁻¹``. Each gap is drawn from the law in force at the arrival that starts it, so
renewal processes run continuously across piece, window and chunk boundaries, with no gap
or pile-up at the edges. The first arrival is drawn from the stationary residual of the
gap law (a size-biased gap times a uniform), so short windows are not biased.

>>> import numpy as np, servegen as sg
>>> t = sg.Gamma(rate=10, cv=2).sample(0, 1000, rng=np.random.default_rng(1))
>>> round(len(t) / 1000, 1), bool(np.all(np.diff(t) >= 0))
(10.1, True)
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, field_validator, model_validator

from ._base import FloatArray, Frozen, parse_model
from ._validate import check_times
from .engine.kernels import (
    DETERMINISTIC,
    GAMMA,
    LAWS,
    OBJECT,
    POISSON,
    WEIBULL,
    Pieces,
    law_by_code,
    weibull_shape,
)
from .engine.kernels import law as table_law
from .engine.timeline import sample_process

__all__ = [
    "ArrivalProcess",
    "ArrivalSchedule",
    "Deterministic",
    "Gamma",
    "OnOff",
    "Poisson",
    "Replay",
    "Weibull",
    "weibull_shape",
]

Float64 = NDArray[np.float64]
_NAMES = frozenset(LAWS)  # the table's names and "model"


@runtime_checkable
class ArrivalModel(Protocol):
    """What a user-defined arrival process needs: ``sample`` (and ``rate`` to be scaled)."""

    def sample(self, start: float, end: float, *, rng: np.random.Generator) -> Float64: ...


class ArrivalProcess(Frozen):
    """Base class of the built-in arrival processes."""

    @property
    def mean_rate(self) -> float:
        """Long-run requests per second (the ``rate`` field of the renewal processes)."""
        rate = getattr(self, "rate", None)
        if rate is None:  # pragma: no cover - every built-in process has `rate` or overrides this
            raise NotImplementedError(f"{type(self).__name__} must define `mean_rate`")
        return float(rate)

    def _pieces(self) -> Pieces:  # pragma: no cover
        raise NotImplementedError

    def sample(self, start: float, end: float, *, rng: np.random.Generator) -> Float64:
        """Sorted arrival timestamps in [``start``, ``end``) for a stationary run.

        >>> import numpy as np
        >>> Deterministic(rate=2).sample(0, 2, rng=np.random.default_rng(0)).round(3)
        array([0.318, 0.818, 1.318, 1.818])
        """
        if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
            raise ValueError(f"sample: need finite `start` < `end`, got start={start!r}, end={end!r}")
        return sample_process(self, float(start), float(end), rng)


class _Renewal(ArrivalProcess):
    rate: float = Field(ge=0)

    FAMILY: ClassVar[int] = POISSON

    def _pieces(self) -> Pieces:
        cv = float(getattr(self, "cv", 1.0))
        return Pieces.renewal([0.0], [self.rate], [self.FAMILY], [cv])


class Poisson(_Renewal):
    """Poisson arrivals: exponential gaps, CV 1.

    >>> Poisson(rate=5.0).mean_rate
    5.0
    """

    kind: Literal["poisson"] = "poisson"
    FAMILY: ClassVar[int] = POISSON


class Gamma(_Renewal):
    """Gamma renewal arrivals with ``rate`` (req/s) and inter-arrival ``cv`` (> 0).

    The gap law is Gamma(shape = 1/cv², scale = cv²/rate). CV > 1 is burstier than Poisson.

    >>> Gamma(rate=4.0, cv=2.5)
    Gamma(rate=4.0, cv=2.5)
    """

    kind: Literal["gamma"] = "gamma"
    cv: float = Field(gt=0)
    FAMILY: ClassVar[int] = GAMMA


class Weibull(_Renewal):
    """Weibull renewal arrivals with ``rate`` (req/s) and inter-arrival ``cv`` (> 0).

    The shape ``k`` solves the CV equation (:func:`~servegen.arrivals.weibull_shape`); the
    scale gives mean 1/rate.

    >>> round(float(weibull_shape(6.0)[0]), 4)
    0.2862
    """

    kind: Literal["weibull"] = "weibull"
    cv: float = Field(gt=0, le=1e6)
    FAMILY: ClassVar[int] = WEIBULL


class Deterministic(_Renewal):
    """Evenly spaced arrivals, ``1/rate`` apart (CV 0), with a uniformly random phase."""

    kind: Literal["deterministic"] = "deterministic"
    FAMILY: ClassVar[int] = DETERMINISTIC


class OnOff(ArrivalProcess):
    """A two-state Markov-modulated Poisson process: bursts separated by quiet spells.

    The process alternates between an *on* state (Poisson at ``rate_on``) and an *off*
    state (Poisson at ``rate_off``, default 0) with exponential sojourns of mean
    ``mean_on`` and ``mean_off`` seconds. Under a workload's rate scaling it is time-changed
    like every other process (a doubled rate also halves sojourns).

    >>> OnOff(rate_on=10, mean_on=5, mean_off=15).mean_rate
    2.5
    """

    kind: Literal["onoff"] = "onoff"
    rate_on: float = Field(gt=0)
    rate_off: float = Field(default=0.0, ge=0)
    mean_on: float = Field(gt=0)
    mean_off: float = Field(gt=0)

    @property
    def mean_rate(self) -> float:
        return (self.rate_on * self.mean_on + self.rate_off * self.mean_off) / (self.mean_on + self.mean_off)

    def _pieces(self) -> Pieces:
        return Pieces.of_object(self.mean_rate, self)

    def _op_points(self, state: Any, length: float, rng: np.random.Generator) -> tuple[Float64, Any]:
        """Points of the unit-mean-rate version on [0, length); state = (on, time left)."""
        r = self.mean_rate
        rates = (self.rate_off / r, self.rate_on / r)  # per unit of operational time
        means = (self.mean_off * r, self.mean_on * r)
        if state is None:  # stationary start: on with its long-run probability
            on = bool(rng.random() < self.mean_on / (self.mean_on + self.mean_off))
            left = float(rng.exponential(means[on]))
        else:
            on, left = state
        starts, lens, lams = [], [], []
        pos = 0.0
        while True:  # one iteration per sojourn (seconds to minutes long), not per request
            end = pos + left
            starts.append(pos)
            lens.append(min(end, length) - pos)
            lams.append(rates[on] * lens[-1])
            if end >= length:
                left = end - length
                break
            pos, on = end, not on
            left = float(rng.exponential(means[on]))
        counts = rng.poisson(lams)
        ln = np.asarray(lens)
        pts = np.repeat(np.asarray(starts), counts) + rng.random(int(counts.sum())) * np.repeat(ln, counts)
        pts.sort()
        return pts, (on, left)


class Replay(ArrivalProcess):
    """Replays recorded ``timestamps`` (seconds); ``duration`` defaults to the last one.

    Its mean rate is ``len(timestamps) / duration``. Under rate scaling the replay is
    time-changed (2x the rate plays the recording 2x faster). Past the end of the
    recording it sends nothing; a workload rate target that would play it to the end
    before the sample ends is refused (the target could not be met).

    >>> Replay(timestamps=[0.5, 1.0, 4.0]).mean_rate
    0.75
    """

    kind: Literal["replay"] = "replay"
    timestamps: FloatArray
    duration: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Replay:
        t = self.timestamps
        if t.size == 0:
            raise ValueError("Replay: `timestamps` must not be empty")
        if not np.isfinite(t).all() or (t < 0).any():
            raise ValueError("Replay: `timestamps` must be finite and >= 0")
        if (np.diff(t) < 0).any():
            raise ValueError("Replay: `timestamps` must be sorted")
        if self._duration <= 0:
            raise ValueError("Replay: `duration` must be > 0 (the last timestamp is 0)")
        if t[-1] > self._duration:
            raise ValueError(f"Replay: timestamps run past `duration`={self.duration!r}")
        return self

    @property
    def _duration(self) -> float:
        return float(self.duration if self.duration is not None else self.timestamps[-1])

    @property
    def mean_rate(self) -> float:
        return self.timestamps.size / self._duration

    def _pieces(self) -> Pieces:
        return Pieces.of_object(self.mean_rate, self)

    @cached_property
    def _op(self) -> Float64:
        return self.timestamps * self.mean_rate

    @property
    def _op_span(self) -> float:
        """Operational time the recording covers (``duration * mean_rate``): past it, silence."""
        return float(self.timestamps.size)

    def _op_points(self, state: Any, length: float, rng: np.random.Generator) -> tuple[Float64, Any]:
        pos = 0.0 if state is None else state
        lo, hi = np.searchsorted(self._op, [pos, pos + length], side="left")
        return self._op[lo:hi] - pos, pos + length


class ArrivalSchedule(ArrivalProcess):
    """A piecewise renewal process given as arrays: piece ``i`` holds from ``times[i]``.

    ``laws[i]`` names a law of the engine's law table (:mod:`servegen.engine.kernels`):
    ``"poisson"``, ``"gamma"``, ``"weibull"``, ``"lognormal"``, ``"hyperexponential"``
    or ``"deterministic"``, or any alias of one (``"exponential"``, ``"Gamma"``, ``"H2"``,
    ...), kept as the law's name; ``cvs[i]`` is its inter-arrival CV (ignored for
    poisson/deterministic; >= 1 for hyperexponential). This is the compact form
    production pools and fitted traces use (thousands of windows).
    ``laws[i] == "model"`` takes the piece's process from ``models[i]`` instead (any
    built-in process with one piece and rate ``rates[i]``, e.g. a
    :class:`~servegen.OnOffRenewal` or :class:`~servegen.Hyperexponential`; ``models``
    holds ``None`` for the other pieces).

    >>> s = ArrivalSchedule(times=[0, 600], rates=[1.0, 3.0], cvs=[1.0, 2.0], laws=["exponential", "H2"])
    >>> s.mean_rate, s.laws
    (2.0, ['poisson', 'hyperexponential'])
    """

    kind: Literal["schedule"] = "schedule"
    times: FloatArray
    rates: FloatArray
    cvs: FloatArray
    laws: list[str]
    models: list[Any] | None = None

    @field_validator("laws")
    @classmethod
    def _law_names(cls, laws: list[str]) -> list[str]:
        """Each law by its table name (aliases resolved), or ``"model"``."""
        names = set(laws)  # a pool's schedule has thousands of pieces and a few laws
        if names <= _NAMES:
            return laws
        table = {}
        for name in dict.fromkeys(laws):  # in order: the error names the first bad entry
            try:
                table[name] = name if name == "model" else table_law(name).name
            except ValueError:
                raise ValueError(
                    f"ArrivalSchedule: `laws[{laws.index(name)}]` must name a law of the table "
                    f"({', '.join(LAWS)}) or one of its aliases, got {name!r}"
                ) from None
        return [table[name] for name in laws]

    @model_validator(mode="after")
    def _check(self) -> ArrivalSchedule:
        _check_models(self)
        n = self.times.size
        if n == 0:
            raise ValueError("ArrivalSchedule: `times` must not be empty")
        for name in ("rates", "cvs"):
            if getattr(self, name).size != n:
                size = getattr(self, name).size
                raise ValueError(f"ArrivalSchedule: `{name}` must have one entry per time ({n}), got {size}")
        if len(self.laws) != n:
            raise ValueError(
                f"ArrivalSchedule: `laws` must have one entry per time ({n}), got {len(self.laws)}"
            )
        check_times("ArrivalSchedule", self.times)
        if not np.isfinite(self.rates).all() or (self.rates < 0).any():
            bad = float(self.rates[~(self.rates >= 0)][0])
            raise ValueError(f"ArrivalSchedule: `rates` must be finite and >= 0, got {bad!r}")
        fam = self.family_codes
        for code in np.unique(fam[fam != OBJECT]).tolist():  # each law's own CV rule
            row = law_by_code(code)
            bad_cv = row.bad_cv(self.cvs[fam == code])
            if bad_cv is not None:
                rule = f"{row.cv_rule} for {row.name} pieces"
                raise ValueError(f"ArrivalSchedule: `cvs` must be {rule}, got {bad_cv!r}")
        return self

    @cached_property
    def family_codes(self) -> NDArray[np.uint8]:
        return np.array([LAWS[law] for law in self.laws], dtype=np.uint8)

    @property
    def mean_rate(self) -> float:
        """Time-average rate over the pieces, the last counted as long as the mean piece."""
        t = self.times
        if t.size == 1:
            return float(self.rates[0])
        widths = np.append(np.diff(t), np.diff(t).mean())
        return float((self.rates * widths).sum() / widths.sum())

    def _pieces(self) -> Pieces:
        p = Pieces.renewal(self.times, self.rates, self.family_codes, self.cvs)
        if self.models is None:
            return p
        objs = []
        family, shape, scale = p.family.copy(), p.shape.copy(), p.scale.copy()  # Pieces are read-only
        for i, m in enumerate(self.models):  # a "model" piece copies its process's one piece
            q = m._pieces() if m is not None else None
            if q is not None:
                family[i], shape[i], scale[i] = q.family[0], q.shape[0], q.scale[0]
            objs.append(q.objects[0] if q is not None and q.objects else None)
        return Pieces(p.times, p.rates, family, shape, scale, tuple(objs))


def _check_models(s: ArrivalSchedule) -> None:
    """``models`` lines up with ``laws``: a one-piece process of rate ``rates[i]`` where "model"."""
    if s.models is None:
        if "model" in s.laws:
            raise ValueError("ArrivalSchedule: a piece with law 'model' needs `models`")
        return
    if len(s.models) != len(s.laws):
        raise ValueError(
            f"ArrivalSchedule: `models` must have one entry per time ({len(s.laws)}), got {len(s.models)}"
        )
    ms = [None if m is None else parse_model(m) for m in s.models]
    object.__setattr__(s, "models", ms)
    for i, (law, m) in enumerate(zip(s.laws, ms, strict=True)):
        if (law == "model") != (m is not None):
            raise ValueError(
                f"ArrivalSchedule: `models[{i}]` must be given exactly where `laws[{i}]` is 'model' "
                f"(laws[{i}]={law!r}), got {m!r}"
            )
        if m is not None:
            if (
                not isinstance(m, ArrivalProcess)
                or isinstance(m, ArrivalSchedule)
                or m._pieces().times.size != 1
            ):
                raise TypeError(
                    f"ArrivalSchedule: `models[{i}]` must be a one-piece arrival process, got {m!r}"
                )
            if not np.isclose(m.mean_rate, s.rates[i], rtol=1e-9, atol=0):
                raise ValueError(
                    f"ArrivalSchedule: `models[{i}]` must have rate `rates[{i}]`={float(s.rates[i])!r}, "
                    f"got {m.mean_rate!r}"
                )
