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

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator
from scipy import special

from ._base import FloatArray, Frozen, parse_model

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

# Family codes of the vectorized renewal kernel.
POISSON, GAMMA, WEIBULL, DETERMINISTIC, OBJECT = 0, 1, 2, 3, 4
LAWS = {
    "poisson": POISSON,
    "gamma": GAMMA,
    "weibull": WEIBULL,
    "deterministic": DETERMINISTIC,
    "model": OBJECT,
}


@runtime_checkable
class ArrivalModel(Protocol):
    """What a user-defined arrival process needs: ``sample`` (and ``rate`` to be scaled)."""

    def sample(self, start: float, end: float, *, rng: np.random.Generator) -> Float64: ...


def weibull_shape(cv: Any) -> Float64:
    """The Weibull shape ``k`` whose inter-arrival CV is ``cv`` (vectorized).

    Solves ``cv**2 + 1 = Γ(1 + 2/k) / Γ(1 + 1/k)**2`` (decreasing in ``k``).

    >>> weibull_shape([1.0, 0.5]).round(4).tolist()
    [1.0, 2.1013]
    """
    cv = np.atleast_1d(np.asarray(cv, dtype=np.float64))
    target = np.log1p(cv**2)

    def excess(x: Float64) -> Float64:  # decreasing in x = log k
        k = np.exp(x)
        return special.gammaln(1 + 2 / k) - 2 * special.gammaln(1 + 1 / k) - target

    # Newton steps on x = log k from Justus' approximation k ~ cv**-1.086, inside a
    # bisection bracket that every step keeps valid. scipy's elementwise root finders
    # cost ~2 ms of overhead per call, which dominated building pools (a call per client).
    lo = np.full_like(cv, np.log(1e-3))
    hi = np.full_like(cv, np.log(1e4))
    x = np.clip(-1.086 * np.log(cv), lo, hi)
    for _ in range(100):
        f = excess(x)
        lo = np.where(f > 0, x, lo)  # f > 0: k too small (too bursty)
        hi = np.where(f > 0, hi, x)
        k = np.exp(x)
        # d/dx of excess: (-2/k) * psi(1 + 2/k) + (2/k) * psi(1 + 1/k)
        slope = (2 / k) * (special.digamma(1 + 1 / k) - special.digamma(1 + 2 / k))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - f / slope
        x_new = np.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
        if np.all(np.abs(x_new - x) < 1e-11):
            return np.exp(x_new)
        x = x_new
    return np.exp(x)


@dataclass(frozen=True)
class Pieces:
    """A compiled arrival model: piece ``i`` holds from ``times[i]`` to ``times[i+1]``."""

    times: Float64  # piece starts, times[0] == 0
    rates: Float64  # native mean rate of each piece
    family: NDArray[np.uint8]
    shape: Float64  # kernel shape (gamma k, weibull k); unused otherwise
    scale: Float64  # kernel scale giving unit-mean gaps
    objects: tuple[Any, ...] | None = None  # per-piece object for family OBJECT

    @staticmethod
    def renewal(times: Any, rates: Any, family: Any, cv: Any) -> Pieces:
        times = np.asarray(times, dtype=np.float64)
        rates = np.asarray(rates, dtype=np.float64)
        family = np.asarray(family, dtype=np.uint8)
        cv = np.asarray(cv, dtype=np.float64)
        shape = np.ones_like(cv)
        scale = np.ones_like(cv)
        g = family == GAMMA
        shape[g] = 1.0 / cv[g] ** 2
        scale[g] = cv[g] ** 2
        w = family == WEIBULL
        if w.any():
            k = weibull_shape(cv[w])
            shape[w] = k
            scale[w] = np.exp(-special.gammaln(1 + 1 / k))
        return Pieces(times, rates, family, shape, scale)

    @staticmethod
    def of_object(rate: float, obj: Any) -> Pieces:
        """One piece driven by ``obj._op_points`` (OnOff, Replay, user processes)."""
        one = np.ones(1)
        return Pieces(np.zeros(1), np.array([rate]), np.array([OBJECT], np.uint8), one, one, (obj,))

    @staticmethod
    def concat(times: Any, parts: list[Pieces]) -> Pieces:
        """Piecewise composition: ``parts[i]`` (each one piece) starts at ``times[i]``."""
        objs = [p.objects[0] if p.objects else None for p in parts]
        return Pieces(
            np.asarray(times, dtype=np.float64),
            np.concatenate([p.rates for p in parts]),
            np.concatenate([p.family for p in parts]),
            np.concatenate([p.shape for p in parts]),
            np.concatenate([p.scale for p in parts]),
            tuple(objs) if any(o is not None for o in objs) else None,
        )


