"""Means that are exact or inf, and parameters that are refused by name (issue #11, items 7-8).

Every table row is one promise: a law's mean against scipy or a closed form, a model
parameter that must reject NaN/inf, a bound, a seed check. Each row failed before the fix
it documents (see the comments).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import servegen as sg
from servegen.attributes import MAX_ITEMS

INF = math.inf


def _clip_ref(frozen, low: float, high: float = INF) -> float:
    """E[clip(X, low, high)] = a + integral of the survival function over [a, b] (scipy)."""
    a = max(low, frozen.support()[0])
    b = high
    if b == INF and not np.isfinite(frozen.mean()):
        return INF
    val, _ = integrate.quad(frozen.sf, a, b, limit=500, epsabs=1e-12, epsrel=1e-12)
    return a + val


P05, P1, P15 = (stats.pareto(b=a, scale=s) for a, s in ((0.5, 100), (1.0, 100), (1.5, 10)))
LN = stats.lognorm(s=1.0, scale=np.exp(5))
EX = stats.expon(scale=100)

# (description, model, expected mean)
MEANS = [
    ("constant", sg.Constant(value=7), 7.0),
    ("uniform", sg.Uniform(low=2, high=10), 6.0),
    ("exponential", sg.Exponential(mean=100), 100.0),
    ("lognormal", sg.LogNormal(mu=5, sigma=1), LN.mean()),
    ("pareto alpha 2.5", sg.Pareto(alpha=2.5, xmin=10), stats.pareto(b=2.5, scale=10).mean()),
    ("pareto alpha 1", sg.Pareto(alpha=1, xmin=100), INF),
    ("pareto alpha 0.5", sg.Pareto(alpha=0.5, xmin=100), INF),
    (
        "zipf",
        sg.Zipf(s=1.1, n=50),
        float((np.arange(1, 51) ** -0.1).sum() / (np.arange(1, 51) ** -1.1).sum()),
    ),
    ("empirical", sg.Empirical(values=[1, 5, 10], probs=[0.2, 0.3, 0.5]), 6.7),
    # Clipped: -82.8 before (quad over a divergent quantile function)
    ("clipped pareto 0.5 low", sg.Clipped(sg.Pareto(alpha=0.5, xmin=100), low=200), INF),
    ("clipped pareto 1 low", sg.Clipped(sg.Pareto(alpha=1, xmin=100), low=200), INF),
    (
        "clipped pareto 0.5 both",
        sg.Clipped(sg.Pareto(alpha=0.5, xmin=100), low=200, high=1000),
        _clip_ref(P05, 200, 1000),
    ),
    ("clipped pareto 1 high", sg.Clipped(sg.Pareto(alpha=1, xmin=100), high=1000), 100 + 100 * math.log(10)),
    ("clipped pareto 1.5 low", sg.Clipped(sg.Pareto(alpha=1.5, xmin=10), low=20), _clip_ref(P15, 20)),
    (
        "clipped lognormal both",
        sg.Clipped(sg.LogNormal(mu=5, sigma=1), low=50, high=500),
        _clip_ref(LN, 50, 500),
    ),
    ("clipped lognormal low", sg.Clipped(sg.LogNormal(mu=5, sigma=1), low=50), _clip_ref(LN, 50)),
    ("clipped exponential high", sg.Clipped(sg.Exponential(mean=100), high=50), 100 * (1 - math.exp(-0.5))),
    (
        "clipped uniform",
        sg.Clipped(sg.Uniform(low=0, high=10), low=2, high=5),
        (2 * 2 + (25 - 4) / 2 + 5 * 5) / 10,
    ),
    ("clipped below support", sg.Clipped(sg.Exponential(mean=100), low=-5), 100.0),
    (
        "clipped empirical",
        sg.Clipped(sg.Empirical(values=[1, 5, 10], probs=[0.2, 0.3, 0.5]), low=3, high=8),
        6.1,
    ),
    (
        "clipped clipped",
        sg.Clipped(sg.Clipped(sg.Pareto(alpha=1.5, xmin=10), high=100), low=20),
        _clip_ref(P15, 20, 100),
    ),
    # Mixture: nan before (0 * inf for a zero-weight infinite component)
    (
        "mixture zero weight inf",
        sg.Mixture(components=[sg.Pareto(alpha=0.5, xmin=1), 5], weights=[0, 1]),
        5.0,
    ),
    ("mixture with inf", sg.Mixture(components=[sg.Pareto(alpha=0.5, xmin=1), 5], weights=[0.5, 0.5]), INF),
    (
        "clipped mixture",
        sg.Clipped(
            sg.Mixture(
                components=[sg.Pareto(alpha=0.5, xmin=100), sg.Exponential(mean=100)], weights=[0.3, 0.7]
            ),
            high=1000,
        ),
        0.3 * _clip_ref(P05, 0, 1000) + 0.7 * _clip_ref(EX, 0, 1000),
    ),
]


@pytest.mark.parametrize(("what", "model", "expected"), MEANS, ids=[m[0] for m in MEANS])
def test_mean_is_exact_or_inf(what, model, expected):
    got = model.mean()
    if expected == INF:
        assert got == INF
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


PARTIAL = [
    (sg.Uniform(low=2, high=10), stats.uniform(loc=2, scale=8)),
    (sg.Exponential(mean=100), EX),
    (sg.LogNormal(mu=5, sigma=1), LN),
    (sg.Pareto(alpha=2.5, xmin=10), stats.pareto(b=2.5, scale=10)),
    (sg.Pareto(alpha=1, xmin=100), P1),
    (sg.Pareto(alpha=0.5, xmin=100), P05),
]


@pytest.mark.parametrize(
    ("model", "frozen"), PARTIAL, ids=[type(m).__name__ + str(m.mean()) for m, _ in PARTIAL]
)
def test_partial_mean_against_scipy(model, frozen):
    lo = frozen.support()[0]
    for q in (0.1, 0.5, 0.9, 0.999):
        x = float(frozen.ppf(q))
        ref = frozen.expect(lambda t: t, lb=lo, ub=x, epsabs=1e-12, epsrel=1e-12)
        assert model.partial_mean(x) == pytest.approx(ref, rel=1e-8)
    assert model.partial_mean(lo - 1) == 0.0 and model.partial_mean(INF) == model.mean()


def test_partial_mean_of_point_masses():
    e = sg.Empirical(values=[1, 5, 10], probs=[0.2, 0.3, 0.5])
    assert [e.partial_mean(x) for x in (0, 1, 4.9, 5, 9, 10, 99)] == pytest.approx(
        [0, 0.2, 0.2, 1.7, 1.7, 6.7, 6.7]
    )
    assert sg.Constant(value=3).partial_mean(2.9) == 0 and sg.Constant(value=3).partial_mean(3) == 3


def _session(turns):
    return sg.Session(turns=turns, think_time=1, new_tokens=1)


def _rounded_exponential_ref(m: float, low: float) -> float:
    # E[rint(max(X, low))] for X ~ Exp(mean m), low = 1: P(X < 1.5) * 1 + sum_k k P(k - .5 < X < k + .5)
    k = np.arange(2, 5000)
    return (1 - math.exp(-1.5 / m)) + float(k @ (np.exp(-(k - 0.5) / m) - np.exp(-(k + 0.5) / m)))


# (description, turns model, expected requests per session E[rint(turns)])
TURNS = [
    # inf, not a finite garbage value or "cannot convert float NaN to integer"
    ("clipped pareto 0.5", sg.Clipped(sg.Pareto(alpha=0.5, xmin=1), low=2), INF),
    ("pareto 1", sg.Pareto(alpha=1, xmin=1), INF),
    # numpy rounds half to even: 1.5 -> 2, 2.5 -> 2, 3.5 -> 4 (was the unrounded 2.75)
    ("half integers", sg.Empirical(values=[1.5, 2.5, 3.5], probs=[0.25, 0.25, 0.5]), 3.0),
    ("constant 2.5", sg.Constant(value=2.5), 2.0),
    ("uniform", sg.Uniform(low=1, high=4), 2.5),
    (
        "zipf",
        sg.Zipf(s=1.0, n=3),
        float(np.arange(1, 4) @ (1 / np.arange(1, 4)) / (1 / np.arange(1, 4)).sum()),
    ),
    ("clipped exponential", sg.Clipped(sg.Exponential(mean=3), low=1), _rounded_exponential_ref(3, 1)),
    # E[rint X] = sum_j P(X > j + 1/2) = 1 + zeta(2.5, 1.5) (Hurwitz) for Pareto(2.5, 1)
    ("pareto 2.5", sg.Pareto(alpha=2.5, xmin=1), 1 + float(special.zeta(2.5, 1.5))),
    ("mixture", sg.Mixture(components=[2, 3], weights=[0.25, 0.75]), 2.75),
]


@pytest.mark.parametrize(("what", "turns", "expected"), TURNS, ids=[t[0] for t in TURNS])
def test_mean_turns_is_exact_or_inf(what, turns, expected):
    session = _session(turns)
    client = sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=10, session=session)
    for got in (session.mean_turns(), client.requests_per_arrival):
        if expected == INF:
            assert got == INF
        else:
            assert got == pytest.approx(expected, rel=1e-6)


def test_mean_turns_matches_the_drawn_turns():
    # the generator rounds draws with np.rint: the mean must be the mean of that
    turns = sg.Clipped(sg.LogNormal(mu=0.5, sigma=0.8), low=1)
    drawn = np.rint(turns.sample(400_000, rng=np.random.default_rng(3)))
    assert _session(turns).mean_turns() == pytest.approx(drawn.mean(), abs=4 * drawn.std() / 632)


# --------------------------------------------------------------------------- NaN / inf

D = sg.Constant(value=1)
# (model class, valid keyword arguments, the float parameters to poison)
MODELS = [
    (sg.Constant, {"value": 1.0}, ["value"]),
    (sg.Uniform, {"low": 1.0, "high": 2.0}, ["low", "high"]),
    (sg.Exponential, {"mean": 1.0}, ["mean"]),
    (sg.LogNormal, {"mu": 1.0, "sigma": 1.0}, ["mu", "sigma"]),
    (sg.Pareto, {"alpha": 1.0, "xmin": 1.0}, ["alpha", "xmin"]),
    (sg.Empirical, {"values": [1.0, 2.0], "probs": [0.5, 0.5]}, ["values", "probs"]),
    (sg.Zipf, {"s": 1.0, "n": 3}, ["s"]),
    (sg.Mixture, {"components": [D, D], "weights": [0.5, 0.5]}, ["weights"]),  # nan accepted before
    (sg.Clipped, {"dist": D, "low": 0.0, "high": 2.0}, ["low", "high"]),
    (sg.Poisson, {"rate": 1.0}, ["rate"]),
    (sg.Gamma, {"rate": 1.0, "cv": 2.0}, ["rate", "cv"]),
    (sg.Weibull, {"rate": 1.0, "cv": 2.0}, ["rate", "cv"]),
    (sg.Deterministic, {"rate": 1.0}, ["rate"]),
    (
        sg.OnOff,
        {"rate_on": 1.0, "rate_off": 0.5, "mean_on": 1.0, "mean_off": 1.0},
        ["rate_on", "rate_off", "mean_on", "mean_off"],
    ),
    (sg.Replay, {"timestamps": [0.5, 1.0], "duration": 2.0}, ["timestamps", "duration"]),
    (
        sg.Hyperexponential,
        {"rate": 1.0, "cv": 3.0, "p": 0.95, "burst_cv": 1.0, "silence_cv": 1.0},
        ["rate", "cv", "p", "burst_cv", "silence_cv"],
    ),
    (
        sg.OnOffRenewal,
        {"rate": 1.0, "cv": 5.0, "mean_on": 10.0, "gap_cv": 1.0, "on_cv": 1.0, "off_cv": 1.0},
        ["rate", "cv", "mean_on", "gap_cv", "on_cv", "off_cv"],
    ),
    (sg.OnOffRenewal, {"rate": 1.0, "mean_off": 30.0}, ["mean_off"]),
    (
        sg.ArrivalSchedule,
        {"times": [0.0, 600.0], "rates": [1.0, 2.0], "cvs": [1.0, 1.0], "laws": ["poisson", "poisson"]},
        ["times", "rates", "cvs"],  # cvs nan/inf of a poisson piece accepted before
    ),
    (sg.Piecewise, {"times": [0.0, 600.0], "models": [D, D]}, ["times"]),  # inf accepted before
    (sg.Session, {"turns": 1, "think_time": 1, "new_tokens": 1, "response_rate": 50.0}, ["response_rate"]),
    (sg.RankCorrelation, {"input_output": 0.5}, ["input_output"]),
]
CASES = [
    (cls, kwargs, field, bad)
    for cls, kwargs, fields in MODELS
    for field in fields
    for bad in (math.nan, math.inf, -math.inf)
]


def _poison(value, bad):
    return [bad, *value[1:]] if isinstance(value, list) else bad


@pytest.mark.parametrize(
    ("cls", "kwargs", "field", "bad"), CASES, ids=[f"{c.__name__}.{f}={b}" for c, _, f, b in CASES]
)
def test_non_finite_parameters_are_refused_by_name(cls, kwargs, field, bad):
    cls(**kwargs)  # the row's valid model builds
    with pytest.raises(ValueError) as info:
        cls(**{**kwargs, field: _poison(kwargs[field], bad)})
    msg = str(info.value)
    # the project's rule (pydantic's own text or ours): model, field, bad value, rule
    assert cls.__name__ in msg and field in msg and repr(bad) in msg and "finite" in msg, msg


def test_every_registered_model_with_float_parameters_is_in_the_table():
    from servegen._base import registered_kinds

    covered = {cls.model_fields["kind"].default for cls, _, _ in MODELS}
    # the rest take only models, ints or strings
    assert set(registered_kinds()) - covered == {
        "client",
        "modality",
        "multimodal",
        "reasoning",
        "shared_prefix",
    }


# --------------------------------------------------------------------------- bounds


def test_multimodal_item_count_is_bounded():
    # count=2000 items of 2**53 tokens wrapped input_tokens_total negative
    with pytest.raises(ValueError, match=r"Modality: `count` must lie in \[0, 256\] \(at most MAX_ITEMS"):
        sg.Modality(count=2000, tokens=2**53)
    with pytest.raises(ValueError, match=r"`count` must lie in \[0, 256\].*Exponential"):
        sg.Modality(count=sg.Exponential(mean=2), tokens=100)


def test_largest_multimodal_request_does_not_wrap():
    big = sg.Modality(count=MAX_ITEMS, tokens=2**53)
    c = sg.Client(
        arrival=sg.Deterministic(rate=1),
        input_tokens=2**53,
        output_tokens=1,
        multimodal=sg.Multimodal(image=big, audio=big, video=big),
    )
    r = c.sample(3, rng=0)
    assert (r["input_tokens_total"] == (3 * MAX_ITEMS + 1) * 2**53).all()


def test_zipf_table_size_is_bounded():
    with pytest.raises(ValueError, match=r"^Zipf: `n` must be <= 16777216, got 10000000000$"):
        sg.Zipf(s=1.0, n=10**10)  # accepted before; its first sample tried to allocate 80 GB


POOL_FILTERS = [
    ({"min_rate": 5, "max_rate": 1}, r"`min_rate` must be <= `max_rate`, got 5 > 1"),
    ({"min_cv": math.nan}, r"`min_cv` must be a number \(not NaN\) or None, got nan"),
    ({"max_mean_input": "10"}, r"`max_mean_input` must be a number \(not NaN\) or None, got '10'"),
    ({"min_mean_output": 300.0, "max_mean_output": 200.0}, r"`min_mean_output` must be <= `max_mean_output`"),
    ({"max_output": math.nan}, r"`max_output` must be a number"),
]


@pytest.mark.parametrize(("kwargs", "message"), POOL_FILTERS)
def test_pool_filter_refuses_bad_bounds(kwargs, message):
    # each returned an empty pool before
    pool = sg.load_pool("multimodal/mm-image")
    with pytest.raises(ValueError, match=r"Pool\.filter: " + message):
        pool.filter(**kwargs)


def test_pool_filter_accepts_infinite_bounds():
    pool = sg.load_pool("multimodal/mm-image")
    assert pool.filter(min_rate=0, max_rate=math.inf).keys == pool.keys


# --------------------------------------------------------------------------- rng

TRACE = pd.DataFrame(
    {
        "timestamp": np.arange(200) * 0.5,
        "input_tokens": np.arange(200) % 7 + 10,
        "output_tokens": np.arange(200) % 5 + 3,
        "parent": np.full(200, -1),
    }
)
C = sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=10)
W = sg.Workload([C])
ENTRIES = [
    ("Workload.sample", lambda rng: W.sample(10, rng=rng)),
    ("Workload.iter_chunks", lambda rng: next(iter(W.iter_chunks(10, 5, rng=rng)))),
    ("Client.sample", lambda rng: C.sample(10, rng=rng)),
    ("fit", lambda rng: sg.fit(TRACE, rng=rng)),  # "SeedSequence expects int ..." before
    ("characterize", lambda rng: sg.characterize(TRACE, rng=rng)),
    ("fit_lengths", lambda rng: sg.fit_lengths(TRACE["input_tokens"], rng=rng)),
    ("compare", lambda rng: sg.compare(TRACE, TRACE, rng=rng)),
    ("fit_sessions", lambda rng: sg.fit_sessions(TRACE, block_size=16, rng=rng)),  # unchecked before
]


@pytest.mark.parametrize(("entry", "call"), ENTRIES, ids=[e[0] for e in ENTRIES])
@pytest.mark.parametrize(
    ("bad", "exc", "message"),
    [
        (
            "x",
            TypeError,
            r"rng must be None, an int >= 0, a numpy SeedSequence or Generator, got 'x' \(str\)",
        ),
        (1.5, TypeError, r"rng must be None, an int >= 0, .*got 1\.5 \(float\)"),
        (-1, ValueError, r"rng: a seed must be >= 0, got -1"),
    ],
)
def test_rng_is_checked_by_every_entry(entry, call, bad, exc, message):
    with pytest.raises(exc, match=message):
        call(bad)


# --------------------------------------------------------------------------- messages of nested specs

NESTED = [
    # pydantic re-titled the inner error with the outer model: "validation error for Mixture / sigma"
    (
        lambda: sg.parse_model(
            {"kind": "mixture", "components": [{"kind": "lognormal", "mu": 1, "sigma": 0}], "weights": [1]}
        ),
        r"LogNormal: `sigma` must be > 0, got 0",
    ),
    (
        lambda: sg.Mixture(components=[{"kind": "lognormal", "mu": 1, "sigma": 0}], weights=[1]),
        r"LogNormal: `sigma` must be > 0, got 0",
    ),
    (
        lambda: sg.parse_model(
            {
                "kind": "client",
                "arrival": {"kind": "gamma", "rate": 1, "cv": math.nan},
                "input_tokens": 1,
                "output_tokens": 1,
            }
        ),
        r"Client: `arrival`: Gamma: `cv` must be a finite number, got nan",
    ),
    (
        lambda: sg.Client(
            arrival=sg.Poisson(rate=1),
            input_tokens={"kind": "pareto", "alpha": -1, "xmin": 1},
            output_tokens=1,
        ),
        r"Pareto: `alpha` must be > 0, got -1",
    ),
    (
        lambda: sg.parse_model({"kind": "gamma", "rate": 1, "cv": 2, "extra": 1}),
        r"Gamma: `extra` is not a field \(its fields: rate, cv\), got 1",
    ),
    (
        lambda: sg.parse_model({"kind": "mixture", "components": [1], "weights": [math.nan]}),
        r"^Mixture: `weights` must hold finite numbers, got nan at index 0$",
    ),
    (
        lambda: sg.Piecewise([0, 10], [1, {"kind": "uniform", "low": 3, "high": 1}]),
        r"Uniform: `low` must be <= `high`, got low=3\.0, high=1\.0",
    ),
]


@pytest.mark.parametrize(("thunk", "message"), NESTED)
def test_nested_spec_errors_name_the_inner_model(thunk, message):
    with pytest.raises(ValueError, match=message):
        thunk()
