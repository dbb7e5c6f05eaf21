"""Sampling client groups separately (processes, machines) and merging gives the full stream."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import servegen as sg


def workload():
    session = sg.Session(turns=sg.Empirical(values=[1, 3], probs=[0.5, 0.5]), think_time=20, new_tokens=30)
    clients = {
        "chat": sg.Client(
            arrival=sg.Gamma(rate=2, cv=3),
            input_tokens=sg.LogNormal(mu=5, sigma=1),
            output_tokens=sg.Exponential(mean=100),
            session=session,
        ),
        "vl": sg.Client(
            arrival=sg.Poisson(rate=1),
            input_tokens=50,
            output_tokens=10,
            multimodal=sg.Multimodal(
                image=sg.Modality(count=sg.Empirical(values=[0, 2], probs=[0.5, 0.5]), tokens=256)
            ),
        ),
        "batch": sg.Client(arrival=sg.Deterministic(rate=1), input_tokens=600, output_tokens=9),
        "r1": sg.Client(
            arrival=sg.Weibull(rate=0.5, cv=4),
            input_tokens=20,
            output_tokens=sg.Exponential(mean=900),
            reasoning=sg.Reasoning(ratio=sg.Uniform(low=0, high=1)),
        ),
    }
    return sg.Workload(clients, rate={0: 10.0, 900: 30.0}, block_size=64)


@settings(max_examples=10, deadline=None)
@given(groups=st.lists(st.integers(0, 2), min_size=4, max_size=4), seed=st.integers(0, 1000))
@pytest.mark.slow
def test_groups_merge_to_the_full_sample(groups, seed):
    wl = workload()
    keys = list(wl.clients)
    full = wl.sample(1800, rng=seed)
    parts = [
        wl.sample(1800, rng=seed, clients=[k for k, g in zip(keys, groups, strict=True) if g == i])
        for i in range(3)
    ]
    merged = sg.merge(parts[::-1])
    assert merged.equals(full)


def _part(args):
    wl, keys = args
    return wl.sample(1800, rng=11, clients=keys)


@pytest.mark.slow
def test_groups_in_separate_processes():
    wl = workload()
    # spawn: fresh interpreters, as on other machines (and no fork of a threaded process)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_part, [(wl, ["chat", "batch"]), (wl, ["vl", "r1"])]))
    assert sg.merge(parts).equals(wl.sample(1800, rng=11))


def test_chunked_groups_and_errors():
    wl = workload()
    part = sg.Requests.concat(list(wl.iter_chunks(1800, 400, rng=3, clients=["vl"])))
    full = wl.sample(1800, rng=3)
    np.testing.assert_array_equal(part.timestamp, full.timestamp[full.client == full.clients.index("vl")])
    with pytest.raises(ValueError, match=r"unknown client\(s\) \['nope'\]"):
        wl.sample(10, rng=0, clients=["nope"])
    with pytest.raises(ValueError, match="need at least one part"):
        sg.merge([])
