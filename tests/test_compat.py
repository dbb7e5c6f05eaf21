"""servegen.compat: the upstream prototype's API, exercised the way its README and tests do,
checked against servegen's native pools and against the semantics docs/migration.md states."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import servegen as sg
from servegen.compat import (
    ArrivalPat,
    Category,
    Client,
    ClientPool,
    ClientPoolView,
    ClientWindow,
    Request,
    generate_workload,
    get_bounded_rate_fn,
    get_constant_rate_fn,
    get_scaled_rate_fn,
    sample_from_cdf,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "migration.md"


@pytest.fixture(scope="module")
def large() -> ClientPool:
    return ClientPool(Category.LANGUAGE, "m-large")


@pytest.fixture(scope="module")
def native_large() -> sg.Pool:
    return sg.load_pool("language/m-large")


def gamma(rate: float, cv: float, shape: float = 1.0) -> dict:
    return {"rate": rate, "cv": cv, "pat": ("Gamma", (shape, 1.0))}


def spike(value: int) -> list[float]:
    """A PDF with all mass on ``value``."""
    return [0.0] * value + [1.0]


def uniform(lo: int, hi: int) -> list[float]:
    pdf = np.zeros(hi + 1)
    pdf[lo : hi + 1] = 1.0 / (hi + 1 - lo)
    return pdf.tolist()


def mock_pool() -> ClientPool:
    """Upstream's test fixture: two clients, two 600 s windows, known means."""
    c1 = Client(
        client_id=1,
        trace={0: {"rate": 5.0, "cv": 0.5, "pat": ("Gamma", (1.0, 1.0))},
               600: {"rate": 7.0, "cv": 1.0, "pat": ("Gamma", (1.0, 1.0))}},
        dataset={0: {"input_tokens": [0.5, 0.5], "output_tokens": [0.0, 0.5, 0.5]},
                 600: {"input_tokens": [0.0, 0.5, 0.5], "output_tokens": [0.0, 0.0, 0.5, 0.5]}},
    )  # fmt: skip
    c2 = Client(
        client_id=2,
        trace={0: {"rate": 7.0, "cv": 1.0, "pat": ("Gamma", (1.0, 1.0))},
               600: {"rate": 5.0, "cv": 0.5, "pat": ("Gamma", (1.0, 1.0))}},
        dataset={0: {"input_tokens": [0.0, 0.5, 0.5], "output_tokens": [0.0, 0.0, 0.5, 0.5]},
                 600: {"input_tokens": [0.5, 0.5], "output_tokens": [0.0, 0.5, 0.5]}},
    )  # fmt: skip
    return ClientPool.from_clients(Category.LANGUAGE, "test", [c1, c2])


def check_requests(reqs: list[Request], duration: float) -> np.ndarray:
    """Upstream's invariants: Request objects, ids 0.. in time order, sorted, in range."""
    assert all(isinstance(r, Request) for r in reqs)
    ts = np.array([r.timestamp for r in reqs])
    assert [r.request_id for r in reqs] == list(range(len(reqs)))
    assert (np.diff(ts) >= 0).all() and ts.min() >= 0 and ts.max() < duration
    return ts


# -- types -------------------------------------------------------------------------------
def test_enums_and_window_match_upstream():
    assert [c.value for c in Category] == ["language", "multimodal", "reason"]
    assert [p.value for p in ArrivalPat] == ["Gamma", "Weibull"]
    w = ClientWindow(client_id=1, timestamp=0, window_size=600)
    assert (w.rate, w.cv, w.arrival_pat, w.dataset) == (None, None, None, None)


# -- the README's examples ---------------------------------------------------------------
@pytest.mark.slow
def test_readme_basic_usage(large):
    reqs = generate_workload(large, {0: 100.0, 600: 150.0}, duration=1200, seed=0)
    ts = check_requests(reqs, 1200)
    n0, n1 = (ts < 600).sum(), (ts >= 600).sum()
    # 60 000 and 90 000 expected; production burstiness keeps the sum within a few %.
    assert abs(n0 / 60_000 - 1) < 0.08 and abs(n1 / 90_000 - 1) < 0.08
    assert list(reqs[0].data) == ["input_tokens", "output_tokens"]
    assert all(type(v) is int for v in reqs[0].data.values()) and type(reqs[0].timestamp) is float


