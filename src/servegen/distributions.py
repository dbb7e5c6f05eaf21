"""Value models: the distributions of token counts and other per-request quantities.

Every model is a frozen pydantic description with one documented parameterization, a
vectorized ``sample(n, *, rng)``, and ``cdf``/``ppf``/``mean`` for summaries and for
copula-based dependence. Sampling uses numpy's ``Generator`` directly (scipy's ``rvs``
costs ~50 µs of argument handling per call, which dominates the small per-window
batches a workload draws); ``cdf``/``ppf``/``mean`` delegate to :mod:`scipy.stats`.

>>> import numpy as np, servegen as sg
>>> sg.Exponential(mean=250).sample(3, rng=np.random.default_rng(0)).round(1)
array([170. , 254.9,   5. ])
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import ConfigDict, Field, model_validator
from scipy import integrate, special, stats
from scipy.optimize import elementwise

from ._alias import alias_draw, alias_table
from ._base import FloatArray, Frozen, parse_model

__all__ = [
    "Clipped",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "LogNormal",
    "Mixture",
    "Pareto",
    "Uniform",
    "ValueModel",
    "Zipf",
]

Float64 = NDArray[np.float64]


@runtime_checkable
class ValueModel(Protocol):
    """Anything that can draw ``n`` values: the one verb a user-defined model needs."""

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64: ...


class Distribution(Frozen):
    """Base class of the built-in value models."""

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:  # pragma: no cover
        """Draw ``n`` independent values."""
        raise NotImplementedError

    def cdf(self, x: ArrayLike) -> Float64:  # pragma: no cover
        """P(X <= x), vectorized."""
        raise NotImplementedError

    def ppf(self, q: ArrayLike) -> Float64:  # pragma: no cover
        """The quantile function (inverse of ``cdf``), vectorized over ``q`` in [0, 1]."""
        raise NotImplementedError

    def mean(self) -> float:  # pragma: no cover
        """The expected value (``inf`` when it does not exist)."""
        raise NotImplementedError

    def partial_mean(self, x: float) -> float:
        """The partial expectation ``E[X; X <= x]`` (``mean()`` from the top of the support).

        Exact (closed form) for the built-in laws. Every model's support is bounded
        below, so for a model without a closed form this integrates its quantile
        function, which is bounded on ``[0, cdf(x)]``: ``E[X; X <= x] = ∫ ppf(q) dq``.

        >>> Exponential(mean=1).partial_mean(np.inf), Uniform(low=0, high=4).partial_mean(2)
        (1.0, 0.5)
        """
        lo, hi = self.support
        if x >= hi:
            return float(self.mean())
        if x < lo:
            return 0.0
        return float(self._partial(float(x)))

    def _partial(self, x: float) -> float:
        """``E[X; X <= x]`` for ``x`` inside the support (``lo <= x < hi``)."""
        val, _ = integrate.quad(lambda q: float(self.ppf(q)), 0, float(self.cdf(x)), limit=200)
        return float(val)

    @property
    def support(self) -> tuple[float, float]:  # pragma: no cover
        """The closed interval (low, high) that holds every value the model can draw."""
        raise NotImplementedError


class _Scipy(Distribution):
    """A model whose cdf/ppf/mean are those of a frozen scipy.stats distribution."""

    @cached_property
    def _frozen(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    def cdf(self, x: ArrayLike) -> Float64:
        return np.asarray(self._frozen.cdf(x), dtype=np.float64)

    def ppf(self, q: ArrayLike) -> Float64:
        return np.asarray(self._frozen.ppf(q), dtype=np.float64)

    def mean(self) -> float:
        return float(self._frozen.mean())

    @property
    def support(self) -> tuple[float, float]:
        lo, hi = self._frozen.support()
        return float(lo), float(hi)


class Constant(Distribution):
    """Always ``value``.

    >>> Constant(value=512).sample(2, rng=np.random.default_rng(0))
    array([512., 512.])
    """

    kind: Literal["constant"] = "constant"
    value: float

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return np.full(n, self.value, dtype=np.float64)

    def cdf(self, x: ArrayLike) -> Float64:
        return (np.asarray(x, dtype=np.float64) >= self.value).astype(np.float64)

    def ppf(self, q: ArrayLike) -> Float64:
        return np.full(np.shape(q), self.value, dtype=np.float64)

    def mean(self) -> float:
        return self.value

    @property
    def support(self) -> tuple[float, float]:
        return self.value, self.value


class Uniform(_Scipy):
    """Continuous uniform on [``low``, ``high``].

    >>> Uniform(low=10, high=20).mean()
    15.0
    """

    kind: Literal["uniform"] = "uniform"
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        if self.low > self.high:
            raise ValueError(f"Uniform: `low` must be <= `high`, got low={self.low!r}, high={self.high!r}")
        return self

    @cached_property
    def _frozen(self) -> Any:
        return stats.uniform(loc=self.low, scale=self.high - self.low)

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return rng.uniform(self.low, self.high, size=n)

    def ppf(self, q: ArrayLike) -> Float64:
        return self.low + np.asarray(q, dtype=np.float64) * (self.high - self.low)

    def _partial(self, x: float) -> float:
        return (x - self.low) * (x + self.low) / (2 * (self.high - self.low))

    @property
    def support(self) -> tuple[float, float]:
        return self.low, self.high


class Exponential(_Scipy):
    """Exponential with the given ``mean`` (> 0); the study's law for output lengths.

    >>> Exponential(mean=100).ppf(0.5).round(2)
    np.float64(69.31)
    """

    kind: Literal["exponential"] = "exponential"
    mean_: float = Field(gt=0, alias="mean")

    # Built and dumped by the alias only: with populate_by_name, pydantic's mypy plugin
    # would type the constructor as Exponential(mean_=...), rejecting the documented call.
    model_config = ConfigDict(serialize_by_alias=True)

    @cached_property
    def _frozen(self) -> Any:
        return stats.expon(scale=self.mean_)

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return rng.exponential(self.mean_, size=n)

    def mean(self) -> float:
        return self.mean_

    def _partial(self, x: float) -> float:
        u = x / self.mean_
        return self.mean_ * (-np.expm1(-u) - u * np.exp(-u))


class LogNormal(_Scipy):
    """Log-normal: ``exp(N(mu, sigma**2))``; ``mu`` and ``sigma`` (> 0) of the underlying normal.

    >>> round(LogNormal(mu=0, sigma=1).mean(), 4)
    1.6487
    """

    kind: Literal["lognormal"] = "lognormal"
    mu: float
    sigma: float = Field(gt=0)

    @cached_property
    def _frozen(self) -> Any:
        return stats.lognorm(s=self.sigma, scale=np.exp(self.mu))

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return rng.lognormal(self.mu, self.sigma, size=n)

    def _partial(self, x: float) -> float:
        if x <= 0:
            return 0.0
        s = self.sigma
        return float(np.exp(self.mu + s * s / 2) * special.ndtr((np.log(x) - self.mu - s * s) / s))


class Pareto(_Scipy):
    """Pareto type I: ``P(X > x) = (xmin / x) ** alpha`` for ``x >= xmin``.

    >>> Pareto(alpha=2, xmin=100).mean()
    200.0
    """

    kind: Literal["pareto"] = "pareto"
    alpha: float = Field(gt=0)
    xmin: float = Field(gt=0)

    @cached_property
    def _frozen(self) -> Any:
        return stats.pareto(b=self.alpha, scale=self.xmin)

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        # numpy's pareto is the Lomax (type II) law; shifting by one gives type I.
        return self.xmin * (1.0 + rng.pareto(self.alpha, size=n))

    def _partial(self, x: float) -> float:
        # alpha xmin / (alpha - 1) * (1 - (xmin / x) ** (alpha - 1)); xmin log(x / xmin) at 1
        a, log_r = self.alpha, np.log(self.xmin / x)
        return float(a * self.xmin * (-log_r if a == 1 else -np.expm1((a - 1) * log_r) / (a - 1)))


class Empirical(Distribution):
    """A probability mass function over ``values`` (sorted on construction).

    ``probs`` must be non-negative and sum to 1 (within 1e-6; renormalized exactly).
    Sampling uses the alias method: O(1) per draw from one 64-bit random word.

    >>> e = Empirical(values=[128, 512, 2048], probs=[0.2, 0.5, 0.3])
    >>> e.mean(), e.ppf([0.1, 0.5, 0.95]).tolist()
    (896.0, [128.0, 512.0, 2048.0])
    """

    kind: Literal["empirical"] = "empirical"
    values: FloatArray
    probs: FloatArray

    @model_validator(mode="after")
    def _check(self) -> Empirical:
        v, p = self.values, self.probs
        if v.size == 0:
            raise ValueError("Empirical: `values` must not be empty")
        if v.size != p.size:
            raise ValueError(
                f"Empirical: `values` and `probs` must have the same length, got {v.size} and {p.size}"
            )
        if not (np.isfinite(v).all() and np.isfinite(p).all()):
            raise ValueError("Empirical: `values` and `probs` must be finite")
        if (p < 0).any():
            raise ValueError(f"Empirical: `probs` must be >= 0, got {float(p[p < 0][0])!r}")
        total = p.sum()
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"Empirical: `probs` must sum to 1, got sum {float(total)!r}")
        # Keep the probabilities exactly as given (sorted with their values): dividing by
        # the sum again on every rebuild would change last bits, so a JSON round trip
        # would not reproduce the same stream. Sampling tables normalize on their own.
        order = np.argsort(v, kind="stable")
        v, p = v[order], p[order]
        if (np.diff(v) == 0).any():
            dup = v[1:][np.diff(v) == 0][0]
            raise ValueError(f"Empirical: `values` must be distinct, got {float(dup)!r} twice")
        v.setflags(write=False)
        p.setflags(write=False)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "probs", p)
        return self

    @cached_property
    def _cdf(self) -> Float64:
        c = np.cumsum(self.probs) / self.probs.sum()
        c[-1] = 1.0
        return c

    @cached_property
    def _alias(self) -> tuple[NDArray[np.uint64], NDArray[np.intp]]:
        thr, alias = alias_table(self.probs)
        # thresholds as 32-bit fixed point; 2**32 (always keep) needs 64-bit storage
        return np.floor(thr * 2.0**32).astype(np.uint64), alias

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return self.values[self.sample_index(n, rng=rng)]

    def sample_index(self, n: int, *, rng: np.random.Generator) -> NDArray[np.intp]:
        """Indices into ``values`` of ``n`` draws (what ``sample`` gathers)."""
        if self.values.size == 1:
            return np.zeros(n, dtype=np.intp)
        return alias_draw(*self._alias, n, rng)

    @cached_property
    def int_values(self) -> NDArray[np.int64] | None:
        """``values`` as int64 when they are all whole numbers in [0, 2**53], else None."""
        v = self.values
        if v[0] >= 0 and v[-1] <= 2**53 and np.array_equal(v, np.floor(v)):
            return v.astype(np.int64)
        return None

    def cdf(self, x: ArrayLike) -> Float64:
        i = np.searchsorted(self.values, np.asarray(x, dtype=np.float64), side="right")
        return np.concatenate([[0.0], self._cdf])[i]

    def ppf(self, q: ArrayLike) -> Float64:
        i = np.searchsorted(self._cdf, np.asarray(q, dtype=np.float64), side="left")
        return self.values[np.minimum(i, self.values.size - 1)]

    def mean(self) -> float:
        return float(self.values @ self.probs / self.probs.sum())

    def _partial(self, x: float) -> float:
        k = int(np.searchsorted(self.values, x, side="right"))
        return float(self.values[:k] @ self.probs[:k] / self.probs.sum())

    @property
    def support(self) -> tuple[float, float]:
        return float(self.values[0]), float(self.values[-1])


class Zipf(Distribution):
    """Bounded Zipf over ranks ``1..n``: ``P(k) ∝ k ** -s``.

    ``n`` is at most 2**24 ranks: sampling keeps a table of ``n`` entries (a spec asking
    for 10**12 ranks would otherwise try to allocate terabytes).

    >>> Zipf(s=1.0, n=3).probs.round(3).tolist()
    [0.545, 0.273, 0.182]
    """

    kind: Literal["zipf"] = "zipf"
    s: float = Field(ge=0)
    n: int = Field(ge=1, le=2**24)

    @cached_property
    def _emp(self) -> Empirical:
        k = np.arange(1, self.n + 1, dtype=np.float64)
        w = k**-self.s
        return Empirical(values=k, probs=w / w.sum())

    @property
    def probs(self) -> Float64:
        return self._emp.probs

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return self._emp.sample(n, rng=rng)

    def cdf(self, x: ArrayLike) -> Float64:
        return self._emp.cdf(x)

    def ppf(self, q: ArrayLike) -> Float64:
        return self._emp.ppf(q)

    def mean(self) -> float:
        return self._emp.mean()

    def _partial(self, x: float) -> float:
        return self._emp.partial_mean(x)

    @property
    def support(self) -> tuple[float, float]:
        return 1.0, float(self.n)


def as_distribution(value: Any) -> Any:
    """Numbers become ``Constant``; dicts are parsed by their ``kind``; objects pass."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return Constant(value=float(value))
    if isinstance(value, dict):
        return parse_model(value)
    return value


