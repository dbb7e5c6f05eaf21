"""Sampling kernels: compiled arrival pieces, gap draws, residuals, renewal points, laws.

The bottom of the sampling engine. Nothing here knows of clients, workloads, pools or
formats; a model compiles itself to :class:`Pieces` and the engine draws from them.

The law table
-------------
One :class:`Law` per renewal law of inter-arrival gaps that a rate and a CV determine,
keyed by its name, with its kernel code, its parameters (``shape``, ``scale`` of the
gap, in seconds when built from a rate), its construction from ``rate`` and ``cv``,
sampler, log-density, log-likelihood and cdf. :func:`law` finds a law by any of its
names in the vocabularies the library meets: ``"exponential"`` (fitting) and
``"Gamma"``/``"Weibull"`` (production pool releases) name the same laws as
``"poisson"``, ``"gamma"`` and ``"weibull"`` (arrival models).

======================  ====================================  ==============================  ======
name                    aliases                               ``shape``, ``scale``            ``cv``
======================  ====================================  ==============================  ======
``poisson``             exponential, Exponential, Poisson     (unused), mean gap              1
``gamma``               Gamma                                 k, theta                        > 0
``weibull``             Weibull                               k, lambda                       > 0
``lognormal``           LogNormal                             sigma, exp(mu) (scipy lognorm)  > 0
``hyperexponential``    Hyperexponential, H2                  p (burst phase), mean gap       >= 1
``deterministic``       Deterministic                         (unused), the gap               0
======================  ====================================  ==============================  ======

``hyperexponential`` is the two-phase exponential mixture with balanced means (each
phase carries half of the mean gap, the usual H2 convention), so ``cv`` fixes ``p``; it
is the default :class:`~servegen.Hyperexponential`.

>>> g = law("Gamma")
>>> g.name, g.code
('gamma', 1)
>>> shape, scale = g.from_rate_cv(rate=2.0, cv=0.5)
>>> float(shape), float(scale), float(g.mean(shape, scale))
(4.0, 0.125, 0.5)
>>> law("exponential").name, float(law("poisson").cdf(1.0, 1.0, 1.0)).__round__(4)
('poisson', 0.6321)
>>> h = law("H2")
>>> p, mean = h.from_rate_cv(rate=1.0, cv=3.0)
>>> round(float(p), 4), float(h.cv(p)).__round__(9)
(0.9472, 3.0)
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
    "HYPEREXP",
    "LAWS",
    "LOGNORMAL",
    "OBJECT",
    "POISSON",
    "RELEASE_CODES",
    "RELEASE_LAWS",
    "RELEASE_NAMES",
    "WEIBULL",
    "Law",
    "OpProcess",
    "Pieces",
    "draw_gaps",
    "draw_residual",
    "law",
    "law_by_code",
    "renewal_points",
    "renewal_run",
    "weibull_shape",
]

Float64 = NDArray[np.float64]

# Family codes of the vectorized renewal kernel (OBJECT: a piece drawn by its own object).
POISSON, GAMMA, WEIBULL, DETERMINISTIC, OBJECT, LOGNORMAL, HYPEREXP = 0, 1, 2, 3, 4, 5, 6


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
    shape: Float64  # kernel shape (gamma/weibull k, lognormal sigma, hyperexponential p); else unused
    scale: Float64  # kernel scale giving unit-mean gaps
    objects: tuple[Any, ...] | None = None  # per-piece OpProcess for family OBJECT (None elsewhere)

    def __post_init__(self) -> None:
        # a client keeps its compiled pieces (Client._pieces): read-only views, so no
        # caller can change them, nor the arrays they were built from
        for name in ("times", "rates", "family", "shape", "scale"):
            view = getattr(self, name).view()
            view.flags.writeable = False
            object.__setattr__(self, name, view)

    @staticmethod
    def renewal(times: Any, rates: Any, family: Any, cv: Any) -> Pieces:
        times = np.asarray(times, dtype=np.float64)
        rates = np.asarray(rates, dtype=np.float64)
        family = np.asarray(family, dtype=np.uint8)
        cv = np.asarray(cv, dtype=np.float64)
        shape = np.ones_like(cv)
        scale = np.ones_like(cv)
        for code in (GAMMA, WEIBULL, LOGNORMAL, HYPEREXP):  # each piece's unit-mean law, from the table
            m = family == code
            if m.any():
                shape[m], scale[m] = _BY_CODE[code].unit(cv[m])
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
    if family == LOGNORMAL:
        return rng.lognormal(0.0, shape, n) * scale
    if family == HYPEREXP:  # an exponential gap, scaled by the mean of its phase
        burst = rng.random(n) < shape
        m1, m2 = _h2_means(shape, scale)
        return rng.standard_exponential(n) * np.where(burst, m1, m2)
    return np.ones(n)


def draw_residual(family: int, shape: float, scale: float, rng: np.random.Generator) -> float:
    """Time to the first arrival of a stationary (equilibrium) renewal process.

    The residual is ``U * X*`` where ``X*`` is the size-biased gap: Gamma(k + 1) for a
    Gamma(k) gap, ``Gamma(1 + 1/k) ** (1/k)`` for a Weibull(k) gap and LN(mu + s², s)
    for a LN(mu, s) gap. A balanced hyperexponential spends half its time in each phase,
    and an exponential phase's residual is that phase's gap.
    """
    u = rng.random()
    if family == POISSON:
        return float(rng.standard_exponential())
    if family == GAMMA:
        return float(u * rng.standard_gamma(shape + 1.0) * scale)
    if family == WEIBULL:
        return float(u * rng.standard_gamma(1.0 + 1.0 / shape) ** (1.0 / shape) * scale)
    if family == LOGNORMAL:
        return float(u * rng.lognormal(shape * shape, shape) * scale)
    if family == HYPEREXP:
        m1, m2 = _h2_means(shape, scale)
        return float(rng.standard_exponential() * (m1 if u < 0.5 else m2))
    return float(u)


def renewal_run(
    draw: Callable[[int, np.random.Generator], Float64],
    offset: float,
    length: float,
    rng: np.random.Generator,
    cv: float = 3.0,
) -> tuple[Float64, float]:
    """Arrivals on [0, length) of a unit-mean renewal process whose gaps ``draw(n, rng)`` gives.

    ``offset`` is the position of the next arrival (>= 0); ``cv`` (of the gaps) only sizes
    the batches. Returns the positions inside the interval and the offset of the next
    arrival relative to the interval's end. :func:`renewal_points` runs the table's laws
    through it; a process with its own gap law (a general
    :class:`~servegen.Hyperexponential`) passes its sampler.
    """
    if offset >= length:
        return np.empty(0), offset - length
    expected = length - offset
    parts = [np.array([offset])]
    pos = offset
    while True:
        # Draw the expected count plus a generous margin, then continue if still short.
        n = int(expected + 6.0 * max(cv, 1.0) * np.sqrt(expected) + 16)
        c = pos + np.cumsum(draw(n, rng))
        i = int(np.searchsorted(c, length, side="left"))
        if i < n:
            parts.append(c[:i])
            return np.concatenate(parts), float(c[i] - length)
        parts.append(c)
        pos = float(c[-1])
        expected = length - pos


def renewal_points(
    family: int, shape: float, scale: float, offset: float, length: float, rng: np.random.Generator
) -> tuple[Float64, float]:
    """Arrivals of a unit-rate renewal process of kernel ``family`` on [0, length).

    ``offset`` is the position of the next arrival (>= 0). Returns the positions inside
    the interval and the offset of the next arrival relative to the interval's end.
    """
    cv = 1.0 / np.sqrt(shape) if family == GAMMA else (0.0 if family == DETERMINISTIC else 3.0)
    return renewal_run(lambda n, r: draw_gaps(family, shape, scale, n, r), offset, length, rng, cv)


# -- the law table -----------------------------------------------------------------------
# Each law's formulas, vectorized: the unit-mean (shape, scale) of a CV, the mean gap, the
# gap CV of a shape, and the cdf. The cdfs are closed forms rather than scipy.stats: the
# fit evaluates them on every gap of a trace, where scipy's per-call argument checks cost
# more than the formula (each is checked against scipy in tests/test_engine.py).
def _h2_means(p: Any, scale: Any) -> tuple[Float64, Float64]:
    """Phase means of a balanced two-phase exponential mixture: ``p m1 = (1 - p) m2 = scale / 2``."""
    p, scale = np.asarray(p, np.float64), np.asarray(scale, np.float64)
    return 0.5 * scale / p, 0.5 * scale / (1.0 - p)


def _weibull_unit(cv: Float64) -> tuple[Float64, Float64]:
    k = weibull_shape(cv).reshape(cv.shape)
    return k, np.exp(-special.gammaln(1 + 1 / k))


def _lognormal_unit(cv: Float64) -> tuple[Float64, Float64]:
    sigma = np.sqrt(np.log1p(cv**2))
    return sigma, np.exp(-0.5 * sigma**2)


def _h2_unit(cv: Float64) -> tuple[Float64, Float64]:
    # balanced means: 1 + cv² = 1 / (2 p (1 - p)), the root p >= 1/2 (short bursts)
    return 0.5 + 0.5 * np.sqrt((cv**2 - 1) / (cv**2 + 1)), np.ones_like(cv)


def _h2_cdf(x: Any, p: Any, scale: Any) -> Float64:
    m1, m2 = _h2_means(p, scale)
    return np.asarray(1.0 - p * np.exp(-x / m1) - (1.0 - p) * np.exp(-x / m2), dtype=np.float64)


def _h2_logpdf(x: Any, p: Any, scale: Any) -> Float64:
    # scipy.stats has no hyperexponential law: the mixture's density, in logs
    m1, m2 = _h2_means(p, scale)
    p = np.asarray(p, np.float64)
    return np.asarray(np.logaddexp(np.log(p / m1) - x / m1, np.log((1 - p) / m2) - x / m2), dtype=np.float64)


def _scipy(name: str, shape_arg: bool) -> Callable[[Any, Any, Any], Float64]:
    """The log-density of scipy.stats law ``name`` (imported on first use: arrival models
    load without scipy.stats, which only the log-density needs)."""

    def logpdf(x: Any, shape: Any, scale: Any) -> Float64:
        from scipy import stats

        dist = getattr(stats, name)
        frozen = dist(shape, scale=scale) if shape_arg else dist(scale=scale)
        return np.asarray(frozen.logpdf(x), dtype=np.float64)

    return logpdf


def _ones(cv: Float64) -> tuple[Float64, Float64]:
    return np.ones_like(cv), np.ones_like(cv)


def _scale_mean(shape: Float64, scale: Float64) -> Float64:
    return scale


def _positive(cv: Float64) -> NDArray[np.bool_]:
    return np.asarray(cv > 0)


@dataclass(frozen=True)
class Law:
    """One renewal law of inter-arrival gaps: a row of the law table.

    ``shape`` and ``scale`` are the law's parameters (see the table in the module
    docstring); all methods are vectorized over numpy arrays. ``cv_rule`` states which
    CVs the law can take (``None``: its CV is fixed and a given ``cv`` is ignored).
    """

    name: str
    code: int
    params: tuple[str, ...]
    aliases: tuple[str, ...]
    _unit: Callable[[Float64], tuple[Float64, Float64]] = field(repr=False)
    _mean: Callable[[Float64, Float64], Float64] = field(repr=False)
    _cv: Callable[[Float64], Float64] = field(repr=False)
    _cdf: Callable[[Any, Any, Any], Float64] = field(repr=False)
    _logpdf: Callable[[Any, Any, Any], Float64] | None = field(default=None, repr=False)
    cv_rule: str | None = None
    _cv_ok: Callable[[Float64], NDArray[np.bool_]] = field(default=_positive, repr=False)
    release_code: int | None = None  # the law's code and name in pool release files
    release_name: str | None = None

    def bad_cv(self, cv: Any) -> float | None:
        """The first of ``cv`` outside the law's ``cv_rule``, or ``None`` when all are fine."""
        if self.cv_rule is None:
            return None
        cv = np.atleast_1d(np.asarray(cv, dtype=np.float64))
        bad = ~self._cv_ok(cv)
        return float(cv[bad][0]) if bad.any() else None

    def check_cv(self, cv: Any, where: str = "cv") -> None:
        """Raise ``ValueError`` naming ``where`` if a CV is outside the law's ``cv_rule``.

        >>> law("hyperexponential").check_cv([2.0, 0.5])
        Traceback (most recent call last):
        ValueError: hyperexponential: `cv` must be >= 1, got 0.5
        """
        bad = self.bad_cv(cv)
        if bad is not None:
            raise ValueError(f"{self.name}: `{where}` must be {self.cv_rule}, got {bad!r}")

    def unit(self, cv: Any) -> tuple[Float64, Float64]:
        """(shape, scale) of unit-mean gaps with CV ``cv`` (the kernel's parameters; unchecked)."""
        return self._unit(np.asarray(cv, dtype=np.float64))

    def from_rate_cv(self, rate: Any, cv: Any) -> tuple[Float64, Float64]:
        """(shape, scale) of gaps with mean ``1/rate`` and CV ``cv`` (ignored by poisson/deterministic)."""
        self.check_cv(cv)
        shape, scale = self.unit(cv)
        return shape, scale / np.asarray(rate, dtype=np.float64)

    def mean(self, shape: Any, scale: Any) -> Float64:
        """Mean gap."""
        return self._mean(np.asarray(shape, np.float64), np.asarray(scale, np.float64))

    def cv(self, shape: Any) -> Float64:
        """Coefficient of variation of the gaps."""
        return self._cv(np.asarray(shape, np.float64))

    def sample(self, shape: float, scale: float, n: int, *, rng: np.random.Generator) -> Float64:
        """``n`` gaps (the engine's kernel, :func:`draw_gaps`, rescaled)."""
        gaps = draw_gaps(self.code, float(shape), float(scale), n, rng)
        return gaps * float(scale) if self.code in (POISSON, DETERMINISTIC) else gaps

    def logpdf(self, x: Any, shape: Any, scale: Any) -> Float64:
        """Log-density of gaps ``x`` (a deterministic law has none: ``ValueError``)."""
        if self._logpdf is None:
            raise ValueError(f"law {self.name!r} has no density")
        return self._logpdf(np.asarray(x, np.float64), shape, scale)

    def loglik(self, x: Any, shape: float, scale: float) -> float:
        """Log-likelihood of the gaps ``x`` (the sum of :meth:`logpdf`).

        >>> round(law("poisson").loglik([1.0, 3.0], 1.0, 2.0), 4)  # 2 log(1/2) - 4/2
        -3.3863
        """
        return float(np.sum(self.logpdf(x, shape, scale)))

    def cdf(self, x: Any, shape: Any, scale: Any) -> Float64:
        """Probability that a gap is <= ``x``."""
        with np.errstate(divide="ignore", invalid="ignore"):  # x = 0 and log(0) are fine here
            return np.asarray(self._cdf(np.asarray(x, np.float64), shape, scale), dtype=np.float64)


