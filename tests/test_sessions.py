"""Multi-turn sessions, shared prefixes, block hashes and cache hit rates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import servegen as sg
from servegen.cache import lru_hit_rate, prefix_hit_rate

TURNS = sg.Empirical(values=[1, 2, 3, 5, 8], probs=[0.3, 0.3, 0.2, 0.1, 0.1])


def chat(**kw):
    base = dict(
        arrival=sg.Poisson(rate=0.5),
        input_tokens=sg.LogNormal(mu=5, sigma=1),
        output_tokens=sg.Exponential(mean=200),
        session=sg.Session(
            turns=TURNS, think_time=sg.LogNormal(mu=3, sigma=1), new_tokens=sg.LogNormal(mu=4.5, sigma=1)
        ),
        prefix=sg.SharedPrefix(groups=50, popularity=sg.Zipf(s=1.1, n=50), tokens=sg.Constant(value=1024)),
    )
    base.update(kw)
    return sg.Client(**base)


def by_session(r):
    df = r.to_pandas()
    return df[df.session >= 0].sort_values(["session", "turn"])


@pytest.mark.slow
def test_context_growth_and_turn_timing():
    c = chat(session=sg.Session(turns=4, think_time=7.0, new_tokens=33, response_rate=20.0), prefix=None)
    r = sg.Workload([c]).sample(3600, rng=1)
    df = by_session(r)
    for _, g in list(df.groupby("session"))[:200]:
        if len(g) < 2:
            continue
        inp, out, t = g.input_tokens.to_numpy(), g.output_tokens.to_numpy(), g.timestamp.to_numpy()
        np.testing.assert_array_equal(inp[1:], inp[:-1] + out[:-1] + 33)
        np.testing.assert_allclose(np.diff(t), out[:-1] / 20.0 + 7.0, rtol=1e-12)
    assert (df.groupby("session").size() <= 4).all()


def test_parent_turn_session_columns():
    r = sg.Workload([chat(), sg.Client(arrival=sg.Poisson(rate=1), input_tokens=5, output_tokens=5)]).sample(
        3600, rng=2
    )
    s, t, p = r["session"], r["turn"], r["parent"]
    has_parent = p >= 0
    # every turn after the first links to its previous turn, except the first turn seen of a
    # session in progress at t = 0 (warm start): its earlier turns came before the stream
    first_seen = np.zeros(len(r), dtype=bool)
    first_seen[np.unique(s, return_index=True)[1]] = True
    assert (has_parent == ((t > 1) & ~first_seen)).all()
    assert ((t > 1) & first_seen & (s >= 0)).any()
    assert (s[p[has_parent]] == s[has_parent]).all()
    assert (t[p[has_parent]] == t[has_parent] - 1).all()
    assert (r.timestamp[p[has_parent]] < r.timestamp[has_parent]).all()
    plain = r.client == 1
    assert (s[plain] == -1).all() and (t[plain] == 1).all()
    # turn counts follow the distribution (sessions that ended before the horizon)
    df = by_session(r)
    early = df.groupby("session").timestamp.min() < 1800
    counts = df.groupby("session").size()[early]
    assert counts.mean() == pytest.approx(TURNS.mean(), rel=0.1)


@settings(max_examples=8, deadline=None)
@given(chunk=st.floats(min_value=50.0, max_value=2000.0))
@pytest.mark.slow
def test_sessions_survive_chunking(chunk):
    wl = sg.Workload([chat(), chat(arrival=sg.Gamma(rate=0.2, cv=3))], block_size=64)
    full = wl.sample(2400, rng=3)
    assert sg.Requests.concat(list(wl.iter_chunks(2400, chunk, rng=3))).equals(full)


def test_hash_ids_content_model():
    bs = 512
    r = sg.Workload([chat()], block_size=bs).sample(3600, rng=4)
    ids = r["hash_ids"]
    np.testing.assert_array_equal(ids.lengths, -(-r.input_tokens // bs))
    group = r["prefix_group"]
    # same prefix group -> same first 2 blocks (1024-token prompt); different groups never share them
    firsts = {}
    for i in range(len(r)):
        key = tuple(ids[i][:2])
        firsts.setdefault(group[i], set()).add(key)
    assert all(len(v) == 1 for v in firsts.values())
    assert len({next(iter(v)) for v in firsts.values()}) == len(firsts)
    # turn k repeats the full blocks of turn k-1's input, then only fresh blocks
    p = r["parent"]
    seen_owner = {}
    for i in np.flatnonzero(p >= 0)[:500]:
        shared = r.input_tokens[p[i]] // bs
        np.testing.assert_array_equal(ids[i][:shared], ids[p[i]][:shared])
        for b in ids[i][shared:]:
            assert seen_owner.setdefault(int(b), i) == i  # fresh: owned by this request only
    # across sessions, blocks beyond the prefix never collide
    sess = r["session"]
    owner = {}
    for i in range(len(r)):
        for b in ids[i][2:]:
            assert owner.setdefault(int(b), sess[i]) == sess[i]


def test_context_limit_truncates_and_breaks_sharing():
    c = chat(session=sg.Session(turns=6, think_time=1.0, new_tokens=400, context_limit=2000))
    r = sg.Workload([c], block_size=256).sample(2000, rng=5)
    assert r.input_tokens.max() == 2000
    ids, p = r["hash_ids"], r["parent"]
    for i in np.flatnonzero((p >= 0) & (r.input_tokens == 2000))[:100]:
        if r.input_tokens[p[i]] + r.output_tokens[p[i]] + 400 > 2000:
            # only the four prefix blocks (1024 tokens / 256) are shared with the parent
            assert len(set(ids[i]) & set(ids[p[i]])) == 4


def test_prefix_popularity_follows_zipf():
    c = chat(session=None, arrival=sg.Poisson(rate=50))
    r = c.sample(2000, rng=6)
    freq = np.bincount(r["prefix_group"], minlength=50) / len(r)
    z = sg.Zipf(s=1.1, n=50).probs
    np.testing.assert_allclose(freq[:5], z[:5], atol=0.01)
    np.testing.assert_array_equal(r.input_tokens - 1024 >= 0, True)


def test_target_rate_counts_requests_not_sessions():
    r = sg.Workload([chat()], rate=10.0).sample(3600, rng=7)
    assert len(r) / 3600 == pytest.approx(10, rel=0.1)


def test_session_spec_round_trip():
    wl = sg.Workload({"chat": chat()}, block_size=16)
    back = sg.Workload.from_json(wl.to_json())
    assert back == wl and back.sample(600, rng=1).equals(wl.sample(600, rng=1))


def test_cache_metrics_against_reference():
    rng = np.random.default_rng(8)
    lengths = rng.integers(1, 12, 400)
    values = rng.integers(0, 300, lengths.sum())
    ids = sg.Ragged.from_lengths(lengths, values)

    def reference(capacity=None):
        cache, hits = [], 0
        for r in range(len(ids)):
            prefix = True
            for b in ids[r].tolist():
                if b in cache:
                    cache.remove(b)
                    cache.append(b)
                    hits += prefix
                else:
                    prefix = False
                    cache.append(b)
                    if capacity is not None and len(cache) > capacity:
                        cache.pop(0)
        return hits / ids.values.size

    assert prefix_hit_rate(ids) == pytest.approx(reference())
    assert lru_hit_rate(ids, capacity=50) == pytest.approx(reference(50))
    assert lru_hit_rate(ids, capacity=10**6) == pytest.approx(prefix_hit_rate(ids))
    with pytest.raises(ValueError, match="`capacity` must be a whole number of blocks >= 1, got 0"):
        lru_hit_rate(ids, 0)


def test_hit_rate_rises_with_prefix_sharing():
    few = sg.Workload(
        [chat(prefix=sg.SharedPrefix(groups=2, popularity=sg.Zipf(s=1, n=2), tokens=2048))], block_size=512
    )
    many = sg.Workload(
        [chat(prefix=sg.SharedPrefix(groups=500, popularity=sg.Zipf(s=0, n=500), tokens=2048))],
        block_size=512,
    )
    none = sg.Workload([chat(prefix=None)], block_size=512)
    rates = [prefix_hit_rate(w.sample(3600, rng=9)) for w in (few, many, none)]
    assert rates[0] > rates[1] + 0.03 > rates[2] + 0.06


@pytest.mark.parametrize(
    ("thunk", "pattern"),
    [
        (lambda: sg.Session(turns=0, think_time=1, new_tokens=1), r"`turns` must lie in \[1, inf\]"),
        (lambda: sg.Session(turns=2, think_time=-1, new_tokens=1), r"`think_time` must lie in \[0, inf\]"),
        (lambda: sg.Session(turns=2, think_time=1, new_tokens=1, response_rate=0), "response_rate"),
        (lambda: sg.Session(turns=2, think_time=1, new_tokens=1, context_limit=0), "context_limit"),
        (lambda: sg.SharedPrefix(groups=3, popularity=sg.Zipf(s=1, n=5), tokens=10), r"ranks in \[1, 3\]"),
        (
            lambda: sg.Workload([chat()], block_size=0),
            "`block_size` must be a whole number of tokens >= 1 or None, got 0",
        ),
    ],
)
def test_session_errors(thunk, pattern):
    with pytest.raises(ValueError, match=pattern):
        thunk()
