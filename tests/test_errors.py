"""Bad input raises ValueError/TypeError naming the field, the value and the rule."""

from __future__ import annotations

import numpy as np
import pytest

import servegen as sg

C = sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=10)
P = sg.Poisson(rate=1)

# (description, thunk, exception, regex the message must match)
BAD = [
    (
        "negative rate",
        lambda: sg.Poisson(rate=-1),
        ValueError,
        r"^Poisson: `rate` must be >= 0, got -1$",
    ),
    (
        "gamma cv zero",
        lambda: sg.Gamma(rate=1, cv=0),
        ValueError,
        r"^Gamma: `cv` must be > 0, got 0$",
    ),
    ("gamma cv negative", lambda: sg.Gamma(rate=1, cv=-1.0), ValueError, r"cv[\s\S]*-1\.0"),
    ("weibull cv nan", lambda: sg.Weibull(rate=1, cv=float("nan")), ValueError, r"cv[\s\S]*finite"),
    ("rate inf", lambda: sg.Gamma(rate=float("inf"), cv=1), ValueError, r"rate[\s\S]*finite"),
    ("onoff mean_on zero", lambda: sg.OnOff(rate_on=1, mean_on=0, mean_off=1), ValueError, r"mean_on"),
    ("replay empty", lambda: sg.Replay(timestamps=[]), ValueError, r"Replay: `timestamps` must not be empty"),
    ("replay unsorted", lambda: sg.Replay(timestamps=[2, 1]), ValueError, r"must be sorted"),
    ("replay negative", lambda: sg.Replay(timestamps=[-1, 1]), ValueError, r">= 0"),
    (
        "exponential mean 0",
        lambda: sg.Exponential(mean=0),
        ValueError,
        r"^Exponential: `mean` must be > 0, got 0$",
    ),
    ("lognormal sigma neg", lambda: sg.LogNormal(mu=1, sigma=-2), ValueError, r"sigma[\s\S]*-2"),
    (
        "pareto alpha 0",
        lambda: sg.Pareto(alpha=0, xmin=1),
        ValueError,
        r"^Pareto: `alpha` must be > 0, got 0$",
    ),
    ("pareto xmin neg", lambda: sg.Pareto(alpha=1, xmin=-5), ValueError, r"xmin[\s\S]*-5"),
    (
        "uniform low>high",
        lambda: sg.Uniform(low=5, high=1),
        ValueError,
        r"`low` must be <= `high`, got low=5\.0, high=1\.0",
    ),
    (
        "empirical empty",
        lambda: sg.Empirical(values=[], probs=[]),
        ValueError,
        r"Empirical: `values` must not be empty",
    ),
    (
        "empirical probs sum",
        lambda: sg.Empirical(values=[1, 2], probs=[0.5, 0.6]),
        ValueError,
        r"`probs` must sum to 1, got sum 1\.1",
    ),
    (
        "empirical negative prob",
        lambda: sg.Empirical(values=[1, 2], probs=[1.5, -0.5]),
        ValueError,
        r"`probs` must be >= 0, got -0\.5",
    ),
    (
        "empirical length mismatch",
        lambda: sg.Empirical(values=[1, 2, 3], probs=[0.5, 0.5]),
        ValueError,
        r"same length, got 3 and 2",
    ),
    (
        "empirical duplicate",
        lambda: sg.Empirical(values=[1, 1], probs=[0.5, 0.5]),
        ValueError,
        r"distinct, got 1\.0 twice",
    ),
    (
        "empirical nan value",
        lambda: sg.Empirical(values=[1, np.nan], probs=[0.5, 0.5]),
        ValueError,
        r"finite",
    ),
    (
        "mixture length mismatch",
        lambda: sg.Mixture([sg.Constant(value=1)], weights=[0.5, 0.5]),
        ValueError,
        r"same length, got 1 and 2",
    ),
    (
        "mixture weights sum",
        lambda: sg.Mixture([sg.Constant(value=1), sg.Constant(value=2)], weights=[0.5, 0.6]),
        ValueError,
        r"`weights` must be >= 0 and sum to 1",
    ),
    ("mixture empty", lambda: sg.Mixture([], weights=[]), ValueError, r"`components` must not be empty"),
    (
        "clipped low>high",
        lambda: sg.Clipped(sg.Constant(value=1), low=10, high=1),
        ValueError,
        r"`low` must be <= `high`, got low=10\.0, high=1\.0",
    ),
    (
        "clipped no bounds",
        lambda: sg.Clipped(sg.Constant(value=1)),
        ValueError,
        r"at least one of `low` and `high`",
    ),
    ("zipf n 0", lambda: sg.Zipf(s=1, n=0), ValueError, r"^Zipf: `n` must be >= 1, got 0$"),
    (
        "piecewise times not at 0",
        lambda: sg.Piecewise([5, 10], [P, P]),
        ValueError,
        r"`times` must start at 0, got \[5\.0\]",
    ),
    (
        "piecewise not increasing",
        lambda: sg.Piecewise([0, 10, 10], [P, P, P]),
        ValueError,
        r"strictly increasing",
    ),
    (
        "piecewise length mismatch",
        lambda: sg.Piecewise([0, 10], [P]),
        ValueError,
        r"same length, got 2 and 1",
    ),
    (
        "piecewise mixed kinds",
        lambda: sg.Piecewise([0, 10], [P, sg.Constant(value=1)]),
        TypeError,
        r"all arrival processes or all distributions",
    ),
    (
        "schedule bad law",
        lambda: sg.ArrivalSchedule(times=[0], rates=[1], cvs=[1], laws=["lognorm"]),
        ValueError,
        r"laws",
    ),
    (
        "schedule negative rate",
        lambda: sg.ArrivalSchedule(times=[0], rates=[-1], cvs=[1], laws=["gamma"]),
        ValueError,
        r"`rates` must be finite and >= 0, got -1\.0",
    ),
    (
        "client arrival wrong type",
        lambda: sg.Client(arrival=sg.Constant(value=1), input_tokens=1, output_tokens=1),
        TypeError,
        r"`arrival` must be an arrival process",
    ),
    (
        "client negative tokens",
        lambda: sg.Client(arrival=P, input_tokens=sg.Uniform(low=-5, high=5), output_tokens=1),
        ValueError,
        r"`input_tokens` must be >= 0 everywhere.*-5\.0",
    ),
    (
        "client extra field",
        lambda: sg.Client(arrival=P, input_tokens=1, output_tokens=1, bogus=1),
        ValueError,
        r"^Client: `bogus` is not a field \(its fields: arrival, input_tokens, .*\), got 1$",
    ),
    ("workload empty", lambda: sg.Workload({}), ValueError, r"`clients` must not be empty"),
    (
        "workload bad client",
        lambda: sg.Workload({"a": 3}),
        TypeError,
        r"client 'a' must be a servegen Client, got 3",
    ),
    (
        "workload bad key",
        lambda: sg.Workload({1.5: C}),
        TypeError,
        r"client key must be an int or a str, got 1\.5",
    ),
    (
        "workload negative rate",
        lambda: sg.Workload([C], rate=-3),
        ValueError,
        r"`rate` must be finite and > 0, got -3",
    ),
    (
        "workload nan rate",
        lambda: sg.Workload([C], rate=float("nan")),
        ValueError,
        r"`rate` must be finite and > 0, got nan",
    ),
    (
        "workload rate map not at 0",
        lambda: sg.Workload([C], rate={10: 5.0}),
        ValueError,
        r"must start at time 0, first time is 10\.0",
    ),
    (
        "workload rate map negative",
        lambda: sg.Workload([C], rate={0: -5.0}),
        ValueError,
        r"rates >= 0, got 0\.0: -5\.0",
    ),
    (
        "unknown client in scale",
        lambda: sg.Workload({"a": C}, scale={"b": 2.0}),
        ValueError,
        r"`scale` names unknown client 'b'",
    ),
    ("scale zero", lambda: sg.Workload([C], scale=0), ValueError, r"`scale` must be finite and > 0, got 0"),
    (
        "duration zero",
        lambda: sg.Workload([C]).sample(0, rng=0),
        ValueError,
        r"`duration` must be finite and > 0, got 0",
    ),
    ("duration negative", lambda: sg.Workload([C]).sample(-5, rng=0), ValueError, r"got -5"),
    ("duration inf", lambda: sg.Workload([C]).sample(float("inf"), rng=0), ValueError, r"got inf"),
    (
        "duration string",
        lambda: sg.Workload([C]).sample("1h", rng=0),
        TypeError,
        r"`duration` must be a number of seconds, got '1h'",
    ),
    (
        "chunk zero",
        lambda: list(sg.Workload([C]).iter_chunks(100, 0, rng=0)),
        ValueError,
        r"`chunk` must be a finite number > 0, got 0",
    ),
    ("negative seed", lambda: sg.Workload([C]).sample(10, rng=-1), ValueError, r"seed must be >= 0, got -1"),
    ("bad rng type", lambda: sg.Workload([C]).sample(10, rng="x"), TypeError, r"rng must be None, an int"),
    (
        "no active client under target",
        lambda: sg.Workload(
            [sg.Client(arrival=sg.Poisson(rate=0), input_tokens=1, output_tokens=1)], rate=5.0
        ).sample(10, rng=0),
        ValueError,
        r"no client is active",
    ),
    (
        "callable rate negative",
        lambda: sg.Workload([C], rate=lambda t: -1.0).sample(10, rng=0),
        ValueError,
        r"rate\(.*\)` returned -1\.0",
    ),
    (
        "unbounded draw",
        lambda: sg.Client(
            arrival=sg.Poisson(rate=1000), input_tokens=sg.Pareto(alpha=0.01, xmin=1), output_tokens=1
        ).sample(10, rng=0),
        ValueError,
        r"`input_tokens`: a draw of .* is not a token count",
    ),
    (
        "parse unknown kind",
        lambda: sg.parse_model({"kind": "nope"}),
        ValueError,
        r"unknown model kind 'nope'",
    ),
    (
        "workload spec wrong kind",
        lambda: sg.Workload.from_dict({"kind": "client"}),
        ValueError,
        r"expected kind 'workload', got 'client'",
    ),
    (
        "callable rate not saveable",
        lambda: sg.Workload([C], rate=lambda t: 1.0).to_json(),
        ValueError,
        r"callable `rate` cannot be saved",
    ),
]


@pytest.mark.parametrize(("what", "thunk", "exc", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_bad_input(what, thunk, exc, pattern):
    with pytest.raises(exc, match=pattern):
        thunk()


def test_table_is_big_enough():
    assert len(BAD) >= 30


def test_custom_arrival_without_rate_cannot_be_scaled():
    class NoRate:
        def sample(self, start, end, *, rng):
            return np.arange(np.ceil(start), end)

    c = sg.Client(arrival=NoRate(), input_tokens=1, output_tokens=1)
    assert len(sg.Workload([c]).sample(10, rng=0)) == 10
    with pytest.raises(ValueError, match="without a `rate`, so it cannot be rate-scaled"):
        sg.Workload([c], rate=5.0).sample(10, rng=0)
