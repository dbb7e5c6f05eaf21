"""Bursty arrival laws (servegen.bursts) and their fitting (servegen.burst_fit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import servegen as sg
from servegen.burst_fit import fit_mixture
from servegen.bursts import mixture_means
from servegen.comparison import compare
from servegen.metrics import dispersion_index, iat_cv


def gaps_of(model, duration=20_000.0, seed=0):
    return np.diff(model.sample(0, duration, rng=np.random.default_rng(seed)))


# -- Hyperexponential ---------------------------------------------------------------------------
def test_hyperexponential_balanced_means_matches_scipy_mixture():
    h = sg.Hyperexponential(rate=4.0, cv=3.0)
    p = h.phase_p
    m1, m2 = h.means
    assert p * m1 == pytest.approx(0.125) and (1 - p) * m2 == pytest.approx(0.125)  # balanced
    g = gaps_of(h)
    assert g.mean() == pytest.approx(0.25, rel=0.03)
    assert iat_cv(np.cumsum(g)) == pytest.approx(3.0, rel=0.05)

    def cdf(x):
        return p * stats.expon.cdf(x, scale=m1) + (1 - p) * stats.expon.cdf(x, scale=m2)

    assert stats.kstest(g, cdf).statistic < 0.01


def test_hyperexponential_gamma_phases_with_explicit_p():
    h = sg.Hyperexponential(rate=2.0, cv=5.0, p=0.97, burst_cv=0.5, silence_cv=1.5)
    m1, m2 = h.means
    g = gaps_of(h, 40_000.0, seed=1)

    def cdf(x):
        a1, a2 = 1 / 0.5**2, 1 / 1.5**2
        return 0.97 * stats.gamma.cdf(x, a1, scale=m1 / a1) + 0.03 * stats.gamma.cdf(x, a2, scale=m2 / a2)

    assert stats.kstest(g, cdf).statistic < 0.01
    assert g.mean() == pytest.approx(0.5, rel=0.05)


def test_mixture_means_solves_both_moments_and_rejects_impossible():
    m1, m2 = mixture_means(4.0, 0.95, 0.7, 1.2)
    assert 0.95 * m1 + 0.05 * m2 == pytest.approx(1.0)
    assert 0.95 * m1**2 * (1 + 0.49) + 0.05 * m2**2 * (1 + 1.44) == pytest.approx(17.0)
    with pytest.raises(ValueError, match=r"p > \(cv²-1\)/\(cv²\+1\)"):
        mixture_means(4.0, 0.8)  # p must exceed 15/17 for CV 4
    with pytest.raises(ValueError, match=r"cv=0\.5"):
        sg.Hyperexponential(rate=1, cv=0.5)  # a mixture of exponentials has CV >= 1
    with pytest.raises(ValueError, match="p"):
        sg.Hyperexponential(rate=1, cv=3, p=1.5)


# -- OnOffRenewal -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {"off_law": "lognormal", "off_cv": 1.5},
        {"off_law": "gamma", "off_cv": 0.5, "gap_cv": 2.0},
        {"off_law": "exponential", "gap_cv": 0.5, "on_law": "gamma", "on_cv": 0.5},
    ],
)
def test_onoff_renewal_rate_and_cv_from_closed_form(kw):
    m = sg.OnOffRenewal(rate=2.0, cv=6.0, mean_on=10.0, **kw)
    assert m.iat_cv == pytest.approx(6.0)
    pr = m.periods
    assert pr["rate_on"] == pytest.approx(2.0 * (pr["mean_on"] + pr["mean_off"]) / pr["mean_on"])
    t = m.sample(0, 100_000, rng=np.random.default_rng(3))
    assert len(t) / 100_000 == pytest.approx(2.0, rel=0.04)
    assert iat_cv(t) == pytest.approx(6.0, rel=0.08)


def test_onoff_renewal_periods_and_burst_gaps_are_as_set():
    m = sg.OnOffRenewal(rate=1.0, mean_on=20.0, mean_off=80.0, gap_cv=0.5, off_law="lognormal", off_cv=1.0)
    t = m.sample(0, 200_000, rng=np.random.default_rng(4))
    g = np.diff(t)
    short = g[g < 5.0]  # in-burst gaps have mean 1/5 s; silences are minutes
    assert short.mean() == pytest.approx(0.2, rel=0.03)
    assert short.std() / short.mean() == pytest.approx(0.5, rel=0.05)
    long = g[g >= 5.0] - 0.2
    assert long.mean() == pytest.approx(80.0, rel=0.1)
    assert long.std() / long.mean() == pytest.approx(1.0, rel=0.15)
    # the share of time inside bursts: 20 / (20 + 80)
    busy = np.unique(np.floor(t)).size / 200_000
    assert busy == pytest.approx(0.2, rel=0.1)


def test_onoff_renewal_parameter_errors_name_the_field():
    with pytest.raises(ValueError, match="exactly one of `cv` and `mean_off`"):
        sg.OnOffRenewal(rate=1.0)
    with pytest.raises(ValueError, match="exactly one of `cv` and `mean_off`"):
        sg.OnOffRenewal(rate=1.0, cv=3.0, mean_off=10.0)
    with pytest.raises(ValueError, match=r"`cv` must exceed `gap_cv` \(2\.0\).*got 1\.5"):
        sg.OnOffRenewal(rate=1.0, cv=1.5, gap_cv=2.0)
    with pytest.raises(ValueError, match="off_law"):
        sg.OnOffRenewal(rate=1.0, cv=3.0, off_law="weibull")


@pytest.mark.parametrize(
    "arrival",
    [
        sg.OnOffRenewal(rate=3.0, cv=5.0, off_law="pareto", off_cv=1.5, gap_cv=0.7),
        sg.Hyperexponential(rate=3.0, cv=4.0),
        sg.ArrivalSchedule(
            times=[0, 500, 1500],
            rates=[2.0, 3.0, 1.0],
            cvs=[1.0, 1.0, 1.0],
            laws=["poisson", "model", "model"],
            models=[
                None,
                {"kind": "onoff_renewal", "rate": 3.0, "cv": 5.0},
                sg.Hyperexponential(rate=1, cv=4),
            ],
        ),
    ],
)
def test_chunked_equals_single_call_and_json_round_trip(arrival):
    wl = sg.Workload({"a": sg.Client(arrival=arrival, input_tokens=100, output_tokens=10)})
    one = wl.sample(3600, rng=5)
    chunks = np.concatenate([c.timestamp for c in wl.iter_chunks(3600, 700, rng=5)])
    assert np.array_equal(one.timestamp, chunks)
    assert np.array_equal(wl.sample(3600, rng=5).timestamp, one.timestamp)  # same seed, same stream
    assert not np.array_equal(wl.sample(3600, rng=6).timestamp, one.timestamp)
    back = sg.Workload.from_json(wl.to_json())
    assert back == wl
    assert np.array_equal(back.sample(3600, rng=5).timestamp, one.timestamp)


def test_onoff_state_carries_across_stream_windows():
    # off periods of ~10 min straddle the 600 s stream windows: a restart at every window
    # would put the stationary on-probability (1/3) at each edge; carrying the state does not
    # change the long-run rate or the duty cycle
    m = sg.OnOffRenewal(rate=1.0, mean_on=300.0, mean_off=600.0)
    wl = sg.Workload({"a": sg.Client(arrival=m, input_tokens=1, output_tokens=1)})
    t = wl.sample(200_000, rng=1).timestamp
    g = np.diff(t)
    long = g[g > 30]
    assert long.mean() == pytest.approx(600.0, rel=0.15)  # silences are not cut at window edges


def test_schedule_model_pieces_are_checked():
    kw = {"times": [0, 600], "rates": [1.0, 2.0], "cvs": [1.0, 1.0]}
    with pytest.raises(ValueError, match="needs `models`"):
        sg.ArrivalSchedule(**kw, laws=["poisson", "model"])
    with pytest.raises(ValueError, match=r"`models\[1\]` must have rate `rates\[1\]`=2\.0, got 3\.0"):
        sg.ArrivalSchedule(**kw, laws=["poisson", "model"], models=[None, sg.Hyperexponential(rate=3, cv=2)])
    with pytest.raises(ValueError, match=r"`models\[0\]` must be given exactly where"):
        sg.ArrivalSchedule(**kw, laws=["poisson", "model"], models=[sg.Poisson(rate=1), sg.Poisson(rate=2)])
    with pytest.raises(ValueError, match="one entry per time"):
        sg.ArrivalSchedule(**kw, laws=["poisson", "model"], models=[None])


# -- fitting --------------------------------------------------------------------------------
@pytest.mark.slow
def test_fit_mixture_beats_one_gamma_and_recovers_phases():
    rng = np.random.default_rng(7)
    n = 30_000
    burst = rng.random(n) < 0.95
    y = np.where(burst, rng.gamma(2.0, 0.05, n), rng.gamma(0.8, 50.0, n))
    f = fit_mixture(y, np.zeros(n, dtype=np.int64), 1)
    assert f["p"][0] == pytest.approx(0.95, abs=0.005)
    assert f["k1"][0] == pytest.approx(2.0, rel=0.05) and f["k1"][0] * f["th1"][0] == pytest.approx(
        0.1, rel=0.03
    )
    assert f["k2"][0] == pytest.approx(0.8, rel=0.1) and f["k2"][0] * f["th2"][0] == pytest.approx(
        40, rel=0.1
    )
    a, _, sc = stats.gamma.fit(y, floc=0)
    assert f["ll"][0] > stats.gamma.logpdf(y, a, scale=sc).sum() + 1000


def onoff_truth(*, mean_on=15.0, rate_on=10.0, gap_cv=1.5, mean_off=90.0, off_law="lognormal", off_cv=1.0,
                on_law="exponential", on_cv=1.0):  # fmt: skip
    rate = rate_on * mean_on / (mean_on + mean_off)
    m = sg.OnOffRenewal(rate=rate, mean_on=mean_on, mean_off=mean_off, gap_cv=gap_cv, off_law=off_law,
                        off_cv=off_cv, on_law=on_law, on_cv=on_cv)  # fmt: skip
    return sg.Client(arrival=m, input_tokens=100, output_tokens=10)


def onoff_trace(seed, duration=3600.0, **kw):
    return onoff_truth(**kw).sample(duration, rng=seed).to_pandas()


@pytest.mark.parametrize(
    "arrival", [sg.Poisson(rate=5.0), sg.Gamma(rate=5.0, cv=3.0), sg.Weibull(rate=2.0, cv=2.0)]
)
def test_renewal_traces_stay_renewal(arrival):
    trace = sg.Client(arrival=arrival, input_tokens=100, output_tokens=10).sample(3600, rng=2).to_pandas()
    rep = sg.characterize(trace, window=600)
    has_law = rep["law"].notna()
    assert has_law.sum() >= 6 and (rep.loc[has_law, "structure"] == "renewal").all()
    assert rep.loc[~has_law, "structure"].isna().all()  # too few requests: no law, no structure
    assert not rep["law"].isin(["hyperexp", "onoff"]).any()
    wl = sg.fit(trace, window=600)
    assert not wl.report["structure"].isin(["onoff"]).any()
    assert wl.clients[0].arrival.models is None  # plain renewal pieces, as before


@pytest.mark.slow
def test_onoff_trace_is_found_with_its_periods():
    trace = onoff_trace(0)
    rep = sg.characterize(trace, window=600)
    assert (rep["structure"] == "onoff").all()
    assert rep["mean_on"].iloc[0] == pytest.approx(15.0, rel=0.3)
    assert rep["mean_off"].median() == pytest.approx(90.0, rel=0.3)
    assert rep["rate_on"].iloc[0] == pytest.approx(10.0, rel=0.1)
    assert {"disp_1s", "disp_10s", "disp_60s"} <= set(rep.columns)
    # the per-window dispersion column is the metrics module's on the window
    w0 = trace.timestamp[trace.timestamp < 600].to_numpy()
    assert rep.loc[0, "disp_10s"] == pytest.approx(dispersion_index(w0, 10.0, start=0, end=600), rel=1e-9)


@pytest.mark.slow
def test_mixed_gaps_choose_the_mixture_law_by_aic():
    # iid gaps from a two-phase mixture: the mixture beats every one-law fit by AIC. (Such a
    # client is also an on/off process with exponential on-periods, so the client-wide
    # on/off model may describe it as well: either way the gaps fit.)
    trace = sg.Client(arrival=sg.Hyperexponential(rate=2.0, cv=6.0, p=0.98, burst_cv=0.6),
                      input_tokens=100, output_tokens=10).sample(3600, rng=3).to_pandas()  # fmt: skip
    rep = sg.characterize(trace, window=600)
    full = rep["n"] > 500
    one_law = rep[[f"aic_{law}" for law in ("exponential", "gamma", "weibull", "lognormal")]].min(axis=1)
    assert full.sum() == 6 and (rep.loc[full, "aic_hyperexp"] < one_law[full] - 10).all()
    assert rep.loc[full, "law"].isin(["hyperexp", "onoff"]).all()
    assert rep.loc[full, "ks"].max() <= 0.06
    only_mix = sg.characterize(trace, window=600, laws=["gamma"])  # the mixture is always a candidate
    assert (only_mix.loc[full, "aic_hyperexp"] < only_mix.loc[full, "aic_gamma"]).all()


SCALES = (1, 10, 60, 300)
HOURS = 40  # regenerated hours pooled to measure a fitted model's dispersion
TRUTH_HOURS = 200  # ground-truth hours pooled for its expected dispersion
SEEDS = range(5)


def _dispersions(sample, seeds):
    """Dispersion of counts at each scale, pooled over one-hour realizations.

    Within-hour variances and means are averaged over the hours (as one long trace cut
    into hours would be, without the between-hour differences of a fitted schedule).
    """
    out = []
    for w in SCALES:
        var, mean = [], []
        for s in seeds:
            t = np.asarray(sample(s).timestamp)
            c = np.bincount(np.floor(t[t < 3600] / w).astype(np.int64), minlength=int(3600 // w))
            var.append(c.var(ddof=1))
            mean.append(c.mean())
        out.append(np.mean(var) / np.mean(mean))
    return np.array(out)


def acceptance(seed, true_d, **kw):
    """Fit one hour of a known on/off process, regenerate, and measure (as in the issue)."""
    truth = onoff_truth(**kw)
    trace = truth.sample(3600, rng=seed).to_pandas()
    wl = sg.fit(trace, window=600)
    regen = [wl.sample(3600, rng=100 + g) for g in range(HOURS)]
    cmp = pd.DataFrame([compare(trace, r).table["ratio"] for r in regen[:5]]).median()
    # Dispersion at 60-300 s of ONE recorded hour is itself uncertain by ~30-100 % (a few
    # dozen silences, 12 bins of 300 s), so the model's dispersion is compared with the
    # ground truth's expected value (pooled over many hours) rather than with that one draw.
    gen_d = _dispersions(lambda g: regen[g], range(HOURS))
    out = {"iat_cv": cmp["iat_cv"], "iat_cv_window_median": cmp["iat_cv_window_median"]}
    out.update({f"disp_{w}s": gen_d[j] / true_d[j] for j, w in enumerate(SCALES)})
    real_d = [dispersion_index(trace.timestamp, w, end=3600) for w in SCALES]
    out.update({f"disp_{w}s_vs_trace": gen_d[j] / real_d[j] for j, w in enumerate(SCALES)})
    return wl, pd.Series(out)


#: The issue's acceptance cases: exponential on-periods of 8-25 s at 10-20 req/s with Gamma
#: gaps, off-periods log-normal or Pareto of 60-100 s mean; one hour, 6-11 k requests.
ACCEPTANCE = {
    "lognormal-off": {},
    "pareto-off": dict(mean_on=8.0, rate_on=20.0, gap_cv=1.0, mean_off=60.0, off_law="pareto", off_cv=1.0),
    "long-bursts": dict(
        mean_on=25.0, rate_on=15.0, gap_cv=0.7, mean_off=100.0, off_law="lognormal", off_cv=0.8
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kw", ACCEPTANCE.values(), ids=ACCEPTANCE.keys())
def test_acceptance_onoff_fit_regenerate(kw):
    truth = onoff_truth(**kw)
    true_d = _dispersions(lambda s: truth.sample(3600, rng=1000 + s), range(TRUTH_HOURS))
    rows, on_laws = [], []
    for seed in SEEDS:
        wl, r = acceptance(seed, true_d, **kw)
        rep = wl.report
        assert (rep["structure"].dropna() == "onoff").all(), rep[["law", "structure"]]
        assert rep.attrs["onoff"][0]["ks"] <= 0.05  # the chosen law on all the gaps
        assert abs(r["iat_cv"] - 1) <= 0.15, r
        assert abs(r["iat_cv_window_median"] - 1) <= 0.15, r
        for w in SCALES:  # the bar, at every scale and seed
            assert abs(r[f"disp_{w}s"] - 1) <= 0.25, (seed, r)
        rows.append(r)
        on_laws.append(rep.attrs["onoff"][0]["on_law"])
    # No bias left: one hour's fit misses the truth's dispersion at 60-300 s by up to ~20 %
    # (20-30 silences: the mean on-period alone is uncertain by that much), but the median
    # over seeds is close. (With on-period laws chosen by AIC, a log-normal of CV 1.35 for
    # pareto-off seed 3 put its dispersion at 1.30 x the truth's at 60 s.)
    med = pd.DataFrame(rows).median()
    for w in SCALES:
        assert abs(med[f"disp_{w}s"] - 1) <= 0.15, med
    # the on-periods are exponential: chosen by BIC, a few dozen periods rarely pick another law
    assert on_laws.count("exponential") >= len(SEEDS) - 1, on_laws


def test_onoff_ks_on_a_millisecond_clock():
    # The production shape: millisecond gaps in bursts of a few seconds, silences of
    # 1-4 minutes, logged on a 1 ms clock (12 % ties, spread by the fit). The KS compares
    # the recorded gaps with the model's gaps logged and spread the same way; against the
    # raw model gaps it was 0.06 here, the ticks alone failing the 0.05 bar.
    trace = onoff_trace(0, mean_on=3.0, rate_on=50.0, gap_cv=1.5, mean_off=120.0, off_cv=0.5)
    trace["timestamp"] = (trace["timestamp"] * 1000).round() / 1000
    rep = sg.characterize(trace, window=600)
    assert rep.attrs["quantization"]["quantized"] and rep["dequantized"].all()
    on = rep.attrs["onoff"][0]
    assert on["ks"] <= 0.04, on
    assert on["mean_on"] == pytest.approx(3.0, rel=0.25) and on["rate_on"] == pytest.approx(50.0, rel=0.1)
    assert 9 <= rep["iat_cv"].median() <= 17  # the per-window gap CV


def test_fitted_onoff_pieces_carry_the_state_across_windows():
    # One on/off model at one rate for the whole hour is one schedule piece, so the engine
    # runs its on/off state on across the windows. (Each window its own piece restarted the
    # state at every window edge: cut silences, lower dispersion at 60-300 s.)
    wl = sg.fit(onoff_trace(0), window=600)  # a stationary hour: one rate (see _window_rates)
    a = wl.clients[0].arrival
    assert len(a.times) == 1 and len(a.models) == 1, a.times
    rep = wl.report
    assert rep["structure"].eq("onoff").all() and rep["mean_off"].nunique() == 1


def test_fitted_bursty_workload_round_trips_through_json():
    wl = sg.fit(onoff_trace(1), window=600)
    a = wl.clients[0].arrival
    assert set(a.laws) == {"model"} and all(isinstance(m, sg.OnOffRenewal) for m in a.models)
    spec = wl.to_json()
    assert '"kind":"onoff_renewal"' in spec.replace(" ", "")
    back = sg.Workload.from_json(spec)
    assert np.array_equal(back.sample(3600, rng=4).timestamp, wl.sample(3600, rng=4).timestamp)


def test_fit_of_a_one_window_trace_with_few_requests():
    # one schedule piece: the model-change mask is empty and must still be boolean
    trace = sg.read_trace(Path(__file__).parent / "data" / "formats" / "tiny.vllm.jsonl", "vllm")
    wl = sg.fit(trace)
    assert len(wl.keys) == trace["client"].nunique() if "client" in trace else len(wl.keys) == 1
    assert np.isfinite(wl.sample(60.0, rng=0).timestamp).all()
