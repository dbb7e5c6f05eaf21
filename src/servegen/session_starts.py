"""The schedule of session starts that regenerates a conversation trace's whole stream.

A conversation client sends first turns on its arrival schedule and later turns after
think times. Fitting that schedule to the recorded first turns alone loses the stream's
burstiness: on Mooncake's conversation hour the recorded later turns vary more over
time than the first turns (dispersion of counts at 60 s: 6.0 against 1.9; at 300 s: 21
against 3.6), while regenerated later turns are the first turns smoothed by independent
think times (dispersion about 1). The regenerated hour then kept 40 % of the recorded
60 s dispersion and missed the per-window rates (MAPE 0.08).

So the schedule of starts is fitted to the whole stream instead: the plain fit of all
requests gives the target rate ``r`` per piece (and its gap law), and the starts ``s``
solve ``s + c(s) = r``, where ``c(s)`` is the expected rate of later turns that starts
at ``s`` produce (warm-started ones included, which also takes out the *orphans*: first
turns seen of conversations begun before the recording). ``c`` is linear in ``s``
(gain ``mean turns - 1``, spread over a session's duration); the solution is the
multiplicative iteration ``s <- s r / (s + c(s))`` from the recorded share of first
turns, :data:`ITERATIONS` steps (the first one lands a stationary piece), with ``c``
measured on :data:`REPLICAS` superposed replicas of the client (a simulation: the
session model has no closed form for its turn times).

The recorded counts vary by window partly because the sessions themselves cluster
turns; that part is taken out of ``r`` first (:func:`_session_noise_removed`), or the
regenerated sessions would add it a second time. Each piece keeps the whole stream's
law; a Gamma or Weibull piece's CV is raised so that starts plus (Poisson-like) later
turns keep the piece's dispersion: ``cv_s² s + c = cv² r``.

Cost: three simulations of ten times the recording (Mooncake's hour: 0.5 s more than
the plain fit). Above :data:`SIMULATED` requests per simulation the replicas drop below
ten: the simulation's noise then enters the starts' rates (at 860 k requests an hour,
2.3 replicas, fit in 13 s, 60 s dispersion 1.1-1.3x the recording's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._rng import SeedLike, generator
from .arrivals import ArrivalSchedule
from .workload import Workload

__all__ = ["ITERATIONS", "REPLICAS", "SIMULATED", "starts_schedule"]

#: Superposed replicas of a client whose later turns give the expected continuation rate.
REPLICAS = 10
#: At most about this many requests per simulation: a longer recording gets fewer
#: replicas (a fraction of one past this many requests), a noisier estimate of ``c``.
SIMULATED = 2_000_000
#: Steps of the iteration ``s <- s r / (s + c(s))``.
ITERATIONS = 3
#: The starts keep at least this fraction of the whole stream's rate in every piece.
FLOOR = 0.2


def _cluster_noise(session: NDArray[np.int64], bins: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """Per bin, the sum over sessions of their squared turn counts in it: the variance of
    the bin's count that the sessions make (exact for Poisson starts)."""
    _, first, k = np.unique(session * n + bins, return_index=True, return_counts=True)
    return np.bincount(bins[first], weights=k.astype(np.float64) ** 2, minlength=n)  # type: ignore[return-value]  # weighted: float64


