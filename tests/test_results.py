"""sg.read_results: golden result files of AIPerf, vLLM bench, GuideLLM and Vidur (made from
their documented schemas, tests/data/results) joined to the workload that was sent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import servegen as sg

DATA = Path(__file__).parent / "data" / "results"
FILES = {
    "vllm": "vllm-result.json",
    "aiperf": "profile_export.jsonl",
    "guidellm": "guidellm-benchmarks.json",
    "vidur": "request_metrics.csv",
}
# what every file records for the six sent requests (seconds); request 4 failed on a server
TTFT = [0.12, 0.05, 0.30, 0.08, np.nan, 0.90]
TPOT = [0.02, 0.01, 0.03, 0.02, np.nan, 0.05]
E2E = [0.18, 0.07, 0.42, 0.10, np.nan, 0.95]


@pytest.fixture(scope="module")
def sent() -> pd.DataFrame:
    return sg.read_trace(DATA / "sent.jsonl", "jsonl")


@pytest.mark.parametrize("tool", list(FILES))
def test_golden_results_join_the_sent_workload(sent: pd.DataFrame, tool: str) -> None:
    res = sg.read_results(DATA / FILES[tool], tool, sent=sent)
    assert len(res) == 6 and res.attrs["tool"] == tool
    assert res.columns.tolist()[:8] == ["start", "ttft", "tpot", "e2e", "prompt_tokens", "completion_tokens",
                                        "ok", "error"]  # fmt: skip
    # joined row by row to what was sent: the client, session, turn and lengths of each request
    assert res["client"].tolist() == ["chat", "api", "chat", "chat", "chat", "api"]
    assert res["session"].tolist() == [1, -1, 2, 1, 2, -1] and res["turn"].tolist() == [1, 1, 1, 2, 2, 1]
    assert res["input_tokens"].tolist() == [1100, 10, 200, 1134, 230, 700]
    np.testing.assert_array_equal(
        res["prompt_tokens"].to_numpy()[[0, 1, 2, 3, 5]], [1100, 10, 200, 1134, 700]
    )
    if tool == "vidur":  # a simulation: every request completes
        assert res["ok"].all()
        np.testing.assert_allclose(res["ttft"], [0.12, 0.05, 0.30, 0.08, 0.10, 0.90])
        np.testing.assert_allclose(res["start"], [0, 1, 2, 3, 4, 5.5])
        return
    assert res["ok"].tolist() == [True, True, True, True, False, True]
    assert res["error"][4] and res["error"][[0, 1, 2, 3, 5]].isna().all()
    np.testing.assert_allclose(res["ttft"], TTFT, atol=1e-9)
    np.testing.assert_allclose(res["tpot"], TPOT, atol=1e-9)
    np.testing.assert_allclose(res["e2e"], E2E, atol=1e-9)
    if tool == "aiperf":  # later turns start after the previous turn completed + delay
        np.testing.assert_allclose(res["start"], [0, 1, 2, 3.18, 4.42, 5.5])


def test_results_without_sent_keep_the_file_order() -> None:
    res = sg.read_results(DATA / FILES["vllm"], "vllm")
    assert "client" not in res.columns and res["completion_tokens"].tolist() == [4, 3, 5, 2, 0, 2]


def test_aiperf_join_uses_session_and_turn(sent: pd.DataFrame, tmp_path: Path) -> None:
    # The same records in another file order give the same joined table.
    lines = (DATA / FILES["aiperf"]).read_text().splitlines()
    p = tmp_path / "shuffled.jsonl"
    p.write_text("\n".join(lines[::-1]) + "\n")
    a = sg.read_results(DATA / FILES["aiperf"], "aiperf", sent=sent)
    b = sg.read_results(p, "aiperf", sent=sent)
    pd.testing.assert_frame_equal(a, b, check_like=False)
    # a conversation that was never sent is an error, not a silent mismatch
    recs = [json.loads(line) for line in lines]
    recs[0]["metadata"]["conversation_id"] = "99"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    with pytest.raises(ValueError, match="do not match the sent sessions"):
        sg.read_results(p, "aiperf", sent=sent)


def test_results_from_requests_and_count_mismatch(sent: pd.DataFrame) -> None:
    from servegen.formats._io import requests_from_frame

    reqs = requests_from_frame(sent)
    res = sg.read_results(DATA / FILES["guidellm"], "guidellm", sent=reqs)
    assert res["client"].astype(str).tolist() == ["chat", "api", "chat", "chat", "chat", "api"]
    with pytest.raises(ValueError, match=r"has 6 requests but 5 were sent; replay every request"):
        sg.read_results(DATA / FILES["vllm"], "vllm", sent=sent.iloc[:5])


def test_bad_inputs_are_named(tmp_path: Path, sent: pd.DataFrame) -> None:
    with pytest.raises(
        ValueError, match=r"`tool` must be one of \['aiperf', 'vllm', 'guidellm', 'vidur'\], got 'k6'"
    ):
        sg.read_results(DATA / FILES["vllm"], "k6")
    with pytest.raises(FileNotFoundError, match="no such file"):
        sg.read_results(tmp_path / "missing.json", "vllm")
    with pytest.raises(ValueError, match="--save-detailed"):
        sg.read_results(DATA / FILES["guidellm"], "vllm")
    with pytest.raises(ValueError, match=r"not a Vidur request_metrics\.csv"):
        sg.read_results(DATA / "sent.jsonl", "vidur")
    with pytest.raises(ValueError, match=r"not an AIPerf profile_export\.jsonl"):
        sg.read_results(DATA / "sent.jsonl", "aiperf")
    with pytest.raises(TypeError, match="`sent` must be servegen Requests or a DataFrame, got list"):
        sg.read_results(DATA / FILES["vllm"], "vllm", sent=[1, 2])


def test_slo_table_per_client(sent: pd.DataFrame) -> None:
    res = sg.read_results(DATA / FILES["vllm"], "vllm", sent=sent)
    t = sg.slo_table(res, {"ttft": 0.2, "e2e": 0.5}, percentiles=[50, 99])
    assert t.index.tolist() == ["api", "chat", "all"] and t["requests"].tolist() == [2, 4, 6]
    assert t.loc["chat", "ok"] == 0.75 and t.loc["all", "ok"] == pytest.approx(5 / 6)
    # chat ok ttfts 0.12, 0.30, 0.08: median 0.12; api 0.05, 0.90: median 0.475
    assert t.loc["chat", "ttft_p50"] == pytest.approx(0.12) and t.loc["api", "ttft_p50"] == pytest.approx(
        0.475
    )
    assert t.loc["all", "e2e_p99"] == pytest.approx(np.percentile([0.18, 0.07, 0.42, 0.10, 0.95], 99))
    # the failed request misses every SLO; ttft <= 0.2: 0.12, 0.05, 0.08 -> 3 of 6
    assert t.loc["all", "attain_ttft"] == pytest.approx(3 / 6)
    assert t.loc["all", "attain_e2e"] == pytest.approx(4 / 6)
    assert t.loc["all", "attain_all"] == pytest.approx(3 / 6)
    assert sg.slo_table(res, by=None).index.tolist() == ["all"]
    with pytest.raises(ValueError, match="SLO keys must be among"):
        sg.slo_table(res, {"latency": 1})
    with pytest.raises(ValueError, match=r"the `ttft` bound must be a number of seconds > 0, got -1"):
        sg.slo_table(res, {"ttft": -1})
    with pytest.raises(ValueError, match="no column 'tenant' to group by"):
        sg.slo_table(res, by="tenant")


def test_latency_over_time_plot(sent: pd.DataFrame) -> None:
    from servegen import plot

    res = sg.read_results(DATA / FILES["vidur"], "vidur", sent=sent)
    fig = plot.latency_over_time(res, bin=2)
    rate_ax, lat_ax = fig.axes
    counts = rate_ax.patches[0].get_data().values
    np.testing.assert_allclose(counts, [1.0, 1.0, 2 / 1.5])  # arrivals 0,1 | 2,3 | 4,5.5; last bin 1.5 s
    p50 = lat_ax.lines[0].get_ydata()
    np.testing.assert_allclose(
        p50, [np.median([0.18, 0.07]), np.median([0.42, 0.10]), np.median([0.14, 0.95])]
    )
