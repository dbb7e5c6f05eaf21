"""The stand-ins for the shared data (tests/_synthetic.py) are what they claim to be.

With the shared data present (CI, developer machines) the fidelity tests read the real
files and never the stand-ins, so these checks keep the stand-ins from rotting unseen.
"""

from __future__ import annotations

import numpy as np
import pytest

import servegen as sg
from _synthetic import MISSING, write_conversation, write_release, write_synthetic
from servegen.pools._profiles import load_profile
from servegen.pools._release import read_pool


def test_conversation_stand_in_is_a_mooncake_hour_on_a_3s_clock(tmp_path):
    trace = sg.read_trace(write_conversation(tmp_path / "c.jsonl"), format="mooncake")
    assert trace.attrs["block_size"] == 512
    assert 58 * 60 < trace.timestamp.max() < 3600
    assert len(trace) / trace.timestamp.max() == pytest.approx(3.4, rel=0.1)  # like the recording
    np.testing.assert_array_equal(np.fmod(trace.timestamp, 3.0), 0.0)  # the batch clock
    first = trace.hash_ids.map(lambda h: h[0])
    assert (first == first.iloc[0]).all()  # one shared first block
    # sessions: later turns repeat an earlier request's blocks beyond the first
    assert sg.cache.prefix_hit_rate(trace) > 0.3


def test_synthetic_stand_in_is_poisson_in_integer_ms(tmp_path):
    path = write_synthetic(tmp_path / "s.jsonl")
    trace = sg.read_trace(path, format="mooncake")
    assert len(trace) / trace.timestamp.max() == pytest.approx(3.9, rel=0.1)
    ms = trace.timestamp.to_numpy() * 1000
    np.testing.assert_allclose(ms, np.round(ms), rtol=0, atol=1e-6)
    assert np.unique(ms).size > 0.99 * ms.size  # no batch clock to undo
    assert sg.metrics.iat_cv(trace.timestamp) == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_release_stand_in_holds_the_shipped_profile(tmp_path):
    name = "multimodal/mm-image"
    p = load_profile(name)
    raw = read_pool(write_release(tmp_path / "r.zip", pools=(name,)), name)
    np.testing.assert_array_equal(raw.client_ids, p.client_ids)
    np.testing.assert_array_equal(raw.rate.astype(np.float32), p.rate)
    np.testing.assert_array_equal(raw.law, p.law)
    np.testing.assert_array_equal(raw.has_dataset, ~p.imputed)
    assert raw.fields == p.fields
    c = int(np.flatnonzero(p.length_source[:, 0] == 0)[0])
    for field in p.fields:
        v, pr = raw.pmf(c, 0, field)
        ev, ep = p.pmf(c, 0, field)
        np.testing.assert_array_equal(v, ev)
        np.testing.assert_array_equal(pr, ep)
    missing = (tmp_path / MISSING).read_text().split()
    assert len(missing) == p.imputed.sum()
