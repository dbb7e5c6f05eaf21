"""The one trace normalizer (servegen.trace.as_trace), as metrics, fitting and plots use it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import servegen as sg
from servegen import plot
from servegen.trace import as_trace, client_column


def test_extra_columns_follow_the_time_sort():
    df = pd.DataFrame(
        {
            "timestamp": [3.0, 1.0, 2.0],
            "input_tokens": [30, 10, 20],
            "output_tokens": [3, 1, 2],
            "reasoning_tokens": [300, 100, 200],
            "client": ["b", "a", "b"],
        }
    )
    tr = as_trace(df, client=client_column(df), extra=True)
    assert tr.resorted and tr.timestamp.tolist() == [1.0, 2.0, 3.0]
    assert tr.extra["reasoning_tokens"].tolist() == [100, 200, 300]
    assert set(tr.extra) == {"reasoning_tokens"}  # canonical columns and client are not extra
    assert tr.codes.tolist() == [0, 1, 1] and tr.keys == ["a", "b"]
    assert as_trace(df).extra == {}  # only when asked


def test_requests_keep_their_client_keys_and_duration():
    reqs = sg.Workload({"x": sg.Client(arrival=sg.Poisson(rate=2), input_tokens=10, output_tokens=1)}).sample(
        30, rng=0
    )
    assert client_column(reqs) == "client" and client_column(reqs.to_pandas().drop(columns="client")) is None
    tr = as_trace(reqs, client="client", extra=True)
    assert tr.keys == ["x"] and tr.duration == 30
    np.testing.assert_array_equal(tr.timestamp, reqs.timestamp)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (
            {"timestamp": [-1.0, 0.0]},
            r"plot: column 'timestamp' must be finite seconds >= 0, got -1.0 at row 0",
        ),
        ({"input_tokens": [1.5, 2.0]}, r"plot: column 'input_tokens' must hold whole token counts, got 1.5"),
    ],
)
def test_plots_check_traces_like_the_metrics(bad, match):
    # Before the normalizer was shared, plots drew negative times and fractional tokens.
    df = pd.DataFrame({"timestamp": [0.0, 1.0], "input_tokens": [1, 2], "output_tokens": [1, 1]})
    df = df.assign(**bad)
    with pytest.raises(ValueError, match=match):
        plot.length_cdf(df)
    with pytest.raises(ValueError, match=match.replace("plot", "a")):
        sg.compare(df, df)