def test_readme_filter_chain_and_cdfs(large, native_large, capsys):
    view = (
        large.span(72000, 75600)
        .filter_by_cv(0.5, 1.5)
        .filter_by_avg_input_len(100, 1000)
        .filter_by_max_output_len(2000)
    )
    cdfs = view.get_cdfs()
    # the README's printing loop
    for field in cdfs:
        if field in ["rate", "cv"]:
            print(f"  {field}: {len(sorted(cdfs[field].keys()))} timestamps")
        else:
            print(f"  {field}: {len(cdfs[field].keys())} statistics")
    first_ts = min(cdfs["rate"].keys())
    values, probs = cdfs["rate"][first_ts]
    print(f"Rate CDF at timestamp {first_ts}:", values, probs)
    for stat in ["avg", "p50", "p95", "p99"]:
        if stat in cdfs["input_tokens"] and first_ts in cdfs["input_tokens"][stat]:
            print(stat, *cdfs["input_tokens"][stat][first_ts])
    out = capsys.readouterr().out
    assert "rate: 6 timestamps" in out and "input_tokens: 4 statistics" in out

    assert list(cdfs) == ["rate", "cv", "input_tokens", "output_tokens"]
    assert sorted(cdfs["rate"]) == [0, 600, 1200, 1800, 2400, 3000]
    # the same filter natively: the same client-windows, rates and weighted statistics
    s = (
        native_large.span(72000, 75600)
        .filter(min_cv=0.5, max_cv=1.5, min_mean_input=100, max_mean_input=1000, max_output=2000)
        .summary()
    )
    got = {(w.client_id, w.timestamp) for w in view.get() if w.rate is not None}
    assert got == set(zip(s["client"], s["window_start"].astype(int), strict=True))
    for ts, g in s.groupby("window_start"):
        v, p = cdfs["rate"][int(ts)]
        np.testing.assert_allclose(v, np.sort(g["rate"]))
        np.testing.assert_allclose(p, np.arange(1, len(g) + 1) / len(g))
        order = np.lexsort((g["rate"], g["input_tokens_mean"]))
        v, p = cdfs["input_tokens"]["avg"][int(ts)]
        w = g["rate"].to_numpy()[order]
        np.testing.assert_allclose(v, g["input_tokens_mean"].to_numpy()[order])
        np.testing.assert_allclose(p, np.cumsum(w) / w.sum())
        for field, stat in (("input_tokens", "avg"), ("output_tokens", "p99"), ("cv", None)):
            v, p = cdfs[field][stat][int(ts)] if stat else cdfs[field][int(ts)]
            assert (np.diff(v) >= 0).all() and (np.diff(p) >= 0).all() and p[-1] == 1.0


def test_views_are_immutable_and_chainable(large):
    base = large.span(72000, 75600)
    n = len(base.get())
    filtered = base.filter_by_cv(0.5, 1.5)
    assert base.filters == () and len(base.get()) == n  # upstream appended to `base` itself
    assert len(filtered.get()) < n and isinstance(filtered, ClientPoolView)
    # span of a view is relative to its start and keeps its filters
    sub = filtered.span(600, 1800)
    assert sub.start_time == 72600 and sub.end_time == 73800 and sub.filters == filtered.filters
    assert {w.timestamp for w in sub.get()} == {0, 600}


@pytest.mark.slow
def test_generate_workload_with_views_and_shorter_duration(large):
    view = large.span(64800, 68400)
    fn = get_constant_rate_fn(view, 100.0)
    assert fn == dict.fromkeys(range(0, 3600, 600), 100.0)
    reqs = generate_workload(view, fn, duration=1500, seed=3)  # keys past 1500 are ignored
    ts = check_requests(reqs, 1500)
    assert abs(len(ts) / 150_000 - 1) < 0.08


def test_generate_workload_multimodal():
    pool = ClientPool(Category.MULTIMODAL, "mm-image")
    view = pool.span(0, 600)
    reqs = generate_workload(view, get_constant_rate_fn(view, 50.0), duration=600, seed=321)
    check_requests(reqs, 600)
    assert abs(len(reqs) / 30_000 - 1) < 0.1
    assert list(reqs[0].data) == [
        "text_tokens",
        "image_tokens",
        "audio_tokens",
        "video_tokens",
        "output_tokens",
    ]
    counts = np.array([len(r.data["image_tokens"]) for r in reqs])
    assert all(isinstance(r.data[k], list) for r in reqs[:100] for k in ("image_tokens", "audio_tokens"))
    assert not any(r.data["audio_tokens"] or r.data["video_tokens"] for r in reqs)  # mm-image has none
    # image counts follow the pool's count distributions: mostly one image, sometimes more
    assert 0.5 < (counts == 1).mean() < 1 and counts.max() >= 2


@pytest.mark.slow
def test_generate_workload_reason():
    pool = ClientPool(Category.REASON, "deepseek-r1")
    view = pool.span(0, 3600)
    reqs = generate_workload(view, get_constant_rate_fn(view, 100), duration=3600, seed=0)
    check_requests(reqs, 3600)
    assert abs(len(reqs) / 360_000 - 1) < 0.1
    ratio = np.array([r.data["reason_ratio"] for r in reqs])
    out = np.array([r.data["output_tokens"] for r in reqs])
    assert ((ratio >= 0) & (ratio <= 1)).all()
    # the realized share of the generated split: ratio * output is a whole number of tokens
    np.testing.assert_allclose(ratio * out, np.rint(ratio * out), atol=1e-6)
    # DeepSeek-R1 reasons for most of its output
    assert 0.5 < np.average(ratio, weights=out) < 0.95


