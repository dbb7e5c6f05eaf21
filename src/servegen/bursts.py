"""Arrival laws that carry bursts: a two-phase gap mixture and an on/off renewal process.

:class:`Hyperexponential` is a renewal process whose gaps come from one of two phases: a
*burst* phase of short gaps (probability ``p``) and a *silence* phase of long ones, each a
Gamma law (exponential by default, the classic two-phase hyperexponential H2). Like
:class:`~servegen.Gamma` it is set by ``rate`` and ``cv``; the free degree of freedom is
``p``, by default the *balanced-means* choice (each phase carries half the mean gap).

:class:`OnOffRenewal` alternates *on* periods, inside which requests follow a Gamma
renewal process, and *off* periods with no requests. The renewal clock runs on *on-time*
(it pauses while off), so a gap that spans silences is an in-burst gap plus the off
periods it crosses. Durations have their own laws (exponential, log-normal, Gamma, and
Pareto for off periods). Set it by ``rate`` and ``cv`` (``mean_off`` then follows from
the closed-form CV below) or by explicit ``mean_off``.

Both run in operational time like every other process (see :mod:`servegen.arrivals`):
their state (next arrival, current period and its time left) carries across windows and
chunks, and a stream starts in the stationary state.

>>> import numpy as np, servegen as sg
>>> from servegen.metrics import iat_cv
>>> t = sg.OnOffRenewal(rate=2, cv=6, mean_on=10).sample(0, 36000, rng=np.random.default_rng(0))
>>> round(len(t) / 36000, 1), round(iat_cv(t), 0)
(2.0, 6.0)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, model_validator

from .arrivals import ArrivalProcess
from .engine.kernels import GAMMA, HYPEREXP, POISSON, Pieces, draw_residual, renewal_points, renewal_run

__all__ = ["DURATION_LAWS", "Hyperexponential", "OnOffRenewal", "mixture_means"]

Float64 = NDArray[np.float64]

#: Laws of on/off period durations, each set by its mean and CV.
DURATION_LAWS = ("exponential", "lognormal", "gamma", "pareto")


def mixture_means(cv: float, p: float, burst_cv: float = 1.0, silence_cv: float = 1.0) -> tuple[float, float]:
    """Phase means ``(m1, m2)`` of a unit-mean two-phase Gamma mixture with gap CV ``cv``.

    Solves ``p m1 + (1-p) m2 = 1`` and ``p m1² (1 + c1²) + (1-p) m2² (1 + c2²) = 1 + cv²``
    for the root with ``0 < m1 <= 1 <= m2`` (the burst phase is the short one).
    Raises ``ValueError`` when no such mixture exists.

    >>> [round(m, 4) for m in mixture_means(3.0, 0.9)]
    [0.3333, 7.0]
    """
    q = 1.0 - p
    a1, a2, s = 1 + burst_cv**2, 1 + silence_cv**2, 1 + cv**2
    # m2 = (1 - p m1) / q turns the second moment into a quadratic in m1
    qa, qb, qc = p * a1 + a2 * p * p / q, -2 * p * a2 / q, a2 / q - s
    disc = qb * qb - 4 * qa * qc
    m1 = (-qb - np.sqrt(disc)) / (2 * qa) if disc >= 0 else np.nan
    m2 = (1 - p * m1) / q
    if not (np.isfinite(m1) and 0 < m1 <= 1 + 1e-12 and m2 >= 1 - 1e-12):
        raise ValueError(
            f"Hyperexponential: no two-phase mixture has cv={cv!r} with p={p!r}, burst_cv={burst_cv!r} "
            f"and silence_cv={silence_cv!r}: the burst phase's mean must be > 0 and the silence phase's "
            "above the mean gap (for exponential phases: p > (cv²-1)/(cv²+1) and cv > 1)"
        )
    return float(m1), float(m2)


def _balanced_p(cv: float, burst_cv: float, silence_cv: float) -> float:
    """``p`` with balanced means (``p m1 = (1-p) m2 = 1/2``): ``a1/(4p) + a2/(4q) = 1 + cv²``."""
    a1, a2, s = 1 + burst_cv**2, 1 + silence_cv**2, 1 + cv**2
    # 4 s p q = a1 q + a2 p  ->  4 s p² + (a2 - a1 - 4 s) p + a1 = 0, larger root (short bursts)
    b = a2 - a1 - 4 * s
    disc = b * b - 16 * s * a1
    if disc < 0:
        raise ValueError(
            f"Hyperexponential: `cv` must exceed the phases' CVs for balanced means, got cv={cv!r} "
            f"with burst_cv={burst_cv!r}, silence_cv={silence_cv!r}"
        )
    return float((-b + np.sqrt(disc)) / (8 * s))


class Hyperexponential(ArrivalProcess):
    """Renewal arrivals whose gaps mix a burst phase and a silence phase (two Gamma laws).

    Parameters
    ----------
    rate
        Mean requests per second (>= 0).
    cv
        Inter-arrival CV (> 1 with exponential phases; > the phases' CVs in general).
    p
        Probability that a gap is a burst gap (0 < p < 1). ``None`` (default): balanced
        means, each phase carrying half of the mean gap, the usual H2 convention.
    burst_cv, silence_cv
        CV of each phase's Gamma law (default 1: exponential phases, the classic H2).

    The phase means follow from ``rate``, ``cv`` and ``p`` (:func:`mixture_means`). With
    the defaults (balanced means, exponential phases) it is the law table's
    ``"hyperexponential"`` (:func:`servegen.engine.kernels.law`), which an
    :class:`~servegen.ArrivalSchedule` piece can also name; otherwise its own sampler
    drives the engine's renewal loop.

    >>> h = Hyperexponential(rate=1, cv=3)
    >>> round(h.phase_p, 4), [round(m, 3) for m in h.means]
    (0.9472, [0.528, 9.472])
    """

    kind: Literal["hyperexp"] = "hyperexp"
    rate: float = Field(ge=0)
    cv: float = Field(gt=0, le=1e4)
    p: float | None = Field(default=None, gt=0, lt=1)
    burst_cv: float = Field(default=1.0, gt=0, le=100)
    silence_cv: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> Hyperexponential:
        mixture_means(self.cv, self.phase_p, self.burst_cv, self.silence_cv)
        return self

    @property
    def phase_p(self) -> float:
        """Probability of the burst phase (``p`` or the balanced-means value)."""
        return self.p if self.p is not None else _balanced_p(self.cv, self.burst_cv, self.silence_cv)

    @property
    def means(self) -> tuple[float, float]:
        """Mean gap (s) of the burst and silence phases."""
        m1, m2 = mixture_means(self.cv, self.phase_p, self.burst_cv, self.silence_cv)
        return (m1 / self.rate, m2 / self.rate) if self.rate > 0 else (np.inf, np.inf)

    def _pieces(self) -> Pieces:
        if self.p is None and self.burst_cv == 1.0 and self.silence_cv == 1.0:  # the table's law
            return Pieces.renewal([0.0], [self.rate], [HYPEREXP], [self.cv])
        return Pieces.of_object(self.rate, self)

    def _laws(self) -> tuple[float, tuple[float, float], tuple[float, float]]:
        p = self.phase_p
        m = mixture_means(self.cv, p, self.burst_cv, self.silence_cv)
        k = (1 / self.burst_cv**2, 1 / self.silence_cv**2)
        return p, k, (m[0] / k[0], m[1] / k[1])

    def draw_gaps(self, n: int, rng: np.random.Generator) -> Float64:
        """``n`` unit-mean gaps: phases first, then one Gamma batch per phase."""
        p, k, th = self._laws()
        burst = rng.random(n) < p
        out = np.empty(n)
        nb = int(burst.sum())
        out[burst] = rng.standard_gamma(k[0], nb) * th[0]
        out[~burst] = rng.standard_gamma(k[1], n - nb) * th[1]
        return out

    def _op_points(self, state: Any, length: float, rng: np.random.Generator) -> tuple[Float64, Any]:
        if state is None:  # stationary: the phase in force is size-biased, then U x size-biased gap
            p, k, th = self._laws()
            burst = rng.random() < p * k[0] * th[0]  # p * m1: the burst phase's share of time
            j = 0 if burst else 1
            state = float(rng.random() * rng.standard_gamma(k[j] + 1.0) * th[j])
        return renewal_run(self.draw_gaps, state, length, rng)


def _durations(law: str, mean: float, cv: float, n: int, rng: np.random.Generator) -> Float64:
    """``n`` period durations of ``law`` with the given mean and CV."""
    if law == "exponential":
        return rng.exponential(mean, n)
    if law == "lognormal":
        s2 = np.log1p(cv * cv)
        return rng.lognormal(np.log(mean) - s2 / 2, np.sqrt(s2), n)
    if law == "gamma":
        return rng.standard_gamma(1 / cv**2, n) * mean * cv**2
    alpha = 1 + np.sqrt(1 + 1 / cv**2)  # Pareto I: cv² = 1 / (alpha (alpha - 2))
    return mean * (alpha - 1) / alpha * (1 + rng.pareto(alpha, n))


def _residual(law: str, mean: float, cv: float, rng: np.random.Generator) -> float:
    """Time left in a period seen at a random instant: U x the size-biased duration."""
    u = rng.random()
    if law == "exponential":
        return float(rng.exponential(mean))
    if law == "lognormal":  # size-biased LN(mu, s) is LN(mu + s², s)
        s2 = np.log1p(cv * cv)
        return float(u * rng.lognormal(np.log(mean) + s2 / 2, np.sqrt(s2)))
    if law == "gamma":
        return float(u * rng.standard_gamma(1 / cv**2 + 1) * mean * cv**2)
    alpha = 1 + np.sqrt(1 + 1 / cv**2)  # size-biased Pareto I(alpha) is Pareto I(alpha - 1)
    return float(u * mean * (alpha - 1) / alpha * (1 + rng.pareto(alpha - 1)))


class OnOffRenewal(ArrivalProcess):
    """On/off traffic: Gamma-renewal bursts during on periods, silence during off periods.

    Parameters
    ----------
    rate
        Long-run requests per second (> 0).
    cv
        Target inter-arrival CV of the whole process; ``mean_off`` follows from it. Give
        exactly one of ``cv`` and ``mean_off``.
    mean_on
        Mean on-period (s), default 10.
    mean_off
        Mean off-period (s).
    gap_cv
        CV of the Gamma gaps inside on periods (default 1: Poisson bursts).
    on_law, on_cv
        Law of on-period durations (``"exponential"`` default, ``"lognormal"``,
        ``"gamma"``) and its CV (ignored for exponential).
    off_law, off_cv
        Law of off-period durations (``"exponential"`` default, ``"lognormal"``,
        ``"gamma"``, ``"pareto"``: type I, heavy-tailed) and its CV.

    The rate inside bursts is ``rate_on = rate (mean_on + mean_off) / mean_on``. A gap is
    an in-burst gap ``G`` plus the off periods it crosses; with exponential on periods
    their number is Poisson with mean ``G / mean_on``, which gives the closed form

    ``cv² = gap_cv² + rate · E[off²] / (mean_on + mean_off)``

    (exact for exponential on periods, and close for other laws whenever a burst holds
    many requests), solved for ``mean_off`` when ``cv`` is given.

    >>> m = OnOffRenewal(rate=2, cv=6, mean_on=10, off_law="lognormal", off_cv=1.5)
    >>> {k: round(v, 2) for k, v in m.periods.items()}
    {'mean_on': 10.0, 'mean_off': 10.51, 'rate_on': 4.1}
    >>> round(m.iat_cv, 6)
    6.0
    """

    kind: Literal["onoff_renewal"] = "onoff_renewal"
    rate: float = Field(gt=0)
    cv: float | None = Field(default=None, gt=0, le=1e4)
    mean_on: float = Field(default=10.0, gt=0)
    mean_off: float | None = Field(default=None, gt=0)
    gap_cv: float = Field(default=1.0, gt=0, le=100)
    on_law: Literal["exponential", "lognormal", "gamma"] = "exponential"
    on_cv: float = Field(default=1.0, gt=0, le=100)
    off_law: Literal["exponential", "lognormal", "gamma", "pareto"] = "exponential"
    off_cv: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> OnOffRenewal:
        if (self.cv is None) == (self.mean_off is None):
            raise ValueError(
                f"OnOffRenewal: give exactly one of `cv` and `mean_off`, got cv={self.cv!r}, "
                f"mean_off={self.mean_off!r}"
            )
        if self.cv is not None and self.cv <= self.gap_cv:
            raise ValueError(
                f"OnOffRenewal: `cv` must exceed `gap_cv` ({self.gap_cv!r}): silences add variance, "
                f"got {self.cv!r}"
            )
        return self

    @property
    def periods(self) -> dict[str, float]:
        """Mean on and off periods (s) and the request rate inside bursts (req/s)."""
        on = self.mean_on
        if self.mean_off is not None:
            off = self.mean_off
        else:
            assert self.cv is not None
            a = self.rate * (1 + self.off_cv**2)
            k = self.cv**2 - self.gap_cv**2
            off = (k + np.sqrt(k * k + 4 * a * k * on)) / (2 * a)  # a m² - k m - k on = 0
        return {"mean_on": on, "mean_off": float(off), "rate_on": float(self.rate * (on + off) / on)}

    @property
    def iat_cv(self) -> float:
        """Inter-arrival CV implied by the parameters (the closed form above)."""
        pr = self.periods
        e2 = pr["mean_off"] ** 2 * (1 + self.off_cv**2)
        return float(np.sqrt(self.gap_cv**2 + self.rate * e2 / (pr["mean_on"] + pr["mean_off"])))

    def _pieces(self) -> Pieces:
        return Pieces.of_object(self.rate, self)

    def _op_points(self, state: Any, length: float, rng: np.random.Generator) -> tuple[Float64, Any]:
        """Points on [0, length) of operational time (seconds x rate); state carries across calls.

        state = (on, seconds left in the current period, on-time to the next arrival in
        units of the in-burst mean gap).
        """
        pr = self.periods
        fam = POISSON if self.gap_cv == 1.0 else GAMMA
        k = 1 / self.gap_cv**2
        shape, scale = k, 1 / k
        laws = ((self.off_law, pr["mean_off"], self.off_cv), (self.on_law, pr["mean_on"], self.on_cv))
        if state is None:  # stationary start
            on = bool(rng.random() < pr["mean_on"] / (pr["mean_on"] + pr["mean_off"]))
            state = (on, _residual(*laws[on], rng), draw_residual(fam, shape, scale, rng))
        on, left, offset = state
        horizon = length / self.rate  # seconds
        # periods covering [0, horizon): the current one, then alternating batches
        durs, first_on = [np.array([left])], on
        total, nxt = left, not on
        while total <= horizon:
            m = int((horizon - total) / (pr["mean_on"] + pr["mean_off"]) * 1.5) + 4
            d = np.empty(2 * m)
            d[0::2] = _durations(*laws[nxt], m, rng)
            d[1::2] = _durations(*laws[not nxt], m, rng)
            durs.append(d)
            total += float(d.sum())
        dur = np.concatenate(durs)
        ends = np.cumsum(dur)
        last = int(np.searchsorted(ends, horizon, side="right"))  # period in force at the horizon
        is_on = (np.arange(last + 1) % 2 == 0) == first_on
        starts = ends[: last + 1] - dur[: last + 1]
        inside = np.minimum(ends[: last + 1], horizon) - starts  # clipped to the horizon
        on_len = np.where(is_on, inside, 0.0)
        on_cum = np.concatenate([[0.0], np.cumsum(on_len)])
        tau = float(on_cum[-1])
        pts, offset = renewal_points(fam, shape, scale, offset, tau * pr["rate_on"], rng)
        x = pts / pr["rate_on"]  # on-time seconds
        j = np.searchsorted(on_cum[1:], x, side="right")  # on period holding each point
        real = starts[j] + (x - on_cum[j])
        new_state = (bool(is_on[last]), float(ends[last] - horizon), offset)
        return real * self.rate, new_state
