"""Upstream's ``Client``: one client's trace and dataset, checked on request.

The record is what ``ClientPool.from_clients`` takes and what ``ClientPool.clients``
holds; :mod:`servegen.compat.clientpool` re-exports it under upstream's path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from servegen._validate import check_number, is_number

from ._tables import ProfileDataset, ProfileTrace
from .workload_types import ArrivalPat

__all__ = ["Client"]

_TRACE_KEYS = ("rate", "cv", "pat")
_PDF_ATOL = 1e-6  # upstream's tolerance on a PDF's sum


# -- Client --------------------------------------------------------------------------------
@dataclass
class Client:
    """One client: ``trace`` per window start, ``dataset`` per length-window start.

    ``trace[t]`` is ``{"rate": req/s, "cv": CV of inter-arrival times, "pat": (law,
    (shape, scale))}`` with law ``"Gamma"`` or ``"Weibull"``, or ``None`` for a window
    without requests; the window lasts until the next timestamp (the last one holds on).
    ``dataset[t]`` maps field names (``input_tokens``, ``output_tokens``, ...) to PDFs:
    ``pdf[i]`` is the probability of value ``i``; for ``reason_ratio`` entry ``i`` is the
    ratio ``i / (len(pdf) - 1)``. Clients of an embedded pool read the shipped profile
    through read-only mappings that build each dict or list on access.

    >>> c = Client(7, trace={0: {"rate": 2.0, "cv": 1.5, "pat": ("Gamma", (0.44, 1.1))}},
    ...            dataset={0: {"input_tokens": [0, 0.5, 0.5], "output_tokens": [0, 1.0]}})
    >>> c.validate()
    """

    client_id: int
    trace: Mapping[Any, Mapping[str, Any] | None]
    dataset: Mapping[Any, Mapping[str, Any]]

    def validate(self) -> None:
        """Check the trace and dataset; raise ``ValueError`` naming the entry and rule."""
        who = f"Client {self.client_id!r}"
        if isinstance(self.client_id, bool) or not isinstance(self.client_id, (int, np.integer)):
            raise TypeError(f"Client: `client_id` must be an int, got {self.client_id!r}")
        if isinstance(self.trace, ProfileTrace) and isinstance(self.dataset, ProfileDataset):
            return  # read-only views of a shipped profile, checked when it was built
        for name in ("trace", "dataset"):
            if not isinstance(getattr(self, name), Mapping):
                raise TypeError(f"{who}: `{name}` must be a dict, got {type(getattr(self, name)).__name__}")
        if not self.trace:
            raise ValueError(f"{who}: `trace` must not be empty")
        _check_timestamps(who, "trace", list(self.trace))
        for ts, entry in self.trace.items():
            if entry is not None:
                _check_trace_entry(who, ts, entry)
        _check_timestamps(who, "dataset", list(self.dataset))
        for ts, fields in self.dataset.items():
            if not isinstance(fields, Mapping):
                raise ValueError(f"{who}: `dataset[{ts!r}]` must be a dict of field -> pdf, got {fields!r}")
            for field, pdf in fields.items():
                _check_pdf(f"{who}: `dataset[{ts!r}][{field!r}]`", pdf)


def _check_timestamps(who: str, name: str, keys: list[Any]) -> None:
    for ts in keys:
        if (
            isinstance(ts, bool)
            or not isinstance(ts, (int, float, np.integer, np.floating))
            or not (math.isfinite(ts) and ts >= 0)
        ):
            raise ValueError(f"{who}: `{name}` timestamps must be finite numbers of seconds >= 0, got {ts!r}")
    if keys != sorted(keys):
        raise ValueError(f"{who}: `{name}` timestamps must be in ascending order, got {keys[:8]!r}")


def _check_trace_entry(who: str, ts: Any, entry: Any) -> None:
    loc = f"{who}: `trace[{ts!r}]"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{loc}` must be a dict with 'rate', 'cv', 'pat' (or None), got {entry!r}")
    missing = [k for k in _TRACE_KEYS if k not in entry]
    if missing:
        raise ValueError(f"{loc}` is missing {missing!r} (each entry needs 'rate', 'cv' and 'pat')")
    for key in ("rate", "cv"):
        check_number(entry[key], f"trace[{ts!r}]['{key}']", owner=who, low=0)
    pat = entry["pat"]
    if not (isinstance(pat, (tuple, list)) and len(pat) == 2):
        raise ValueError(f"{loc}['pat']` must be (law, (shape, scale)), got {pat!r}")
    law, params = pat
    names = [p.value for p in ArrivalPat]
    if getattr(law, "value", law) not in names:
        raise ValueError(f"{loc}['pat']` law must be one of {names!r}, got {law!r}")
    if not (
        isinstance(params, (tuple, list)) and len(params) == 2
        and all(is_number(p) and math.isfinite(p) and p > 0 for p in params)
    ):  # fmt: skip
        raise ValueError(
            f"{loc}['pat']` parameters must be (shape, scale), two finite numbers > 0, got {params!r}"
        )


def _check_pdf(where: str, pdf: Any) -> None:
    if not isinstance(pdf, (list, tuple, np.ndarray)):
        raise ValueError(f"{where} must be a list of probabilities, got {type(pdf).__name__}")
    try:
        arr = np.asarray(pdf, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must hold numbers only, got {list(pdf)[:5]!r}...") from None
    if arr.ndim != 1:
        raise ValueError(f"{where} must be a flat list of numbers, got {list(pdf)[:5]!r}")
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{where}: probabilities must be finite and >= 0, got {arr[i].item()!r} at index {i}"
        )
    total = float(arr.sum())
    if abs(total - 1.0) > _PDF_ATOL:
        raise ValueError(f"{where}: probabilities must sum to 1 (within {_PDF_ATOL:g}), got {total!r}")
