"""Characterization and fitting (servegen.fit): round trips on real and synthetic traces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import servegen as sg
from servegen.arrivals import weibull_shape
from servegen.comparison import compare
from servegen.fit import FittedWorkload, characterize, fit, fit_lengths
from servegen.metrics import dispersion_index, iat_cv


def load_mooncake(path: Path) -> pd.DataFrame:
    """Mooncake JSONL (ms timestamps) in the canonical schema, read with pandas."""
    d = pd.read_json(path, lines=True)
    return pd.DataFrame(
        {
            "timestamp": d["timestamp"].to_numpy(np.float64) / 1000.0,
            "input_tokens": d["input_length"].astype("int64"),
            "output_tokens": d["output_length"].astype("int64"),
            "hash_ids": d["hash_ids"],
        }
    )


@pytest.fixture(scope="module")
def conversation(conversation_trace) -> pd.DataFrame:
    trace = load_mooncake(conversation_trace.path)
    trace.attrs["rows"] = conversation_trace.rows(12_031)  # or a stand-in's (tests/_synthetic.py)
    return trace


@pytest.fixture(scope="module")
def synthetic_mooncake(synthetic_trace) -> pd.DataFrame:
    return load_mooncake(synthetic_trace.path)


# -- Mooncake round trips -------------------------------------------------------------------
@pytest.mark.slow
def test_mooncake_conversation_round_trip(conversation):
    trace = conversation
    assert len(trace) == trace.attrs["rows"]
    # every request as an arrival (the default models the conversations: test_warm_start.py)
    wl = fit(trace, window=600, sessions=False)
    # the 3 s batch clock is found and undone, and the fit says so
    q = wl.info["quantization"]
    assert q["quantized"] and q["source"] == "batch"
    assert q["resolution"] == pytest.approx(3.0, abs=0.01)
    assert q["tie_fraction"] == pytest.approx(0.90, abs=0.01)
    assert wl.info["dequantized"] and wl.report.attrs["dequantized"]

    duration = float(trace.timestamp.max())
    cmp = compare(trace, wl.sample(duration, rng=0))
    assert cmp["iat_cv_raw"]["a"] > 2.5  # the raw clock reads as extreme burstiness
    assert cmp["iat_cv"]["a"] == pytest.approx(1.0, abs=0.05)
    assert abs(cmp["iat_cv"]["ratio"] - 1) <= 0.15
    assert cmp["input_tokens_ks"]["distance"] <= 0.05
    assert cmp["output_tokens_ks"]["distance"] <= 0.05
    assert abs(cmp["n_requests"]["ratio"] - 1) <= 0.05
    assert cmp["rate_window_mape"]["distance"] <= 0.05
    # One 60 s index over 59 bins has ~15 % sampling error on each side, so compare the
    # trace with the mean over 5 regenerations (and each one with a looser bound).
    target = cmp["dispersion_60s"]["a"]
    idc = np.array(
        [dispersion_index(wl.sample(duration, rng=s).timestamp, 60.0, end=duration) for s in range(5)]
    )
    assert abs(idc.mean() / target - 1) <= 0.30
    assert (np.abs(idc / target - 1) <= 0.45).all()


def test_mooncake_conversation_without_rate_refinement_is_one_piece_per_window(conversation):
    wl = fit(conversation, window=600, rate_window=None, sessions=False)
    a = wl.clients[0].arrival
    assert isinstance(a, sg.ArrivalSchedule)
    assert a.times.tolist() == [0, 600, 1200, 1800, 2400, 3000]
    np.testing.assert_allclose(a.rates, wl.report["rate"])
    assert wl.info["rate_window"] == 600


@pytest.mark.slow
def test_mooncake_synthetic_trace_is_poisson(synthetic_mooncake):
    wl = fit(synthetic_mooncake, window=600)
    a = wl.clients[0].arrival
    assert not wl.info["dequantized"]  # integer ms, few ties: nothing to undo
    cvs = np.where(np.array(a.laws) == "poisson", 1.0, a.cvs)
    assert ((cvs >= 0.9) & (cvs <= 1.1)).all()
    assert 0.9 <= wl.report["iat_cv"].min() and wl.report["iat_cv"].max() <= 1.1
    regenerated = wl.sample(float(synthetic_mooncake.timestamp.max()), rng=1)
    assert 0.9 <= iat_cv(regenerated.timestamp) <= 1.1


def test_characterize_mooncake_reports_quantization(conversation):
    rep = characterize(conversation, window=600)
    assert len(rep) == 6 and rep["n"].sum() == len(conversation)
    assert rep.attrs["quantization"]["resolution"] == pytest.approx(3.0, abs=0.01)
    assert rep["dequantized"].all()
    assert rep["iat_cv"].between(0.9, 1.1).all()
    raw = characterize(conversation, window=600, dequantize=False)
    assert not raw["dequantized"].any()
    assert (raw["iat_cv"] > 2.5).all()
    # zero gaps on a known clock that is not undone are censored, not fitted as values
    assert (raw["iat_censored"] > 0.8 * raw["iat_n"]).all()


# -- known laws ----------------------------------------------------------------------------
def one_client(arrival, input_tokens=100, output_tokens=10, duration=10_000.0, seed=1):
    return sg.Client(arrival=arrival, input_tokens=input_tokens, output_tokens=output_tokens).sample(
        duration, rng=seed
    )


@pytest.fixture(scope="module")
def gamma_trace():
    return one_client(sg.Gamma(rate=10, cv=3))  # ~1e5 requests


@pytest.fixture(scope="module")
def weibull_trace():
    return one_client(sg.Weibull(rate=10, cv=0.7))


@pytest.mark.slow
def test_gamma_cv3_family_and_parameters_recovered(gamma_trace):
    assert len(gamma_trace) > 95_000
    rep = characterize(gamma_trace, window=20_000)  # one window: all 1e5 gaps
    row = rep.iloc[0]
    assert row["law"] == "gamma"
    assert row["rate"] == pytest.approx(10, rel=0.02)
    assert row["iat_cv"] == pytest.approx(3.0, rel=0.05)
    assert row["shape"] == pytest.approx(1 / 9, rel=0.03)  # sd of the MLE ~0.5 %
    assert row["scale"] == pytest.approx(0.9, rel=0.05)  # mean gap 0.1 s = shape * scale
    assert row["iat_censored"] > 0  # gaps below float64 resolution exist at CV 3
    assert row["ks"] < 0.01
    # per 600 s window (~6000 gaps each) the family still wins everywhere
    windows = characterize(gamma_trace, window=600)
    assert (windows["law"] == "gamma").all()
    assert windows["shape"].median() == pytest.approx(1 / 9, rel=0.05)


def test_weibull_cv07_family_and_parameters_recovered(weibull_trace):
    row = characterize(weibull_trace, window=20_000).iloc[0]
    assert row["law"] == "weibull"
    assert row["iat_cv"] == pytest.approx(0.7, rel=0.03)
    k = float(weibull_shape(0.7)[0])
    assert row["shape"] == pytest.approx(k, rel=0.02)
    assert row["scale"] == pytest.approx(0.1 / math.gamma(1 + 1 / k), rel=0.02)
    windows = characterize(weibull_trace, window=600)
    assert (windows["law"] == "weibull").mean() >= 0.9


@pytest.mark.parametrize(
    ("law", "scipy_law"),
    [
        ("gamma", stats.gamma),
        ("weibull", stats.weibull_min),
        ("lognormal", stats.lognorm),
        ("exponential", stats.expon),
    ],
)
def test_vectorized_mle_matches_scipy(weibull_trace, law, scipy_law):
    t = weibull_trace.timestamp[:5001]
    gaps = np.diff(t)
    row = characterize(
        pd.DataFrame({"timestamp": t, "input_tokens": 1, "output_tokens": 1}), window=1e6, laws=(law,)
    ).iloc[0]
    ref = scipy_law.fit(gaps, floc=0)
    if law == "exponential":
        assert row["scale"] == pytest.approx(ref[1], rel=1e-6)
    else:
        assert row["shape"] == pytest.approx(ref[0], rel=2e-3)
        assert row["scale"] == pytest.approx(ref[2], rel=2e-3)
    assert row["loglik"] == pytest.approx(scipy_law.logpdf(gaps, *ref).sum(), rel=1e-4)
    ks_ref = stats.ks_1samp(gaps, scipy_law(*ref).cdf).statistic
    assert row["ks"] == pytest.approx(ks_ref, abs=2e-3)


@pytest.mark.slow
def test_censored_mle_matches_scipy_censored_data(gamma_trace):
    t = gamma_trace.timestamp
    gaps = np.diff(t)
    delta = 256 * np.spacing(t.max())
    data = stats.CensoredData(uncensored=gaps[gaps >= delta], left=np.full(int((gaps < delta).sum()), delta))
    a, _, scale = stats.gamma.fit(data, floc=0)
    row = characterize(gamma_trace, window=20_000, laws=("gamma",)).iloc[0]
    assert row["shape"] == pytest.approx(a, rel=5e-3)
    assert row["scale"] == pytest.approx(scale, rel=5e-3)


@pytest.mark.slow
def test_fit_gamma_round_trip_regenerates_burstiness(gamma_trace):
    wl = fit(gamma_trace, window=600)
    assert set(wl.clients[0].arrival.laws) == {"gamma"}
    again = wl.sample(10_000, rng=2)
    cmp = compare(gamma_trace, again)
    assert abs(cmp["iat_cv"]["ratio"] - 1) < 0.1
    assert abs(cmp["n_requests"]["ratio"] - 1) < 0.05
    assert abs(cmp["dispersion_60s"]["ratio"] - 1) < 0.3


@pytest.mark.slow
def test_pareto_lognormal_lengths_recovered():
    mix = sg.Mixture([sg.Pareto(alpha=1.5, xmin=2000), sg.LogNormal(mu=6.5, sigma=0.7)], weights=[0.3, 0.7])
    trace = one_client(sg.Poisson(rate=10), input_tokens=mix, output_tokens=sg.Exponential(mean=300), seed=3)
    assert len(trace) > 95_000
    wl = fit(trace, window=600, lengths="parametric")
    inp = wl.info["length_fits"]["input_tokens"][0]
    assert inp["law"] == "pareto_lognormal"
    p = inp["params"]
    assert p["w"] == pytest.approx(0.3, abs=0.02)
    assert p["alpha"] == pytest.approx(1.5, rel=0.05)
    assert p["xmin"] == pytest.approx(2000, rel=0.03)
    assert p["mu"] == pytest.approx(6.5, abs=0.03)
    assert p["sigma"] == pytest.approx(0.7, rel=0.03)
    assert inp["ks"] < 0.01
    out = wl.info["length_fits"]["output_tokens"][0]
    assert out["law"] == "exponential"
    assert out["params"]["mean"] == pytest.approx(300, rel=0.02)
    model = wl.clients[0].input_tokens
    assert isinstance(model, sg.Clipped) and isinstance(model.dist, sg.Mixture)
    assert model.high == trace.input_tokens.max()
    cmp = compare(trace, wl.sample(3600, rng=4))
    assert cmp["input_tokens_ks"]["distance"] < 0.02


def test_fit_lengths_lognormal_and_errors():
    x = np.rint(np.random.default_rng(0).lognormal(7, 0.5, 20_000))
    model, info = fit_lengths(x, laws=("exponential", "lognormal"))
    assert isinstance(model, sg.Clipped) and isinstance(model.dist, sg.LogNormal)
    assert info["law"] == "lognormal"
    assert info["params"]["mu"] == pytest.approx(7, abs=0.01)
    assert info["params"]["sigma"] == pytest.approx(0.5, rel=0.02)
    assert info["aic_lognormal"] < info["aic_exponential"]
    with pytest.raises(ValueError, match="unknown law 'gamma'"):
        fit_lengths(x, laws=("gamma",))
    with pytest.raises(ValueError, match="need at least 2 values, got 1"):
        fit_lengths([5.0])


# -- the fitted model ------------------------------------------------------------------------
def multi_client_trace():
    wl = sg.Workload(
        {
            "chat": sg.Client(
                arrival=sg.Gamma(rate=4, cv=2),
                input_tokens=sg.LogNormal(mu=6, sigma=1),
                output_tokens=sg.Exponential(mean=200),
            ),
            "batch": sg.Client(
                arrival=sg.Weibull(rate=1, cv=0.6),
                input_tokens=sg.Constant(value=512),
                output_tokens=sg.Uniform(low=10, high=20),
            ),
        }
    )
    # 1790 s: a DataFrame trace is taken to end one mean gap after its last request, so
    # stopping short of 1800 keeps that end inside the third 600 s window for any draw
    return wl.sample(1790, rng=5).to_pandas()


def test_fit_by_client_keeps_keys_rates_and_lengths():
    trace = multi_client_trace()
    wl = fit(trace, window=600, client="client")
    assert isinstance(wl, FittedWorkload) and isinstance(wl, sg.Workload)
    assert set(wl.clients) == {"chat", "batch"}
    rep = wl.report
    assert len(rep) == 2 * 3
    for key, rate in (("chat", 4), ("batch", 1)):
        assert rep.loc[rep.client == key, "rate"].mean() == pytest.approx(rate, rel=0.1)
    assert wl.clients["batch"].input_tokens == sg.Empirical(values=[512], probs=[1])
    # compact PMFs: at most max_points points, mean kept exactly, KS within 1 / max_points
    chat = trace.loc[trace.client == "chat", "input_tokens"].to_numpy()
    emp = wl.clients["chat"].input_tokens
    assert emp.values.size <= 256
    assert emp.mean() == pytest.approx(chat.mean(), rel=1e-12)
    grid = np.unique(chat)
    ecdf = np.searchsorted(np.sort(chat), grid, side="right") / chat.size
    assert np.abs(emp.cdf(grid) - ecdf).max() <= 1 / 256 + 1e-12
    small = fit(trace, window=600, client="client", max_points=16).clients["chat"].input_tokens
    assert small.values.size <= 16
    cmp = compare(trace, wl.sample(1800, rng=6))
    assert cmp["client_share_tv"]["distance"] < 0.05


def test_characterize_length_stats_match_pandas_and_scipy():
    trace = multi_client_trace()
    trace["output_tokens"] = np.where(
        trace.client == "chat", trace.input_tokens // 3 + trace.output_tokens, 7
    )
    rep = characterize(trace, window=600, client="client").set_index(["client", "window"])
    groups = trace.groupby([trace.client.astype(str), (trace.timestamp // 600).astype(int)], observed=True)
    for (key, win), g in groups:
        row = rep.loc[(key, win)]
        assert row["n"] == len(g)
        for col, name in (("input_tokens", "input"), ("output_tokens", "output")):
            assert row[f"{name}_mean"] == pytest.approx(g[col].mean())
            for q in (50, 90, 99):
                assert row[f"{name}_p{q}"] == pytest.approx(np.quantile(g[col], q / 100))
        rho = (
            stats.spearmanr(g.input_tokens, g.output_tokens).statistic
            if g.output_tokens.nunique() > 1
            else np.nan
        )
        assert row["io_spearman"] == pytest.approx(rho, nan_ok=True)
        gaps = np.diff(np.sort(g.timestamp))
        assert row["iat_cv"] == pytest.approx(gaps.std(ddof=1) / gaps.mean())
    assert rep.loc[("chat", 0), "io_spearman"] > 0.5


def test_fit_from_requests_and_json_round_trip():
    reqs = sg.Workload(
        {
            "a": sg.Client(
                arrival=sg.Poisson(rate=3),
                input_tokens=sg.LogNormal(mu=5, sigma=1),
                output_tokens=sg.Exponential(mean=50),
            )
        }
    ).sample(1200, rng=1)
    wl = fit(reqs, window=600, client="client")
    assert list(wl.clients) == ["a"]
    again = sg.Workload.from_json(wl.to_json())
    assert again.clients["a"] == wl.clients["a"]
    assert again.sample(600, rng=3).equals(wl.sample(600, rng=3))


def test_fit_carries_the_rank_correlation():
    corr = sg.Client(
        arrival=sg.Poisson(rate=20),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.LogNormal(mu=5, sigma=1),
        dependence=sg.RankCorrelation(input_output=0.6),
    )
    trace = corr.sample(1200, rng=2)
    rho = stats.spearmanr(trace.input_tokens, trace.output_tokens).statistic
    wl = fit(trace, window=600)
    assert wl.info["io_spearman"][0] == pytest.approx(rho, abs=1e-9)
    assert "dependence" in sg.Client.model_fields
    assert wl.info["dependence"] == {0: "carried"}
    assert wl.clients[0].dependence.input_output == pytest.approx(rho, abs=1e-9)
    again = wl.sample(1200, rng=3)
    assert stats.spearmanr(again.input_tokens, again.output_tokens).statistic == pytest.approx(0.6, abs=0.05)


def test_insignificant_rank_correlation_is_not_carried():
    trace = one_client(sg.Poisson(rate=5), sg.LogNormal(mu=6, sigma=1), sg.Exponential(mean=100), 600.0, 5)
    wl = fit(trace, window=600)
    assert abs(wl.info["io_spearman"][0]) < 3 / np.sqrt(len(trace) - 1)
    assert wl.info["dependence"] == {0: "not significant"}
    assert wl.clients[0].dependence is None
    const = fit(one_client(sg.Poisson(rate=5), duration=600.0), window=600)
    assert const.info["dependence"][0].startswith("not estimable")


def test_sparse_windows_fall_back_to_poisson():
    t = np.concatenate(
        [np.sort(np.random.default_rng(1).uniform(0, 600, 500)), [700.0, 800.0, 900.0, 1150.0]]
    )
    trace = pd.DataFrame({"timestamp": t, "input_tokens": 10, "output_tokens": 5})
    rep = characterize(trace, window=600)
    assert rep["law"].notna().tolist() == [True, False]
    wl = fit(trace, window=600, rate_window=None)
    a = wl.clients[0].arrival
    assert a.laws[1] == "poisson" and a.cvs[1] == 1.0
    end = 1150 + 1150 / 503  # the last request plus one mean gap
    assert rep["end"].iloc[-1] == pytest.approx(end)
    assert a.rates[1] == pytest.approx(4 / (end - 600))
    assert wl.info["poisson_windows"] == 1


def test_evenly_spaced_requests_are_deterministic():
    trace = pd.DataFrame({"timestamp": np.arange(0.0, 1200.0, 2.0), "input_tokens": 5, "output_tokens": 5})
    rep = characterize(trace, window=600)
    assert rep["law"].tolist() == ["deterministic", "deterministic"]
    assert rep["scale"].tolist() == [2.0, 2.0]
    a = fit(trace, window=600).clients[0].arrival
    assert a.laws == ["deterministic"] and a.rates.tolist() == [0.5]


def test_by_splits_into_clients():
    trace = multi_client_trace()
    trace["model"] = np.where(np.arange(len(trace)) % 3 == 0, "m1", "m2")
    rep = characterize(trace, window=600, client="client", by="model")
    assert sorted(rep.client.unique()) == ["batch|m1", "batch|m2", "chat|m1", "chat|m2"]
    assert rep["n"].sum() == len(trace)
    only_by = fit(trace, window=600, by="model")
    assert set(only_by.clients) == {"m1", "m2"}


def rate_integral(a: sg.ArrivalSchedule, lo: float, hi: float) -> float:
    """Integral of a schedule's piecewise-constant rate over [lo, hi)."""
    edges = np.append(a.times, np.inf)
    overlap = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None)
    return float((a.rates * overlap).sum())


