"""The upstream prototype's small types: ``Category``, ``ArrivalPat``, ``ClientWindow``.

>>> from servegen.compat import ArrivalPat, Category
>>> Category("reason"), ArrivalPat.GAMMA.value
(<Category.REASON: 'reason'>, 'Gamma')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["ArrivalPat", "Category", "ClientWindow"]


class Category(Enum):
    """Workload categories; a pool is ``(category, model)``, e.g. ``(LANGUAGE, "m-large")``."""

    LANGUAGE = "language"
    MULTIMODAL = "multimodal"
    REASON = "reason"


class ArrivalPat(Enum):
    """Inter-arrival laws of a trace window's ``pat``: ``("Gamma", (shape, scale))``."""

    GAMMA = "Gamma"
    WEIBULL = "Weibull"


@dataclass
class ClientWindow:
    """One client in one trace window of a view, as ``get()`` and filters see it.

    ``timestamp`` is relative to the view's start; ``window_size`` is truncated at the
    view's edges. ``rate``, ``cv``, ``arrival_pat`` are ``None`` when the client sent
    nothing in the window; ``dataset`` maps each field to its PDF (``pdf[i]`` is the
    probability of value ``i``) for the length window in force, or is ``None``.
    """

    client_id: int
    timestamp: float
    window_size: float
    rate: float | None = None
    cv: float | None = None
    arrival_pat: tuple[str, tuple[float, ...]] | None = None
    dataset: Mapping[str, Any] | None = None
