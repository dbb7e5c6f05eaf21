"""Multimodal items, reasoning split and rank-correlation dependence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import servegen as sg

N_RATE, DUR = 100.0, 1000.0  # 1e5 requests per sample

COUNT = sg.Empirical(values=[0, 1, 2, 3], probs=[0.05, 0.8, 0.1, 0.05])
ITEM = sg.Empirical(values=[256, 1196], probs=[0.4, 0.6])
RATIO = sg.Empirical(values=np.linspace(0, 1, 101), probs=np.r_[np.full(50, 0.004), np.full(51, 0.8 / 51)])


def vl_client(**kw):
    return sg.Client(
        arrival=sg.Poisson(rate=N_RATE),
        input_tokens=sg.LogNormal(mu=5, sigma=1),
        output_tokens=sg.Exponential(mean=120),
        multimodal=sg.Multimodal(
            image=sg.Modality(count=COUNT, tokens=ITEM),
            audio=sg.Modality(
                count=sg.Empirical(values=[0, 1], probs=[0.7, 0.3]), tokens=sg.Uniform(low=50, high=150)
            ),
        ),
        **kw,
    )


def r1_client(**kw):
    return sg.Client(
        arrival=sg.Gamma(rate=N_RATE, cv=2),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.Exponential(mean=2000),
        reasoning=sg.Reasoning(ratio=RATIO),
        **kw,
    )


def test_multimodal_columns_marginals_and_offsets():
    r = vl_client().sample(DUR, rng=1)
    n = len(r)
    for col in ("image_count", "image_tokens_total", "audio_count", "input_tokens_total"):
        assert r[col].dtype == np.int64 and len(r[col]) == n
    img = r["image_tokens"]
    assert isinstance(img, sg.Ragged) and len(img) == n
    np.testing.assert_array_equal(img.lengths, r["image_count"])
    assert img.offsets[0] == 0 and img.offsets[-1] == img.values.size
    sums = np.array([img[i].sum() for i in range(0, n, 997)])
    np.testing.assert_array_equal(sums, r["image_tokens_total"][::997])
    np.testing.assert_array_equal(
        r["input_tokens_total"], r.input_tokens + r["image_tokens_total"] + r["audio_tokens_total"]
    )
    # counts follow the count PMF; item tokens the per-item PMF (4-sigma binomial bounds)
    for k, p in zip(COUNT.values, COUNT.probs, strict=True):
        assert (r["image_count"] == k).mean() == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / n))
    m = img.values.size
    assert (img.values == 1196).mean() == pytest.approx(0.6, abs=4 * np.sqrt(0.24 / m))
    audio = r["audio_tokens"].values
    assert stats.kstest(audio, sg.Uniform(low=50, high=150).cdf).statistic < 0.02  # rounding to ints
    assert r["audio_tokens"].lengths.max() <= 1


def test_multimodal_to_pandas_and_arrow():
    r = vl_client().sample(20, rng=2)
    df = r.to_pandas()
    assert list(df.image_tokens.iloc[0]) == list(r["image_tokens"][0])
    table = r.to_arrow()
    assert str(table.schema.field("image_tokens").type).startswith("large_list<")
    back = sg.Requests.from_arrow(table)
    assert back.equals(r)


def test_reasoning_ratio_split():
    r = r1_client().sample(DUR, rng=3)
    rt, at, out = r["reasoning_tokens"], r["answer_tokens"], r.output_tokens
    assert (rt >= 0).all() and (at >= 0).all()
    np.testing.assert_array_equal(rt + at, out)
    ok = out >= 200  # the share is well resolved on longer outputs
    share = rt[ok] / out[ok]
    emp = RATIO.sample(200_000, rng=np.random.default_rng(0))
    assert stats.ks_2samp(share, emp).statistic < 0.02


def test_reasoning_tokens_mode():
    c = sg.Client(
        arrival=sg.Poisson(rate=50),
        input_tokens=10,
        output_tokens=sg.Constant(value=30),
        reasoning=sg.Reasoning(tokens=sg.Exponential(mean=500)),
    )
    r = c.sample(600, rng=4)
    np.testing.assert_array_equal(r["answer_tokens"], 30)
    np.testing.assert_array_equal(r.output_tokens, r["reasoning_tokens"] + 30)
    assert r["reasoning_tokens"].mean() == pytest.approx(500, rel=0.05)


@pytest.mark.parametrize(
    ("client_fn", "dep", "fields"),
    [
        (r1_client, sg.RankCorrelation(input_output=0.4), ("input_tokens", "output_tokens")),
        (r1_client, sg.RankCorrelation(input_output=-0.3), ("input_tokens", "output_tokens")),
        (r1_client, sg.RankCorrelation(output_reasoning=0.5), ("output_tokens", "reasoning_share")),
        (vl_client, sg.RankCorrelation(text_image=0.3), ("input_tokens", "image_count")),
    ],
    ids=["in-out+0.4", "in-out-0.3", "out-reasoning", "text-image"],
)
@pytest.mark.slow
def test_rank_correlation_hits_target_and_keeps_marginals(client_fn, dep, fields):
    target = next(iter(dep.targets().values()))
    dependent = client_fn(dependence=dep).sample(DUR, rng=5)
    independent = client_fn().sample(DUR, rng=6)

    def col(r, name):
        if name == "reasoning_share":
            out = np.maximum(r.output_tokens, 1)
            return r["reasoning_tokens"] / out
        return r[name]

    a, b = col(dependent, fields[0]), col(dependent, fields[1])
    assert stats.spearmanr(a, b).statistic == pytest.approx(target, abs=0.03)
    for name in fields:
        assert stats.ks_2samp(col(dependent, name), col(independent, name)).statistic < 0.01
    # fields outside the copula keep independence
    assert abs(stats.spearmanr(dependent.input_tokens, dependent.timestamp).statistic) < 0.02


def test_independent_by_default_unlike_upstream():
    r = r1_client().sample(DUR, rng=7)
    rho = stats.spearmanr(r.input_tokens, r.output_tokens).statistic
    rho_ratio = stats.spearmanr(
        r.output_tokens, r["reasoning_tokens"] / np.maximum(r.output_tokens, 1)
    ).statistic
    assert abs(rho) < 0.02 and abs(rho_ratio) < 0.02


def test_attributes_in_piecewise_json_chunks_and_mixed_workloads():
    mm = sg.Client(
        arrival=sg.Poisson(rate=20),
        input_tokens=sg.Piecewise([0, 600], [sg.Constant(value=10), sg.Constant(value=20)]),
        output_tokens=5,
        multimodal=sg.Multimodal(image=sg.Modality(count=sg.Piecewise([0, 600], [1, 2]), tokens=100)),
        dependence=sg.RankCorrelation(pairs=[("output_tokens", "image_count", 0.0)]),
    )
    text = sg.Client(
        arrival=sg.Poisson(rate=10),
        input_tokens=7,
        output_tokens=3,
        reasoning=sg.Reasoning(ratio=sg.Uniform(low=0, high=1)),
    )
    wl = sg.Workload({"mm": mm, "text": text})
    r = wl.sample(1200, rng=8)
    is_mm = r.client == r.clients.index("mm")
    assert (r["image_count"][is_mm & (r.timestamp < 600)] == 1).all()
    assert (r["image_count"][is_mm & (r.timestamp >= 600)] == 2).all()
    # neutral values for the client without images / without reasoning
    assert (r["image_count"][~is_mm] == 0).all()
    np.testing.assert_array_equal(r["input_tokens_total"][~is_mm], 7)
    np.testing.assert_array_equal(r["answer_tokens"][is_mm], r.output_tokens[is_mm])
    assert (r["image_tokens"].lengths[~is_mm] == 0).all()
    back = sg.Workload.from_json(wl.to_json())
    assert back == wl and back.sample(1200, rng=8).equals(r)
    assert sg.Requests.concat(list(wl.iter_chunks(1200, 250, rng=8))).equals(r)


def test_adding_attributes_keeps_arrivals_and_earlier_fields():
    base = sg.Client(
        arrival=sg.Gamma(rate=10, cv=3), input_tokens=sg.LogNormal(mu=5, sigma=1), output_tokens=9
    )
    more = base.model_copy(update={"multimodal": sg.Multimodal(image=sg.Modality(count=1, tokens=5))})
    a, b = base.sample(1000, rng=9), more.sample(1000, rng=9)
    np.testing.assert_array_equal(a.timestamp, b.timestamp)
    np.testing.assert_array_equal(a.input_tokens, b.input_tokens)


BAD = [
    (lambda: sg.Multimodal(), ValueError, "at least one of `image`, `audio`, `video`"),
    (lambda: sg.Reasoning(), ValueError, "exactly one of `ratio` and `tokens`"),
    (lambda: sg.Reasoning(ratio=sg.Uniform(low=0, high=2)), ValueError, r"`ratio` must lie in \[0, 1\]"),
    (
        lambda: sg.Modality(count=sg.Uniform(low=-1, high=1), tokens=1),
        ValueError,
        r"`count` must lie in \[0, 256\]",
    ),
    (lambda: sg.RankCorrelation(), ValueError, "at least one target"),
    (lambda: sg.RankCorrelation(input_output=1.5), ValueError, "input_output"),
    (lambda: sg.RankCorrelation(pairs=[("input_tokens", "bogus", 0.2)]), ValueError, "unknown field 'bogus'"),
    (
        lambda: sg.Client(
            arrival=sg.Poisson(rate=1),
            input_tokens=1,
            output_tokens=1,
            dependence=sg.RankCorrelation(output_reasoning=0.3),
        ),
        ValueError,
        "couples 'reasoning'",
    ),
    (
        lambda: r1_client(
            dependence=sg.RankCorrelation(input_output=0.9, output_reasoning=0.9, input_reasoning=-0.9)
        ).sample(10, rng=0),
        ValueError,
        "not jointly achievable",
    ),
    (
        lambda: sg.Client(
            arrival=sg.Poisson(rate=10),
            input_tokens=sg.LogNormal(mu=1, sigma=1),
            output_tokens=1,
            multimodal=sg.Multimodal(
                image=sg.Modality(count=sg.Empirical(values=[0, 1], probs=[0.99, 0.01]), tokens=1)
            ),
            dependence=sg.RankCorrelation(text_image=0.9),
        ).sample(10, rng=0),
        ValueError,
        "not achievable",
    ),
]


@pytest.mark.parametrize(("thunk", "exc", "pattern"), BAD)
@pytest.mark.slow
def test_attribute_errors(thunk, exc, pattern):
    with pytest.raises(exc, match=pattern):
        thunk()
