"""Exports checked against each consumer tool's own loader semantics (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import servegen as sg
from servegen.formats import ContextWarning, read_trace, write, write_chunks

DATA = Path(__file__).parent / "data" / "formats"


# -- AIPerf: a later turn's input_length is its NEW user message ---------------------------
def sessions_requests() -> sg.Requests:
    """Two sessions (one with reasoning: only its answer stays in context) and a lone request.

    Session 1: 1100 tokens (with the prefix), then +50 answer +30 new, then +20 +700.
    Session 2: 200, then +40 answer (of 100 output) +25 new.
    """
    return sg.Requests(
        {
            "timestamp": np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.5]),
            "client": np.zeros(6, np.int32),
            "input_tokens": np.array([1100, 10, 200, 1180, 265, 1900]),
            "output_tokens": np.array([50, 5, 100, 20, 30, 10]),
            "answer_tokens": np.array([50, 5, 40, 20, 30, 10]),
            "session": np.array([1, -1, 2, 1, 2, 1]),
            "turn": np.array([1, 1, 1, 2, 2, 3]),
        },
        clients=["chat"],
    )


def test_aiperf_golden_turns_are_new_tokens(tmp_path: Path) -> None:
    # Golden file: first turns carry the whole prompt (shared prefix included), later
    # turns 30, 25 and 700 new tokens with fresh hash ids; delays are the gaps in ms.
    out = write(sessions_requests(), tmp_path / "s.jsonl", "aiperf")
    assert out.read_text() == (DATA / "sessions.aiperf.jsonl").read_text()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input_length"] for r in rows] == [1100, 10, 200, 30, 25, 700]
    assert [r.get("delay") for r in rows] == [None, None, None, 3000, 2000, 2500]


def test_aiperf_read_back_rebuilds_the_context(tmp_path: Path) -> None:
    r = sessions_requests()
    df = read_trace(write(r, tmp_path / "s.jsonl", "aiperf"), "aiperf")
    # AIPerf re-sends the live answer (output tokens); the reasoning turn's 60 reasoning
    # tokens are in the re-sent history of a non-reasoning replay, so 265 + 60.
    assert df.input_tokens.tolist() == [1100, 10, 200, 1180, 265 + 60, 1900]


def test_aiperf_generated_sessions_mean_what_aiperf_means(tmp_path: Path) -> None:
    chat = sg.Client(
        arrival=sg.Poisson(rate=0.5), input_tokens=sg.LogNormal(mu=5, sigma=1),
        output_tokens=sg.Exponential(mean=200),
        session=sg.Session(turns=sg.Empirical(values=[1, 2, 4], probs=[0.5, 0.3, 0.2]),
                           think_time=sg.LogNormal(mu=3, sigma=1), new_tokens=60),
        prefix=sg.SharedPrefix(groups=5, popularity=sg.Zipf(s=1.1, n=5), tokens=1024),
    )  # fmt: skip
    r = sg.Workload([chat], block_size=512).sample(600, rng=0)
    one = write(r, tmp_path / "one.jsonl", "aiperf")
    many = write_chunks(sg.Workload([chat], block_size=512).iter_chunks(600, chunk=100, rng=0),
                        tmp_path / "many.jsonl", "aiperf")  # fmt: skip
    assert many.read_bytes() == one.read_bytes()
    rows = [json.loads(line) for line in one.read_text().splitlines()]
    first = [x for x in rows if "timestamp" in x]
    later = [x for x in rows if "delay" in x]
    assert len(later) > 50
    # every later turn is exactly the 60 new user tokens, in one fresh 512-block
    assert {x["input_length"] for x in later} == {60}
    assert all(len(x["hash_ids"]) == 1 for x in later)
    # first turns carry the 1024-token prefix: two shared blocks, five groups at most
    assert all(x["input_length"] > 1024 for x in first)
    assert len({tuple(x["hash_ids"][:2]) for x in first}) <= 5
    # no block id of a new message appears anywhere else
    ids = np.concatenate([x["hash_ids"] for x in rows])
    fresh = [x["hash_ids"][0] for x in later]
    assert all((ids == h).sum() == 1 for h in fresh)


# -- Vidur: both codebases, and the context window -----------------------------------------
def long_requests() -> sg.Requests:
    """An output alone at the limit (Vidur crashed on it), one over it, a sum over it, and a fit."""
    return sg.Requests(
        {
            "timestamp": np.array([0.0, 0.5, 1.0, 2.0]),
            "client": np.zeros(4, np.int32),
            "input_tokens": np.array([300, 20, 4000, 100]),
            "output_tokens": np.array([4096, 9000, 200, 50]),
        },
        clients=[0],
    )


@pytest.mark.parametrize("fmt", ["vidur", "vidur_pip"])
def test_vidur_fits_max_tokens_and_reports(tmp_path: Path, fmt: str) -> None:
    with pytest.warns(
        ContextWarning, match=rf"{fmt}: 3 of 4 requests shortened to fit max_tokens=4096 .*2 outputs"
    ):
        p = write(long_requests(), tmp_path / "v.csv", fmt)
    df = read_trace(p, fmt)
    # output alone reaching the limit: cut to 4095 with one prompt token; the sum: prompt cut
    assert df.output_tokens.tolist() == [4095, 4095, 200, 50]
    assert df.input_tokens.tolist() == [1, 1, 3896, 100]
    assert (df.input_tokens + df.output_tokens <= 4096).all() and (df.input_tokens >= 1).all()


def test_vidur_max_tokens_option(tmp_path: Path) -> None:
    with pytest.warns(ContextWarning, match="1 of 4"):
        df = read_trace(write(long_requests(), tmp_path / "v.csv", "vidur", max_tokens=9010), "vidur")
    assert df.output_tokens.tolist() == [4096, 9000, 200, 50] and df.input_tokens.tolist() == [
        300,
        10,
        4000,
        100,
    ]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing changed: no warning
        df = read_trace(write(long_requests(), tmp_path / "w.csv", "vidur", max_tokens=None), "vidur")
    assert df.output_tokens.tolist() == [4096, 9000, 200, 50]
    for bad in (1, 0, 2.5, True, "4096"):
        with pytest.raises(ValueError, match=r"vidur: `max_tokens` must be a whole number >= 2 or None, got"):
            write(long_requests(), tmp_path / "x.csv", "vidur", max_tokens=bad)
    assert not (tmp_path / "x.csv").exists()


def test_vidur_pip_keeps_one_date(tmp_path: Path) -> None:
    r = long_requests()
    p = write(r, tmp_path / "v.csv", "vidur_pip", date="2024-05-01", max_tokens=None)
    lines = p.read_text().splitlines()
    assert lines[0] == "Date,Time,PromptTokenCount,CompletionTokenCount"
    assert all(line.startswith("2024-05-01,") for line in lines[1:])
    df = read_trace(p, "vidur_pip")
    assert df.Date.unique().tolist() == ["2024-05-01"] and df.timestamp.tolist() == [0.0, 0.5, 1.0, 2.0]
    with pytest.raises(
        ValueError, match=r"vidur_pip: `date` must be an ISO date like '2023-08-21', got 'May 1'"
    ):
        write(r, tmp_path / "y.csv", "vidur_pip", date="May 1")


@pytest.mark.parametrize(
    ("fmt", "block"), [("mooncake", 512), ("vllm", 16), ("aiperf", 512), ("guidellm", None)]
)
def test_server_formats_fit_the_context_window(tmp_path: Path, fmt: str, block: int | None) -> None:
    with pytest.warns(ContextWarning, match=rf"{fmt}: 3 of 4 requests shortened to fit max_tokens=4096"):
        p = write(long_requests(), tmp_path / "t.jsonl", fmt, max_tokens=4096)
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    assert [r["output_length"] for r in rows] == [4095, 4095, 200, 50]
    assert [r["input_length"] for r in rows] == [1, 1, 3896, 100]
    if block:  # a shortened prompt keeps its first blocks, as many as it needs
        assert [len(r["hash_ids"]) for r in rows] == [1, 1, -(-3896 // block), -(-100 // block)]
        assert rows[0]["hash_ids"] == [0] and rows[2]["hash_ids"][0] > rows[1]["hash_ids"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default keeps every length, silently
        rows = [
            json.loads(line)
            for line in write(long_requests(), tmp_path / "u.jsonl", fmt).read_text().splitlines()
        ]
    assert [r["output_length"] for r in rows] == [4096, 9000, 200, 50]


# -- replay commands: the CLI prints what replay_command gives (and the docs show) -----------
@pytest.mark.parametrize("fmt", ["vllm", "mooncake", "aiperf", "guidellm", "vidur", "vidur_pip"])
def test_generate_prints_the_replay_command(tmp_path: Path, capsys, monkeypatch, fmt: str) -> None:
    from servegen import cli

    monkeypatch.chdir(tmp_path)
    out = f"t.{fmt}"
    code = cli.main(["generate", "--pool", "reason/deepseek-r1", "--duration", "2m", "--rate", "5",
                     "--format", fmt, "--max-tokens", "8192", "-o", out])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    n = len(read_trace(out, fmt))
    want = sg.replay_command(fmt, Path(out), n_requests=n, max_tokens=8192)
    assert err.endswith("replay it with:\n" + want + "\n")
    assert f"{n}" in want.splitlines()[0]
    if fmt.startswith("vidur"):
        assert "config_max_tokens 8192" in want
    assert "shortened to fit max_tokens=8192" in err  # deepseek-r1 has outputs above 8k


def test_replay_command_units_and_counts() -> None:
    assert "--num-prompts 2926" in sg.replay_command("vllm", "x.jsonl", n_requests=2926)
    mc = sg.replay_command("mooncake", "x.jsonl", n_requests=5)
    assert "--timed-trace-sec-multiplier 0.001 --timed-trace-chunk-hash-size 512" in mc
    assert "--extra-inputs ignore_eos:true" in sg.replay_command("aiperf", "x.jsonl", n_requests=5)
    g = sg.replay_command("guidellm", "x.jsonl", n_requests=5)
    assert "guidellm run --backend kind=openai_http" in g and "--profile kind=replay" in g
    assert sg.replay_command("csv", "x.csv", n_requests=5) is None
    with pytest.raises(ValueError, match="replay_command: `n_requests` must be a whole number >= 0, got -1"):
        sg.replay_command("vllm", "x.jsonl", n_requests=-1)


# -- optional: the consumer's own loader, when it is installed ------------------------------
def test_vidur_real_trace_replay_loader(tmp_path: Path) -> None:
    """Vidur's TraceReplayRequestGenerator reads the export of its codebase unchanged.

    Skipped unless Vidur is importable (``pip install vidur`` 0.0.26, or the GitHub source
    on the path); its trace loader needs only numpy and pandas.
    """
    import dataclasses
    import importlib
    import os

    if os.environ.get("CI"):  # .ci/run installs it (--no-deps): CI never skips this check
        config = importlib.import_module("vidur.config")
        replay = importlib.import_module("vidur.request_generator.trace_replay_request_generator")
    else:
        config = pytest.importorskip("vidur.config")
        replay = pytest.importorskip("vidur.request_generator.trace_replay_request_generator")
    fields = {f.name for f in dataclasses.fields(config.TraceRequestGeneratorConfig)}
    fmt = "vidur_pip" if "date" in fields else "vidur"  # the package-index codebase has a date
    reqs = long_requests()
    with pytest.warns(ContextWarning):
        path = write(reqs, tmp_path / "t.csv", fmt)
    cfg = config.TraceRequestGeneratorConfig(
        trace_file=str(path),
        prefill_scale_factor=1,
        decode_scale_factor=1,
        time_scale_factor=1,
        max_tokens=4096,
    )
    got = replay.TraceReplayRequestGenerator(cfg).generate_requests()
    assert [r.arrived_at for r in got] == [0.0, 0.5, 1.0, 2.0]
    assert [r.num_prefill_tokens for r in got] == [1, 1, 3896, 100]  # nothing left for Vidur to cut
    assert [r.num_decode_tokens for r in got] == [4095, 4095, 200, 50]


def test_aiperf_turn_time_timestamp(tmp_path: Path) -> None:
    # Every turn carries its own ms timestamp (AIPerf's fixed schedule sends a later turn
    # then, or right after the previous one completes); lengths keep the per-turn meaning.
    out = write(sessions_requests(), tmp_path / "s.jsonl", "aiperf", turn_time="timestamp")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["timestamp"] for r in rows] == [0, 1000, 2000, 3000, 4000, 5500]
    assert all("delay" not in r for r in rows)
    assert [r["input_length"] for r in rows] == [1100, 10, 200, 30, 25, 700]
    assert [r.get("session_id") for r in rows] == ["1", None, "2", "1", "2", "1"]
    df = read_trace(out, "aiperf")
    assert df.timestamp.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.5]
    assert df.input_tokens.tolist() == [1100, 10, 200, 1180, 325, 1900]
    with pytest.raises(ValueError, match=r"aiperf: `turn_time` must be 'delay' or 'timestamp', got 'start'"):
        write(sessions_requests(), tmp_path / "t.jsonl", "aiperf", turn_time="start")


# -- counts below 1 in traces read from files (BurstGPT failures, Azure rows) ---------------
def zero_trace(tmp_path: Path):
    """A BurstGPT-like trace read from a file: failed requests with 0 response tokens (rows 1
    and 3) and a 0-token prompt (row 4)."""
    csv = tmp_path / "burst.csv"
    csv.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,ChatGPT,1087,0,1087,Conversation log\n"
        "60,GPT-4,90,12,102,API log\n"
        "61,GPT-4,33,0,33,API log\n"
        "118,GPT-4,0,276,276,API log\n"
    )
    return read_trace(csv, "burstgpt")


FIELDS = {"mooncake": "output_length", "vllm": "output_length", "aiperf": "output_length",
          "guidellm": "output_length", "vidur": "num_decode_tokens", "vidur_pip": "CompletionTokenCount"}  # fmt: skip


@pytest.mark.parametrize("fmt", ["mooncake", "vllm", "aiperf", "guidellm", "vidur", "vidur_pip"])
def test_counts_below_one_are_refused_naming_the_column(tmp_path: Path, fmt: str) -> None:
    df = zero_trace(tmp_path)
    target = tmp_path / "out"
    # AIPerf aborts a whole run on one max_tokens=0 row; vLLM's server refuses it; GuideLLM
    # sends no max_tokens at all (an unbounded answer). The writer refuses by default.
    options = {"clamp": False} if fmt.startswith("vidur") else {}
    with pytest.raises(ValueError) as e:
        write(df, target, fmt, **options)
    msg = str(e.value)
    assert msg.startswith(f"{fmt}: `{FIELDS[fmt]}` must be >= 1 (a request has at least one prompt and one")
    assert "got 0 at request 1; 3 of 5 requests have a count below 1" in msg
    assert "pass clamp=True (CLI --clamp) to write them as 1" in msg
    assert not target.exists() and list(tmp_path.iterdir()) == [tmp_path / "burst.csv"]


@pytest.mark.parametrize("fmt", ["mooncake", "vllm", "aiperf", "guidellm", "vidur", "vidur_pip"])
def test_clamp_writes_counts_below_one_as_one_and_reports(tmp_path: Path, fmt: str) -> None:
    df = zero_trace(tmp_path)
    options = {} if fmt.startswith("vidur") else {"clamp": True}  # Vidur's writers clamp by default
    with pytest.warns(ContextWarning) as notes:
        out = write(df, tmp_path / "out", fmt, **options)
    assert len(notes) == 1
    assert str(notes[0].message).startswith(f"{fmt}: 3 of 5 requests had a count below 1 (")
    assert "; the first at request 1), written as 1 (clamp=True)" in str(notes[0].message)
    back = read_trace(out, fmt)
    assert back.input_tokens.tolist() == [472, 1087, 90, 33, 1]
    assert back.output_tokens.tolist() == [18, 1, 12, 1, 276]


def test_clamp_then_max_tokens_one_report_each(tmp_path: Path) -> None:
    df = zero_trace(tmp_path)
    with pytest.warns(ContextWarning) as notes:
        out = write(df, tmp_path / "m.jsonl", "mooncake", clamp=True, max_tokens=500)
    assert [str(n.message).split(" requests ")[0] for n in notes] == ["mooncake: 3 of 5", "mooncake: 1 of 5"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["input_length"], r["output_length"]) for r in rows] == [
        (472, 18), (499, 1), (90, 12), (33, 1), (1, 276)
    ]  # fmt: skip
    assert [len(r["hash_ids"]) for r in rows] == [1, 1, 1, 1, 1]  # 1087 -> 499 tokens keep one block
    with pytest.raises(TypeError, match=r"mooncake: `clamp` must be True or False, got 'yes'"):
        write(df, tmp_path / "n.jsonl", "mooncake", clamp="yes")


def test_counts_below_one_counted_across_chunks(tmp_path: Path) -> None:
    df = zero_trace(tmp_path)
    with pytest.raises(ValueError, match=r"got 0 at request 1; 3 of 5 requests have a count below 1 "
                                         r"\(input_length: 1, output_length: 2\)"):  # fmt: skip
        write_chunks([df.iloc[:2], df.iloc[2:]], tmp_path / "c.jsonl", "aiperf")


def test_cli_convert_refuses_or_clamps(tmp_path: Path, capsys) -> None:
    from servegen import cli

    zero_trace(tmp_path)
    src, out = str(tmp_path / "burst.csv"), str(tmp_path / "b.jsonl")
    assert cli.main(["convert", src, "--format", "burstgpt", "--to", "vllm", "-o", out]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("servegen convert: error: vllm: `output_length` must be >= 1") and "CLI --clamp" in err
    )
    assert not Path(out).exists()
    assert cli.main(["convert", src, "--format", "burstgpt", "--to", "vllm", "--clamp", "-o", out]) == 0
    err = capsys.readouterr().err
    assert "servegen convert: note: vllm: 3 of 5 requests had a count below 1" in err
    assert err.endswith("replay it with:\n" + sg.replay_command("vllm", Path(out), n_requests=5) + "\n")
    assert read_trace(out, "vllm").output_tokens.tolist() == [18, 1, 12, 1, 276]


# -- optional: AIPerf's and GuideLLM's own code, when installed -----------------------------
# tests/_real_loaders.py runs the tool in a subprocess of this interpreter, or of the one
# named by SERVEGEN_TOOLS_PYTHON (a venv with the tools, kept out of the project's).
# .ci/run installs both tools (without their declared GPU/UI stacks): CI never skips.
LOADERS = Path(__file__).parent / "_real_loaders.py"


def run_tool(module: str, what: str, *args: str) -> Any:
    python = os.environ.get("SERVEGEN_TOOLS_PYTHON", sys.executable)
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    if subprocess.run([python, "-c", probe]).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is not installed; .ci/run installs it")
        pytest.skip(f"{what} is not installed (.ci/run installs it; or set SERVEGEN_TOOLS_PYTHON)")
    proc = subprocess.run([python, "-W", "ignore", str(LOADERS), *args], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


def turns_of(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows of an AIPerf file per session (a row outside sessions is its own)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    out: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(rows):
        out.setdefault(r.get("session_id", f"row {i}"), []).append(r)
    return out


@pytest.mark.slow
def test_aiperf_own_loader_replays_the_exports(tmp_path: Path) -> None:
    """AIPerf 0.13's dataset composer (``--custom-dataset-type mooncake_trace``) on our files."""
    sessions = write(sessions_requests(), tmp_path / "s.jsonl", "aiperf")
    chat = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=sg.LogNormal(mu=5, sigma=1), output_tokens=20,
                     prefix=sg.SharedPrefix(groups=3, popularity=sg.Zipf(s=1.1, n=3), tokens=1024))  # fmt: skip
    prefixed = write(sg.Workload([chat], block_size=512).sample(15, rng=0), tmp_path / "p.jsonl", "mooncake")
    with pytest.warns(ContextWarning):
        clamped = write(zero_trace(tmp_path), tmp_path / "b.jsonl", "aiperf", clamp=True)
    files = [sessions, prefixed, clamped]  # (each costs AIPerf ~3 s: it tokenizes its corpus)
    got = run_tool("aiperf", "AIPerf 0.13", "aiperf", *map(str, files))

    # Every row is one turn: its prompt has input_length tokens (a later turn: its new
    # message), max_tokens is output_length, timestamp / delay as written; sessions as written.
    for path, convs in zip(files, got, strict=True):
        want = turns_of(path)
        assert len(convs) == len(want), path.name
        for conv, rows in zip(convs, want.values(), strict=True):
            if "session_id" in rows[0]:
                assert conv["session_id"] == rows[0]["session_id"]
            assert [len(t["tokens"]) for t in conv["turns"]] == [r["input_length"] for r in rows]
            assert [t["max_tokens"] for t in conv["turns"]] == [r["output_length"] for r in rows]
            assert [t["timestamp"] for t in conv["turns"]] == [r.get("timestamp") for r in rows]
            assert [t["delay"] for t in conv["turns"]] == [r.get("delay") for r in rows]
    s1 = got[0][0]["turns"]  # session 1: the prefix-carrying first turn, then 30 and 700 new tokens
    assert [(t["delay"], len(t["tokens"])) for t in s1] == [(None, 1100), (3000, 30), (2500, 700)]
    # Shared prefixes: equal leading hash ids give equal leading 512-token blocks, others differ.
    rows = [json.loads(line) for line in prefixed.read_text().splitlines()]
    prompts = [c["turns"][0]["tokens"] for c in got[1]]
    pairs = [(i, j) for i in range(len(rows)) for j in range(i)]
    same = [(i, j) for i, j in pairs if rows[i]["hash_ids"][:2] == rows[j]["hash_ids"][:2]]
    assert 0 < len(same) < len(pairs)
    for i, j in pairs:
        assert (prompts[i][:1024] == prompts[j][:1024]) == ((i, j) in same)
    # A trace's failed requests, written as 1 token (a 0 aborts AIPerf: "max_tokens  Input
    # should be greater than or equal to 1", checked by hand, docs/howto/benchmark.md).
    assert [c["turns"][0]["max_tokens"] for c in got[2]] == [18, 1, 12, 1, 276]
    assert [len(c["turns"][0]["tokens"]) for c in got[2]] == [472, 1087, 90, 33, 1]


