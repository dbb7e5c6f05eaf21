"""Production pools: views, filters, summaries, rates and generation semantics."""

from __future__ import annotations

import json

import numpy as np
import pytest

import servegen as sg

POOLS = [
    "language/m-large",
    "language/m-mid",
    "language/m-small",
    "multimodal/mm-image",
    "reason/deepseek-r1",
]


@pytest.fixture(scope="module")
def large():
    return sg.load_pool("language/m-large")


def test_list_pools_and_load_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = sg.list_pools()
    assert table["name"].tolist() == POOLS
    assert table.set_index("name").loc["language/m-large", "clients"] == 162
    assert table.set_index("name").loc["reason/deepseek-r1", "span_days"] == 1
    for name in POOLS:
        assert sg.load_pool(name).name == name
    assert sg.load_pool("m-small").name == "language/m-small"
    with pytest.raises(ValueError, match="unknown pool 'nope'"):
        sg.load_pool("nope")


def test_span_is_shifted_and_keys_are_chunk_numbers(large):
    ev = large.span(18 * 3600, 19 * 3600)
    clients = ev.clients
    assert set(clients) <= set(large.profile.client_ids.tolist())
    key = next(iter(clients))
    row = int(np.searchsorted(large.profile.client_ids, key))
    sched = clients[key].arrival
    np.testing.assert_array_equal(sched.times, np.arange(6) * 600.0)
    np.testing.assert_array_equal(sched.rates, large.profile.rate[row, 108:114].astype(np.float64))
    assert ev.duration == 3600
    # an unaligned span truncates its edge windows
    odd = large.span(100, 1300)
    np.testing.assert_array_equal(odd.clients[next(iter(odd.clients))].arrival.times, [0, 500, 1100])


def test_views_share_their_length_models(large):
    # a view builds its clients afresh; the length laws (and their sampler tables) are
    # made once per distinct PMF of the pool, not once per view
    a, b = large.span(18 * 3600, 19 * 3600).clients, large.span(18 * 3600, 20 * 3600).clients
    key = next(iter(a))
    first, second = a[key].input_tokens, b[key].input_tokens
    first = first.models[0] if isinstance(first, sg.Piecewise) else first
    second = second.models[0] if isinstance(second, sg.Piecewise) else second
    assert first is second
    row = int(np.searchsorted(large.profile.client_ids, key))
    values, probs = large.profile.pmf(row, 3, "input_tokens")
    np.testing.assert_array_equal(first.values, values)
    np.testing.assert_array_equal(first.probs, probs)
    assert not first.values.flags.writeable


def test_span_beyond_data_is_an_error_unless_wrapped():
    pool = sg.load_pool("reason/deepseek-r1")
    with pytest.raises(ValueError, match=r"beyond this view's data.*wrap=True"):
        pool.span(80000, 90000)
    wrapped = pool.span(86400 + 3600, 86400 + 7200, wrap=True)
    same = pool.span(3600, 7200)
    assert wrapped.aggregate_rate().tolist() == same.aggregate_rate().tolist()


@pytest.mark.slow
def test_native_rates_are_honoured_and_zero_windows_empty(large):
    view = large.span(18 * 3600, 20 * 3600)
    r = sg.Workload(view).sample(7200, rng=1)
    expected = view.aggregate_rate().sum() * 600
    assert len(r) == pytest.approx(expected, rel=0.05)
    # a client-window with recorded rate 0 gets no request
    rates = large.profile.rate[:, 108:120]
    row = int(np.flatnonzero((rates == 0).any(axis=1) & (rates > 0).any(axis=1))[0])
    key = int(large.profile.client_ids[row])
    dead = np.flatnonzero(rates[row] == 0)
    mine = r.timestamp[r.client == r.clients.index(key)]
    for w in dead:
        assert not ((mine >= w * 600) & (mine < (w + 1) * 600)).any()


@pytest.mark.slow
def test_target_rate_and_rate_helpers(large):
    ev = large.span(18 * 3600, 19 * 3600)
    r = sg.Workload(ev, rate=100.0).sample(3600, rng=0)
    assert len(r) / 3600 == pytest.approx(100, rel=0.05)
    bounded = ev.bounded_rate(50.0)
    assert max(bounded.values()) == pytest.approx(50.0)
    assert list(bounded) == ev.aggregate_rate().index.tolist()
    scaled = ev.scaled_rate(2.0)
    np.testing.assert_allclose(list(scaled.values()), 2 * ev.aggregate_rate().to_numpy())
    assert set(ev.constant_rate(7.0).values()) == {7.0}
    r2 = sg.Workload(ev, rate=bounded).sample(3600, rng=0)
    assert len(r2) / 3600 == pytest.approx(np.mean(list(bounded.values())), rel=0.05)


@pytest.mark.slow
def test_recorded_cv_and_law_family_are_used(large):
    ev = large.span(0, 86400)
    prof = large.profile
    for key, client in list(ev.clients.items())[:20]:
        row = int(np.searchsorted(prof.client_ids, key))
        sched = client.arrival
        law = prof.law[row, :144]
        active = law > 0
        np.testing.assert_array_equal(
            np.array(sched.laws)[active], np.where(law[active] == 1, "gamma", "weibull")
        )
        np.testing.assert_allclose(sched.cvs[active], prof.cv[row, :144][active].astype(np.float64))


def test_high_cv_window_reproduces_recorded_burstiness(large):
    """A recorded Weibull window with CV >= 5, scaled up 200x (a time change keeps CV)."""
    prof = large.profile
    rows, cols = np.nonzero((prof.law == 2) & (prof.cv >= 5) & (prof.cv < 8) & (prof.rate > 0.5))
    row, w = int(rows[0]), int(cols[0])
    key = int(prof.client_ids[row])
    view = large.span(w * 600, (w + 1) * 600).filter(clients=[key])
    r = sg.Workload(view, scale=200.0).sample(600, rng=3)
    gaps = np.diff(r.timestamp)
    assert gaps.std() / gaps.mean() == pytest.approx(float(prof.cv[row, w]), rel=0.2)


