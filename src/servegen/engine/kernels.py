"""Sampling kernels: compiled arrival pieces, gap draws, residuals, renewal points, laws.

The bottom of the sampling engine. Nothing here knows of clients, workloads, pools or
formats; a model compiles itself to :class:`Pieces` and the engine draws from them.

The law table
-------------
One :class:`Law` per renewal law of inter-arrival gaps, keyed by its name, with its
kernel code, its parameters (``shape``, ``scale`` of the gap, in seconds when built from
a rate), its construction from ``rate`` and ``cv``, sampler, log-density and cdf (from
scipy.stats, which already does these well). :func:`law` finds a law by any of its
names in the vocabularies the library meets: ``"exponential"`` (fitting) and
``"Gamma"``/``"Weibull"`` (production pool releases) name the same laws as ``"poisson"``,
``"gamma"`` and ``"weibull"`` (arrival models).

>>> g = law("Gamma")
>>> g.name, g.code
('gamma', 1)
>>> shape, scale = g.from_rate_cv(rate=2.0, cv=0.5)
>>> float(shape), float(scale), float(g.mean(shape, scale))
(4.0, 0.125, 0.5)
>>> law("exponential").name, float(law("poisson").cdf(1.0, 1.0, 1.0)).__round__(4)
('poisson', 0.6321)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy import special

__all__ = [
    "DETERMINISTIC",
    "GAMMA",
    "LAWS",
    "OBJECT",
    "POISSON",
    "RELEASE_LAWS",
    "WEIBULL",
    "Law",
    "OpProcess",
    "Pieces",
    "draw_gaps",
    "draw_residual",
    "law",
    "law_by_code",
    "renewal_points",
    "weibull_shape",
]

Float64 = NDArray[np.float64]

# Family codes of the vectorized renewal kernel.
POISSON, GAMMA, WEIBULL, DETERMINISTIC, OBJECT = 0, 1, 2, 3, 4


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


class OpProcess(Protocol):
    """What a piece of family ``OBJECT`` provides (OnOff, Replay, burst laws, user processes).

    ``_op_points(state, length, rng)`` returns the points of the unit-mean-rate process on
    the operational interval [0, ``length``) and the state to continue from (``None``: start
    stationary). A process that ends (a replay) may also give ``_op_span``, the operational
    time it covers.
    """

    def _op_points(self, state: Any, length: float, rng: np.random.Generator) -> tuple[Float64, Any]: ...


@dataclass(frozen=True)
class Pieces:
    """A compiled arrival model: piece ``i`` holds from ``times[i]`` to ``times[i+1]``."""

    times: Float64  # piece starts, times[0] == 0
    rates: Float64  # native mean rate of each piece
    family: NDArray[np.uint8]
    shape: Float64  # kernel shape (gamma k, weibull k); unused otherwise
    scale: Float64  # kernel scale giving unit-mean gaps
    objects: tuple[Any, ...] | None = None  # per-piece OpProcess for family OBJECT (None elsewhere)

    @staticmethod
    def renewal(times: Any, rates: Any, family: Any, cv: Any) -> Pieces:
        times = np.asarray(times, dtype=np.float64)
        rates = np.asarray(rates, dtype=np.float64)
        family = np.asarray(family, dtype=np.uint8)
        cv = np.asarray(cv, dtype=np.float64)
        shape = np.ones_like(cv)
        scale = np.ones_like(cv)
        for code in (GAMMA, WEIBULL):  # the unit-mean gap law of each piece, from the law table
            m = family == code
            if m.any():
                shape[m], scale[m] = _shape_scale(code, cv[m])
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


def _shape_scale(code: int, cv: Any) -> tuple[Float64, Float64]:
    """(shape, scale) of the unit-mean gap law ``code`` whose CV is ``cv`` (vectorized)."""
    cv = np.asarray(cv, dtype=np.float64)
    if code == GAMMA:
        return 1.0 / cv**2, cv**2
    if code == WEIBULL:
        k = weibull_shape(cv).reshape(cv.shape)
        return k, np.exp(-special.gammaln(1 + 1 / k))
    return np.ones_like(cv), np.ones_like(cv)


@dataclass(frozen=True)
class Law:
    """One renewal law of inter-arrival gaps: the row of the law table.

    ``shape`` and ``scale`` are the law's parameters (Gamma ``k``/``theta``, Weibull
    ``k``/``lambda``; the exponential's mean is ``scale``); a deterministic gap is
    ``scale``. All methods are vectorized over numpy arrays.
    """

    name: str
    code: int
    params: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    release_code: int | None = None  # the law's code and name in pool release files
    release_name: str | None = None
    _dist: Callable[[Any, Any], Any] | None = field(default=None, repr=False)

    def from_rate_cv(self, rate: Any, cv: Any) -> tuple[Float64, Float64]:
        """(shape, scale) of gaps with mean ``1/rate`` and CV ``cv`` (ignored by poisson/deterministic)."""
        shape, scale = _shape_scale(self.code, cv)
        return shape, scale / np.asarray(rate, dtype=np.float64)

    def mean(self, shape: Any, scale: Any) -> Float64:
        """Mean gap."""
        shape, scale = np.asarray(shape, np.float64), np.asarray(scale, np.float64)
        if self.code == GAMMA:
            return shape * scale
        if self.code == WEIBULL:
            return scale * np.exp(special.gammaln(1 + 1 / shape))
        return scale

    def cv(self, shape: Any) -> Float64:
        """Coefficient of variation of the gaps."""
        shape = np.asarray(shape, np.float64)
        if self.code == GAMMA:
            return 1 / np.sqrt(shape)
        if self.code == WEIBULL:
            return np.sqrt(np.exp(special.gammaln(1 + 2 / shape) - 2 * special.gammaln(1 + 1 / shape)) - 1)
        return np.full_like(shape, 1.0 if self.code == POISSON else 0.0)

    def sample(self, shape: float, scale: float, n: int, *, rng: np.random.Generator) -> Float64:
        """``n`` gaps (the engine's kernel, :func:`draw_gaps`, rescaled)."""
        gaps = draw_gaps(self.code, float(shape), float(scale), n, rng)
        return gaps * float(scale) if self.code in (POISSON, DETERMINISTIC) else gaps

    def logpdf(self, x: Any, shape: Any, scale: Any) -> Float64:
        """Log-density of gaps ``x`` (a deterministic law has none: ``ValueError``)."""
        if self._dist is None:
            raise ValueError(f"law {self.name!r} has no density")
        return np.asarray(self._dist(shape, scale).logpdf(x), dtype=np.float64)

    def cdf(self, x: Any, shape: Any, scale: Any) -> Float64:
        """Probability that a gap is <= ``x``."""
        if self._dist is None:
            return np.asarray(np.asarray(x, np.float64) >= np.asarray(scale, np.float64), dtype=np.float64)
        return np.asarray(self._dist(shape, scale).cdf(x), dtype=np.float64)


def _scipy(name: str, shape_arg: bool) -> Callable[[Any, Any], Any]:
    """The frozen scipy.stats law ``name`` (imported on first use: arrival models load
    without scipy.stats, which only the log-density and cdf need)."""

    def frozen(shape: Any, scale: Any) -> Any:
        from scipy import stats

        dist = getattr(stats, name)
        return dist(shape, scale=scale) if shape_arg else dist(scale=scale)

    return frozen


_TABLE = (
    Law("poisson", POISSON, ("scale",), ("exponential", "Exponential", "Poisson"),
        _dist=_scipy("expon", False)),
    Law("gamma", GAMMA, ("shape", "scale"), ("Gamma",), release_code=1, release_name="Gamma",
        _dist=_scipy("gamma", True)),
    Law("weibull", WEIBULL, ("shape", "scale"), ("Weibull",), release_code=2, release_name="Weibull",
        _dist=_scipy("weibull_min", True)),
    Law("deterministic", DETERMINISTIC, ("scale",), ("Deterministic",)),
)  # fmt: skip
_BY_NAME = {n: row for row in _TABLE for n in (row.name, *row.aliases)}
_BY_CODE = {row.code: row for row in _TABLE}

#: Release-file law code -> law (code 0 is "no law": a window with rate 0).
RELEASE_LAWS = {row.release_code: row for row in _TABLE if row.release_code is not None}
#: Law name -> kernel code, for the arrival models' ``laws`` vocabulary ("model": an object piece).
LAWS = {**{row.name: row.code for row in _TABLE}, "model": OBJECT}


def law(name: str) -> Law:
    """The law called ``name`` in any vocabulary (``"exponential"``, ``"Gamma"``, ``"weibull"``, ...).

    >>> law("Weibull").release_code
    2
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"law: `name` must be one of {sorted(_BY_NAME)!r}, got {name!r}") from None


def law_by_code(code: int) -> Law:
    """The law of kernel code ``code`` (``POISSON`` .. ``DETERMINISTIC``)."""
    try:
        return _BY_CODE[int(code)]
    except KeyError:
        raise ValueError(f"law_by_code: `code` must be one of {sorted(_BY_CODE)!r}, got {code!r}") from None
