"""Batch seeding of the per-(client, window) streams (servegen._rng.LeafSeeds).

The batch computes numpy's SeedSequence hash with array arithmetic; these tests hold
it to numpy's own words leaf by leaf, check that a mismatch falls back to numpy, and that
the sampled requests do not depend on which path built the streams.
"""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import servegen as sg
from servegen import _rng

ROOTS = {
    "int 0": np.random.SeedSequence(0),
    "int 7": np.random.SeedSequence(7),
    "200-bit int": np.random.SeedSequence(2**200 + 3),
    "word list": np.random.SeedSequence([1, 2, 3, 4, 5, 6]),
    "uint32 array": np.random.SeedSequence(np.arange(3, dtype=np.uint32)),
    "spawned child": np.random.SeedSequence(5).spawn(3)[2],
    "spawn key > 2**32": np.random.SeedSequence(9, spawn_key=(2**70,)),
    "os entropy": np.random.SeedSequence(),
    "from a Generator": _rng.root_seed(np.random.default_rng(4)),
}
# keys of one word (0, < 2**32) and of two, in one batch
CLIENTS = [0, 1, 2**32 - 1, 2**32, 2**63 - 1, _rng.key_hash("chat"), _rng.key_hash(3)]


@pytest.mark.parametrize("root", ROOTS.values(), ids=ROOTS.keys())
@pytest.mark.parametrize("base", [_rng.WINDOW, _rng.WARM])
def test_batch_words_are_numpys_seedsequence_words(root, base):
    seeds = _rng.LeafSeeds(root, CLIENTS, base)
    assert seeds.exact
    for window in (0, 1, 7, 2**32 + 3):
        pools = seeds._window_pools(seeds._pool, seeds._two, seeds._hc, window)
        got = _rng.seed_words(pools, 4 * len(_rng.PURPOSES))
        for j, client in enumerate(CLIENTS):
            seq = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, client, window, base))
            assert np.array_equal(got[j], seq.generate_state(4 * len(_rng.PURPOSES), np.uint64))


def test_batch_streams_are_the_leaf_streams_for_every_purpose():
    root = _rng.root_seed(11)
    seeds = _rng.LeafSeeds(root, CLIENTS)
    idx = np.array([4, 0, 2])
    # late purposes first: the batch has only the first three purposes' words
    order = list(reversed(_rng.PURPOSES))
    for streams, i in zip(seeds.streams(idx, 5), idx.tolist(), strict=True):
        ref = _rng.WindowStreams(root, CLIENTS[i], 5)
        for purpose in order:
            assert np.array_equal(streams(purpose).random(3), ref(purpose).random(3)), purpose
    assert seeds.n_words == 4 * len(_rng.PURPOSES)  # later windows hash every purpose at once


def _mixed_workload() -> sg.Workload:
    chat = sg.Client(
        arrival=sg.Gamma(rate=2, cv=2),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.Exponential(mean=200),
        multimodal=sg.Multimodal(image=sg.Modality(count=sg.Empirical(values=[0, 1, 2], probs=[0.5, 0.3, 0.2]),
                                                   tokens=sg.Uniform(low=100, high=900))),
        reasoning=sg.Reasoning(ratio=sg.Uniform(low=0.1, high=0.9)),
    )  # fmt: skip
    turns = sg.Client(
        arrival=sg.Poisson(rate=0.5),
        input_tokens=sg.LogNormal(mu=5, sigma=1),
        output_tokens=sg.Exponential(mean=100),
        session=sg.Session(turns=sg.Empirical(values=[1, 3], probs=[0.5, 0.5]), think_time=20,
                           new_tokens=sg.Exponential(mean=40)),
    )  # fmt: skip
    return sg.Workload({"chat": chat, "turns": turns, 7: chat})


def test_a_mismatch_with_numpy_falls_back_to_numpy_with_the_same_requests(monkeypatch):
    wl = _mixed_workload()
    fast = wl.sample(1900, rng=3)
    real = _rng.seed_words
    monkeypatch.setattr(_rng, "seed_words", lambda pools, n: real(pools, n) ^ np.uint64(1))  # a wrong hash
    assert not _rng.LeafSeeds(_rng.root_seed(3), [1, 2]).exact
    slow = wl.sample(1900, rng=3)
    assert slow.equals(fast)
    assert len(fast) > 3000


def test_an_entropy_the_batch_does_not_handle_falls_back():
    odd = np.random.SeedSequence(["5", 6])  # numpy reads the text "5" as a number; the batch does not
    seeds = _rng.LeafSeeds(odd, [3])
    assert not seeds.exact
    (s,) = seeds.streams(np.array([0]), 2)
    assert s("arrivals").random() == _rng.WindowStreams(odd, 3, 2)("arrivals").random()
    assert (
        sg.Workload([sg.Client(arrival=sg.Poisson(rate=1), input_tokens=2, output_tokens=3)])
        .sample(700, rng=odd)
        .equals(
            sg.Workload([sg.Client(arrival=sg.Poisson(rate=1), input_tokens=2, output_tokens=3)]).sample(
                700, rng=odd
            )
        )
    )


def test_a_windows_leaves_are_built_one_at_a_time():
    """Thousands of leaves alive at once pushed them through the garbage collector's
    generations (a full collection per sample call with pools loaded)."""
    seeds = _rng.LeafSeeds(_rng.root_seed(0), list(range(50)))
    it = seeds.streams(np.arange(50), 3)
    first = next(it)
    first("arrivals")
    gone = weakref.ref(first)
    del first
    next(it)
    assert gone() is None


def test_columns_that_take_no_draws_build_no_stream(monkeypatch):
    asked: list[str] = []
    real = _rng.WindowStreams.__call__
    monkeypatch.setattr(_rng.WindowStreams, "__call__", lambda self, p: asked.append(p) or real(self, p))
    c = sg.Client(
        arrival=sg.Poisson(rate=3),
        input_tokens=sg.Empirical(values=[372.0], probs=[1.0]),
        output_tokens=sg.Exponential(mean=80),
        multimodal=sg.Multimodal(
            image=sg.Modality(count=sg.Empirical(values=[1.0], probs=[1.0]), tokens=sg.Constant(value=576)),
            audio=sg.Modality(count=sg.Empirical(values=[0.0], probs=[1.0]), tokens=sg.Exponential(mean=9)),
        ),
    )
    r = sg.Workload({"c": c}).sample(1200, rng=1)
    assert set(asked) == {"arrivals", "output_tokens"}
    assert (r.input_tokens == 372).all() and (r["image_count"] == 1).all() and (r["audio_count"] == 0).all()
    assert (r["input_tokens_total"] == 372 + 576).all()
    assert r["image_tokens"].values.tolist() == [576] * len(r)