def bursty_client(client_id: int) -> Client:
    """The upstream README's custom bursty client."""
    return Client(
        client_id=client_id,
        trace={0: {"rate": 4.0, "cv": 2.0, "pat": ("Gamma", (0.25, 1.0))},
               60: {"rate": 3.33, "cv": 2.0, "pat": ("Gamma", (0.25, 1.2))},
               120: {"rate": 4.0, "cv": 2.0, "pat": ("Gamma", (0.25, 1.0))}},
        dataset={0: {"input_tokens": [0.0] * 1000 + [0.1, 0.2, 0.4, 0.2, 0.1],
                     "output_tokens": [0.0] * 200 + [0.1, 0.2, 0.4, 0.2, 0.1]},
                 60: {"input_tokens": [0.0] * 1010 + [0.1, 0.2, 0.4, 0.2, 0.1],
                      "output_tokens": [0.0] * 190 + [0.1, 0.2, 0.4, 0.2, 0.1]}},
    )  # fmt: skip


def stable_client(client_id: int) -> Client:
    """The upstream README's custom stable client (Pareto input, exponential output)."""
    inp = stats.pareto.pdf(np.arange(32768), 2.5, scale=300)
    out = stats.expon.pdf(np.arange(32768), scale=300)
    pdfs = {"input_tokens": (inp / inp.sum()).tolist(), "output_tokens": (out / out.sum()).tolist()}
    trace = {0: gamma(2.0, 1.0), 60: gamma(2.5, 1.0), 120: gamma(2.0, 1.0)}
    return Client(client_id=client_id, trace=trace, dataset={0: pdfs})


def test_readme_custom_clients():
    pool = ClientPool.from_clients(Category.LANGUAGE, "custom", [bursty_client(1), stable_client(2)])
    assert set(pool.clients) == {1, 2} and pool.clients[1].client_id == 1
    reqs = generate_workload(pool, {0: 10.0, 60: 15.0, 120: 8.0}, duration=180, seed=0)
    ts = check_requests(reqs, 180)
    counts = np.histogram(ts, bins=[0, 60, 120, 180])[0]
    np.testing.assert_allclose(counts, [600, 900, 480], rtol=0.3)  # sd ~7 % (bursty client)
    inp = np.array([r.data["input_tokens"] for r in reqs])
    # the bursty client's window-60 inputs are 1010..1014 (its dataset in force from 60 s)
    mid = inp[(ts >= 60) & (ts < 120) & (inp >= 1000) & (inp <= 1014)]
    assert mid.size > 0 and mid.min() >= 1010
    # its share follows its rate share: 4 of 6 req/s in the first window
    first = inp[ts < 60]
    assert abs(((first >= 1000) & (first <= 1004)).mean() - 4 / 6) < 0.12  # sd 0.03


# -- get(): upstream's windowing rules -----------------------------------------------------
def windowed_pool() -> ClientPool:
    a = Client(1, trace={0: gamma(2.0, 1.0), 60: None, 120: gamma(3.0, 2.0)},
               dataset={0: {"input_tokens": spike(10), "output_tokens": spike(5)},
                        120: {"input_tokens": spike(30), "output_tokens": spike(7)}})  # fmt: skip
    b = Client(
        2,
        trace={0: None, 60: None, 120: None},
        dataset={0: {"input_tokens": spike(1), "output_tokens": spike(1)}},
    )
    c = Client(3, trace={0: gamma(1.0, 0.0), 60: gamma(4.0, 0.8), 120: None}, dataset={})
    return ClientPool.from_clients(Category.LANGUAGE, "w", [a, b, c])


def test_get_truncates_windows_and_keeps_idle_windows_of_active_clients():
    pool = windowed_pool()
    wins = pool.span(30, 150).get()
    by = {(w.client_id, w.timestamp): w for w in wins}
    # client 2 never sends anything: left out; windows cut at 30 and 150 s
    assert sorted(by) == [(1, 0), (1, 30), (1, 90), (3, 0), (3, 30), (3, 90)]
    assert [by[(1, t)].window_size for t in (0, 30, 90)] == [30, 60, 30]
    assert by[(1, 30)].rate is None and by[(1, 30)].arrival_pat is None
    assert by[(1, 90)].arrival_pat == ("Gamma", (1.0, 1.0)) and by[(1, 90)].cv == 2.0
    # the dataset in force is the latest at or before the window's own start
    assert by[(1, 30)].dataset["input_tokens"] == spike(10)
    assert by[(1, 90)].dataset["input_tokens"] == spike(30)
    assert by[(3, 0)].dataset is None
    # the last window of a custom pool holds on (upstream's rule)
    last = [w for w in pool.get() if w.client_id == 1][-1]
    assert last.timestamp == 120 and last.window_size == math.inf


