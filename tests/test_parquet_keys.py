"""Requests written to Parquet read back with their client keys, whatever the keys are."""

from __future__ import annotations

import numpy as np

import servegen as sg


def test_int_keys_that_are_not_0_to_n_round_trip(tmp_path):
    # Parquet keeps no dictionary of ints: the column comes back as the keys themselves,
    # which were once taken for codes (client 5 read back as code 5, out of range).
    wl = sg.Workload(
        {
            7: sg.Client(arrival=sg.Poisson(rate=3), input_tokens=9, output_tokens=9),
            5: sg.Client(arrival=sg.Poisson(rate=1), input_tokens=9, output_tokens=9),
        }
    )
    r = wl.sample(60, rng=0)
    back = sg.read_parquet(r.to_parquet(tmp_path / "r.parquet"))
    assert back.equals(r)
    assert list(back.clients) == [7, 5]
    np.testing.assert_array_equal(np.asarray(back.clients)[back.client], np.asarray(r.clients)[r.client])