def _continuations(
    client: Any, rates: NDArray[np.float64], total: ArrivalSchedule, end: float, window: float, rng: SeedLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Expected rate of later turns per piece of ``total`` when starts follow ``rates``,
    and the count variance one stream's sessions make per piece and per ``window``."""
    edges = np.append(total.times, max(end, float(total.times[-1]) + 1.0))
    widths = np.diff(edges)
    expected = float((np.asarray(total.rates) * np.minimum(widths, np.maximum(end - edges[:-1], 0))).sum())
    replicas = min(REPLICAS, SIMULATED / max(expected, 1.0))
    sched = _schedule(total, rates * replicas, total.cvs)
    r = Workload([client.model_copy(update={"arrival": sched})]).sample(end, rng=rng)
    n, nw = widths.size, max(1, int(np.ceil(end / window)))
    piece = np.clip(np.searchsorted(edges, r.timestamp, side="right") - 1, 0, n - 1)
    win = np.clip((r.timestamp // window).astype(np.int64), 0, nw - 1)
    later = np.bincount(piece[r["turn"] > 1], minlength=n)
    session = r["session"]  # >= 0 for every turn of a session client
    noise = _cluster_noise(session, piece, n) / replicas
    return later / replicas / widths, noise, _cluster_noise(session, win, nw) / replicas


def _session_noise_removed(
    total: ArrivalSchedule,
    rates: NDArray[np.float64],
    noise: tuple[NDArray[np.float64], NDArray[np.float64]],
    end: float,
    window: float,
    shrink: float | None,
) -> NDArray[np.float64]:
    """``rates`` with their deviations shrunk for the count noise of the sessions
    (``noise``: per piece and per window) instead of a renewal process's.

    The recorded counts vary by window and, inside windows, by rate window. A session's
    turns come together, so the sessions alone make counts vary more than a renewal
    process would; copied into the rates of starts, that variation would come back
    twice (on a stationary synthetic hour at 240 requests/s: 2-5x the 60 s and 300 s
    dispersion). So, as :func:`~servegen.fit` does for a renewal process inside windows
    (keeping a share ``shrink`` of the deviations), the deviations of the window rates
    from the trace's mean, and of the rates inside windows from their window's, keep
    ``sqrt(1 - sum(noise) / sum(d**2))`` of the recorded deviations ``d``.
    """
    times = np.asarray(total.times, dtype=np.float64)
    widths = np.diff(np.append(times, max(end, times[-1] + 1.0)))  # the last piece ends the trace
    win = np.floor(times / window + 1e-9).astype(np.int64)
    width_w = np.maximum(np.bincount(win, weights=widths), 1e-12)
    mean_w = np.bincount(win, weights=rates * widths) / width_w
    mean = float((rates * widths).sum() / widths.sum())

    def keep(dev_counts: NDArray[np.float64], var: NDArray[np.float64]) -> float:
        recorded = float((dev_counts**2).sum())
        return float(np.sqrt(np.clip(1.0 - var.sum() / recorded, 0.0, 1.0))) if recorded > 0 else 1.0

    present = np.unique(win)
    k_w = keep((mean_w[present] - mean) * width_w[present], noise[1][present[present < noise[1].size]])
    dev = rates - mean_w[win]
    inside = 1.0
    if shrink is not None and 0 < shrink <= 1:  # the rates inside windows were refined
        inside = min(keep(dev * widths / shrink, noise[0]) / shrink, 1.0)
    return mean + k_w * (mean_w[win] - mean) + inside * dev


def _schedule(
    total: ArrivalSchedule, rates: NDArray[np.float64], cvs: NDArray[np.float64]
) -> ArrivalSchedule:
    """``total``'s pieces and laws at new rates and CVs (a "model" piece at the new rate)."""
    models = None
    if total.models is not None:
        models = [
            None if m is None else type(m).model_validate({**m.model_dump(), "rate": float(rate)})
            for m, rate in zip(total.models, rates, strict=True)
        ]
    return ArrivalSchedule(times=total.times, rates=rates, cvs=cvs, laws=total.laws, models=models)


def starts_schedule(
    client: Any,
    total: ArrivalSchedule,
    end: float,
    *,
    start_share: float,
    rng: SeedLike,
    window: float | None = None,
    shrink: float | None = None,
) -> ArrivalSchedule:
    """The schedule of ``client``'s session starts whose whole stream follows ``total``.

    ``client``: the fitted conversation client (its session model is used, its arrival
    is not); ``total``: the arrival schedule fitted to all of its requests; ``end``: the
    recording's last timestamp; ``start_share``: the recorded share of first turns (the
    iteration's starting point); ``rng`` seeds the simulations. ``window`` and ``shrink``
    (``fit``'s window and ``info["rate_shrink"]`` of the client, when its rates were
    refined inside windows) let the sessions' own count noise be taken out of the rate
    changes inside windows (:func:`_session_noise_removed`). See the module notes.

    >>> import servegen as sg
    >>> chat = sg.Client(arrival=sg.Poisson(rate=1.0), input_tokens=100, output_tokens=50,
    ...     session=sg.Session(turns=3, think_time=sg.Exponential(mean=30), new_tokens=10))
    >>> total = sg.ArrivalSchedule(times=[0, 600], rates=[3.0, 6.0], cvs=[1.0, 1.0], laws=["poisson"] * 2)
    >>> s = starts_schedule(chat, total, 1200.0, start_share=1 / 3, rng=0)
    >>> [round(float(x), 1) for x in s.rates]  # a third of each piece's rate
    [1.0, 2.0]
    """
    if client.session is None:
        return total
    gen = generator(rng)
    r = np.asarray(total.rates, dtype=np.float64)
    s = r * float(np.clip(start_share, FLOOR, 1.0))
    c = np.zeros_like(r)
    for step in range(ITERATIONS):
        c, *noise = _continuations(client, s, total, end, window or end, int(gen.integers(2**62)))
        if step == 0 and window is not None:
            r = _session_noise_removed(total, r, (noise[0], noise[1]), end, window, shrink)
        # multiplicative (Richardson-Lucy-like) step: stays positive and converges for any
        # gain, where s <- r - c oscillates once sessions average more than two turns
        s = np.maximum(s * r / np.maximum(s + c, 1e-12), FLOOR * r)
    cv = np.asarray(total.cvs, dtype=np.float64)
    burst = np.isin(np.asarray(total.laws), ["gamma", "weibull"]) & (s > 0)
    # variance of counts adds up: starts (cv_s^2 s) plus Poisson-like later turns (c)
    raised = np.sqrt(np.maximum(cv**2 * r - np.minimum(c, r - s), 0.0) / np.where(s > 0, s, 1.0))
    cvs = np.where(burst, np.clip(raised, 0.05, 100.0), cv)
    return _schedule(total, s, cvs)
