"""The conversation fit's schedule of session starts keeps the whole stream's burstiness
and per-window rates (issue #13: "the Mooncake conversation trace still round-trips")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import servegen as sg
from servegen.cache import prefix_hit_rate
from servegen.metrics import dispersion_index
from servegen.session_starts import starts_schedule


def bursty_replies(seed=0, duration=1800.0):
    """Poisson first turns (1/s); every second turn waits for the next 20 s burst that
    opens each 2 minutes: the later turns, not the starts, carry the burstiness (as the
    later turns of Mooncake's conversation hour do: their 60 s dispersion is 6, the
    first turns' 1.9)."""
    rng = np.random.default_rng(seed)
    t0 = np.sort(rng.uniform(0, duration, int(duration)))
    ready = t0 + rng.exponential(10.0, t0.size)
    t1 = (np.floor(ready / 120) + 1) * 120 + rng.uniform(0, 20, t0.size)
    keep = t1 < duration
    n = t0.size
    df = pd.DataFrame({
        "timestamp": np.concatenate([t0, t1[keep]]),
        "input_tokens": rng.integers(100, 1000, n + keep.sum()),
        "output_tokens": rng.integers(10, 200, n + keep.sum()),
        "session": np.concatenate([np.arange(n), np.arange(n)[keep]]),
    })  # fmt: skip
    return df.sort_values("timestamp", ignore_index=True)


@pytest.mark.slow
def test_later_turns_that_come_in_bursts_keep_the_streams_dispersion():
    trace = bursty_replies()
    t, end = trace.timestamp.to_numpy(), float(trace.timestamp.max())
    wl = sg.fit(trace)
    assert wl.info["sessions"] and wl.clients[0].session.mean_turns() == pytest.approx(1.9, abs=0.05)
    real = dispersion_index(t, 60.0, end=end)
    assert real > 8  # the bursts every 2 minutes
    runs = [wl.sample(end, rng=s) for s in range(3)]
    # the starts fitted alone (Poisson) gave a smooth stream: dispersion 1.3-1.7; now
    # 0.75x (the quiet minutes keep a floor of starts, whose later turns fill them a bit)
    mean_d60 = np.mean([dispersion_index(r.timestamp, 60.0, end=end) for r in runs])
    assert 0.7 * real < mean_d60 < 1.25 * real
    # ... and per-minute rates off by 45 %; now they follow the recording's
    per_min = np.histogram(t, np.arange(0, 1801, 60))[0]
    gen = np.mean([np.histogram(r.timestamp, np.arange(0, 1801, 60))[0] for r in runs], axis=0)
    assert np.abs(gen - per_min).mean() / per_min.mean() < 0.15
    # a little over: think times spread later turns into the quiet minutes too, where
    # the starts cannot go below their floor (a fifth of the recorded rate)
    assert np.mean([len(r) for r in runs]) / len(trace) == pytest.approx(1.05, abs=0.05)


def test_starts_solve_the_whole_stream_for_long_sessions():
    # four turns a session: later turns are 3x the starts, so s <- r - c(s) would
    # oscillate and diverge; the multiplicative step settles on r / 4
    chat = sg.Client(
        arrival=sg.Poisson(rate=1.0),
        input_tokens=100,
        output_tokens=50,
        session=sg.Session(turns=4, think_time=sg.Exponential(mean=5), new_tokens=10),
    )
    total = sg.ArrivalSchedule(
        times=[0, 300, 600], rates=[4.0, 8.0, 2.0], cvs=[1.0] * 3, laws=["poisson"] * 3
    )
    s = starts_schedule(chat, total, 900.0, start_share=0.6, rng=0)
    np.testing.assert_allclose(s.rates[:2], [1.0, 2.0], rtol=0.05)  # r / 4
    # after the drop, sessions begun at 2/s still send ~0.2 later turns/s for a while
    assert 0.4 < s.rates[2] < 0.48
    assert s.laws == total.laws and (s.cvs == 1.0).all()
    # the regenerated stream has the target rate in every piece (about 2 % noise)
    c = chat.model_copy(update={"arrival": s})
    edges = [0, 300, 600, 900]
    counts = np.mean([np.histogram(c.sample(900, rng=k).timestamp, edges)[0] for k in range(8)], axis=0)
    np.testing.assert_allclose(counts / 300, total.rates, rtol=0.06)
    assert (
        starts_schedule(chat.model_copy(update={"session": None}), total, 900.0, start_share=1, rng=0)
        is total
    )


def test_bursty_pieces_keep_their_count_variance():
    chat = sg.Client(
        arrival=sg.Poisson(rate=1.0),
        input_tokens=100,
        output_tokens=50,
        session=sg.Session(turns=4, think_time=sg.Exponential(mean=5), new_tokens=10),
    )
    total = sg.ArrivalSchedule(times=[0], rates=[8.0], cvs=[1.5], laws=["gamma"])
    s = starts_schedule(chat, total, 600.0, start_share=0.25, rng=0)
    assert s.laws == ["gamma"] and s.rates[0] == pytest.approx(2.0, rel=0.05)
    # starts + Poisson-like later turns keep the count variance: 1.5^2 x 8 = 2 cv^2 + 6
    assert s.cvs[0] == pytest.approx(np.sqrt(6), rel=0.05)


@pytest.mark.slow
def test_mooncake_conversation_hour_keeps_its_burstiness(conversation_trace):
    # The default (conversation) fit gave dispersion ratios 0.69 (10 s) and 0.42 (60 s)
    # and a per-window rate MAPE of 0.066 on the real hour (mean of 5 seeds); the plain
    # fit 0.82, 0.93 and 0.020.
    trace = sg.read_trace(conversation_trace.path, format="mooncake")
    duration = float(trace.timestamp.max())
    wl = sg.fit(trace)
    assert wl.info["sessions"]
    figures = []
    for seed in range(5):
        r = wl.sample(duration, rng=seed)
        c = sg.compare(trace, r)
        figures.append([c[k][f] for k, f in (("n_requests", "ratio"), ("iat_cv", "ratio"),
            ("dispersion_10s", "ratio"), ("dispersion_60s", "ratio"), ("rate_window_mape", "distance"))])  # fmt: skip
        assert prefix_hit_rate(r) == pytest.approx(prefix_hit_rate(trace), abs=0.07)  # as today
    n, cv, d10, d60, mape = np.mean(figures, axis=0)
    assert n == pytest.approx(1.0, abs=0.03)
    assert cv == pytest.approx(1.0, abs=0.15)
    assert d10 == pytest.approx(1.0, abs=0.25)
    assert d60 == pytest.approx(1.0, abs=0.25)
    assert mape <= 0.05
    if conversation_trace.real:  # the recording's rates vary more than a stationary stand-in's
        assert mape <= 0.035
