"""servegen.plot: the artists hold the data the figure claims to show."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import servegen as sg
from servegen import plot


def _client(rate: float, cv: float = 1.0) -> sg.Client:
    return sg.Client(
        arrival=sg.Gamma(rate=rate, cv=cv),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.Exponential(mean=100),
    )


@pytest.fixture(scope="module")
def reqs() -> sg.Requests:
    wl = sg.Workload({"big": _client(6, 2), "mid": _client(3), "small": _client(1)})
    return wl.sample(1000, rng=3)


def test_aggregate_rate_is_counts_over_bin_width(reqs):
    fig = plot.rate_over_time(reqs, bin=60)
    (step,) = fig.axes[0].patches
    values, edges, _ = step.get_data()
    expected_edges = np.append(np.arange(0, 1000, 60.0), 1000.0)  # last bin cut at the duration
    counts, _ = np.histogram(reqs.timestamp, bins=expected_edges)
    # 1000 s spans > 600 s, so the x axis is in minutes
    np.testing.assert_allclose(edges, expected_edges / 60)
    np.testing.assert_allclose(values, counts / np.diff(expected_edges))
    assert values[-1] == counts[-1] / 40  # the short last bin is not under-reported
    assert fig.axes[0].get_xlabel() == "time (min)"


def test_stacked_rate_layers_are_the_top_clients_then_other(reqs):
    ax = plot.rate_over_time(reqs, bin=100, top=2).axes[0]
    layers = ax.patches
    assert [p.get_label() for p in layers] == ["big", "mid", "other"]
    edges = np.arange(0, 1001, 100.0)
    tops = []
    for name, patch in zip(["big", "mid", "small"], layers, strict=True):
        values, _, baseline = patch.get_data()
        own, _ = np.histogram(reqs.timestamp[reqs.client_keys == name], bins=edges)
        np.testing.assert_allclose(values - baseline, own / 100)  # each layer's thickness
        tops.append(values)
    total, _ = np.histogram(reqs.timestamp, bins=edges)
    np.testing.assert_allclose(tops[-1], total / 100)  # the stack sums to the aggregate
    np.testing.assert_allclose(layers[1].get_data()[2], tops[0])  # stacked on the one below


def test_default_bins_are_nice_and_at_most_200():
    assert np.diff(plot.bin_edges(86400))[0] == 600
    assert len(plot.bin_edges(86400)) - 1 == 144
    assert len(plot.bin_edges(7)) - 1 == 7
    with pytest.raises(ValueError, match="`bin`"):
        plot.bin_edges(100, bin=-1)


def test_iat_cdf_is_the_ecdf_of_gaps_against_poisson(reqs):
    ax = plot.iat_cdf(reqs).axes[0]
    trace, poisson = ax.lines
    gaps = np.diff(reqs.timestamp)
    x, y = trace.get_xdata(), trace.get_ydata()
    np.testing.assert_allclose(np.unique(x[1:]), np.unique(gaps))
    assert y[0] == 0 and y[-1] == 1
    px, py = poisson.get_xdata(), poisson.get_ydata()
    np.testing.assert_allclose(py, -np.expm1(-px / gaps.mean()), rtol=1e-12)
    assert ax.get_xscale() == "log"
    cv = gaps.std() / gaps.mean()
    assert trace.get_label() == f"trace (CV {cv:.2f})"
    assert cv > 1.2  # the mix is burstier than Poisson, as the label should show


def test_length_cdfs(reqs):
    ax = plot.length_cdf(reqs).axes[0]
    for line, col in zip(ax.lines, ["input_tokens", "output_tokens"], strict=True):
        x = line.get_xdata()
        np.testing.assert_array_equal(np.unique(x), np.unique(reqs[col]))
        assert line.get_label().startswith(col)
    with pytest.raises(ValueError, match="unknown length column"):
        plot.length_cdf(reqs, columns=("reasoning_tokens",))
    # optional token columns are drawn by default when present
    df = reqs.to_pandas().assign(reasoning_tokens=lambda d: d["output_tokens"] // 2)
    labels = [line.get_label().split()[0] for line in plot.length_cdf(df).axes[0].lines]
    assert labels == ["input_tokens", "output_tokens", "reasoning_tokens"]


def test_client_share_bars(reqs):
    ax = plot.client_share(reqs, top=1).axes[0]
    widths = [p.get_width() for p in ax.patches]
    share_big = 100 * np.mean(reqs.client_keys == "big")
    np.testing.assert_allclose(widths, [share_big, 100 - share_big])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["big", "other (2)"]
    assert share_big > 55  # 6 of 10 req/s


def test_dataframe_input_gives_the_same_figure(reqs):
    df = reqs.to_pandas().sample(frac=1.0, random_state=0)  # shuffled: plots must sort
    a = plot.rate_over_time(reqs, bin=50, top=2).axes[0].patches
    b = plot.rate_over_time(df, bin=50, top=2).axes[0].patches
    # a DataFrame has no duration: its span ends at the last request, so compare full bins
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_allclose(pa.get_data()[0][:-1], pb.get_data()[0][:-1])
    no_client = df.drop(columns="client")
    ax = plot.client_share(no_client).axes[0]
    assert [p.get_width() for p in ax.patches] == [100.0]


def test_draws_into_a_given_axes(reqs):
    from matplotlib.figure import Figure

    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert plot.iat_cdf(reqs, ax=ax2) is fig
    assert not ax1.lines and ax2.lines


def test_bad_inputs():
    with pytest.raises(TypeError, match="plot must be a pandas DataFrame or servegen Requests"):
        plot.overview([1, 2, 3])
    with pytest.raises(ValueError, match=r"plot is empty \(0 requests\)"):
        plot.overview(pd.DataFrame({"timestamp": [], "input_tokens": [], "output_tokens": []}))
    with pytest.raises(ValueError, match=r"plot: missing column 'output_tokens'"):
        plot.overview(pd.DataFrame({"timestamp": [0.0], "input_tokens": [1]}))
    with pytest.raises(ValueError, match="at least 2 requests"):
        plot.iat_cdf(pd.DataFrame({"timestamp": [0.0], "input_tokens": [1], "output_tokens": [1]}))


@pytest.mark.slow
def test_overview_and_atomic_save(reqs, tmp_path):
    fig = plot.overview(reqs)
    assert len(fig.axes) == 4
    assert fig.get_suptitle().startswith(f"{len(reqs):,} requests over 1,000 s")
    out = plot.save(fig, tmp_path / "o.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not supported"):
        plot.save(fig, tmp_path / "o.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]  # no temporary left


def test_import_servegen_does_not_import_matplotlib():
    code = "import sys, servegen; print('matplotlib' in sys.modules, 'servegen.plot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_axes_in_a_subfigure_return_the_savable_figure(reqs, tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    sub = fig.subfigures(1, 2)[1]
    got = plot.iat_cdf(reqs, ax=sub.add_subplot())
    assert got is fig  # the top-level figure (a SubFigure cannot be saved)
    assert plot.save(got, tmp_path / "f.png").stat().st_size > 0