def test_get_cdfs_weights_by_rate_and_matches_hand_computation():
    pool = ClientPool.from_clients(Category.LANGUAGE, "h", [
        Client(1, trace={0: gamma(1.0, 2.0)}, dataset={0: {"input_tokens": uniform(0, 10), "output_tokens": spike(4)}}),
        Client(2, trace={0: gamma(3.0, 1.0)}, dataset={0: {"input_tokens": spike(2), "output_tokens": spike(9)}}),
        Client(3, trace={0: gamma(1.0, 2.0)}, dataset={0: {"input_tokens": spike(8), "output_tokens": spike(1)}}),
    ])  # fmt: skip
    cdfs = pool.span(0, 600).get_cdfs()
    v, p = cdfs["rate"][0]
    np.testing.assert_allclose(v, [1, 1, 3]) and np.testing.assert_allclose(p, [1 / 3, 2 / 3, 1])
    v, p = cdfs["cv"][0]  # ties sorted by weight, weights 1, 1, 3 of 5
    np.testing.assert_allclose(v, [1, 2, 2]) and np.testing.assert_allclose(p, [0.6, 0.8, 1.0])
    v, p = cdfs["input_tokens"]["avg"][0]
    np.testing.assert_allclose(v, [2, 5, 8]) and np.testing.assert_allclose(p, [0.6, 0.8, 1.0])
    v, _ = cdfs["input_tokens"]["p95"][0]
    np.testing.assert_allclose(v, [2, 8, 10])  # smallest value with CDF >= 0.95 of 0..10
    v, p = cdfs["output_tokens"]["p50"][0]
    np.testing.assert_allclose(v, [1, 4, 9]) and np.testing.assert_allclose(p, [0.2, 0.4, 1.0])


def test_custom_filters_see_only_surviving_windows_in_order():
    pool = windowed_pool()
    seen = []

    def rate_above_2(w: ClientWindow) -> bool:
        seen.append(w)
        return w.rate > 2  # would fail on None: filter_by_cv removed those windows first

    view = pool.filter_by_cv(0.5, 5).filter(rate_above_2)
    got = [(w.client_id, w.timestamp) for w in view.get()]
    assert got == [(1, 120), (3, 60)]
    assert all(w.cv is not None for w in seen)
    # the built-in filters stay callable on windows, like upstream's closures
    cv_filter = view.filters[0]
    assert [cv_filter(w) for w in pool.span(0, 180).get()] == [True, False, True, False, True, False]


def test_length_filters():
    pool = windowed_pool()
    assert {(w.client_id, w.timestamp) for w in pool.filter_by_avg_input_len(20, 40).get()} == {(1, 120)}
    assert {(w.client_id, w.timestamp) for w in pool.filter_by_max_output_len(5).get()} == {(1, 0), (1, 60)}
    assert pool.filter_by_avg_output_len(0, 4).get() == []
    mixed = pool.filter_by_max_input_len(10)
    assert {w.timestamp for w in mixed.get()} == {0, 60}
    # multimodal pools filter on text tokens (upstream looked for input_tokens and kept nothing)
    mm = ClientPool(Category.MULTIMODAL, "mm-image").span(0, 3600)
    kept = mm.filter_by_avg_input_len(0, 200).get()
    assert 0 < len([w for w in kept if w.rate is not None]) < len([w for w in mm.get() if w.rate is not None])


# -- rate functions ------------------------------------------------------------------------
def test_rate_functions_match_native_aggregate(large, native_large):
    view = large.span(39600, 43200)
    agg = native_large.span(39600, 43200).aggregate_rate()
    scaled = get_scaled_rate_fn(view, 2.0)
    assert list(scaled) == [0, 600, 1200, 1800, 2400, 3000]
    np.testing.assert_allclose(list(scaled.values()), 2 * agg.to_numpy(), rtol=1e-9)
    bounded = get_bounded_rate_fn(view, 10.0)
    np.testing.assert_allclose(list(bounded.values()), agg.to_numpy() * 10 / agg.max(), rtol=1e-9)
    # below the cap the native shape is kept (upstream caps, it does not stretch)
    high = get_bounded_rate_fn(view, 1e6)
    np.testing.assert_allclose(list(high.values()), agg.to_numpy(), rtol=1e-9)


def test_rate_functions_give_idle_windows_zero():
    pool = windowed_pool()
    # a window that every kept client skips is absent from get(), hence from the rate fns
    assert get_constant_rate_fn(pool.span(0, 180).filter_by_cv(0.9, 5), 7.0) == {0: 7.0, 120: 7.0}
    assert get_constant_rate_fn(pool.filter_by_cv(100, 200), 1.0) == {}
    # client 3 is filtered out (and with it the only sender at 60 s); client 1's idle
    # window at 60 s stays
    view = pool.span(0, 180).filter(lambda w: w.rate is None or 1.5 < w.rate < 3.5)
    assert {w.client_id for w in view.get()} == {1}
    assert get_constant_rate_fn(view, 7.0) == {0: 7.0, 60: 7.0, 120: 7.0}
    assert get_scaled_rate_fn(view, 2.0) == {0: 4.0, 60: 0.0, 120: 6.0}
    assert get_bounded_rate_fn(view, 1.5) == {0: 1.0, 60: 0.0, 120: 1.5}
    with pytest.warns(UserWarning, match=r"asks for requests at \[60\]"):
        reqs = generate_workload(view, get_constant_rate_fn(view, 7.0), duration=180, seed=0)
    ts = np.array([r.timestamp for r in reqs])
    assert not ((ts >= 60) & (ts < 120)).any() and ((ts < 60).sum() > 300)


