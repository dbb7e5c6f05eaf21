"""Warm start of session clients (sessions in progress at t = 0) and conversations by
default in ``fit``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import servegen as sg
from servegen.cache import prefix_hit_rate


def chat(warm=True, arrival=None, **session):
    # first turns of ~400 user tokens: past the 512-token prompt they fill whole blocks of
    # 64 tokens, so a continuation shows in the block hashes
    kw = dict(turns=sg.Empirical(values=[1, 4, 8], probs=[0.4, 0.3, 0.3]), think_time=sg.Exponential(mean=60))
    kw.update(session)
    return sg.Client(
        arrival=arrival or sg.Poisson(rate=0.5),
        input_tokens=sg.LogNormal(mu=6, sigma=0.5),
        output_tokens=sg.Exponential(mean=100),
        session=sg.Session(new_tokens=40, warm_start=warm, **kw),
        prefix=sg.SharedPrefix(groups=3, popularity=sg.Zipf(s=1.0, n=3), tokens=512),
    )


def warm_sessions(r):
    """Sessions whose first turn in the stream is a later turn: started before t = 0."""
    df = r.to_pandas()
    return (df[df.session >= 0].groupby("session").turn.min() > 1).sum()


def test_no_ramp_up():
    # mean turns 3.8, sessions last ~4 min on average: a cold start ramps up for minutes
    ratios = {}
    for warm in (True, False):
        wl = sg.Workload([chat(warm)], rate=4.0)  # the target counts requests
        r = [wl.sample(1800, rng=s).timestamp for s in range(4)]
        first = np.mean([(t < 300).sum() / 300 for t in r])
        rest = np.mean([(t >= 300).sum() / 1500 for t in r])
        ratios[warm] = first / rest
        if warm:
            assert rest == pytest.approx(4.0, rel=0.05)
    assert ratios[True] == pytest.approx(1.0, abs=0.06)  # 4 x 1200 requests: ~2.5 % noise
    assert ratios[False] < 0.75


def test_sessions_in_progress_at_zero_follow_littles_law():
    # every session lasts exactly D = 2 x (50 tokens / 50 tok/s + 100 s) = 202 s: the
    # sessions started in [-D, 0) still run at 0, rate x D = 202 of them on average
    c = sg.Client(
        arrival=sg.Poisson(rate=1.0),
        input_tokens=100,
        output_tokens=50,
        session=sg.Session(turns=3, think_time=100, new_tokens=10),
    )
    counts = [warm_sessions(c.sample(600, rng=s)) for s in range(6)]
    assert np.mean(counts) == pytest.approx(202, rel=0.06)  # sd of the mean: 2.4 %
    cold = c.model_copy(update={"session": c.session.model_copy(update={"warm_start": False})})
    assert warm_sessions(cold.sample(600, rng=0)) == 0
    # under a Gamma law of starts the count is the same on average (stationary start)
    g = c.model_copy(update={"arrival": sg.Gamma(rate=1.0, cv=2.0)})
    assert np.mean([warm_sessions(g.sample(600, rng=s)) for s in range(6)]) == pytest.approx(202, rel=0.15)


def test_warm_turns_continue_their_sessions():
    r = sg.Workload([chat()], block_size=256).sample(1200, rng=5)
    s, t, p = r["session"], r["turn"], r["parent"]
    first_seen = np.zeros(len(r), dtype=bool)
    first_seen[np.unique(s, return_index=True)[1]] = True
    warm = first_seen & (t > 1)
    assert warm.sum() > 20
    assert (p[warm] == -1).all()
    # the next turn of a warm session links to it and repeats its full blocks
    later = np.flatnonzero(np.isin(p, np.flatnonzero(warm)))
    assert later.size > 5
    ids = r["hash_ids"]
    for i in later[:50]:
        full = r.input_tokens[p[i]] // 256
        np.testing.assert_array_equal(ids[i][:full], ids[p[i]][:full])
    # context grew before t = 0: a warm session's first seen input holds earlier turns
    # (turn k adds the previous output, 100, and 40 new tokens on average)
    assert np.median(r.input_tokens[warm]) > 100 + np.median(r.input_tokens[(t == 1) & (s >= 0)])


@pytest.mark.slow
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), chunk=st.floats(30.0, 1500.0), rate=st.floats(0.05, 2.0))
def test_warm_start_keeps_the_stream_rules(seed, chunk, rate):
    wl = sg.Workload(
        {"chat": chat(arrival=sg.Gamma(rate=rate, cv=2.0)), "onoff": chat(arrival=sg.OnOff(rate_on=2, mean_on=30, mean_off=60)),
         "api": sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=5)},
        block_size=64,
    )  # fmt: skip
    full = wl.sample(1300, rng=seed)
    assert warm_sessions(full) > 0
    assert wl.sample(1300, rng=seed).equals(full)
    assert wl.sample(1300, rng=seed, workers=1).equals(full)
    assert sg.Requests.concat(list(wl.iter_chunks(1300, chunk, rng=seed))).equals(full)
    parts = [wl.sample(1300, rng=seed, clients=g) for g in (["onoff"], ["api", "chat"])]
    assert sg.merge(parts).equals(full)


def test_warm_start_option_round_trips_and_validates():
    wl = sg.Workload({"a": chat(warm=False), "b": chat()}, block_size=512)
    spec = json.loads(wl.to_json())
    assert [c["session"]["warm_start"] for _, c in spec["clients"]] == [False, True]
    again = sg.Workload.from_json(wl.to_json())
    assert again == wl and again.sample(900, rng=1).equals(wl.sample(900, rng=1))
    with pytest.raises(ValueError, match="warm_start"):
        sg.Session(turns=2, think_time=1, new_tokens=1, warm_start="maybe")


def test_replay_and_single_turn_clients_are_not_warm_started():
    replay = chat(arrival=sg.Replay(timestamps=np.linspace(0, 500, 200)))
    assert warm_sessions(replay.sample(500, rng=0)) == 0
    single = chat(turns=1)
    assert (single.sample(600, rng=0)["turn"] == 1).all()


# -- fit: conversations by default ------------------------------------------------------
def recorded(block_size=64):
    return sg.Workload([chat(arrival=sg.Poisson(rate=1.0))], block_size=block_size).sample(3600, rng=7)


@pytest.mark.slow
def test_fit_models_conversations_by_default():
    trace = recorded().to_pandas()
    wl = sg.fit(trace[["timestamp", "input_tokens", "output_tokens", "hash_ids"]])
    c = wl.clients[0]
    assert wl.info["sessions"] and wl.block_size == 64  # block size inferred from hash_ids
    assert c.session is not None and c.prefix is not None and c.session.warm_start
    assert isinstance(c.arrival, sg.ArrivalSchedule)  # the starts' windows, as for any trace
    assert c.session.mean_turns() == pytest.approx(3.8, rel=0.08)
    assert wl.info["session_starts"] < len(trace) / 3
    again = wl.sample(3600, rng=1)
    assert len(again) / len(trace) == pytest.approx(1.0, abs=0.08)
    assert prefix_hit_rate(again) == pytest.approx(prefix_hit_rate(trace), abs=0.05)
    # The recording's first turns of conversations begun before it are orphans counted as
    # starts; the warm start brings those conversations back, so the fit takes them out of
    # the starts (left in, the first 5 minutes ran 40 % hot).
    assert wl.clients[0].arrival.rates[0] < 1.5
    t = [wl.sample(3600, rng=s).timestamp for s in range(3)]
    first = np.mean([(x < 300).sum() / 300 for x in t]) / np.mean([(x >= 300).sum() / 3300 for x in t])
    assert first == pytest.approx(1.0, abs=0.1)
    plain = sg.fit(trace, sessions=False)
    assert plain.clients[0].session is None and "sessions" not in plain.info


@pytest.mark.slow
def test_fit_per_client_on_requests():
    api = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=100, output_tokens=10)
    r = sg.Workload({"chat": chat(), "api": api}, block_size=64).sample(1800, rng=0)
    wl = sg.fit(r, client="client")  # Requests in, block size from its meta
    assert list(wl.clients) == ["chat", "api"] and wl.block_size == 64  # the Requests' client order
    assert wl.clients["api"].session is None and wl.clients["chat"].session is not None
    assert wl.clients["chat"].session.mean_turns() == pytest.approx(3.8, rel=0.1)
    assert len(wl.sample(1800, rng=1)) / len(r) == pytest.approx(1.0, abs=0.08)


def test_fit_without_structure_is_the_plain_fit():
    c = sg.Client(arrival=sg.Gamma(rate=3, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1), output_tokens=50)
    trace = sg.Workload([c], block_size=64).sample(1200, rng=2)  # fresh blocks only: nothing shared
    auto, plain = sg.fit(trace), sg.fit(trace, sessions=False)
    assert auto.clients == plain.clients and "sessions" not in auto.info
    with pytest.raises(ValueError, match="no session or prefix information"):
        sg.fit(c.sample(600, rng=0), sessions=True)
    with pytest.raises(TypeError, match="`sessions` must be None, True or False, got 'yes'"):
        sg.fit(trace, sessions="yes")


@pytest.mark.slow
def test_session_column_links_win_over_chat_id_parents():
    # A Bailian-style trace: `parent` holds the previous turn's chat id, not a row index
    # (the old fit read it as a row index: wrong links or an IndexError).
    df = chat().sample(3600, rng=3).to_pandas()
    chat_id = np.arange(len(df)) * 7 + 1000
    df["parent"] = np.where(df.parent >= 0, chat_id[np.maximum(df.parent, 0)], -1)
    df = df[["timestamp", "input_tokens", "output_tokens", "session", "turn", "parent"]]
    fitted = sg.fit_sessions(df, block_size=None)
    assert fitted.session.mean_turns() == pytest.approx(3.8, rel=0.08)
    assert fitted.session.new_tokens.mean() == pytest.approx(40, abs=1)
    wl = sg.fit(df)
    assert wl.info["sessions"] and wl.block_size is None  # no hash_ids to regenerate


@pytest.mark.slow
def test_cli_fit_sessions_by_default(tmp_path):
    from servegen.cli import main

    path = recorded(block_size=512).to_format(tmp_path / "chat.jsonl", "mooncake")
    for flags, has_sessions in (([], True), (["--sessions"], True), (["--no-sessions"], False)):
        spec = tmp_path / "wl.json"
        assert main(["fit", str(path), "--format", "mooncake", *flags, "-o", str(spec)]) == 0
        wl = sg.Workload.from_json(spec.read_text())
        assert (wl.clients[0].session is not None) is has_sessions
        assert (wl.block_size == 512) is has_sessions


@pytest.mark.slow
def test_mooncake_conversation_hour_count_and_reuse(conversation_trace):
    trace = sg.read_trace(conversation_trace.path, format="mooncake")
    wl = sg.fit(trace)
    assert wl.info["sessions"] and wl.block_size == 512
    duration = float(trace.timestamp.max())
    runs = [wl.sample(duration, rng=s) for s in range(3)]
    # a cold start was 7-8 % short; warm, the mean over 3 seeds is within 3 %
    assert np.mean([len(r) for r in runs]) / len(trace) == pytest.approx(1.0, abs=0.03)
    t = trace.timestamp.to_numpy()
    recorded = ((t < 300).sum() / 300) / ((t >= 300).sum() / (duration - 300))  # 0.89 on the real hour
    for r in runs:
        t = r.timestamp
        assert len(r) / len(trace) == pytest.approx(1.0, abs=0.05)
        # no ramp-up, and no hot start from conversations counted twice (fit's orphans):
        # the first 5 minutes run at the recording's own pace (the fit follows its rates)
        assert ((t < 300).sum() / 300) / ((t >= 300).sum() / (duration - 300)) == pytest.approx(
            recorded, abs=0.1
        )
        assert prefix_hit_rate(r) == pytest.approx(prefix_hit_rate(trace), abs=0.07)  # 0.395-0.43
        assert stats.ks_2samp(r.input_tokens, trace.input_tokens).statistic <= 0.05
        assert stats.ks_2samp(r.output_tokens, trace.output_tokens).statistic <= 0.05


def test_pandas_session_column_with_nulls():
    df = pd.DataFrame(
        {
            "timestamp": np.arange(12.0),
            "input_tokens": [10, 20, 40, 10, 25, 10, 10, 30, 10, 10, 15, 10],
            "output_tokens": [5] * 12,
            "session": ["a", "a", "a", None, "b", "b", None, "c", "c", None, "c", None],
        }
    )
    fitted = sg.fit_sessions(df, block_size=None)
    # sessions a (3 turns), b (2), c (3), and four single requests
    assert fitted.session.turns.values.tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(fitted.session.turns.probs, [4 / 7, 1 / 7, 2 / 7])
