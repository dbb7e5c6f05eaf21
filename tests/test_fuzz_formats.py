"""Damaged files: truncations and byte flips of every format's golden file give a clear ValueError.

A reader either reads the damaged file or raises ``ValueError`` naming the file (and the
line of a text format, when one line is at fault), never another exception type, and
each read is quick. The mutations come from a fixed seed, so a failure reproduces.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import servegen as sg
from servegen.formats import read_trace, write

DATA = Path(__file__).resolve().parent / "data" / "formats"

GOLDEN = {
    "aiperf_sessions.jsonl": "aiperf", "azure_2023.csv": "azure", "azure_2024.csv": "azure",
    "azure_2025.csv": "azure", "bailian.jsonl": "bailian", "burstgpt_v1.csv": "burstgpt",
    "burstgpt_v11.csv": "burstgpt", "rich.aiperf.jsonl": "aiperf", "rich.azure.csv": "azure",
    "rich.burstgpt.csv": "burstgpt", "rich.csv": "csv", "rich.jsonl": "jsonl",
    "rich.mooncake.jsonl": "mooncake", "rich.vidur.csv": "vidur", "tiny.aiperf.jsonl": "aiperf",
    "tiny.azure.csv": "azure", "tiny.burstgpt.csv": "burstgpt", "tiny.csv": "csv",
    "tiny.guidellm.jsonl": "guidellm", "tiny.jsonl": "jsonl", "tiny.llmservingsim.jsonl": "llmservingsim",
    "tiny.mooncake.jsonl": "mooncake", "tiny.vidur.csv": "vidur", "tiny.vllm.jsonl": "vllm",
    "tiny.vidur_pip.csv": "vidur_pip", "sessions.aiperf.jsonl": "aiperf",
}  # fmt: skip
MUTATIONS = 30
# Bytes that make the most trouble in CSV / JSON: separators, quotes, brackets, digits, signs, high bytes.
NASTY = np.frombuffer(b',"\n\r{}[]:-.0123456789eE \\\x00\xff\xc3nNaul', dtype=np.uint8)


def test_every_golden_file_is_fuzzed() -> None:
    names = {p.name for p in DATA.iterdir()} - {"aiperf_sessions.out.jsonl"}
    assert names == set(GOLDEN)


def mutations(data: bytes, rng: np.random.Generator) -> list[bytes]:
    """Truncations (at random points, and just before / after a newline) and 1-4 byte flips."""
    out = []
    raw = np.frombuffer(data, dtype=np.uint8)
    for _ in range(MUTATIONS // 3):
        out.append(data[: int(rng.integers(0, len(data)))])
    for _ in range(MUTATIONS - len(out)):
        buf = raw.copy()
        at = rng.integers(0, len(buf), size=int(rng.integers(1, 5)))
        pool = NASTY if rng.random() < 0.7 else np.arange(256, dtype=np.uint8)
        buf[at] = rng.choice(pool, size=len(at))
        out.append(buf.tobytes())
    return out


def check(read, path: Path, text: bool) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        read(path)
    except ValueError as e:
        msg = str(e)
        assert path.name in msg, f"message does not name the file: {msg}"
        if text:  # a text format names the line, not an Arrow block's row
            assert not re.search(r"\bin row \d+", msg), msg
    except Exception as e:
        pytest.fail(f"{type(e).__name__} (not ValueError) reading {path.name}: {e}\n{path.read_bytes()!r}")
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{path.name}: {elapsed:.2f} s"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_damaged_golden_files(tmp_path: Path, name: str) -> None:
    fmt = GOLDEN[name]
    rng = np.random.default_rng(sorted(GOLDEN).index(name))
    target = tmp_path / name
    for data in mutations((DATA / name).read_bytes(), rng):
        target.write_bytes(data)
        check(lambda p: read_trace(p, fmt), target, text=True)


def _rich_parquet(path: Path) -> Path:
    c = sg.Client(
        arrival=sg.Poisson(rate=3), input_tokens=sg.Exponential(mean=50), output_tokens=9,
        session=sg.Session(turns=2, think_time=1, new_tokens=5),
    )  # fmt: skip
    r = sg.Workload({1: c, "a": c}, block_size=16).sample(10, rng=0)
    return write(r, path, "parquet")


def test_damaged_parquet(tmp_path: Path) -> None:
    source = _rich_parquet(tmp_path / "source.parquet").read_bytes()
    rng = np.random.default_rng(99)
    target = tmp_path / "damaged.parquet"
    for data in mutations(source, rng):
        target.write_bytes(data)
        check(lambda p: read_trace(p, "parquet"), target, text=False)
        check(sg.read_parquet, target, text=False)


def test_readers_of_damaged_files_still_read_good_rows() -> None:
    # The fuzzing above must not pass by refusing everything: the golden files read.
    for name, fmt in GOLDEN.items():
        assert isinstance(read_trace(DATA / name, fmt), pd.DataFrame)