def _weibull_cv(k: Float64) -> Float64:
    return np.sqrt(np.exp(special.gammaln(1 + 2 / k) - 2 * special.gammaln(1 + 1 / k)) - 1)


_TABLE = (
    Law("poisson", POISSON, ("scale",), ("exponential", "Exponential", "Poisson"),
        _ones, _scale_mean, lambda k: np.ones_like(k),
        lambda x, a, s: -np.expm1(-x / s), _scipy("expon", False)),
    Law("gamma", GAMMA, ("shape", "scale"), ("Gamma",),
        lambda cv: (1.0 / cv**2, cv**2), lambda k, s: k * s, lambda k: 1 / np.sqrt(k),
        lambda x, a, s: special.gammainc(a, x / s), _scipy("gamma", True),
        cv_rule="> 0", release_code=1, release_name="Gamma"),
    Law("weibull", WEIBULL, ("shape", "scale"), ("Weibull",),
        _weibull_unit, lambda k, s: s * np.exp(special.gammaln(1 + 1 / k)), _weibull_cv,
        lambda x, a, s: -np.expm1(-((x / s) ** a)), _scipy("weibull_min", True),
        cv_rule="> 0", release_code=2, release_name="Weibull"),
    Law("lognormal", LOGNORMAL, ("shape", "scale"), ("LogNormal",),
        _lognormal_unit, lambda k, s: s * np.exp(0.5 * k**2), lambda k: np.sqrt(np.expm1(k**2)),
        lambda x, a, s: special.ndtr((np.log(x) - np.log(s)) / a), _scipy("lognorm", True),
        cv_rule="> 0"),
    Law("hyperexponential", HYPEREXP, ("p", "scale"), ("Hyperexponential", "H2"),
        _h2_unit, _scale_mean, lambda p: np.sqrt(0.5 / (p * (1 - p)) - 1), _h2_cdf, _h2_logpdf,
        cv_rule=">= 1", _cv_ok=lambda cv: np.asarray(cv >= 1)),
    Law("deterministic", DETERMINISTIC, ("scale",), ("Deterministic",),
        _ones, _scale_mean, lambda k: np.zeros_like(k),
        lambda x, a, s: np.asarray(x >= s, dtype=np.float64)),
)  # fmt: skip
_BY_NAME = {n: row for row in _TABLE for n in (row.name, *row.aliases)}
_BY_CODE = {row.code: row for row in _TABLE}

#: Release-file law code -> law (code 0 is "no law": a window with rate 0).
RELEASE_LAWS = {row.release_code: row for row in _TABLE if row.release_code is not None}
#: Release-file law name -> release code (``"Gamma"`` -> 1), and back: upstream's spelling.
RELEASE_CODES = {
    row.release_name: row.release_code
    for row in _TABLE
    if row.release_name is not None and row.release_code is not None
}
RELEASE_NAMES = {code: name for name, code in RELEASE_CODES.items()}
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
    """The law of kernel code ``code`` (``POISSON`` .. ``HYPEREXP``, not ``OBJECT``)."""
    try:
        return _BY_CODE[int(code)]
    except KeyError:
        raise ValueError(f"law_by_code: `code` must be one of {sorted(_BY_CODE)!r}, got {code!r}") from None
