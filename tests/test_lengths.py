"""The length rule: every request has >= 1 input and output token (docs/concepts.md)."""

import numpy as np

import servegen as sg
from _readme import readme_clients


def _readme_workload():
    return sg.Workload(readme_clients(), rate=50.0)


def test_readme_example_has_no_zero_length_request():
    reqs = _readme_workload().sample(duration=3600, rng=7)
    assert len(reqs) > 150_000
    assert int(reqs.input_tokens.min()) >= 1
    assert int(reqs.output_tokens.min()) >= 1
    # the rule moves only the mass below 1.5 to 1: Exponential(250) puts 0.6 % there
    chat = reqs.output_tokens[reqs.client_keys == "chat"]
    assert abs(np.mean(chat == 1) - sg.Exponential(mean=250).cdf(1.5)) < 0.002


def test_rounding_rule_is_max_one_rint():
    c = sg.Client(
        arrival=sg.Poisson(rate=200),
        input_tokens=sg.Uniform(low=0, high=3),
        output_tokens=sg.Empirical(values=[0, 5], probs=[0.5, 0.5]),
    )
    r = c.sample(60, rng=1)
    x = r.input_tokens
    assert set(np.unique(x)) <= {1, 2, 3}
    # rint: [0, 1.5) -> 1 (0 lifted to 1), [1.5, 2.5] -> 2, (2.5, 3] -> 3
    assert abs(np.mean(x == 1) - 0.5) < 0.03 and abs(np.mean(x == 2) - 1 / 3) < 0.03
    assert set(np.unique(r.output_tokens)) == {1, 5}


def test_copula_draws_follow_the_rule():
    c = sg.Client(
        arrival=sg.Poisson(rate=100),
        input_tokens=sg.Exponential(mean=1),
        output_tokens=sg.Exponential(mean=1),
        dependence=sg.RankCorrelation(input_output=0.5),
    )
    r = c.sample(60, rng=2)
    assert r.input_tokens.min() == 1 and r.output_tokens.min() == 1


def test_items_have_tokens_but_counts_may_be_zero():
    c = sg.Client(
        arrival=sg.Poisson(rate=100),
        input_tokens=10,
        output_tokens=10,
        multimodal=sg.Multimodal(
            image=sg.Modality(
                count=sg.Empirical(values=[0, 2], probs=[0.5, 0.5]), tokens=sg.Exponential(mean=1)
            )
        ),
    )
    r = c.sample(60, rng=3)
    assert (r["image_count"] == 0).any()
    assert r["image_tokens"].values.min() >= 1
    assert (r["input_tokens_total"] == r.input_tokens + r["image_tokens_total"]).all()


def test_reasoning_ratio_splits_an_output_of_at_least_one() -> None:
    c = sg.Client(arrival=sg.Poisson(rate=100), input_tokens=10, output_tokens=sg.Exponential(mean=3),
                  reasoning=sg.Reasoning(ratio=sg.Constant(value=1.0)))  # fmt: skip
    r = c.sample(60, rng=4)
    assert r.output_tokens.min() == 1 and (r["answer_tokens"] == 0).all()
    assert (r["reasoning_tokens"] == r.output_tokens).all()


def test_reasoning_tokens_drawn_as_a_length():
    c = sg.Client(
        arrival=sg.Poisson(rate=100),
        input_tokens=10,
        output_tokens=5,
        reasoning=sg.Reasoning(tokens=sg.Constant(value=0)),
    )
    r = c.sample(60, rng=5)
    assert (r["reasoning_tokens"] == 1).all() and (r.output_tokens == 6).all()


def test_later_turns_add_at_least_one_token():
    c = sg.Client(
        arrival=sg.Poisson(rate=2),
        input_tokens=10,
        output_tokens=5,
        session=sg.Session(turns=3, think_time=1.0, new_tokens=0),
    )
    r = c.sample(600, rng=6)
    o = np.lexsort((r["turn"], r["session"]))  # session-major, turns in order
    inp, out, turn, sess = r.input_tokens[o], r.output_tokens[o], r["turn"][o], r["session"][o]
    # a turn whose previous turn is in the stream (warm-started sessions begin mid-way)
    later = np.flatnonzero((turn[1:] == turn[:-1] + 1) & (sess[1:] == sess[:-1])) + 1
    assert len(later) > 100
    assert (inp[later] - inp[later - 1] - out[later - 1] == 1).all()