# -- semantics (docs/migration.md, "What differs") --------------------------------------------
def one_client_pool(trace: dict, dataset: dict) -> ClientPool:
    return ClientPool.from_clients(Category.LANGUAGE, "one", [Client(1, trace=trace, dataset=dataset)])


def test_request_counts_are_random():
    pool = one_client_pool({0: gamma(1.0, 1.0)}, {0: {"input_tokens": spike(3), "output_tokens": spike(3)}})
    counts = [len(generate_workload(pool, {0: 1.0}, duration=600, seed=s)) for s in range(30)]
    # Poisson(600): sd 24.5; upstream's fixed count gave ceil(600) every time
    assert 12 < np.std(counts) < 40 and abs(np.mean(counts) - 600) < 20


def test_recorded_cv_is_honoured_not_the_fitted_shape():
    # the recorded CV is 3 while the fitted Gamma shape 1 means CV 1; servegen follows the CV
    pool = one_client_pool(
        {0: gamma(10.0, 3.0, shape=1.0)}, {0: {"input_tokens": spike(3), "output_tokens": spike(3)}}
    )
    ts = np.array([r.timestamp for r in generate_workload(pool, {0: 10.0}, duration=7200, seed=1)])
    gaps = np.diff(ts)
    assert 2.4 < gaps.std() / gaps.mean() < 3.6
    # a recorded CV of 0 (degenerate fit) falls back to the shape's: Gamma shape 4 -> CV 0.5
    pool = one_client_pool(
        {0: gamma(10.0, 0.0, shape=4.0)}, {0: {"input_tokens": spike(3), "output_tokens": spike(3)}}
    )
    gaps = np.diff([r.timestamp for r in generate_workload(pool, {0: 10.0}, duration=3600, seed=1)])
    assert abs(gaps.std() / gaps.mean() - 0.5) < 0.03


def test_fields_are_independent():
    pool = one_client_pool(
        {0: gamma(10.0, 1.0)}, {0: {"input_tokens": uniform(1, 1000), "output_tokens": uniform(1, 1000)}}
    )
    reqs = generate_workload(pool, {0: 10.0}, duration=1200, seed=2)
    inp = [r.data["input_tokens"] for r in reqs]
    out = [r.data["output_tokens"] for r in reqs]
    rho = stats.spearmanr(inp, out).statistic
    assert abs(rho) < 4 / math.sqrt(len(reqs))  # upstream: rho = 1 (one uniform for all fields)
    assert stats.kstest(inp, stats.randint(1, 1001).cdf).pvalue > 1e-3


@pytest.mark.slow
def test_per_client_streams_adding_a_client_leaves_others_unchanged():
    a = Client(
        1,
        trace={0: gamma(2.0, 2.0), 600: gamma(1.0, 1.5)},
        dataset={0: {"input_tokens": uniform(1, 100), "output_tokens": spike(7)}},
    )
    b = Client(
        2,
        trace={0: gamma(3.0, 1.0), 600: gamma(3.0, 1.0)},
        dataset={0: {"input_tokens": spike(5000), "output_tokens": spike(7)}},
    )
    alone = ClientPool.from_clients(Category.LANGUAGE, "a", [a])
    both = ClientPool.from_clients(Category.LANGUAGE, "ab", [a, b])
    ra = generate_workload(alone, get_scaled_rate_fn(alone, 1.0), duration=1200, seed=9)
    rb = generate_workload(both, get_scaled_rate_fn(both, 1.0), duration=1200, seed=9)
    mine = [(r.timestamp, r.data) for r in rb if r.data["input_tokens"] < 5000]
    assert mine == [(r.timestamp, r.data) for r in ra]
    # same seed, same workload; another seed, another one
    again = generate_workload(both, get_scaled_rate_fn(both, 1.0), duration=1200, seed=9)
    assert [(r.timestamp, r.data) for r in again] == [(r.timestamp, r.data) for r in rb]
    other = generate_workload(both, get_scaled_rate_fn(both, 1.0), duration=1200, seed=10)
    assert [r.timestamp for r in other[:10]] != [r.timestamp for r in rb[:10]]


def test_runs_on_the_native_engine(large):
    view = large.span(64800, 66000).filter_by_cv(0.2, 3)
    fn = get_constant_rate_fn(view, 50.0)
    reqs = generate_workload(view, fn, duration=1200, seed=4)
    native = sg.Workload(view, rate=fn).sample(1200, rng=4)  # a compat view feeds sg.Workload
    np.testing.assert_array_equal([r.timestamp for r in reqs], native.timestamp)
    np.testing.assert_array_equal([r.data["output_tokens"] for r in reqs], native.output_tokens)


