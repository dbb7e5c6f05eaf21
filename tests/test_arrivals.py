"""Arrival processes: requested rate and CV are met, counts are random, edges are seamless."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import servegen as sg
from servegen.arrivals import weibull_shape


def arrivals(proc, duration, seed=1, **wl_kw):
    client = sg.Client(arrival=proc, input_tokens=1, output_tokens=1)
    return sg.Workload([client], **wl_kw).sample(duration, rng=seed).timestamp


RENEWAL = [sg.Poisson(rate=100)] + [
    law(rate=100, cv=cv) for law in (sg.Gamma, sg.Weibull) for cv in (0.5, 1.0, 3.0, 10.0)
]


@pytest.mark.parametrize("proc", RENEWAL, ids=repr)
@pytest.mark.slow
def test_rate_and_cv_are_met(proc):
    """Rate within 1 % and IAT CV within 5 %, over enough arrivals for the claim to be decisive.

    The count over N expected arrivals has relative sd cv/sqrt(N), so N = (4 cv / 0.01)^2
    (at least 5e5) puts the 1 % rate tolerance at >= 4 sd; the CV estimate's sd is then
    < 1.5 % even for Weibull cv 10, whose gaps have a huge fourth moment.
    """
    cv = getattr(proc, "cv", 1.0)
    n = max(5e5, (4 * cv / 0.01) ** 2)
    duration = n / 100
    t = (
        sg.Workload([sg.Client(arrival=proc, input_tokens=1, output_tokens=1)])
        .sample(duration, rng=1)
        .timestamp
    )
    gaps = np.diff(t)
    assert len(t) / duration == pytest.approx(100, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0, 6.0, 10.0])
def test_weibull_shape_solves_cv(cv):
    k = weibull_shape(cv)[0]
    m1 = special.gamma(1 + 1 / k)
    m2 = special.gamma(1 + 2 / k)
    assert np.sqrt(m2 / m1**2 - 1) == pytest.approx(cv, rel=1e-8)


@pytest.mark.slow
def test_counts_are_random_with_renewal_dispersion():
    """Window counts vary as the process implies: dispersion ~1 for Poisson, ~cv^2 for Gamma.

    The upstream prototype fixed each window's count (dispersion 0); this would catch it.
    """
    bins = np.arange(0, 600 * 300 + 1, 60.0)
    for proc, target in [(sg.Poisson(rate=2), 1.0), (sg.Gamma(rate=2, cv=3), 9.0)]:
        counts = np.histogram(arrivals(proc, bins[-1], seed=4), bins)[0]
        assert counts.var() / counts.mean() == pytest.approx(target, rel=0.25)


def test_deterministic_is_seamless_across_windows_and_pieces():
    """Gaps of a rate-1 deterministic process stay exactly 1 across every window and break."""
    same = sg.Piecewise([0, 250, 1300], [sg.Deterministic(rate=1)] * 3)
    for proc in (sg.Deterministic(rate=1), same):
        t = arrivals(proc, 3000, seed=9)
        np.testing.assert_allclose(np.diff(t), 1.0, atol=1e-9)
        assert 0 <= t[0] < 1 and len(t) == 3000


def test_time_change_at_rate_break():
    """Rate 1 -> 2 at t=600: the straddling gap is one unit of operational time."""
    t = arrivals(sg.Piecewise([0, 600], [sg.Deterministic(rate=1), sg.Deterministic(rate=2)]), 1200, seed=2)
    before, after = t[t < 600], t[t >= 600]
    np.testing.assert_allclose(np.diff(before), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(after), 0.5, atol=1e-9)
    residual = 600 - before[-1]
    assert after[0] - 600 == pytest.approx((1 - residual) / 2, abs=1e-9)


@pytest.mark.slow
def test_no_pile_up_at_window_edges_for_bursty_process():
    """Arrivals near stream-window edges are as frequent as anywhere (phase is uniform)."""
    t = arrivals(sg.Gamma(rate=20, cv=4), 600 * 200, seed=5)
    phase = t % 600
    near_edge = ((phase < 30) | (phase > 570)).mean()
    assert near_edge == pytest.approx(0.1, abs=0.015)


@pytest.mark.slow
def test_time_varying_rate_keeps_cv():
    """A target rate alternating 20/80 req/s: operational-time gaps keep cv 3, rates follow."""
    steps = {float(k * 600): (20.0 if k % 2 == 0 else 80.0) for k in range(100)}
    t = arrivals(sg.Gamma(rate=1, cv=3), 60000, seed=6, rate=steps)
    edges = np.array([*steps, 60000.0])
    rates = np.array(list(steps.values()))
    lam = np.concatenate([[0], np.cumsum(rates * np.diff(edges))])
    op = np.interp(t, edges, lam)
    gaps = np.diff(op)
    assert gaps.mean() == pytest.approx(1.0, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.05)
    counts = np.histogram(t, edges)[0] / 600
    assert counts[0::2].mean() == pytest.approx(20, rel=0.05)
    assert counts[1::2].mean() == pytest.approx(80, rel=0.05)


def test_onoff_rate_and_burstiness():
    p = sg.OnOff(rate_on=20, rate_off=0, mean_on=10, mean_off=30)
    t = arrivals(p, 100_000, seed=7)
    assert len(t) / 100_000 == pytest.approx(p.mean_rate, rel=0.03)
    counts = np.histogram(t, np.arange(0, 100_001, 10.0))[0]
    assert counts.var() / counts.mean() > 10  # far burstier than Poisson


def test_replay_exact_and_time_changed():
    ts = np.sort(np.random.default_rng(0).uniform(0, 1000, 500))
    rep = sg.Replay(timestamps=ts, duration=1000)
    np.testing.assert_allclose(arrivals(rep, 1000), ts, rtol=0, atol=1e-9)
    fast = arrivals(rep, 500, scale=2.0)
    np.testing.assert_allclose(fast, ts / 2, atol=1e-9)


def test_process_sample_standalone():
    p = sg.Gamma(rate=50, cv=2)
    a = p.sample(10, 1010, rng=np.random.default_rng(0))
    b = p.sample(10, 1010, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 10 and a.max() < 1010 and (np.diff(a) >= 0).all()
    assert len(a) / 1000 == pytest.approx(50, rel=0.1)


def test_custom_arrival_protocol():
    class EveryTwoSeconds:
        rate = 0.5

        def sample(self, start, end, *, rng):
            first = np.ceil(start / 2) * 2
            return np.arange(first, end, 2.0)

    t = arrivals(EveryTwoSeconds(), 100)
    np.testing.assert_allclose(t, np.arange(0, 100, 2.0))
    t2 = arrivals(EveryTwoSeconds(), 100, scale=2.0)
    np.testing.assert_allclose(t2, np.arange(0, 100, 1.0))