def test_guidellm_own_cli_accepts_the_replay_command(tmp_path: Path) -> None:
    """GuideLLM 0.8.1's ``guidellm run`` parses and validates what replay_command prints."""
    path = write(sessions_requests(), tmp_path / "g.jsonl", "guidellm")
    command = sg.replay_command("guidellm", path, n_requests=6, model="m", url="http://127.0.0.1:9")
    spec = run_tool("guidellm", "GuideLLM 0.8.1", "guidellm-cli", command)["spec"]
    assert (spec["backend"]["kind"], spec["backend"]["target"], spec["backend"]["model"]) == (
        "openai_http", "http://127.0.0.1:9", "m"
    )  # fmt: skip
    assert (spec["profile"]["kind"], spec["profile"]["time_scale"]) == ("replay", 1.0)  # file in seconds
    (data,) = spec["data"]
    assert (data["kind"], data["source"]["kind"], data["source"]["path"]) == (
        "trace_synthetic", "json_file", str(path)
    )  # fmt: skip
    assert data["time_scale"] == 1.0
    # the columns it reads are the fields we write
    fields = set(json.loads(path.read_text().splitlines()[0]))
    assert {data["timestamp_column"], data["prompt_tokens_column"], data["output_tokens_column"]} == fields
    assert spec["constraints"] == [{"kind": "max_requests", "count": 6, "stopping_scope": "current"}]
    assert spec["outputs"] == [{"kind": "json", "path": "g-benchmarks.json"}]
    # and the CLI does refuse a wrong flag (so the check above can fail)
    bad = run_tool("guidellm", "GuideLLM 0.8.1", "guidellm-cli", command.replace(",count=", ",counts="))
    assert "constraints[0].max_requests.count" in bad["error"]


@pytest.mark.parametrize(("fmt", "block"), [("vllm", 16), ("mooncake", 512), ("aiperf", 512)])
def test_one_hash_id_per_block_of_every_prompt(tmp_path: Path, fmt: str, block: int) -> None:
    # vLLM's TimedTrace expands one block per hash id (fewer ids: a shorter prompt than
    # input_length), GuideLLM's mooncake kind refuses a row unless the count is exactly
    # ceil(input_length / 512), AIPerf synthesizes the same way: so every row has exactly
    # that many, a clamped 1-token prompt included, shared-prefix workloads too.
    chat = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=sg.LogNormal(mu=6, sigma=1), output_tokens=20,
                     prefix=sg.SharedPrefix(groups=3, popularity=sg.Zipf(s=1.1, n=3), tokens=1024))  # fmt: skip
    reqs = sg.Workload([chat], block_size=block).sample(60, rng=1)
    with pytest.warns(ContextWarning):
        files = [write(reqs, tmp_path / "w", fmt, max_tokens=1500),
                 write(zero_trace(tmp_path), tmp_path / "z", fmt, clamp=True)]  # fmt: skip
    for path in files:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert [len(r["hash_ids"]) for r in rows] == [-(-r["input_length"] // block) for r in rows]