def test_custom_reason_and_multimodal_clients():
    reason = one_client_pool(
        {0: gamma(5.0, 1.0)},
        {0: {"input_tokens": spike(10), "output_tokens": uniform(1, 50), "reason_ratio": [0.0, 0.0, 1.0]}},
    )
    reqs = generate_workload(reason, {0: 5.0}, duration=600, seed=0)
    assert {r.data["reason_ratio"] for r in reqs} == {1.0}  # entry 2 of 3 is ratio 2 / 2
    mm = one_client_pool(
        {0: gamma(5.0, 1.0)},
        {0: {"text_tokens": spike(20), "image_count": [0.5, 0.0, 0.5], "image_tokens": spike(256),
             "output_tokens": spike(9)}},
    )  # fmt: skip
    reqs = generate_workload(mm, {0: 5.0}, duration=600, seed=0)
    n_images = np.array([len(r.data["image_tokens"]) for r in reqs])
    assert set(n_images.tolist()) == {0, 2} and abs((n_images == 2).mean() - 0.5) < 0.1
    assert {t for r in reqs for t in r.data["image_tokens"]} == {256}
    assert all(r.data["audio_tokens"] == [] and r.data["text_tokens"] == 20 for r in reqs)


def test_custom_trace_starting_after_the_view():
    pool = one_client_pool(
        {100: gamma(2.0, 1.0), 200: None}, {100: {"input_tokens": spike(3), "output_tokens": spike(3)}}
    )
    assert get_constant_rate_fn(pool.span(0, 300), 4.0) == {100: 4.0, 200: 4.0}
    with pytest.warns(UserWarning, match=r"\[200\]"):
        reqs = generate_workload(pool, {100: 4.0, 200: 4.0}, duration=300, seed=0)
    ts = np.array([r.timestamp for r in reqs])
    assert ts.min() >= 100 and ts.max() < 200 and abs(len(ts) - 400) < 100


# -- embedded clients ----------------------------------------------------------------------
@pytest.mark.slow
def test_embedded_clients_read_the_profile(large, native_large):
    assert (
        len(large.clients) == 162
        and len(ClientPool("language", "m-large", include_imputed=False).clients) == 147
    )
    c = large.clients[12]
    assert len(c.trace) == 2016 and list(c.trace)[:2] == [0, 600]
    s = native_large.summary()
    row = s[(s["client"] == 12)].iloc[0]
    entry = c.trace[int(row["window_start"])]
    assert entry["rate"] == pytest.approx(row["rate"]) and entry["pat"][0] == row["law"].capitalize()
    d = int(row["window_start"]) // 21600 * 21600
    pdf = c.dataset[d]["input_tokens"]
    assert sum(pdf) == pytest.approx(1) and np.dot(np.arange(len(pdf)), pdf) == pytest.approx(
        row["input_tokens_mean"]
    )
    with pytest.raises(TypeError):
        c.trace[0] = None  # read-only: copy into dicts and use from_clients to edit
    with pytest.raises(TypeError):
        large.clients[12] = c
    c.validate()
    large.validate()
    # reason_ratio PDFs: entry i is ratio i / (len - 1), exactly the release's i / 501 grid
    r1 = ClientPool(Category.REASON, "deepseek-r1")
    pdf = next(iter(r1.clients.values())).dataset[0]["reason_ratio"]
    assert len(pdf) == 502 and pdf[-1] == 0.0 and sum(pdf) == pytest.approx(1)


@pytest.mark.slow
def test_from_clients_paths_agree():
    """Embedded clients (fast path) and the same data as plain dicts (generic path)."""
    r1 = ClientPool(Category.REASON, "deepseek-r1")
    picked = [r1.clients[k] for k in sorted(r1.clients)[:3]]
    fast = ClientPool.from_clients(Category.REASON, "r1", picked)
    assert fast._tables.profile is not None
    copies = [Client(c.client_id, dict(c.trace), {k: dict(v) for k, v in c.dataset.items()}) for c in picked]
    slow = ClientPool.from_clients(Category.REASON, "r1", copies)
    assert slow._tables.profile is None
    a, b = fast.span(0, 7200).get_cdfs(), slow.span(0, 7200).get_cdfs()
    assert a.keys() == b.keys() and a["rate"].keys() == b["rate"].keys()
    for field in ("input_tokens", "reason_ratio"):
        for stat in ("avg", "p99"):
            for ts in a[field][stat]:
                np.testing.assert_allclose(a[field][stat][ts][0], b[field][stat][ts][0], rtol=1e-9)
    fn = get_constant_rate_fn(fast.span(0, 7200), 3.0)
    ra = generate_workload(fast, fn, duration=7200, seed=5)
    rb = generate_workload(slow, fn, duration=7200, seed=5)
    np.testing.assert_array_equal([r.timestamp for r in ra], [r.timestamp for r in rb])
    # the same subset by filtering the full pool: the same windows, the same requests
    ids = {c.client_id for c in picked}
    rc = generate_workload(r1.filter(lambda w: w.client_id in ids), fn, duration=7200, seed=5)
    np.testing.assert_array_equal([r.timestamp for r in ra], [r.timestamp for r in rc])