def test_fitted_laws_option(large):
    ev = sg.load_pool("language/m-large", laws="fitted").span(0, 3600)
    prof = large.profile
    key, client = next(iter(ev.clients.items()))
    row = int(np.searchsorted(prof.client_ids, key))
    w = int(np.flatnonzero(prof.law[row, :6] > 0)[0])
    shape = float(prof.shape[row, w])
    if prof.law[row, w] == 1:
        assert client.arrival.cvs[w] == pytest.approx(1 / np.sqrt(shape), rel=1e-6)
        assert client.arrival.rates[w] == pytest.approx(1 / (shape * float(prof.scale[row, w])), rel=1e-6)


def test_filter_is_per_window_and_chainable(large):
    ev = large.span(18 * 3600, 19 * 3600)
    busy = ev.filter(min_rate=1.0)
    s = busy.summary()
    assert (s.rate >= 1.0).all() and len(s) > 0
    both = busy.filter(max_cv=2.0)
    assert (both.summary().cv <= 2.0).all() and len(both.summary()) <= len(s)
    assert len(ev.summary()) > len(s)  # the original view is unchanged
    short = ev.filter(max_mean_input=500)
    assert (short.summary().input_tokens_mean <= 500).all()
    custom = ev.filter(lambda df: df.law == "gamma")
    assert set(custom.summary().law) == {"gamma"}
    with pytest.raises(ValueError, match=r"unknown client\(s\) \[99999\]"):
        ev.filter(clients=[99999])


def test_summary_marks_imputed_clients(large):
    s = large.span(0, 86400).summary()
    imputed = set(s[s.imputed].client)
    missing = {int(c) for c in large.profile.client_ids[large.profile.imputed]}
    assert imputed <= missing and len(imputed) > 0
    for col in (
        "rate",
        "cv",
        "law",
        "input_tokens_mean",
        "input_tokens_p50",
        "input_tokens_p99",
        "output_tokens_p99",
    ):
        assert col in s.columns


def test_cdfs_structure_and_weights(large):
    ev = large.span(18 * 3600, 19 * 3600)
    c = ev.cdfs()
    assert set(c.metric) == {"rate", "cv", "input_tokens", "output_tokens"}
    assert set(c[c.metric == "input_tokens"].stat) == {"mean", "p50", "p95", "p99"}
    for (_, _, _), g in c.groupby(["metric", "stat", "window_start"]):
        assert g.cdf.iloc[-1] == pytest.approx(1.0) and (np.diff(g.value) >= 0).all()
    rate0 = c[(c.metric == "rate") & (c.window_start == 0)]
    assert len(rate0) == (ev.summary().window_start == 0).sum()


def test_no_active_client_under_target_is_a_clear_error(large):
    prof = large.profile
    rows, cols = np.nonzero((prof.rate[:, :-1] == 0) & (prof.rate[:, 1:] > 0))
    row, w = int(rows[0]), int(cols[0])
    view = large.span(w * 600, (w + 2) * 600).filter(clients=[int(prof.client_ids[row])])
    with pytest.raises(ValueError, match="no client is active then"):
        sg.Workload(view, rate=10.0).sample(1200, rng=0)


def test_multimodal_and_reasoning_pools_use_attributes():
    mm = sg.Workload(sg.load_pool("multimodal/mm-image").span(12 * 3600, 13 * 3600), rate=50).sample(
        600, rng=1
    )
    assert {"image_count", "image_tokens", "input_tokens_total"} <= set(mm.columns)
    assert (mm["image_count"] >= 1).mean() > 0.5
    np.testing.assert_array_equal(mm["image_tokens"].lengths, mm["image_count"])
    r1 = sg.Workload(sg.load_pool("reason/deepseek-r1").span(12 * 3600, 13 * 3600), rate=50).sample(
        600, rng=1
    )
    np.testing.assert_array_equal(r1["reasoning_tokens"] + r1["answer_tokens"], r1.output_tokens)
    share = r1["reasoning_tokens"][r1.output_tokens > 100] / r1.output_tokens[r1.output_tokens > 100]
    assert share.mean() > 0.5  # DeepSeek-R1 spends most of its output reasoning


@pytest.mark.slow
def test_pool_workload_json_round_trip(large):
    wl = sg.Workload(large.span(3600, 7200), rate=20.0)
    spec = json.loads(wl.to_json())
    assert spec["clients"] == {
        "kind": "pool",
        "name": "language/m-large",
        "start": 3600.0,
        "end": 7200.0,
        "wrap": False,
        "laws": "recorded",
    }
    back = sg.Workload.from_json(wl.to_json())
    assert back.sample(3600, rng=2).equals(wl.sample(3600, rng=2))
    filtered = sg.Workload(large.span(0, 1200).filter(min_rate=0.5))
    assert sg.Workload.from_json(filtered.to_json()).sample(1200, rng=0).equals(filtered.sample(1200, rng=0))


@pytest.mark.slow
def test_release_reader_matches_embedded(release_zip):
    exact = sg.read_release(release_zip.path, "multimodal/mm-image")  # or its stand-in, whole
    embedded = sg.load_pool("multimodal/mm-image")
    a, b = exact.summary(), embedded.summary()
    np.testing.assert_array_equal(a.rate, b.rate)
    np.testing.assert_allclose(a.output_tokens_mean, b.output_tokens_mean, rtol=0.01)
