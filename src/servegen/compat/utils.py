"""Upstream's rate functions and CDF sampler.

A rate function is ``{window start: aggregate req/s}`` over the windows of a view (the
keys ``generate_workload`` expects).

>>> from servegen.compat import Category, ClientPool, get_bounded_rate_fn
>>> view = ClientPool(Category.LANGUAGE, "m-large").span(39600, 43200)
>>> fn = get_bounded_rate_fn(view, 100.0)
>>> len(fn), round(max(fn.values()), 6)
(6, 100.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from servegen._rng import SeedLike
from servegen._validate import check_number, check_whole

from .clientpool import ClientPool, ClientPoolView

__all__ = ["get_bounded_rate_fn", "get_constant_rate_fn", "get_scaled_rate_fn", "sample_from_cdf"]


def _starts(pool: Any, owner: str) -> tuple[list[Any], NDArray[np.float64]]:
    if not isinstance(pool, (ClientPool, ClientPoolView)):
        raise TypeError(f"{owner}: `pool` must be a ClientPool or ClientPoolView, got {pool!r}")
    return pool._view()._eval.window_starts()


def _positive(owner: str, name: str, v: Any, *, zero_ok: bool = False) -> float:
    return check_number(v, name, owner=owner, low=0, strict=not zero_ok)


def get_constant_rate_fn(pool: ClientPool | ClientPoolView, target_rate: float) -> dict[Any, float]:
    """``target_rate`` req/s at every window start of the view (``{}`` if it is empty)."""
    rate = _positive("get_constant_rate_fn", "target_rate", target_rate, zero_ok=True)
    starts, _ = _starts(pool, "get_constant_rate_fn")
    return dict.fromkeys(starts, rate)


def get_scaled_rate_fn(pool: ClientPool | ClientPoolView, scale_factor: float) -> dict[Any, float]:
    """The clients' summed rate per window, times ``scale_factor``.

    Windows where no client sends anything get 0 (upstream left them out, which made
    the result unusable with ``generate_workload`` for such views).
    """
    factor = _positive("get_scaled_rate_fn", "scale_factor", scale_factor, zero_ok=True)
    starts, totals = _starts(pool, "get_scaled_rate_fn")
    return {t: float(r) * factor for t, r in zip(starts, totals.tolist(), strict=True)}


def get_bounded_rate_fn(pool: ClientPool | ClientPoolView, max_rate: float) -> dict[Any, float]:
    """The clients' summed rate per window, scaled down so that its peak is ``max_rate``.

    Left as is when the peak is already below ``max_rate`` (as upstream).
    """
    cap = _positive("get_bounded_rate_fn", "max_rate", max_rate)
    starts, totals = _starts(pool, "get_bounded_rate_fn")
    top = float(totals.max()) if totals.size else 0.0
    factor = cap / top if top > cap else 1.0
    return {t: float(r) * factor for t, r in zip(starts, totals.tolist(), strict=True)}


def sample_from_cdf(cdf: tuple[Any, Any], n_samples: int = 1, rng: SeedLike = None) -> NDArray[Any]:
    """``n_samples`` draws from a ``(values, cumulative_probs)`` pair of ``get_cdfs``.

    ``rng`` is ``None``, a seed, a numpy ``Generator`` (or a legacy ``RandomState``).

    >>> sample_from_cdf((np.array([1.0, 2.0, 5.0]), np.array([0.2, 0.5, 1.0])), 4, rng=0).tolist()
    [5.0, 2.0, 1.0, 1.0]
    """
    if not (isinstance(cdf, (tuple, list)) and len(cdf) == 2):
        raise ValueError(f"sample_from_cdf: `cdf` must be a (values, cumulative_probs) pair, got {cdf!r}")
    values, probs = np.asarray(cdf[0]), np.asarray(cdf[1], dtype=np.float64)
    if values.ndim != 1 or values.shape != probs.shape:
        raise ValueError(
            f"sample_from_cdf: values and cumulative_probs must be 1-D of one length, got shapes "
            f"{values.shape} and {probs.shape}"
        )
    if (np.diff(probs) < 0).any() or not np.isfinite(probs).all():
        raise ValueError(
            f"sample_from_cdf: cumulative_probs must be finite and non-decreasing, got {probs!r}"
        )
    n_samples = check_whole(n_samples, "n_samples", owner="sample_from_cdf")
    if values.size == 0:
        return np.array([])
    if isinstance(rng, np.random.RandomState):
        u = rng.random_sample(int(n_samples))
    else:
        u = np.random.default_rng(rng).random(int(n_samples))
    idx = np.minimum(np.searchsorted(probs, u), values.size - 1)
    return values[idx]
