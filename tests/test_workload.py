"""Workload semantics: seeds and stream stability, chunking, target rates, specs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import servegen as sg
from _readme import readme_clients


def test_issue_example_columns_and_dtypes():
    wl = sg.Workload(readme_clients(), rate=50.0)
    reqs = wl.sample(duration=3600, rng=7)
    df = reqs.to_pandas()
    assert list(df.columns) == ["timestamp", "client", "input_tokens", "output_tokens"]
    assert df.timestamp.dtype == np.float64
    assert df.input_tokens.dtype == np.int64 and df.output_tokens.dtype == np.int64
    assert set(df.client.cat.categories) == {"chat", "batch"}
    assert (np.diff(reqs.timestamp) >= 0).all()
    assert reqs.timestamp.min() >= 0 and reqs.timestamp.max() < 3600
    assert len(reqs) / 3600 == pytest.approx(50, rel=0.1)
    # proportional scaling keeps the clients' native 4:1 share
    assert (reqs.client == 0).mean() == pytest.approx(0.8, abs=0.05)


def test_same_seed_same_stream_different_seed_differs():
    wl = sg.Workload(readme_clients())
    a, b, c = (wl.sample(1800, rng=s) for s in (3, 3, 4))
    assert a.equals(b) and not a.equals(c)
    g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
    assert wl.sample(600, rng=g1).equals(wl.sample(600, rng=g2))
    ss = np.random.SeedSequence(5)
    assert wl.sample(600, rng=ss).equals(wl.sample(600, rng=np.random.SeedSequence(5)))


def test_adding_a_client_leaves_others_unchanged():
    base = readme_clients()
    more = {**base, "extra": sg.Client(arrival=sg.Poisson(rate=9), input_tokens=5, output_tokens=5)}
    a = sg.Workload(base).sample(3000, rng=1)
    b = sg.Workload(more).sample(3000, rng=1)
    for key in base:
        ia, ib = a.clients.index(key), b.clients.index(key)
        np.testing.assert_array_equal(a.timestamp[a.client == ia], b.timestamp[b.client == ib])
        np.testing.assert_array_equal(a.input_tokens[a.client == ia], b.input_tokens[b.client == ib])
    # and the order of the mapping does not matter either
    c = sg.Workload(dict(reversed(list(more.items())))).sample(3000, rng=1)
    np.testing.assert_array_equal(np.sort(c.timestamp), b.timestamp)


@settings(max_examples=15, deadline=None)
@given(
    chunk=st.floats(min_value=37.0, max_value=5000.0),
    duration=st.floats(min_value=100.0, max_value=4000.0),
)
@pytest.mark.slow
def test_chunks_concatenate_to_sample(chunk, duration):
    wl = sg.Workload(readme_clients(), rate={0: 20.0, 1000: 60.0})
    full = wl.sample(duration, rng=2)
    parts = list(wl.iter_chunks(duration, chunk, rng=2))
    assert len(parts) == int(np.ceil(duration / chunk))
    joined = sg.Requests.concat(parts)
    assert joined.equals(full)
    for p in parts:
        lo, hi = p.meta["chunk"]
        assert ((p.timestamp >= lo) & (p.timestamp < hi)).all()


def test_input_output_independent_by_default():
    """Upstream drew every field from one uniform (Spearman 1); ours are independent."""
    c = sg.Client(
        arrival=sg.Poisson(rate=100),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.Exponential(mean=300),
    )
    r = c.sample(1200, rng=3)
    rho = stats.spearmanr(r.input_tokens, r.output_tokens).statistic
    assert abs(rho) < 4 / np.sqrt(len(r))


def test_target_rate_step_function_and_callable():
    wl = sg.Workload(readme_clients(), rate={0: 10.0, 1800: 40.0})
    r = wl.sample(3600, rng=4)
    first, second = (r.timestamp < 1800).sum() / 1800, (r.timestamp >= 1800).sum() / 1800
    assert first == pytest.approx(10, rel=0.15) and second == pytest.approx(40, rel=0.15)
    ramp = sg.Workload(readme_clients(), rate=lambda t: 5 + 45 * np.asarray(t) / 3600)
    r2 = ramp.sample(3600, rng=4)
    counts = np.histogram(r2.timestamp, bins=[0, 1200, 2400, 3600])[0] / 1200
    expected = [5 + 45 * m / 3600 for m in (600, 1800, 3000)]
    np.testing.assert_allclose(counts, expected, rtol=0.2)


def test_scale_multiplies_and_per_client_scale():
    clients = {
        "a": sg.Client(arrival=sg.Poisson(rate=10), input_tokens=1, output_tokens=1),
        "b": sg.Client(arrival=sg.Poisson(rate=10), input_tokens=1, output_tokens=1),
    }
    r = sg.Workload(clients, rate=20.0, scale=2.0).sample(2000, rng=0)
    assert len(r) / 2000 == pytest.approx(40, rel=0.03)
    r2 = sg.Workload(clients, scale={"a": 3.0}).sample(2000, rng=0)
    share_a = (r2.client == r2.clients.index("a")).mean()
    assert share_a == pytest.approx(0.75, abs=0.02)


def test_piecewise_values_follow_time():
    c = sg.Client(
        arrival=sg.Poisson(rate=10),
        input_tokens=sg.Piecewise([0, 600], [sg.Constant(value=100), sg.Constant(value=900)]),
        output_tokens=1,
    )
    r = c.sample(1200, rng=0)
    assert (r.input_tokens[r.timestamp < 600] == 100).all()
    assert (r.input_tokens[r.timestamp >= 600] == 900).all()


def test_json_round_trip_is_exact_and_samples_equal():
    clients = readme_clients()
    clients["sched"] = sg.Client(
        arrival=sg.Piecewise(
            [0, 600], [sg.OnOff(rate_on=5, mean_on=10, mean_off=20), sg.Deterministic(rate=2)]
        ),
        input_tokens=sg.Piecewise([0, 300], [sg.Zipf(s=1.1, n=50), sg.Uniform(low=1, high=9)]),
        output_tokens=7,
    )
    clients["replay"] = sg.Client(  # long enough not to run out under the target (refused)
        arrival=sg.Replay(timestamps=[1.0, 2.5, 100.0], duration=9000), input_tokens=3, output_tokens=4
    )
    clients[7] = sg.Client(
        arrival=sg.ArrivalSchedule(times=[0, 600], rates=[1, 2], cvs=[1, 3], laws=["poisson", "weibull"]),
        input_tokens=1,
        output_tokens=1,
    )
    wl = sg.Workload(clients, rate={0: 10.0, 600: 20.0}, scale={"chat": 2.0})
    text = wl.to_json()
    back = sg.Workload.from_json(text)
    assert back == wl
    assert back.to_json() == text
    assert back.sample(1200, rng=5).equals(wl.sample(1200, rng=5))


def test_requests_arrow_parquet_round_trip(tmp_path):
    r = sg.Workload(readme_clients()).sample(600, rng=1)
    assert sg.Requests.from_arrow(r.to_arrow()).equals(r)
    path = r.to_parquet(tmp_path / "r.parquet")
    back = sg.read_parquet(path)
    assert back.equals(r) and back.duration == 600
    assert list(tmp_path.iterdir()) == [path]


def test_integer_client_keys_and_list_clients():
    cl = readme_clients()
    r = sg.Workload([cl["chat"], cl["batch"]]).sample(300, rng=0)
    assert r.clients == (0, 1)
    df = r.to_pandas()
    assert list(df.client.cat.categories) == [0, 1]


def test_requests_take_between_and_repr():
    r = sg.Workload(readme_clients()).sample(1200, rng=0)
    part = r.between(100, 200)
    assert ((part.timestamp >= 100) & (part.timestamp < 200)).all()
    assert "Requests n=" in repr(r)
    with pytest.raises(KeyError, match="no column 'nope'"):
        r["nope"]


def test_expected_requests_follow_the_rate_target_scale_and_client_filter():
    a = sg.Client(arrival=sg.Gamma(rate=1.0, cv=2), input_tokens=9, output_tokens=9)
    b = sg.Client(arrival=sg.Poisson(rate=3.0), input_tokens=9, output_tokens=9)
    wl = sg.Workload({"a": a, "b": b}, rate={0: 8.0, 1800: 2.0}, scale={"b": 2.0})
    # the target is shared 1:3 by native rate, then b is doubled: 2 + 12 req/s, then 0.5 + 3
    assert wl.expected_requests(3600, clients=["a"]) == pytest.approx(2.0 * 1800 + 0.5 * 1800)
    np.testing.assert_allclose(wl.expected_requests(3600, [900, 1800, 2700]), [12600, 25200, 28350])
    np.testing.assert_allclose(wl.expected_requests(3600, by_client=True), [4500, 27000])
    np.testing.assert_allclose(
        wl.expected_requests(3600, [1800], clients=["b"], by_client=True), [[0], [21600]]
    )
    counts = [len(wl.sample(3600, rng=s, clients=["a"])) for s in range(20)]
    assert abs(np.mean(counts) - 4500) < 4 * np.std(counts) / np.sqrt(20) + 1
