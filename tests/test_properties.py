"""Property tests: invariants of every sampled stream, for random client configurations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import servegen as sg

rates = st.floats(min_value=0.01, max_value=20.0)
cvs = st.floats(min_value=0.2, max_value=12.0)
arrivals = st.one_of(
    st.builds(sg.Poisson, rate=rates),
    st.builds(sg.Gamma, rate=rates, cv=cvs),
    st.builds(sg.Weibull, rate=rates, cv=cvs),
    st.builds(sg.Deterministic, rate=rates),
    st.builds(sg.OnOff, rate_on=rates, mean_on=st.floats(0.5, 100.0), mean_off=st.floats(0.5, 100.0)),
)
lengths = st.one_of(
    st.builds(sg.Exponential, mean=st.floats(1.0, 5000.0)),
    st.builds(sg.LogNormal, mu=st.floats(0.0, 9.0), sigma=st.floats(0.1, 2.0)),
    st.integers(0, 10_000),
)
# conversations, warm-started (the default) or not: turns cross windows and chunks
sessions = st.one_of(
    st.none(),
    st.builds(
        sg.Session,
        turns=st.integers(1, 4),
        think_time=st.builds(sg.Exponential, mean=st.floats(1.0, 60.0)),
        new_tokens=st.integers(0, 500),
        warm_start=st.booleans(),
    ),
)
clients = st.builds(
    sg.Client, arrival=arrivals, input_tokens=lengths, output_tokens=lengths, session=sessions
)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    cl=st.lists(clients, min_size=1, max_size=4),
    duration=st.floats(min_value=1.0, max_value=2500.0),
    seed=st.integers(0, 2**32),
)
def test_stream_invariants(cl, duration, seed):
    wl = sg.Workload(cl)
    r = wl.sample(duration, rng=seed)
    t = r.timestamp
    assert (np.diff(t) >= 0).all()
    assert ((t >= 0) & (t < duration)).all()
    assert (r.input_tokens >= 0).all() and (r.output_tokens >= 0).all()
    assert r.client.min(initial=0) >= 0 and r.client.max(initial=0) < len(cl)
    # merging preserves each client's own requests (rate=None: a client alone is the same)
    for i, c in enumerate(cl):
        alone = sg.Workload({i: c}).sample(duration, rng=seed)
        np.testing.assert_array_equal(alone.timestamp, t[r.client == i])
        np.testing.assert_array_equal(alone.output_tokens, r.output_tokens[r.client == i])


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(cl=st.lists(clients, min_size=1, max_size=3), chunk=st.floats(5.0, 3000.0), seed=st.integers(0, 1000))
def test_chunking_changes_nothing(cl, chunk, seed):
    wl = sg.Workload(cl, rate=7.0)
    full = wl.sample(1900.0, rng=seed)
    assert sg.Requests.concat(list(wl.iter_chunks(1900.0, chunk, rng=seed))).equals(full)
    assert wl.sample(1900.0, rng=seed, workers=1).equals(full)
