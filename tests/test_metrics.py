"""Metrics primitives, clock detection (servegen.metrics) and ``compare`` (servegen.comparison)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import servegen as sg
from servegen.comparison import Comparison, compare
from servegen.metrics import (
    clock_resolution,
    dequantize,
    dispersion_index,
    hurst,
    iat_cv,
    ks,
    spearman,
    variance_time,
    wasserstein,
)


def poisson_times(rate: float, n: int, seed: int) -> np.ndarray:
    return np.cumsum(np.random.default_rng(seed).exponential(1 / rate, n))


def gamma_times(rate: float, cv: float, n: int, seed: int) -> np.ndarray:
    k = 1 / cv**2
    return np.cumsum(np.random.default_rng(seed).gamma(k, 1 / (k * rate), n))


# -- arrival primitives -------------------------------------------------------------------
def test_iat_cv_poisson_gamma_and_deterministic():
    # sd of the sample CV over 1e5 exponential gaps is ~0.003; gamma cv 3 ~0.02
    assert iat_cv(poisson_times(5, 100_000, 0)) == pytest.approx(1.0, abs=0.015)
    assert iat_cv(gamma_times(5, 3.0, 100_000, 1)) == pytest.approx(3.0, rel=0.05)
    assert iat_cv(np.arange(100.0)) == 0.0
    assert iat_cv([5.0, 1.0, 3.0, 2.0]) == iat_cv([1.0, 2.0, 3.0, 5.0])  # unsorted input is sorted
    assert math.isnan(iat_cv([1.0, 2.0]))


def test_dispersion_index_poisson_renewal_and_full_bins_only():
    t = poisson_times(10, 200_000, 2)  # ~20,000 s -> 2,000 bins of 10 s: sd of IDC ~0.03
    assert dispersion_index(t, 10.0) == pytest.approx(1.0, abs=0.12)
    # a renewal process's IDC tends to cv**2 for bins much longer than a gap
    g = gamma_times(10, 2.0, 400_000, 3)
    assert dispersion_index(g, 100.0) == pytest.approx(4.0, rel=0.25)
    # a partial last bin is not a lull: 10 arrivals per full second, 1 in the stub
    t = np.concatenate([np.arange(0, 5, 0.1), [5.05]])
    assert dispersion_index(t, 1.0, end=5.1) == 0.0
    assert math.isnan(dispersion_index([0.5], 1.0, end=1.0))


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_dispersion_index_rejects_bad_bins(bad):
    with pytest.raises(ValueError, match=rf"`bin` must be finite and > 0, got {bad!r}"):
        dispersion_index([1.0, 2.0, 3.0], bad)


def test_variance_time_and_hurst():
    t = poisson_times(5, 100_000, 4)
    curve = variance_time(t, [1, 10, 100])
    assert curve.shape == (3,)
    assert np.allclose(curve, 1.0, atol=0.25)
    assert hurst(t) == pytest.approx(0.5, abs=0.1)
    # on/off traffic with heavy-tailed (Pareto 1.2) sojourns is long-range dependent:
    # H = (3 - 1.2) / 2 = 0.9 in theory; the estimator on 1e5 s reads well above 0.5
    rng = np.random.default_rng(5)
    spells = 10.0 * (1.0 + rng.pareto(1.2, 4000))
    edges = np.concatenate([[0.0], np.cumsum(spells)])
    on = np.arange(spells.size) % 2 == 1
    counts = rng.poisson(np.where(on, 10.0, 0.5) * spells)
    t = np.sort(np.repeat(edges[:-1], counts) + rng.random(counts.sum()) * np.repeat(spells, counts))
    assert hurst(t[t < 100_000], end=100_000) > 0.75


def test_distances_match_scipy():
    rng = np.random.default_rng(6)
    a, b = rng.lognormal(6, 1, 5000), rng.lognormal(6.1, 1, 4000)
    st, pv = ks(a, b)
    ref = stats.ks_2samp(a, b)
    assert (st, pv) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b))
    # large integer samples take the weighted-unique path: same distance
    ia, ib = np.rint(rng.lognormal(6, 1, 80_000)), np.rint(rng.lognormal(6.1, 1, 60_000))
    assert wasserstein(ia, ib) == pytest.approx(stats.wasserstein_distance(ia, ib), rel=1e-9)
    x = rng.normal(size=1000)
    y = x + rng.normal(size=1000)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman(np.ones(10), np.arange(10)))  # constant: NaN, no warning
    with pytest.raises(ValueError, match="`a` must not be empty"):
        ks([], [1.0])


# -- clock quantization --------------------------------------------------------------------
def test_clock_resolution_finds_a_jittered_batch_tick():
    rng = np.random.default_rng(7)
    ticks = np.cumsum(rng.choice([2.999, 3.0, 3.001], size=400))  # ~3 s, with jitter
    t = np.repeat(ticks, rng.poisson(10, ticks.size) + 1)
    q = clock_resolution(t)
    assert q.source == "batch" and q.quantized
    assert q.resolution == pytest.approx(3.0, abs=0.002)
    assert q.tie_fraction > 0.85


def test_clock_resolution_decimal_grid_and_continuous():
    t = np.round(poisson_times(4, 5000, 8), 3)  # integer milliseconds, few ties
    q = clock_resolution(t)
    assert q.resolution == pytest.approx(1e-3) and q.source == "decimal" and not q.quantized
    q = clock_resolution(poisson_times(4, 5000, 9))
    assert (q.resolution, q.quantized, q.source) == (0.0, False, "none")


def test_float_rounding_ties_are_not_a_clock():
    # Gamma with CV 8 puts many gaps below float64 resolution: ties, but no clock.
    t = gamma_times(100, 8.0, 200_000, 10) + 5000.0
    q = clock_resolution(t)
    assert q.tie_fraction > 0.01
    assert not q.quantized


def test_dequantize_spreads_inside_each_tick_reproducibly():
    t = np.repeat(np.arange(0.0, 30.0, 3.0), 50)
    a = dequantize(t, 3.0, rng=np.random.default_rng(1))
    b = dequantize(t, 3.0, rng=np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert ((a >= t) & (a < t + 3.0)).all()
    # Poisson counts spread uniformly inside ticks give Poisson gaps
    rng = np.random.default_rng(2)
    ticks = np.arange(0.0, 30_000.0, 3.0)
    t = np.repeat(ticks, rng.poisson(9, ticks.size))
    assert iat_cv(t) > 2.5
    assert iat_cv(np.sort(dequantize(t, 3.0, rng=rng))) == pytest.approx(1.0, abs=0.03)


# -- compare -------------------------------------------------------------------------------
CLIENT = sg.Client(
    arrival=sg.Gamma(rate=5, cv=2),
    input_tokens=sg.LogNormal(mu=6, sigma=1),
    output_tokens=sg.Exponential(mean=200),
)


def test_compare_same_model_is_close():
    a, b = CLIENT.sample(3600, rng=1), CLIENT.sample(3600, rng=2)
    cmp = compare(a, b)
    assert isinstance(cmp, Comparison)
    t = cmp.table
    for metric in (
        "n_requests",
        "mean_rate",
        "rate_window_mape",
        "iat_cv",
        "iat_cv_raw",
        "iat_cv_window_median",
        "iat_ks",
        "dispersion_1s",
        "dispersion_10s",
        "dispersion_60s",
        "dispersion_600s",
        "hurst",
        "input_tokens_p99",
        "input_tokens_ks",
        "input_tokens_wasserstein",
        "output_tokens_ks",
        "io_spearman",
    ):
        assert metric in t.index
    assert list(t.columns) == ["a", "b", "ratio", "distance", "note"]
    assert abs(cmp["iat_cv"]["ratio"] - 1) < 0.1
    assert cmp["iat_ks"]["distance"] < 0.03
    assert cmp["input_tokens_ks"]["distance"] < 0.03
    assert cmp["output_tokens_ks"]["distance"] < 0.03
    assert cmp["rate_window_mape"]["distance"] < 0.1
    assert cmp["mean_rate"]["a"] == pytest.approx(len(a) / 3600)
    assert len(cmp.windows) == 6 and list(cmp.windows.columns) == [
        "start",
        "end",
        "rate_a",
        "rate_b",
        "cv_a",
        "cv_b",
    ]
    assert "iat_cv" in repr(cmp)


def test_compare_detects_a_difference():
    other = CLIENT.model_copy(update={"input_tokens": sg.LogNormal(mu=6.5, sigma=1)})
    cmp = compare(CLIENT.sample(1800, rng=1), other.sample(1800, rng=1))
    assert cmp["input_tokens_ks"]["distance"] > 0.15
    assert cmp["iat_ks"]["distance"] < 0.05  # same arrivals
    assert cmp["input_tokens_mean"]["ratio"] == pytest.approx(np.exp(0.5), rel=0.1)


def test_compare_dequantizes_a_coarse_clock_and_says_so():
    r = sg.Client(arrival=sg.Poisson(rate=4), input_tokens=100, output_tokens=10).sample(3600, rng=3)
    df = r.to_pandas()
    coarse = df.assign(timestamp=np.floor(df.timestamp / 3.0) * 3.0)
    cmp = compare(coarse, r)
    assert cmp.info["a"]["dequantized"] and not cmp.info["b"]["dequantized"]
    assert cmp.info["a"]["quantization"]["resolution"] == pytest.approx(3.0)
    assert cmp["iat_cv_raw"]["a"] > 2.0
    assert cmp["iat_cv"]["a"] == pytest.approx(1.0, abs=0.05)
    assert compare(coarse, r, dequantize=False)["iat_cv"]["a"] > 2.0


def test_compare_client_shares_by_key():
    wl = sg.Workload(
        {
            "big": sg.Client(arrival=sg.Poisson(rate=8), input_tokens=10, output_tokens=5),
            "small": sg.Client(arrival=sg.Poisson(rate=2), input_tokens=10, output_tokens=5),
        }
    )
    a, b = wl.sample(1200, rng=1), wl.sample(1200, rng=2).to_pandas()
    cmp = compare(a, b)
    assert cmp["n_clients"]["a"] == 2
    assert cmp["top1_client_share"]["a"] == pytest.approx(0.8, abs=0.02)
    assert cmp["client_share_tv"]["distance"] < 0.02
    # no client column on one side: no client rows
    assert "n_clients" not in compare(a, b.drop(columns="client")).table.index


@pytest.mark.slow
def test_compare_plot_returns_a_figure():
    from matplotlib.figure import Figure

    fig = compare(CLIENT.sample(1200, rng=1), CLIENT.sample(1200, rng=2)).plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    assert fig.axes[1].get_xscale() == "log"
    assert [ax.get_title() for ax in fig.axes] == [
        "rate per window",
        "inter-arrival times",
        "dispersion of counts",
        "gap CV per window",
        "input length",
        "output length",
    ]
    disp = fig.axes[2]
    assert disp.get_xscale() == "log" and disp.get_yscale() == "log"
    assert [t.get_text() for t in disp.get_legend().get_texts()] == ["a", "b"]
    # Gamma(cv=2) counts: the curve rises towards cv**2 = 4 at the widest bins
    y = disp.lines[0].get_ydata()
    assert y[0] < y[-1] and 2.5 < y[-1] < 6


TRACE = pd.DataFrame({"timestamp": [0.0, 1.0, 2.0], "input_tokens": [1, 2, 3], "output_tokens": [1, 1, 1]})


@pytest.mark.parametrize(
    ("trace", "exc", "match"),
    [
        (TRACE.drop(columns="input_tokens"), ValueError, r"missing column 'input_tokens'"),
        (TRACE.drop(columns="timestamp"), ValueError, r"missing column 'timestamp'"),
        (TRACE.iloc[:0], ValueError, r"empty \(0 requests\)"),
        (
            TRACE.assign(timestamp=[0.0, -1.0, 2.0]),
            ValueError,
            r"'timestamp' must be finite seconds >= 0, got -1\.0 at row 1",
        ),
        (
            TRACE.assign(output_tokens=[1.0, np.nan, 2.0]),
            ValueError,
            r"'output_tokens' must hold whole token counts, got nan",
        ),
        (TRACE.assign(input_tokens=[1, -3, 2]), ValueError, r"'input_tokens' must be >= 0, got -3 at row 1"),
        ([1, 2, 3], TypeError, r"must be a pandas DataFrame or servegen Requests, got list"),
        (
            TRACE.assign(input_tokens=pd.array([1, None, 2], dtype="Int64")),
            ValueError,
            r"'input_tokens' must hold whole token counts, got nan at row 1",
        ),
        (TRACE.assign(timestamp=["a", "b", "c"]), TypeError, r"'timestamp' must be numeric, got dtype"),
    ],
)
def test_compare_rejects_bad_traces(trace, exc, match):
    with pytest.raises(exc, match=match):
        compare(trace, TRACE)


def test_compare_rejects_bad_window():
    with pytest.raises(ValueError, match=r"`window` must be finite and > 0, got 0"):
        compare(TRACE, TRACE, window=0)
