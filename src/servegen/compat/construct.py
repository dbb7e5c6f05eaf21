"""Upstream's ``generate_workload``: a pool or view and a per-window target rate -> requests.

Sampling runs on servegen's own engine (``Workload.sample``): each client window keeps
its share of the target rate, its recorded CV and its law's family, the number of
requests is random (not ``ceil(rate * window)`` with rescaled gaps), every field is
drawn independently, and each client has its own random stream. The columnar result is
then turned into upstream's list of ``Request`` objects.

>>> from servegen.compat import Category, ClientPool, generate_workload
>>> pool = ClientPool(Category.LANGUAGE, "m-large")
>>> reqs = generate_workload(pool, {0: 100.0, 600: 150.0}, duration=1200, seed=0)
>>> reqs[0].request_id, sorted(reqs[0].data)
(0, ['input_tokens', 'output_tokens'])
>>> 0.9 < sum(r.timestamp < 600 for r in reqs) / 60_000 < 1.1
True
"""

from __future__ import annotations

import gc
import itertools
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from servegen._validate import check_number, is_number
from servegen.attributes import MODALITIES
from servegen.requests import Requests
from servegen.workload import Workload

from ._tables import as_number
from .clientpool import ClientPool, ClientPoolView

__all__ = ["Request", "generate_workload"]


@dataclass
class Request:
    """One request: ``request_id`` (0, 1, ... in time order), ``timestamp`` (s), ``data``.

    ``data`` holds ``input_tokens`` and ``output_tokens``; reasoning pools add
    ``reason_ratio``; multimodal pools hold ``text_tokens``, ``image_tokens``,
    ``audio_tokens``, ``video_tokens`` (lists of tokens per item) and ``output_tokens``.
    """

    request_id: int
    timestamp: float
    data: dict[str, Any]


def generate_workload(
    pool: ClientPool | ClientPoolView,
    rate_fn: Mapping[Any, float],
    duration: float,
    seed: Any = None,
) -> list[Request]:
    """Requests of ``pool`` over [0, ``duration``) s, sorted by time.

    Parameters
    ----------
    pool
        A ``ClientPool`` or a view of one; its first ``duration`` seconds are used.
    rate_fn
        ``{window start: aggregate req/s}``; its keys inside [0, ``duration``) must be
        exactly the view's window starts (``get_constant_rate_fn`` and friends build it).
        Each client gets the share of the target given by its own rate in the window.
    duration
        Seconds, > 0.
    seed
        ``None``, an int, or a numpy ``SeedSequence``/``Generator``.

    Raises
    ------
    ValueError
        ``duration`` not > 0; ``rate_fn`` keys not matching the windows, or a rate not
        finite and >= 0; ``duration`` reaching past an embedded pool's data.
    """
    if not isinstance(pool, (ClientPool, ClientPoolView)):
        raise TypeError(f"generate_workload: `pool` must be a ClientPool or ClientPoolView, got {pool!r}")
    if isinstance(duration, bool) or not isinstance(duration, (int, float, np.integer, np.floating)):
        raise TypeError(f"generate_workload: `duration` must be a number of seconds, got {duration!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"generate_workload: `duration` must be finite and > 0, got {duration!r}")
    if not isinstance(rate_fn, Mapping):
        raise TypeError(f"generate_workload: `rate_fn` must be a dict of start -> req/s, got {rate_fn!r}")
    try:
        view = pool.span(0, duration)
    except ValueError as e:
        raise ValueError(f"generate_workload: `duration` {duration!r} s: {e}") from None
    ev = view._eval
    starts, _ = ev.window_starts()
    if not starts:
        return []
    bad = [t for t in rate_fn if not _is_time(t)]
    if bad:
        raise TypeError(f"generate_workload: `rate_fn` keys must be numbers of seconds, got {bad[0]!r}")
    got = sorted(t for t in rate_fn if 0 <= t < duration)
    if got != starts:
        raise ValueError(
            "Rate function timestamps don't match pool timestamps: the keys of `rate_fn` in "
            f"[0, {duration!r}) must be exactly the view's window starts. Expected {_short(starts)}, "
            f"got {_short(got)}"
        )
    target = np.zeros(len(ev.ts_keys))
    index = {t: j for j, t in enumerate(ev.ts_keys)}
    for t in starts:
        r = rate_fn[t]
        target[index[t]] = check_number(r, f"rate_fn[{t!r}]", owner="generate_workload", low=0)
    totals = ev.totals()
    idle = [t for j, t in enumerate(ev.ts_keys) if totals[j] <= 0 and target[j] > 0]
    if idle:
        # Upstream silently generated nothing there; say so, but keep its behaviour.
        warnings.warn(
            f"generate_workload: `rate_fn` asks for requests at {_short(idle)} s, but no client of the "
            "view sends any there (all filtered out or idle); those windows get no requests",
            UserWarning,
            stacklevel=2,
        )
    dead = (target <= 0) | (totals <= 0)
    clients = ev.native_clients(dead=dead)
    if not clients:
        return []
    # Every window gets its own step (0 where nothing is generated), so no target leaks
    # into a window whose clients were all filtered out.
    rate = {float(t): float(r) for t, r in zip(ev.ts, np.where(dead, 0.0, target), strict=True)}
    rate.setdefault(0.0, 0.0)
    reqs = Workload(clients, rate=rate).sample(float(duration), rng=seed)
    return to_requests(reqs, view.pool._tables.fields)


def to_requests(reqs: Requests, fields: tuple[str, ...]) -> list[Request]:
    """Upstream's list of ``Request`` from a columnar ``Requests`` (vectorized columns,
    one dict and one object per request)."""
    n = len(reqs)
    ts = reqs.timestamp.tolist()
    inp, out = reqs.input_tokens.tolist(), reqs.output_tokens.tolist()
    with _no_gc():
        if any(f"{m}_count" in fields for m in MODALITIES):
            items = [_lists(reqs, f"{m}_tokens", n) for m in MODALITIES]
            key = "text_tokens" if "text_tokens" in fields else "input_tokens"
            data = [
                {key: a, "image_tokens": i, "audio_tokens": au, "video_tokens": v, "output_tokens": b}
                for a, i, au, v, b in zip(inp, *items, out, strict=True)
            ]
        elif "reason_ratio" in fields:
            # The realized reasoning share of the output (what the generated split shows).
            o = reqs.output_tokens
            ratio = np.divide(reqs["reasoning_tokens"], o, out=np.zeros(n), where=o > 0).tolist()
            data = [
                {"input_tokens": a, "output_tokens": b, "reason_ratio": r}
                for a, b, r in zip(inp, out, ratio, strict=True)
            ]
        else:
            key = "text_tokens" if "text_tokens" in fields else "input_tokens"
            data = [{key: a, "output_tokens": b} for a, b in zip(inp, out, strict=True)]
        return list(map(Request, range(n), ts, data))


def _lists(reqs: Requests, name: str, n: int) -> list[list[int]]:
    if name not in reqs:
        return [[] for _ in range(n)]
    rg = reqs[name]
    vals, off = rg.values.tolist(), rg.offsets.tolist()
    return [vals[a:b] for a, b in itertools.pairwise(off)]


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small containers.

    Each allocation burst of 10^5+ dicts and objects triggers repeated collections that
    traverse all of them (3x slower overall); none of these objects form cycles.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _is_time(t: Any) -> bool:
    return is_number(t) and math.isfinite(t)


def _short(ts: list[Any]) -> str:
    shown = [as_number(float(t)) for t in ts[:8]]
    return f"{shown!r}" + (f" ... ({len(ts)} in all)" if len(ts) > 8 else "")