def test_rate_refinement_keeps_window_totals():
    trace = multi_client_trace()
    wl = fit(trace, window=600, client="client", rate_window=60)
    assert wl.info["rate_window"] == 60
    end = wl.info["duration"]
    assert trace.timestamp.max() < end <= 1800
    for key, c in wl.clients.items():
        assert 0 <= wl.info["rate_shrink"][key] <= 1
        mine = trace.timestamp[trace.client == key]
        for lo, hi in ((0, 600), (600, 1200), (1200, end)):
            n = ((mine >= lo) & (mine < hi)).sum()
            assert rate_integral(c.arrival, lo, hi) == pytest.approx(n, rel=1e-9)


def test_length_window_gives_piecewise_models():
    trace = multi_client_trace()
    wl = fit(trace, window=600, client="client", length_window=600)
    m = wl.clients["chat"].input_tokens
    assert isinstance(m, sg.Piecewise) and m.times.tolist() == [0, 600, 1200]
    assert all(isinstance(x, sg.Empirical) for x in m.models)


def test_unsorted_timestamps_are_sorted_and_reported():
    trace = multi_client_trace()
    shuffled = trace.sample(frac=1.0, random_state=0)
    a = characterize(trace, window=600, client="client")
    b = characterize(shuffled, window=600, client="client")
    assert b.attrs["resorted"] and not a.attrs["resorted"]
    cols = ["n", "rate", "iat_cv", "law", "shape", "input_p90", "io_spearman"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


# -- errors ------------------------------------------------------------------------------------
T = pd.DataFrame({"timestamp": [0.0, 1.0, 2.0], "input_tokens": [1, 2, 3], "output_tokens": [1, 1, 1]})

BAD = [
    (lambda: fit(T.drop(columns="output_tokens")), ValueError, r"missing column 'output_tokens'"),
    (lambda: characterize(T.drop(columns="timestamp")), ValueError, r"missing column 'timestamp'"),
    (lambda: fit(T, client="tenant"), ValueError, r"missing column 'tenant'"),
    (lambda: fit(T.iloc[:0]), ValueError, r"trace is empty \(0 requests\)"),
    (lambda: fit(T, window=0), ValueError, r"`window` must be finite and > 0, got 0"),
    (lambda: characterize(T, window=-600.0), ValueError, r"`window` must be finite and > 0, got -600\.0"),
    (lambda: fit(T, window=float("nan")), ValueError, r"`window` must be finite and > 0, got nan"),
    (lambda: fit(T, window="600"), TypeError, r"`window` must be a number of seconds, got '600'"),
    (
        lambda: fit(T, lengths="kde"),
        ValueError,
        r"`lengths` must be one of 'empirical', 'parametric', got 'kde'",
    ),
    (
        lambda: fit(T, laws=("lognormal",)),
        ValueError,
        r"unknown law 'lognormal'; choose from exponential, gamma, weibull",
    ),
    (lambda: characterize(T, laws=()), ValueError, r"`laws` must name at least one law"),
    (lambda: fit(T, rate_window=70), ValueError, r"`rate_window` must divide `window` \(600\.0\) .*got 70"),
    (lambda: fit(T, criterion="hqc"), ValueError, r"`criterion` must be one of 'aic', 'bic', got 'hqc'"),
    (lambda: fit(T, max_points=1), ValueError, r"`max_points` must be a whole number >= 2, got 1"),
    (lambda: fit(T.assign(timestamp=0.0)), ValueError, r"all timestamps are 0"),
    (
        lambda: fit(T.assign(client=[1, None, 2]), client="client"),
        ValueError,
        r"'client' has a missing value at row 1",
    ),
    (
        lambda: fit(T, dequantize="yes"),
        TypeError,
        r"`dequantize` must be None \(auto\), True or False, got 'yes'",
    ),
]


@pytest.mark.parametrize(("thunk", "exc", "match"), BAD)
def test_bad_arguments(thunk, exc, match):
    with pytest.raises(exc, match=match):
        thunk()
