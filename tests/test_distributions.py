"""Every value model through one table of generic checks, cross-checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import servegen as sg

N = 200_000
# (model, scipy frozen equivalent or None) — KS against scipy where scipy has the law.
CASES = [
    (sg.Constant(value=42), None),
    (sg.Uniform(low=10, high=20), stats.uniform(loc=10, scale=10)),
    (sg.Exponential(mean=250), stats.expon(scale=250)),
    (sg.LogNormal(mu=5.5, sigma=0.9), stats.lognorm(s=0.9, scale=np.exp(5.5))),
    (sg.Pareto(alpha=1.8, xmin=400), stats.pareto(b=1.8, scale=400)),
    (sg.Empirical(values=[128, 512, 2048], probs=[0.2, 0.5, 0.3]), None),
    (sg.Zipf(s=1.1, n=50), None),
    (
        sg.Mixture([sg.Pareto(alpha=1.8, xmin=400), sg.LogNormal(mu=5.5, sigma=0.9)], weights=[0.3, 0.7]),
        None,
    ),
    (sg.Clipped(sg.LogNormal(mu=6, sigma=1), low=1, high=8192), None),
]
IDS = [type(m).__name__ for m, _ in CASES]


@pytest.mark.parametrize(("model", "ref"), CASES, ids=IDS)
def test_dtype_shape_bounds(model, ref):
    x = model.sample(1000, rng=np.random.default_rng(0))
    assert x.dtype == np.float64 and x.shape == (1000,)
    lo, hi = model.support
    assert (x >= lo).all() and (x <= hi).all()
    assert model.sample(0, rng=np.random.default_rng(0)).shape == (0,)


@pytest.mark.parametrize(("model", "ref"), CASES, ids=IDS)
def test_same_seed_same_draws(model, ref):
    a = model.sample(500, rng=np.random.default_rng(3))
    b = model.sample(500, rng=np.random.default_rng(3))
    c = model.sample(500, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    if not isinstance(model, sg.Constant):
        assert not np.array_equal(a, c)


@pytest.mark.parametrize(("model", "ref"), CASES, ids=IDS)
def test_samples_follow_own_cdf(model, ref):
    """KS distance between draws and the model's own cdf; for discrete laws compare masses."""
    x = model.sample(N, rng=np.random.default_rng(1))
    tol = 1.63 / np.sqrt(N) * 1.5  # ~1 % KS critical value, with margin
    if isinstance(model, (sg.Empirical, sg.Zipf, sg.Constant)):
        vals, counts = np.unique(x, return_counts=True)
        emp_cdf = np.cumsum(counts) / N
        assert np.abs(emp_cdf - model.cdf(vals)).max() < tol
    elif isinstance(model, sg.Clipped):
        inner = (x > model.low) & (x < model.high)
        assert abs(inner.mean() - (model.dist.cdf(model.high) - model.dist.cdf(model.low))) < tol
        assert abs((x == model.high).mean() - (1 - model.dist.cdf(model.high))) < tol
    else:
        assert stats.kstest(x, model.cdf).statistic < tol


@pytest.mark.parametrize(
    ("model", "ref"),
    [c for c in CASES if c[1] is not None],
    ids=[i for i, c in zip(IDS, CASES, strict=True) if c[1] is not None],
)
def test_against_scipy(model, ref):
    q = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    np.testing.assert_allclose(model.ppf(q), ref.ppf(q), rtol=1e-9)
    np.testing.assert_allclose(model.cdf(ref.ppf(q)), q, rtol=1e-9)
    assert model.mean() == pytest.approx(ref.mean(), rel=1e-9)
    x = model.sample(N, rng=np.random.default_rng(2))
    assert stats.kstest(x, ref.cdf).pvalue > 0.001


@pytest.mark.parametrize(("model", "ref"), CASES, ids=IDS)
def test_ppf_inverts_cdf(model, ref):
    q = np.linspace(0.02, 0.98, 25)
    x = model.ppf(q)
    assert (np.diff(x) >= 0).all()
    # cdf(ppf(q)) >= q with equality for continuous laws
    assert (model.cdf(x) >= q - 1e-9).all()


@pytest.mark.parametrize(("model", "ref"), CASES, ids=IDS)
def test_json_round_trip(model, ref):
    back = sg.parse_model(model.model_dump(mode="json"))
    assert back == model and type(back) is type(model)
    assert sg.parse_model(type(model).model_validate_json(model.model_dump_json()).model_dump()) == model


def test_mixture_mean_and_weights():
    m = sg.Mixture([sg.Constant(value=1), sg.Exponential(mean=100)], weights=[0.25, 0.75])
    x = m.sample(N, rng=np.random.default_rng(5))
    assert (x == 1).mean() == pytest.approx(0.25, abs=4 * np.sqrt(0.25 * 0.75 / N))
    assert x.mean() == pytest.approx(m.mean(), rel=0.01)
    assert m.mean() == pytest.approx(75.25)


def test_clipped_mean_matches_sampling():
    c = sg.Clipped(sg.LogNormal(mu=6, sigma=1), low=1, high=8192)
    x = c.sample(N, rng=np.random.default_rng(6))
    assert x.mean() == pytest.approx(c.mean(), rel=0.01)
    assert x.max() == 8192


def test_empirical_sorts_and_normalizes():
    e = sg.Empirical(values=[3, 1, 2], probs=[0.2, 0.3, 0.5 + 5e-7])
    assert e.values.tolist() == [1, 2, 3]
    # probabilities are kept exactly as given (a JSON round trip reproduces the stream);
    # the cdf and the sampler normalize
    assert e.probs.tolist() == [0.3, 0.5 + 5e-7, 0.2]
    assert e.cdf(3.0) == 1.0 and sg.parse_model(e.model_dump()).probs.tolist() == e.probs.tolist()
    single = sg.Empirical(values=[7], probs=[1.0])
    assert single.sample(3, rng=np.random.default_rng(0)).tolist() == [7, 7, 7]


def test_zipf_probabilities():
    z = sg.Zipf(s=1.1, n=50)
    k = np.arange(1, 51)
    np.testing.assert_allclose(z.probs, k**-1.1 / (k**-1.1).sum())
    x = z.sample(N, rng=np.random.default_rng(0))
    assert set(np.unique(x)) <= set(k.astype(float))
    assert (x == 1).mean() == pytest.approx(z.probs[0], abs=0.005)


def test_models_are_frozen():
    g = sg.LogNormal(mu=1, sigma=1)
    with pytest.raises(ValueError):
        g.mu = 2
