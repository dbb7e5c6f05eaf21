"""The one pool record: per-client, per-window arrival statistics of a production pool.

A production pool, wherever it comes from, is the same table: ``C`` clients, ``W``
arrival windows, and per (client, window) a request rate, an inter-arrival CV and the
fitted law (its release code and its shape and scale; code 0, no law, exactly where the
rate is 0). :class:`PoolRecord` holds it once; each source extends it with its length
data:

* :class:`servegen.pools._release.RawPool`, read from the release files: ``float64``,
  the CSV's decimals as parsed;
* :class:`servegen.pools._profiles.Profile`, the shipped profiles: ``float32``, exactly
  the float32 of those values (half the size; the build checks the round trip);
* ``servegen.compat._tables.Tables``, the compatibility layer's pools: ``float64``,
  NaN where a window has no law (its custom pools come from user dicts).

The float type is the record's type parameter; :meth:`PoolRecord.fields_as` casts a
record's fields to build another record from them.

>>> import numpy as np
>>> r = PoolRecord(name="toy", client_ids=np.array([7]), window_start=np.array([0, 600]),
...                rate=np.array([[1.5, 0.0]]), cv=np.array([[2.0, 0.0]]),
...                law=np.array([[1, 0]], np.uint8), shape=np.array([[0.25, 0.0]]),
...                scale=np.array([[2.67, 0.0]]), fields=("input_tokens",))
>>> r.fields_as(np.float32)["scale"].dtype, r.fields_as(np.float32)["law"] is r.law
(dtype('float32'), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["RECORD_FIELDS", "PoolRecord"]

F = TypeVar("F", np.float32, np.float64)

#: The record's per-(client, window) float arrays (cast by :meth:`PoolRecord.fields_as`).
_FLOATS = ("rate", "cv", "shape", "scale")
#: The record's fields, in order.
RECORD_FIELDS = ("name", "client_ids", "window_start", "rate", "cv", "law", "shape", "scale", "fields")


@dataclass(frozen=True, eq=False)
class PoolRecord(Generic[F]):
    """Arrival statistics of a pool: ``C`` clients by ``W`` windows.

    Attributes
    ----------
    name : str
        Pool name, e.g. ``"language/m-large"``.
    client_ids : ndarray of int64, shape (C,)
        Upstream client ids (chunk numbers); row ``i`` of every array is ``client_ids[i]``.
    window_start : ndarray, shape (W,)
        Start of each arrival window, seconds (int64 ``600 * arange(W)`` for the release
        and the profiles; float64 for compat's custom pools).
    rate, cv, shape, scale : ndarray of ``F``, shape (C, W)
        Requests/s, inter-arrival CV, and the fitted law's shape and scale.
    law : ndarray of uint8, shape (C, W)
        The fitted law's release code (the law table's ``release_code``: 1 Gamma,
        2 Weibull; 0 no law).
    fields : tuple of str
        The pool's length fields, in the release's order.
    """

    name: str
    client_ids: NDArray[np.int64]
    window_start: NDArray[Any]
    rate: NDArray[F]
    cv: NDArray[F]
    law: NDArray[np.uint8]
    shape: NDArray[F]
    scale: NDArray[F]
    fields: tuple[str, ...]

    def fields_as(self, dtype: type[np.floating[Any]]) -> dict[str, Any]:
        """The record's fields as keyword arguments, float arrays cast to ``dtype``."""
        out = {k: getattr(self, k) for k in RECORD_FIELDS}
        out.update({k: getattr(self, k).astype(dtype) for k in _FLOATS})
        return out
