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
turns, :data:`ITERATIONS` steps, with ``c`` measured on :data:`REPLICAS` superposed
replicas of the client (fewer for long recordings, see :data:`SIMULATED`; a
simulation: the session model has no closed form for its turn times). A stationary
piece converges in one step. Each piece keeps the whole stream's law; a Gamma or
Weibull piece's CV is raised so that starts plus (Poisson-like) later turns keep the
piece's dispersion: ``cv_s² s + c = cv² r``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._rng import generator
from .arrivals import ArrivalSchedule
from .workload import Workload

__all__ = ["ITERATIONS", "REPLICAS", "SIMULATED", "starts_schedule"]

#: Superposed replicas of a client whose later turns give the expected continuation rate.
REPLICAS = 10
#: At most about this many requests per simulation: a long recording gets fewer replicas
#: (a fraction of one for more than this many requests), which its counts per piece allow.
SIMULATED = 500_000
#: Steps of the iteration ``s <- s r / (s + c(s))``.
ITERATIONS = 3
#: The starts keep at least this fraction of the whole stream's rate in every piece.
FLOOR = 0.2


def _continuations(
    client: Any, rates: NDArray[np.float64], total: ArrivalSchedule, end: float, rng: Any
) -> NDArray[np.float64]:
    """Expected rate of later turns per piece of ``total`` when starts follow ``rates``."""
    edges = np.append(total.times, max(end, float(total.times[-1]) + 1.0))
    widths = np.diff(edges)
    expected = float((np.asarray(total.rates) * np.minimum(widths, np.maximum(end - edges[:-1], 0))).sum())
    replicas = min(REPLICAS, SIMULATED / max(expected, 1.0))
    sched = _schedule(total, rates * replicas, total.cvs)
    r = Workload([client.model_copy(update={"arrival": sched})]).sample(end, rng=rng)
    later = r.timestamp[r["turn"] > 1]
    return np.histogram(later, edges)[0] / replicas / widths


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
    client: Any, total: ArrivalSchedule, end: float, *, start_share: float, rng: Any
) -> ArrivalSchedule:
    """The schedule of ``client``'s session starts whose whole stream follows ``total``.

    ``client``: the fitted conversation client (its session model is used, its arrival
    is not); ``total``: the arrival schedule fitted to all of its requests; ``end``: the
    recording's last timestamp; ``start_share``: the recorded share of first turns (the
    iteration's starting point); ``rng`` seeds the simulations. See the module notes.

    >>> import servegen as sg
    >>> chat = sg.Client(arrival=sg.Poisson(rate=1.0), input_tokens=100, output_tokens=50,
    ...     session=sg.Session(turns=3, think_time=sg.Exponential(mean=30), new_tokens=10))
    >>> total = sg.ArrivalSchedule(times=[0, 600], rates=[3.0, 6.0], cvs=[1.0, 1.0], laws=["poisson"] * 2)
    >>> s = starts_schedule(chat, total, 1200.0, start_share=1 / 3, rng=0)
    >>> [round(float(x), 1) for x in s.rates]  # a third of each piece's rate, ramping
    [1.0, 2.0]
    """
    if client.session is None:
        return total
    gen = generator(rng)
    r = np.asarray(total.rates, dtype=np.float64)
    s = r * float(np.clip(start_share, FLOOR, 1.0))
    c = np.zeros_like(r)
    for _ in range(ITERATIONS):
        c = _continuations(client, s, total, end, int(gen.integers(2**62)))
        # multiplicative (Richardson-Lucy-like) step: stays positive and converges for any
        # gain, where s <- r - c oscillates once sessions average more than two turns
        s = np.maximum(s * r / np.maximum(s + c, 1e-12), FLOOR * r)
    cv = np.asarray(total.cvs, dtype=np.float64)
    burst = np.isin(np.asarray(total.laws), ["gamma", "weibull"]) & (s > 0)
    # variance of counts adds up: starts (cv_s^2 s) plus Poisson-like later turns (c)
    raised = np.sqrt(np.maximum(cv**2 * r - np.minimum(c, r - s), 0.0) / np.where(s > 0, s, 1.0))
    cvs = np.where(burst, np.clip(raised, 0.05, 100.0), cv)
    return _schedule(total, s, cvs)