# -- errors --------------------------------------------------------------------------------
def good_trace() -> dict:
    return {0: gamma(1.0, 1.0), 60: gamma(2.0, 1.5)}


def good_dataset() -> dict:
    return {0: {"input_tokens": [0.5, 0.5], "output_tokens": [0.0, 1.0]}}


BAD_CLIENTS = [
    (
        {60: gamma(1.0, 1.0), 0: gamma(1.0, 1.0)},
        None,
        r"`trace` timestamps must be in ascending order, got \[60, 0\]",
    ),
    ({0: {"rate": 1.0, "cv": 1.0}}, None, r"`trace\[0\]` is missing \['pat'\]"),
    (
        {0: {**gamma(1.0, 1.0), "rate": -1.0}},
        None,
        r"`trace\[0\]\['rate'\]` must be a finite number >= 0, got -1.0",
    ),
    (
        {0: {**gamma(1.0, 1.0), "cv": -0.5}},
        None,
        r"`trace\[0\]\['cv'\]` must be a finite number >= 0, got -0.5",
    ),
    (
        {0: {**gamma(1.0, 1.0), "pat": ("Poisson", (1.0, 1.0))}},
        None,
        r"law must be one of \['Gamma', 'Weibull'\], got 'Poisson'",
    ),
    (
        {0: {**gamma(1.0, 1.0), "pat": ("Gamma", (0.0, 1.0))}},
        None,
        r"\(shape, scale\), two finite numbers > 0, got \(0.0, 1.0\)",
    ),
    (
        {0: {**gamma(1.0, 1.0), "pat": "Gamma"}},
        None,
        r"`trace\[0\]\['pat'\]` must be \(law, \(shape, scale\)\), got 'Gamma'",
    ),
    ({0: [1.0, 1.0, "Gamma"]}, None, r"`trace\[0\]` must be a dict with 'rate', 'cv', 'pat'"),
    (
        None,
        {0: {"input_tokens": [0.5, 0.4]}},
        r"`dataset\[0\]\['input_tokens'\]`: probabilities must sum to 1 \(within 1e-06\), got 0.9",
    ),
    (None, {0: {"input_tokens": [1.5, -0.5]}}, r"probabilities must be finite and >= 0, got -0.5 at index 1"),
    (
        None,
        {0: {"input_tokens": "[1.0]"}},
        r"`dataset\[0\]\['input_tokens'\]` must be a list of probabilities, got str",
    ),
    (None, {0: {"input_tokens": [1.0, "a"]}}, r"must hold numbers only"),
    (None, {0: {"input_tokens": [1.0, None]}}, r"must be finite and >= 0, got nan at index 1"),
    (
        None,
        {60: {"input_tokens": [1.0]}, 0: {"input_tokens": [1.0]}},
        r"`dataset` timestamps must be in ascending order",
    ),
    (None, {0: [1.0]}, r"`dataset\[0\]` must be a dict of field -> pdf"),
    ({-60: gamma(1.0, 1.0)}, None, r"timestamps must be finite numbers of seconds >= 0, got -60"),
]


@pytest.mark.parametrize(("trace", "dataset", "match"), BAD_CLIENTS)
def test_client_validation_errors(trace, dataset, match):
    c = Client(3, trace=trace or good_trace(), dataset=dataset or good_dataset())
    with pytest.raises(ValueError, match=r"Client 3: .*" + match):
        c.validate()
    with pytest.raises(ValueError, match=match):
        ClientPool.from_clients(Category.LANGUAGE, "x", [c])  # pools validate their clients


def test_pool_validation_errors():
    ok = Client(1, good_trace(), good_dataset())
    with pytest.raises(ValueError, match=r"duplicate client_id 1"):
        ClientPool.from_clients(Category.LANGUAGE, "x", [ok, Client(1, good_trace(), good_dataset())])
    with pytest.raises(
        ValueError, match=r"client 2 has trace timestamps differing from client 1 \(missing \[60\]"
    ):
        ClientPool.from_clients(Category.LANGUAGE, "x", [ok, Client(2, {0: gamma(1, 1)}, {})])
    with pytest.raises(
        ValueError, match=r"client 2 has dataset timestamps \[30\] that are not trace timestamps"
    ):
        ClientPool.from_clients(
            Category.LANGUAGE, "x", [ok, Client(2, good_trace(), {30: good_dataset()[0]})]
        )
    with pytest.raises(ValueError, match=r"`clients` must not be empty"):
        ClientPool.from_clients(Category.LANGUAGE, "x", [])
    with pytest.raises(ValueError, match=r"`clients\[5\]` has client_id 1"):
        ClientPool(Category.LANGUAGE, "x", clients={5: ok})
    with pytest.raises(ValueError, match=r"no embedded pool 'reason/m-large'.*'language/m-large'"):
        ClientPool(Category.REASON, "m-large")
    with pytest.raises(
        ValueError, match=r"`category` must be one of \['language', 'multimodal', 'reason'\], got 'text'"
    ):
        ClientPool("text", "m-large")
    with pytest.raises(TypeError, match=r"`condition` must be callable"):
        mock_pool().filter(3)
    with pytest.raises(ValueError, match=r"`min_cv` must be <= `max_cv`, got 2.0 > 1.0"):
        mock_pool().filter_by_cv(2, 1)