def draw_gaps(family: int, shape: float, scale: float, n: int, rng: np.random.Generator) -> Float64:
    """``n`` unit-mean gaps of one kernel."""
    if family == POISSON:
        return rng.standard_exponential(n)
    if family == GAMMA:
        if 0.1 <= shape < 1:
            # Gamma(k) = Gamma(k + 1) * U**(1/k): numpy's rejection sampler for k < 1
            # is ~1.5x slower than its k >= 1 sampler plus one power.
            x = rng.standard_gamma(shape + 1.0, n)
            x *= rng.random(n) ** (1.0 / shape)
            x *= scale
            return x
        return rng.standard_gamma(shape, n) * scale
    if family == WEIBULL:
        return rng.weibull(shape, n) * scale
    return np.ones(n)


def draw_residual(family: int, shape: float, scale: float, rng: np.random.Generator) -> float:
    """Time to the first arrival of a stationary (equilibrium) renewal process.

    The residual is ``U * X*`` where ``X*`` is the size-biased gap: Gamma(k + 1) for a
    Gamma(k) gap and ``Gamma(1 + 1/k) ** (1/k)`` for a Weibull(k) gap.
    """
    u = rng.random()
    if family == POISSON:
        return float(rng.standard_exponential())
    if family == GAMMA:
        return float(u * rng.standard_gamma(shape + 1.0) * scale)
    if family == WEIBULL:
        return float(u * rng.standard_gamma(1.0 + 1.0 / shape) ** (1.0 / shape) * scale)
    return float(u)


def renewal_points(
    family: int, shape: float, scale: float, offset: float, length: float, rng: np.random.Generator
) -> tuple[Float64, float]:
    """Arrivals of a unit-rate renewal process on the operational interval [0, length).

    ``offset`` is the position of the next arrival (>= 0). Returns the positions inside
    the interval and the offset of the next arrival relative to the interval's end.
    """
    if offset >= length:
        return np.empty(0), offset - length
    cv = 1.0 / np.sqrt(shape) if family == GAMMA else (0.0 if family == DETERMINISTIC else 3.0)
    expected = length - offset
    parts = [np.array([offset])]
    pos = offset
    while True:
        # Draw the expected count plus a generous margin, then continue if still short.
        n = int(expected + 6.0 * max(cv, 1.0) * np.sqrt(expected) + 16)
        c = pos + np.cumsum(draw_gaps(family, shape, scale, n, rng))
        i = int(np.searchsorted(c, length, side="left"))
        if i < n:
            parts.append(c[:i])
            return np.concatenate(parts), float(c[i] - length)
        parts.append(c)
        pos = float(c[-1])
        expected = length - pos


class ArrivalProcess(Frozen):
    """Base class of the built-in arrival processes."""

    @property
    def mean_rate(self) -> float:
        """Long-run requests per second."""
        return float(self.rate)

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
        from ._timeline import sample_process

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

    ``laws[i]`` is ``"poisson"``, ``"gamma"``, ``"weibull"`` or ``"deterministic"``;
    ``cvs[i]`` is its inter-arrival CV (ignored for poisson/deterministic). This is the
    compact form production pools and fitted traces use (thousands of windows).
    ``laws[i] == "model"`` takes the piece's process from ``models[i]`` instead (any
    built-in process with one piece and rate ``rates[i]``, e.g. a
    :class:`~servegen.OnOffRenewal` or :class:`~servegen.Hyperexponential`; ``models``
    holds ``None`` for the other pieces).

    >>> s = ArrivalSchedule(times=[0, 600], rates=[1.0, 3.0], cvs=[1.0, 2.0], laws=["poisson", "gamma"])
    >>> s.mean_rate
    2.0
    """

    kind: Literal["schedule"] = "schedule"
    times: FloatArray
    rates: FloatArray
    cvs: FloatArray
    laws: list[Literal["poisson", "gamma", "weibull", "deterministic", "model"]]
    models: list[Any] | None = None

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
        _check_times("ArrivalSchedule", self.times)
        if not np.isfinite(self.rates).all() or (self.rates < 0).any():
            bad = float(self.rates[~(self.rates >= 0)][0])
            raise ValueError(f"ArrivalSchedule: `rates` must be finite and >= 0, got {bad!r}")
        fam = self.family_codes
        needs_cv = (fam == GAMMA) | (fam == WEIBULL)
        if (needs_cv & ~(self.cvs > 0)).any():
            bad = float(self.cvs[needs_cv & ~(self.cvs > 0)][0])
            raise ValueError(f"ArrivalSchedule: `cvs` must be > 0 for gamma/weibull pieces, got {bad!r}")
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
        for i, m in enumerate(self.models):  # a "model" piece copies its process's one piece
            q = m._pieces() if m is not None else None
            for name in ("family", "shape", "scale"):
                if q is not None:
                    getattr(p, name)[i] = getattr(q, name)[0]
            objs.append(q.objects[0] if q is not None and q.objects else None)
        return Pieces(p.times, p.rates, p.family, p.shape, p.scale, tuple(objs))


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


def _check_times(owner: str, times: Float64) -> None:
    if times.size == 0 or times[0] != 0:
        raise ValueError(f"{owner}: `times` must start at 0, got {times[:1].tolist()!r}")
    if (np.diff(times) <= 0).any():
        raise ValueError(f"{owner}: `times` must be strictly increasing, got {times.tolist()[:8]!r}")
