"""One law table (servegen.engine.kernels) for arrivals, schedules, fitting, pools and compat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import servegen as sg
from servegen.engine import kernels
from servegen.engine.kernels import law
from servegen.metrics import iat_cv


def _gaps(arrival, seconds=20_000.0, seed=0):
    return np.diff(arrival.sample(0, seconds, rng=np.random.default_rng(seed)))


@pytest.mark.parametrize("name,cv", [("lognormal", 2.0), ("hyperexponential", 3.0), ("H2", 1.5)])
def test_schedule_pieces_of_the_new_laws_have_their_rate_cv_and_law(name, cv):
    s = sg.ArrivalSchedule(times=[0], rates=[4.0], cvs=[cv], laws=[name])
    g = _gaps(s)
    row = law(name)
    assert len(g) / 20_000 == pytest.approx(4.0, rel=0.05)
    assert iat_cv(np.cumsum(g)) == pytest.approx(cv, rel=0.1)
    shape, scale = row.from_rate_cv(4.0, cv)
    assert stats.kstest(g, lambda x: row.cdf(x, shape, scale)).pvalue > 1e-3
    # the wrong law of the same rate and CV is rejected (the KS test can tell them apart)
    other = law("gamma")
    k, th = other.from_rate_cv(4.0, cv)
    assert stats.kstest(g, lambda x: other.cdf(x, k, th)).pvalue < 1e-6


@pytest.mark.parametrize("name,cv", [("lognormal", 2.0), ("hyperexponential", 3.0), ("gamma", 2.0)])
@pytest.mark.slow
def test_stationary_residual_has_the_renewal_mean(name, cv):
    # the time to the first arrival seen from a random instant has mean E[X²] / (2 E[X])
    row = law(name)
    shape, scale = row.unit(cv)
    rng = np.random.default_rng(5)
    r = np.array([kernels.draw_residual(row.code, float(shape), float(scale), rng) for _ in range(40_000)])
    assert r.mean() == pytest.approx((1 + cv**2) / 2, rel=0.06)


def test_default_hyperexponential_is_the_table_law_and_samples_like_a_schedule_piece():
    h = sg.Hyperexponential(rate=2.0, cv=3.0)
    p = h._pieces()
    assert p.family.tolist() == [law("H2").code] and p.objects is None
    assert float(p.shape[0]) == pytest.approx(h.phase_p, rel=1e-12)
    s = sg.ArrivalSchedule(times=[0], rates=[2.0], cvs=[3.0], laws=["hyperexponential"])
    one, two = (m.sample(0, 3600, rng=np.random.default_rng(4)) for m in (h, s))
    np.testing.assert_array_equal(one, two)
    # an explicit p or Gamma phases has more parameters than rate and CV: its own sampler
    assert sg.Hyperexponential(rate=2.0, cv=3.0, p=0.9)._pieces().family.tolist() == [kernels.OBJECT]


def test_schedule_takes_any_alias_keeps_table_names_and_round_trips_json():
    s = sg.ArrivalSchedule(
        times=[0, 600, 1200, 1800],
        rates=[1, 2, 3, 4],
        cvs=[1, 2, 3, 2],
        laws=["exponential", "Gamma", "H2", "LogNormal"],
    )
    assert s.laws == ["poisson", "gamma", "hyperexponential", "lognormal"]
    back = sg.ArrivalSchedule.model_validate_json(s.model_dump_json())
    assert back.laws == s.laws
    np.testing.assert_array_equal(
        back.sample(0, 2400, rng=np.random.default_rng(1)), s.sample(0, 2400, rng=np.random.default_rng(1))
    )


@pytest.mark.parametrize(
    "laws,cvs,pattern",
    [
        (["hyperexponential"], [0.5], r"`cvs` must be >= 1 for hyperexponential pieces, got 0\.5"),
        (["lognormal"], [0.0], r"`cvs` must be > 0 for lognormal pieces, got 0\.0"),
        (["gamma"], [-1.0], r"`cvs` must be > 0 for gamma pieces, got -1\.0"),
        (
            ["pareto"],
            [1.0],
            r"`laws\[0\]` must name a law of the table \(poisson, gamma, .*model\) .*got 'pareto'",
        ),
    ],
)
def test_schedule_rejects_bad_laws_and_cvs_naming_the_rule(laws, cvs, pattern):
    with pytest.raises(ValueError, match=pattern):
        sg.ArrivalSchedule(times=[0], rates=[1.0], cvs=cvs, laws=laws)


def test_from_rate_cv_checks_the_cv_rule():
    with pytest.raises(ValueError, match=r"hyperexponential: `cv` must be >= 1, got 0\.9"):
        law("H2").from_rate_cv(1.0, 0.9)
    assert law("poisson").bad_cv(-3.0) is None  # a fixed-CV law ignores the given cv


def test_fit_reports_table_names_and_parameters():
    # characterize's law/shape/scale are a table row and its parameters: the table's
    # log-likelihood of a window's gaps is the fit's, for every candidate law
    t = sg.Weibull(rate=5, cv=0.8).sample(0, 1200, rng=np.random.default_rng(2))
    trace = pd.DataFrame({"timestamp": t, "input_tokens": 1, "output_tokens": 1})
    for name in ("exponential", "gamma", "weibull", "lognormal"):
        one = sg.characterize(trace, window=600, laws=(name,), rng=0)
        for w in range(2):
            gaps = np.diff(t[(t >= 600 * w) & (t < 600 * (w + 1))])
            r = one.iloc[w]
            assert r.law == name and r.iat_censored == 0
            assert law(r.law).loglik(gaps, r["shape"], r["scale"]) == pytest.approx(r.loglik, rel=1e-12)
    t = sg.Gamma(rate=5, cv=2).sample(0, 3000, rng=np.random.default_rng(2))
    trace = pd.DataFrame({"timestamp": t, "input_tokens": 1, "output_tokens": 1})
    rep = sg.characterize(trace, window=600, laws=("exponential", "gamma", "lognormal"), rng=0)
    assert set(rep["law"]) == {"gamma"}
    # the candidates may be named in any vocabulary of the table; the report keeps the fit's names
    again = sg.characterize(trace, window=600, laws=("poisson", "Gamma", "LogNormal"), rng=0)
    pd.testing.assert_frame_equal(again, rep)
    assert again.attrs["laws"] == rep.attrs["laws"] == ["exponential", "gamma", "lognormal"]
    with pytest.raises(ValueError, match=r"unknown law 'lognormal'; choose from exponential, gamma, weibull"):
        sg.fit(trace, window=600, laws=("Gamma", "lognormal"))
    from servegen.fit import arrival_laws

    assert arrival_laws.LAW_CDFS["exponential"] == law("poisson").cdf


def test_release_and_compat_names_come_from_the_table():
    from servegen.compat import ArrivalPat

    assert kernels.RELEASE_CODES == {"Gamma": 1, "Weibull": 2}
    assert {p.value for p in ArrivalPat} == set(kernels.RELEASE_CODES)
    assert {c: law(n).release_code for n, c in kernels.RELEASE_CODES.items()} == {1: 1, 2: 2}
