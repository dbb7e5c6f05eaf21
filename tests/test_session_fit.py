"""Fitting sessions and prefix sharing from block hashes; the Mooncake round trip."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import servegen as sg
from servegen.cache import prefix_hit_rate


@pytest.mark.slow
def test_mooncake_round_trip(conversation_trace):
    trace = sg.read_trace(conversation_trace.path, format="mooncake")
    client = sg.fit_sessions(trace, block_size=512)
    synthetic = sg.Workload([client], block_size=512).sample(float(trace.timestamp.max()), rng=0)
    real_hit = prefix_hit_rate(trace)
    if conversation_trace.real:  # else a stand-in (tests/_synthetic.py) with its own rate
        assert real_hit == pytest.approx(0.366, abs=0.001)
    assert prefix_hit_rate(synthetic) == pytest.approx(real_hit, abs=0.05)
    assert stats.ks_2samp(synthetic.input_tokens, trace.input_tokens).statistic <= 0.05
    assert stats.ks_2samp(synthetic.output_tokens, trace.output_tokens).statistic <= 0.05
    assert client.prefix is not None and client.prefix.tokens.value == 512  # Mooncake's shared first block


@pytest.mark.slow
def test_recovers_a_known_session_model():
    truth = sg.Client(
        arrival=sg.Poisson(rate=2),
        input_tokens=sg.LogNormal(mu=6, sigma=0.8),
        output_tokens=sg.Exponential(mean=150),
        session=sg.Session(
            turns=sg.Empirical(values=[1, 2, 4], probs=[0.5, 0.3, 0.2]),
            think_time=sg.Exponential(mean=20),
            new_tokens=sg.Uniform(low=100, high=300),
        ),
        prefix=sg.SharedPrefix(groups=4, popularity=sg.Zipf(s=1.0, n=4), tokens=1024),
    )
    trace = sg.Workload([truth], block_size=256).sample(4 * 3600, rng=1).to_pandas()
    fitted = sg.fit_sessions(trace, block_size=256)
    assert fitted.prefix.groups == 4
    assert fitted.prefix.tokens.value == 1024
    np.testing.assert_allclose(fitted.prefix.popularity.probs, sg.Zipf(s=1.0, n=4).probs, atol=0.03)
    # sessions cut by the end of the trace shorten a few; tolerance covers it
    assert fitted.session.mean_turns() == pytest.approx(truth.session.mean_turns(), rel=0.05)
    assert fitted.session.think_time.mean() == pytest.approx(20, rel=0.1)
    assert fitted.session.new_tokens.mean() == pytest.approx(200, rel=0.05)
    assert fitted.arrival.mean_rate == pytest.approx(2, rel=0.05)
    assert fitted.output_tokens.mean() == pytest.approx(150, rel=0.05)


def test_explicit_parent_links_are_used():
    c = sg.Client(
        arrival=sg.Poisson(rate=1),
        input_tokens=100,
        output_tokens=10,
        session=sg.Session(turns=3, think_time=5, new_tokens=20),
    )
    trace = c.sample(3600, rng=2).to_pandas()
    fitted = sg.fit_sessions(trace[["timestamp", "input_tokens", "output_tokens", "parent"]], block_size=16)
    assert fitted.session.turns.values.tolist() == [1.0, 2.0, 3.0]
    assert fitted.session.new_tokens.mean() == pytest.approx(20)


@pytest.mark.parametrize(
    ("frame", "pattern"),
    [
        ({"timestamp": [0.0] * 20, "input_tokens": [1] * 20}, "no 'output_tokens' column"),
        (
            {"timestamp": [0.0] * 20, "input_tokens": [1] * 20, "output_tokens": [1] * 20},
            "needs a 'hash_ids' column",
        ),
        (
            {"timestamp": [0.0], "input_tokens": [1], "output_tokens": [1], "hash_ids": [[1]]},
            "at least 10 requests, got 1",
        ),
    ],
)
def test_fit_sessions_errors(frame, pattern):
    import pandas as pd

    with pytest.raises(ValueError, match=pattern):
        sg.fit_sessions(pd.DataFrame(frame), block_size=512)


@pytest.mark.slow
def test_fit_with_sessions_option(conversation_trace):
    trace = sg.read_trace(conversation_trace.path, format="mooncake")
    wl = sg.fit(trace, sessions=True)
    assert wl.block_size == 512 and wl.info["sessions"]
    synthetic = wl.sample(float(trace.timestamp.max()), rng=1)
    # warm-started, the regenerated hour is in its stationary state: 0.395-0.43 over seeds
    # against the recording's 0.366, which starts with fewer conversations in progress
    assert prefix_hit_rate(synthetic) == pytest.approx(prefix_hit_rate(trace), abs=0.07)
    cmp = sg.compare(trace, synthetic)
    assert cmp.table.loc["prefix_hit_rate", "ratio"] == pytest.approx(1.0, abs=0.2)
    bare = trace.copy()
    bare.attrs = {}
    assert sg.fit(bare, sessions=True).block_size == 512  # inferred from the hash_ids' lengths
    bare["hash_ids"] = [h[:1] for h in bare.hash_ids]  # no block size fits these lengths
    with pytest.raises(ValueError, match="give `block_size`"):
        sg.fit(bare, sessions=True)


@pytest.mark.slow
def test_cli_fit_sessions_then_generate(conversation_trace, tmp_path, capsys):
    from servegen.cli import main

    spec, out = tmp_path / "wl.json", tmp_path / "syn.jsonl"
    trace_path = conversation_trace.path
    assert main(["fit", str(trace_path), "--format", "mooncake", "--sessions", "-o", str(spec)]) == 0
    assert (
        main(
            [
                "generate",
                "--spec",
                str(spec),
                "--duration",
                "30m",
                "--format",
                "mooncake",
                "-o",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    synthetic = sg.read_trace(out, format="mooncake")
    assert synthetic.hash_ids.map(len).sum() > 0
    assert prefix_hit_rate(synthetic) > 0.2  # prefixes and sessions are shared again


@pytest.mark.slow
def test_parent_rows_of_a_multi_client_trace_in_any_row_order():
    """``parent`` holds rows of the whole trace: split by client (and sorted by time) they
    are remapped (was an IndexError), so they link the same turns as the ``session`` column."""
    s = sg.Session(turns=sg.Empirical(values=[1, 4], probs=[0.5, 0.5]), think_time=30, new_tokens=40)
    wl = sg.Workload(
        {
            k: sg.Client(arrival=sg.Poisson(rate=1 + k), input_tokens=300, output_tokens=50, session=s)
            for k in range(3)
        }
    )
    df = wl.sample(900, rng=2).to_pandas()
    want = sg.fit(df.drop(columns="parent"), client="client", rate_window=None)
    assert sg.fit(df.drop(columns="session"), client="client", rate_window=None).clients == want.clients
    perm = np.random.default_rng(0).permutation(len(df))  # rows shuffled, parents follow them
    shuffled = df.drop(columns="session").iloc[perm].reset_index(drop=True)
    new_row = np.argsort(perm)
    shuffled["parent"] = np.where(shuffled["parent"] >= 0, new_row[shuffled["parent"].clip(lower=0)], -1)
    assert sg.fit(shuffled, client="client", rate_window=None).clients == want.clients
    with pytest.raises(ValueError, match=r"`parent` holds row 1000000 of a \d+-row trace"):
        sg.fit(df.drop(columns="session").assign(parent=10**6), client="client")
    late = df.drop(columns="session").assign(parent=-1)
    late.loc[3, "parent"] = 7
    with pytest.raises(ValueError, match=r"`parent` of row 3 is row 7, which does not come before it"):
        sg.fit(late, client="client")