def test_span_and_generate_errors(large):
    pool = mock_pool()
    # upstream's own cases: a missing and a wrong timestamp
    for fn in ({0: 8.0}, {0: 8.0, 300: 8.0}):
        with pytest.raises(
            ValueError, match=r"Rate function timestamps don't match pool timestamps.*Expected \[0, 600\]"
        ):
            generate_workload(pool, fn, duration=1200)
    with pytest.raises(ValueError, match=r"`rate_fn\[600\]` must be a finite number >= 0, got -2.0"):
        generate_workload(pool, {0: 8.0, 600: -2.0}, duration=1200)
    with pytest.raises(TypeError, match=r"`rate_fn` keys must be numbers of seconds, got '600'"):
        generate_workload(pool, {0: 8.0, "600": 8.0}, duration=1200)
    with pytest.raises(ValueError, match=r"`duration` must be finite and > 0, got 0"):
        generate_workload(pool, {0: 8.0}, duration=0)
    with pytest.raises(
        ValueError,
        match=r"`duration` 3000000 s: span: `end_time` 3000000 s is past the end of the language/m-large data",
    ):
        generate_workload(large, {0: 1.0}, duration=3_000_000)
    with pytest.raises(ValueError, match=r"`end_time` must be > `start_time`, got 600 and 600"):
        pool.span(600, 600)
    with pytest.raises(ValueError, match=r"`start_time` must be finite and >= 0, got -1"):
        pool.span(-1, 600)
    no_data = one_client_pool(
        {0: gamma(1.0, 1.0), 60: gamma(1.0, 1.0)}, {60: {"input_tokens": spike(1), "output_tokens": spike(1)}}
    )
    with pytest.raises(ValueError, match=r"client 1 has requests at timestamp 0 but no dataset in force"):
        generate_workload(no_data, {0: 1.0, 60: 1.0}, duration=120)
    extra = one_client_pool(
        {0: gamma(1.0, 1.0)}, {0: {"input_tokens": spike(1), "output_tokens": spike(1), "priority": spike(2)}}
    )
    with pytest.raises(ValueError, match=r"fields \['input_tokens', 'output_tokens', 'priority'\]"):
        generate_workload(extra, {0: 1.0}, duration=60)
    # upstream's mock pool: everything valid generates
    reqs = generate_workload(pool, {0: 8.0, 600: 12.0}, duration=1200, seed=0)
    ts = check_requests(reqs, 1200)
    assert abs((ts < 600).sum() / 4800 - 1) < 0.1 and abs((ts >= 600).sum() / 7200 - 1) < 0.1


def test_sample_from_cdf():
    cdf = (np.array([1.0, 2.0, 5.0]), np.array([0.2, 0.5, 1.0]))
    draws = sample_from_cdf(cdf, 20_000, rng=0)
    freq = [(draws == v).mean() for v in (1.0, 2.0, 5.0)]
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.015)  # 5 sd of a proportion at n=20k
    legacy = sample_from_cdf(cdf, 5, rng=np.random.RandomState(1))
    assert legacy.shape == (5,) and set(legacy.tolist()) <= {1.0, 2.0, 5.0}
    assert sample_from_cdf((np.array([]), np.array([])), 3).size == 0
    np.testing.assert_array_equal(sample_from_cdf(cdf, 4, rng=7), sample_from_cdf(cdf, 4, rng=7))
    with pytest.raises(ValueError, match=r"cumulative_probs must be finite and non-decreasing"):
        sample_from_cdf((np.array([1.0, 2.0]), np.array([0.7, 0.5])), 3)
    with pytest.raises(ValueError, match=r"`n_samples` must be a whole number >= 0, got -1"):
        sample_from_cdf(cdf, -1)


# -- docs ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_migration_doc_examples_run(tmp_path, monkeypatch, capsys):
    """Every ```python block of docs/migration.md runs, in order, from any directory."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOCS.name}[block {i}]", "exec"), ns)
    out = capsys.readouterr().out
    assert "reason_ratio" in out and "image_tokens" in out
    text = DOCS.read_text(encoding="utf-8")
    for name in (
        "generate_workload",
        "get_cdfs",
        "filter_by_max_output_len",
        "get_bounded_rate_fn",
        "sample_from_cdf",
    ):
        assert name in text
