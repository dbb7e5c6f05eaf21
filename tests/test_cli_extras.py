"""CLI details a newcomer hits: format detection, --wrap wording, broken pipes, a fast --version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from servegen import cli
from servegen.formats import detect_format

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT / "tests" / "data" / "formats"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("tiny.mooncake.jsonl", "mooncake"), ("tiny.vllm.jsonl", "vllm"), ("tiny.guidellm.jsonl", "guidellm"),
        ("tiny.aiperf.jsonl", "aiperf"),  # no sessions: told by its name
        ("aiperf_sessions.jsonl", "aiperf"), ("sessions.aiperf.jsonl", "aiperf"),
        ("tiny.vidur.csv", "vidur"), ("tiny.vidur_pip.csv", "vidur_pip"), ("tiny.azure.csv", "azure"),
        ("azure_2025.csv", "azure"), ("burstgpt_v11.csv", "burstgpt"), ("bailian.jsonl", "bailian"),
        ("tiny.llmservingsim.jsonl", "llmservingsim"), ("tiny.csv", "csv"), ("tiny.jsonl", "jsonl"),
    ],
)  # fmt: skip
def test_detect_format_from_content(name: str, fmt: str) -> None:
    assert detect_format(FORMATS / name) == fmt


def test_detect_vllm_from_name_or_fractional_seconds(tmp_path: Path) -> None:
    line = '{"timestamp": %s, "input_length": 9, "output_length": 2, "hash_ids": [1]}\n'
    (tmp_path / "a.jsonl").write_text(line % "1500" + line % "2750")
    assert detect_format(tmp_path / "a.jsonl") == "mooncake"
    (tmp_path / "a.vllm.jsonl").write_text(line % "1500" + line % "2750")
    assert detect_format(tmp_path / "a.vllm.jsonl") == "vllm"
    (tmp_path / "b.jsonl").write_text(line % "0" + line % "1.25")
    assert detect_format(tmp_path / "b.jsonl") == "vllm"
    (tmp_path / "c.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1 is not a JSON object; pass --format"):
        detect_format(tmp_path / "c.jsonl")


def test_info_without_format_reads_a_vllm_file(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.vllm.jsonl").write_text((FORMATS / "tiny.vllm.jsonl").read_text())
    assert cli.main(["info", "x.vllm.jsonl"]) == 0
    out = capsys.readouterr().out
    assert "(vllm)" in out.splitlines()[0] and "requests    3" in out


def test_span_error_names_the_cli_flag(capsys) -> None:
    code = cli.main(["generate", "--pool", "language/m-large", "--start", "14d", "--duration", "1h",
                     "-o", "a.csv"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "pass --wrap to repeat the data by day" in err and "wrap=True" not in err


def test_broken_pipe_is_quiet(tmp_path: Path, capsys, monkeypatch) -> None:
    # `servegen info ... | head`: the reader has gone before we print.
    read, write = os.pipe()
    os.close(read)
    out = os.fdopen(write, "w")
    monkeypatch.setattr(sys, "stdout", out)
    code = cli.main(["info", str(FORMATS / "tiny.vllm.jsonl")])
    monkeypatch.undo()
    out.close()
    assert code == 141
    assert "Broken pipe" not in capsys.readouterr().err


def test_version_is_fast_and_imports_no_scipy() -> None:
    code = (
        "import sys; from servegen import cli; cli.main(['--version']); "
        "print(sorted(m for m in ('scipy', 'pandas', 'pyarrow', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    version, loaded = res.stdout.splitlines()
    assert version.startswith("servegen ") and loaded == "[]"


def test_optional_columns_are_attributes() -> None:
    import numpy as np

    import servegen as sg

    r = sg.Requests({"timestamp": np.array([0.0, 1.0]), "client": np.zeros(2, np.int32),
                     "input_tokens": np.array([5, 6]), "output_tokens": np.array([1, 2]),
                     "input_tokens_total": np.array([9, 6])}, clients=[0],
                    ragged={"image_tokens": sg.Ragged.from_lengths(np.array([1, 0]), np.array([4]))})  # fmt: skip
    assert r.input_tokens_total is r["input_tokens_total"]
    assert r.image_tokens.values.tolist() == [4]
    assert "input_tokens_total" in dir(r)
    with pytest.raises(AttributeError, match=r"no attribute or column 'reasoning_tokens'; columns: \["):
        _ = r.reasoning_tokens
    assert not hasattr(r, "_private")


def test_compare_has_no_empty_last_window() -> None:
    # A trace without a recorded duration ends a mean gap after its last request; here that
    # crosses the 1200 s boundary, which used to add a [1200, 1200.5] window with rate 0.
    import numpy as np
    import pandas as pd

    import servegen as sg

    df = pd.DataFrame({"timestamp": np.arange(0.5, 1200, 1.0), "input_tokens": 1, "output_tokens": 1})
    w = sg.compare(df, df, window=600).windows
    assert w["start"].tolist() == [0.0, 600.0] and (w["rate_a"] == 1.0).all()


def test_fit_shows_a_status_on_a_terminal(tmp_path: Path, capsys, monkeypatch) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    import servegen as sg

    monkeypatch.chdir(tmp_path)
    client = sg.Client(arrival=sg.Poisson(rate=2), input_tokens=sg.LogNormal(mu=5, sigma=1), output_tokens=9)
    n = len(client.sample(1200, rng=0).to_format("t.jsonl", "guidellm").read_text().splitlines())
    term = Tty()
    monkeypatch.setattr(sys, "stderr", term)
    code = cli.main(["fit", "t.jsonl", "-o", "w.json"])
    assert code == 0 and (tmp_path / "w.json").exists(), term.getvalue()
    assert f"fitting {n:,} requests in 10m windows" in term.getvalue()


def test_requests_with_column_attributes_still_pickle() -> None:
    import pickle

    import numpy as np

    import servegen as sg

    r = sg.Requests({"timestamp": np.zeros(1), "client": np.zeros(1, np.int32), "input_tokens": np.ones(1, np.int64),
                     "output_tokens": np.ones(1, np.int64)}, clients=[0])  # fmt: skip
    assert pickle.loads(pickle.dumps(r)).equals(r)
