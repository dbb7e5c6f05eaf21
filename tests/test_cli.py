"""The ``servegen`` command line, run in-process through ``main([...])`` and once as a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import servegen as sg
from servegen import cli
from servegen.formats import read_trace, write

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _spec(tmp_path: Path) -> Path:
    wl = sg.Workload(
        {
            "chat": sg.Client(
                arrival=sg.Gamma(rate=8, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1), output_tokens=50
            ),
            "batch": sg.Client(arrival=sg.Poisson(rate=2), input_tokens=2000, output_tokens=10),
        }
    )
    path = tmp_path / "wl.json"
    path.write_text(wl.to_json())
    return path


# -- times ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("10m", 600.0),
        ("10min", 600.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("500ms", 0.5),
        ("18:00", 64800.0),
        ("00:10:30", 630.0),
        ("1d18:00", 151200.0),
        (" 1H ", 3600.0),
    ],
)
def test_parse_time(text, seconds):
    assert cli.parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1x", "h", "-5", "18:60", "1h 30m", "nan", "1e3", "d18:00"])
def test_parse_time_rejects(text):
    with pytest.raises(ValueError, match=f"got {text!r}"):
        cli.parse_time(text)


# -- help ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "options"),
    [
        ([], ["generate", "info", "plot", "fit", "compare", "pools"]),
        (["pools"], []),
        (
            ["generate"],
            ["--pool", "--spec", "--duration", "--start", "--rate", "--seed", "--format", "--quiet"],
        ),
        (["info"], ["--format"]),
        (["plot"], ["--output", "--bin", "--top"]),
        (["fit"], ["--window", "--output"]),
        (["compare"], ["--format-a", "--format-b", "--plot"]),
    ],
)
def test_help(capsys, command, options):
    code, out, err = run(capsys, *command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: servegen {' '.join(command)}".rstrip())
    for opt in options:
        assert opt in out


def test_version(capsys):
    assert run(capsys, "--version")[:2] == (0, f"servegen {sg.__version__}\n")


# -- commands --------------------------------------------------------------------------------
def test_pools(capsys):
    code, out, _ = run(capsys, "pools")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == sg.list_pools()["name"].tolist()
    assert "language/m-large" in names and "162" in out.splitlines()[1]


@pytest.mark.slow
def test_generate_pool_matches_the_library(capsys):
    code, _, err = run(
        capsys, "generate", "--pool", "language/m-large", "--start", "18:00", "--duration", "5m",
        "--rate", "50", "--seed", "3", "--chunk", "1m", "-o", "evening.parquet",
    )  # fmt: skip
    assert code == 0, err
    assert err.startswith("wrote ") and err.count("\n") == 1  # the summary; no progress bar off a tty
    got = read_trace("evening.parquet", "parquet", relative=False)
    view = sg.load_pool("language/m-large").span(18 * 3600, 18 * 3600 + 300)
    want = sg.Workload(view, rate=50.0).sample(300, rng=3)
    np.testing.assert_array_equal(got["timestamp"], want.timestamp)
    np.testing.assert_array_equal(got["input_tokens"], want.input_tokens)
    np.testing.assert_array_equal(got["client"].astype(int), want.client_keys.astype(int))
    assert 40 < len(got) / 300 < 60


def test_generate_spec_any_chunk_size_same_file(capsys, tmp_path):
    spec = _spec(tmp_path)
    for name, chunk in (("a.jsonl", "7s"), ("b.jsonl", "1h")):
        args = ("generate", "--spec", spec, "--duration", "2m", "--format", "mooncake", "--chunk", chunk)
        assert run(capsys, *args, "-q", "-o", name)[:3] == (0, "", "")
    text = Path("a.jsonl").read_text()
    assert text == Path("b.jsonl").read_text()
    want = sg.Workload.from_json(spec.read_text()).sample(120, rng=0)
    assert Path(write(want, tmp_path / "c.jsonl", "mooncake")).read_text() == text  # default seed 0


@pytest.mark.slow
def test_generate_rate_overrides_the_spec(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--spec", _spec(tmp_path), "--duration", "10m", "--rate", "40",
                       "-o", "r.csv")  # fmt: skip
    assert code == 0, err
    n = len(read_trace("r.csv", "csv"))
    assert abs(n / 600 - 40) < 4 * np.sqrt(40 * 600 * 4) / 600  # Gamma cv 2 inflates the count variance
    # a pool reference in the spec stays a pool (and keeps its block size)
    pool_spec = sg.Workload(sg.load_pool("reason/deepseek-r1").span(0, 3600), block_size=16).to_json()
    Path("pool.json").write_text(pool_spec)
    code, _, err = run(
        capsys, "generate", "--spec", "pool.json", "--duration", "5m", "--rate", "10", "-o", "p.parquet"
    )
    assert code == 0, err
    got = sg.read_parquet("p.parquet")
    assert 8 < len(got) / 300 < 12 and "hash_ids" in got.columns and "reasoning_tokens" in got.columns


def test_generate_error_leaves_nothing_and_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    Path("out.parquet").write_bytes(b"old")
    real = sg.Workload.iter_chunks

    def failing(exc):
        def chunks(self, *a, **k):
            it = real(self, *a, **k)
            yield next(it)
            raise exc

        return chunks

    for exc, want in ((KeyboardInterrupt(), 130), (MemoryError(), None)):
        monkeypatch.setattr(sg.Workload, "iter_chunks", failing(exc))
        args = ("generate", "--spec", spec, "--duration", "20m", "--chunk", "1m", "-o", "out.parquet")
        if want is None:  # not a user mistake: the real exception propagates
            with pytest.raises(MemoryError):
                cli.main([str(a) for a in args])
            capsys.readouterr()
        else:
            code, _, err = run(capsys, *args)
            assert (code, err) == (130, "servegen: interrupted; nothing was written\n")
        assert sorted(os.listdir(tmp_path)) == ["out.parquet", "wl.json"]  # no temporary file
        assert Path("out.parquet").read_bytes() == b"old"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["generate", "--pool", "m-large", "--duration", "1x", "-o", "a.parquet"], 2, "argument --duration"),
        (["generate", "--pool", "m-large", "--duration", "0", "-o", "a.parquet"], 2, "must be > 0"),
        (["generate", "--pool", "nope", "--duration", "1h", "-o", "a.parquet"], 1, "unknown pool 'nope'"),
        (["generate", "--pool", "m-large", "--duration", "1h", "-o", "a.txt"], 1, "pass --format"),
        (
            ["generate", "--pool", "m-large", "--duration", "1h", "--format", "x", "-o", "a"],
            2,
            "invalid choice",
        ),
        (["generate", "--pool", "m-large", "--duration", "1h", "--rate", "-3", "-o", "a.csv"], 1, "--rate"),
        (["generate", "--pool", "m-large", "--start", "14d", "--duration", "1h", "-o", "a.csv"], 1, "wrap"),
        (["generate", "--duration", "1h", "-o", "a.csv"], 2, "one of the arguments --pool --spec"),
        (["generate", "--spec", "missing.json", "--duration", "1h", "-o", "a.csv"], 1, "'missing.json'"),
        (
            ["generate", "--spec", "wl.json", "--start", "1h", "--duration", "1h", "-o", "a.csv"],
            1,
            "--pool only",
        ),
        (["generate", "--pool", "m-large", "--duration", "1h", "-o", "no/dir/a.csv"], 1, "does not exist"),
        (["generate", "--spec", "list.json", "--duration", "1h", "-o", "a.csv"], 1, "not a Workload spec"),
        (["generate", "--spec", "empty.json", "--duration", "1h", "-o", "a.csv"], 1, "no 'clients' field"),
        (
            ["generate", "--spec", "bad.json", "--duration", "1h", "-o", "a.csv"],
            1,
            "'bad.json' is not valid JSON: ",
        ),
        (["info", "missing.parquet"], 1, "no such file: 'missing.parquet'"),
        (["info", "wl.json"], 1, "pass --format"),
        (["info", "wl.json", "--format", "vllm"], 1, "wl.json"),
        (["plot", "wl.json", "--format", "csv", "-o", "x.png"], 1, "wl.json"),
        (["fit", "missing.csv", "-o", "x.json"], 1, "no such file"),
        (["compare", "missing.csv"], 2, "required: b"),
        (["bogus"], 2, "invalid choice: 'bogus'"),
        ([], 2, "required: COMMAND"),
    ],
)
def test_user_errors_are_one_line(capsys, tmp_path, argv, code, message):
    _spec(tmp_path)
    inputs = {"list.json": "[1]", "empty.json": '{"kind": "workload"}', "bad.json": "{oops"}
    for name, text in inputs.items():
        (tmp_path / name).write_text(text)
    got, out, err = run(capsys, *argv)
    assert got == code
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("servegen") and message in err
    assert sorted(os.listdir(tmp_path)) == sorted(["wl.json", *inputs])  # nothing written


@pytest.mark.slow
def test_info_plot_fit_compare_on_a_trace(capsys, tmp_path):
    client = sg.Client(
        arrival=sg.Gamma(rate=5, cv=2),
        input_tokens=sg.LogNormal(mu=6, sigma=1),
        output_tokens=sg.Exponential(mean=80),
    )
    reqs = client.sample(1800, rng=0)
    write(reqs, "real.jsonl", "mooncake")

    code, out, err = run(capsys, "info", "real.jsonl", "--format", "mooncake")
    assert code == 0, err
    info = dict(
        line.split(None, 1) for line in out.split("\n\n")[0].replace("mean rate", "rate").splitlines()
    )
    assert info["requests"] == f"{len(reqs):,}"
    span = reqs.timestamp[-1] - reqs.timestamp[0]  # read_trace starts the clock at the first request
    assert info["rate"].startswith(f"{len(reqs) / span:.3f}")
    cv = float(info["IAT"].split()[1])
    assert abs(cv - 2) < 0.25
    assert "input_tokens" in out and "p99" in out

    assert run(capsys, "plot", "real.jsonl", "--format", "mooncake", "-o", "real.png")[0] == 0
    assert Path("real.png").read_bytes()[:4] == b"\x89PNG"

    code, _, err = run(
        capsys, "fit", "real.jsonl", "--format", "mooncake", "--window", "10m", "-o", "wl.json"
    )
    assert code == 0, err
    wl = sg.Workload.from_json(Path("wl.json").read_text())
    assert len(wl.clients) == 1
    json.loads(Path("wl.json").read_text())  # plain JSON

    code, _, err = run(capsys, "generate", "--spec", "wl.json", "--duration", "30m", "-o", "syn.parquet")
    assert code == 0, err
    code, out, err = run(
        capsys, "compare", "real.jsonl", "syn.parquet", "--format-a", "mooncake", "--plot", "c.svg"
    )
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert {"n_requests", "iat_cv", "input_tokens_ks", "iat_ks"} <= set(rows)
    ratio = float(rows["iat_cv"][2])
    assert abs(ratio - 1) < 0.2  # the fitted model keeps the burstiness
    assert 0 < float(rows["iat_ks"][3]) < 1  # the gap-law KS distance (4th column)
    svg = Path("c.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "dispersion of counts" in svg


def test_progress_bar_draws_on_a_terminal_only(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    wl = sg.Workload([sg.Client(arrival=sg.Poisson(rate=10), input_tokens=1, output_tokens=1)])
    for tty, quiet, drawn in ((True, False, True), (True, True, False), (False, False, False)):
        stream = Tty() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        chunks = list(cli._progress(wl.iter_chunks(120, 30, rng=0), 120, quiet))
        assert sg.Requests.concat(chunks).equals(wl.sample(120, rng=0))  # passed through unchanged
        assert ("generating" in stream.getvalue()) is drawn


@pytest.mark.slow
def test_console_entry_point_as_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "servegen", "generate", "--pool", "reason/deepseek-r1", "--start", "12:00",
           "--duration", "2m", "-o", "r.csv"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("wrote ")  # no progress bar: stderr is a pipe
    assert len(read_trace(tmp_path / "r.csv", "csv")) > 0
    bad = subprocess.run(
        [*cmd[:5], "--duration", "soon"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