class Mixture(Distribution):
    """Draw from ``components[i]`` with probability ``weights[i]``.

    The study's input-length law is ``Mixture([Pareto(...), LogNormal(...)], weights=...)``.

    >>> m = Mixture(components=[Constant(value=1), Constant(value=3)], weights=[0.5, 0.5])
    >>> m.mean()
    2.0
    """

    kind: Literal["mixture"] = "mixture"
    components: list[Any]
    weights: FloatArray

    def __init__(self, components: Any = None, weights: Any = None, **kw: Any) -> None:
        # pydantic's __init__ takes this model's fields; mypy's plugin checks the base's (none)
        super().__init__(components=components, weights=weights, **kw)  # type: ignore[call-arg]

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("components"), (list, tuple)):
            data = {**data, "components": [as_distribution(c) for c in data["components"]]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Mixture:
        c, w = self.components, self.weights
        if not c:
            raise ValueError("Mixture: `components` must not be empty")
        if len(c) != w.size:
            raise ValueError(
                f"Mixture: `components` and `weights` must have the same length, got {len(c)} and {w.size}"
            )
        for i, comp in enumerate(c):
            if not isinstance(comp, Distribution):
                raise TypeError(f"Mixture: `components[{i}]` must be a servegen distribution, got {comp!r}")
        if (w < 0).any() or abs(w.sum() - 1.0) > 1e-6:
            raise ValueError(f"Mixture: `weights` must be >= 0 and sum to 1, got {w.tolist()!r}")
        return self

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        # Counts, then batches: one label per draw, then one batch per component.
        w = self.weights / self.weights.sum()
        labels = rng.choice(w.size, size=n, p=w) if w.size > 1 else np.zeros(n, dtype=np.intp)
        out = np.empty(n, dtype=np.float64)
        for i, comp in enumerate(self.components):
            mask = labels == i
            k = int(np.count_nonzero(mask))
            if k:
                out[mask] = comp.sample(k, rng=rng)
        return out

    def cdf(self, x: ArrayLike) -> Float64:
        x = np.asarray(x, dtype=np.float64)
        return sum(w * c.cdf(x) for w, c in zip(self.weights, self.components, strict=True))

    def ppf(self, q: ArrayLike) -> Float64:
        return _invert_cdf(self, q)

    def mean(self) -> float:
        return self.partial_mean(np.inf)

    def partial_mean(self, x: float) -> float:
        # a zero-weight component adds nothing, even with an infinite mean (0 * inf is nan)
        pairs = zip(self.weights, self.components, strict=True)
        return float(sum(w * c.partial_mean(x) for w, c in pairs if w > 0))

    @property
    def support(self) -> tuple[float, float]:
        sup = [c.support for c in self.components]
        return min(s[0] for s in sup), max(s[1] for s in sup)


class Clipped(Distribution):
    """``dist`` with every draw clamped into [``low``, ``high``] (mass beyond moves to the bound).

    Clamping, not truncation: a ``max_tokens``-style cap leaves the capped requests at the cap.

    >>> Clipped(Constant(value=10), low=0, high=5).sample(1, rng=np.random.default_rng(0))
    array([5.])
    """

    kind: Literal["clipped"] = "clipped"
    dist: Any
    low: float | None = None
    high: float | None = None

    def __init__(
        self, dist: Any = None, low: float | None = None, high: float | None = None, **kw: Any
    ) -> None:
        # pydantic's __init__ takes this model's fields; mypy's plugin checks the base's (none)
        super().__init__(dist=as_distribution(dist), low=low, high=high, **kw)  # type: ignore[call-arg]

    @model_validator(mode="after")
    def _check(self) -> Clipped:
        if not isinstance(self.dist, Distribution):
            raise TypeError(f"Clipped: `dist` must be a servegen distribution, got {self.dist!r}")
        if self.low is None and self.high is None:
            raise ValueError("Clipped: give at least one of `low` and `high`")
        if self._lo > self._hi:
            raise ValueError(f"Clipped: `low` must be <= `high`, got low={self.low!r}, high={self.high!r}")
        return self

    @property
    def _lo(self) -> float:
        return -np.inf if self.low is None else self.low

    @property
    def _hi(self) -> float:
        return np.inf if self.high is None else self.high

    def sample(self, n: int, *, rng: np.random.Generator) -> Float64:
        return np.clip(self.dist.sample(n, rng=rng), self._lo, self._hi)

    def cdf(self, x: ArrayLike) -> Float64:
        x = np.asarray(x, dtype=np.float64)
        return np.where(x < self._lo, 0.0, np.where(x >= self._hi, 1.0, self.dist.cdf(x)))

    def ppf(self, q: ArrayLike) -> Float64:
        return np.clip(self.dist.ppf(q), self._lo, self._hi)

    def mean(self) -> float:
        return self.partial_mean(np.inf)

    def partial_mean(self, x: float) -> float:
        # Y = clip(X, lo, hi) = lo on X <= lo, X on lo < X <= hi, hi on X > hi, so
        # E[Y; Y <= x] = lo P(X <= lo) + E[X; lo < X <= min(x, hi)] + hi P(X > hi) [x >= hi]
        # (exact from the inner model's cdf and partial means; inf when X's tail is).
        lo, hi, d = self._lo, self._hi, self.dist
        if x < lo:
            return 0.0
        out = d.partial_mean(min(x, hi))
        if np.isfinite(lo):
            out += lo * float(d.cdf(lo)) - d.partial_mean(lo)
        if x >= hi and np.isfinite(hi):
            out += hi * (1.0 - float(d.cdf(hi)))
        return float(out)

    @property
    def support(self) -> tuple[float, float]:
        lo, hi = self.dist.support
        return max(lo, self._lo), min(hi, self._hi)


def _invert_cdf(dist: Distribution, q: ArrayLike) -> Float64:
    """Vectorized numerical inverse of a continuous, non-decreasing cdf (bracketing root)."""
    q = np.asarray(q, dtype=np.float64)
    lo, hi = dist.support
    flat = q.ravel()
    out = np.empty_like(flat)
    # Bracket each quantile: start from the support (or a growing window when unbounded).
    a = np.full_like(flat, lo if np.isfinite(lo) else -1.0)
    b = np.full_like(flat, hi if np.isfinite(hi) else 1.0)
    for _ in range(2000):
        short = dist.cdf(b) < flat
        if not short.any() or np.isfinite(hi):
            break
        b = np.where(short, np.where(b > 0, b * 2, b + 1), b)
    for _ in range(2000):
        over = dist.cdf(a) > flat
        if not over.any() or np.isfinite(lo):
            break
        a = np.where(over, np.where(a < 0, a * 2, a - 1), a)
    res = elementwise.find_root(lambda x, p: dist.cdf(x) - p, (a, b), args=(flat,))
    out[:] = res.x
    out[flat <= 0] = lo
    out[flat >= 1] = hi
    return out.reshape(q.shape)


ScalarDistribution = Annotated[
    Constant | Uniform | Exponential | LogNormal | Pareto | Empirical | Zipf | Mixture | Clipped,
    Field(discriminator="kind"),
]
