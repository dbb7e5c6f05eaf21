"""Every writer/reader pair round-trips what it carries; files are checked when read; writes are atomic."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import servegen as sg
from servegen._atomic import atomic_write, temporary_name
from servegen.formats import WRITE_FORMATS, read_trace, write

CANONICAL = ("parquet", "csv", "jsonl")


def client(tokens: int) -> sg.Client:
    return sg.Client(arrival=sg.Poisson(rate=2), input_tokens=tokens, output_tokens=1)


# -- client keys -------------------------------------------------------------------------------
KEY_SETS = [
    pytest.param([1, 0], id="int-unsorted"),  # every built-in pool has int keys
    pytest.param([7, -3, 2**62], id="int-wide"),
    pytest.param(["chat", "api"], id="str"),
    pytest.param([1, "a"], id="mixed"),
    pytest.param(["NaN", "null"], id="null-tokens"),
    pytest.param(["", "x,y", 'say "hi"', "NA"], id="csv-special"),
    pytest.param(["007", "1.5", "1e3", 5], id="number-like-str"),
]


@pytest.mark.parametrize("keys", KEY_SETS)
@pytest.mark.parametrize("fmt", CANONICAL)
def test_client_keys_round_trip(tmp_path: Path, fmt: str, keys: list) -> None:
    r = sg.Workload({k: client(100 + i) for i, k in enumerate(keys)}).sample(30, rng=1)
    assert set(r.client_keys) == set(keys)
    df = read_trace(write(r, tmp_path / f"k.{fmt}", fmt), fmt, relative=False)
    got = df.client.tolist()
    assert got == r.client_keys.tolist()
    assert [type(k) for k in got] == [type(k) for k in r.client_keys.tolist()]
    if all(isinstance(k, int) for k in keys):
        assert df.client.dtype == np.int64


@pytest.mark.parametrize("keys", KEY_SETS)
def test_read_parquet_restores_the_exact_requests(tmp_path: Path, keys: list) -> None:
    # The repro: int keys came back as codes, so clients were silently swapped.
    r = sg.Workload({k: client(100 + i) for i, k in enumerate(keys)}).sample(50, rng=1)
    b = sg.read_parquet(r.to_parquet(tmp_path / "x.parquet"))
    assert b.equals(r) and b.clients == r.clients
    for i, k in enumerate(keys):
        assert set(b.input_tokens[b.client_keys == k]) <= {100 + i}
    assert b.to_pandas().client.tolist() == r.client_keys.tolist()


def test_parquet_written_by_chunks_reads_back_exactly(tmp_path: Path) -> None:
    wl = sg.Workload({1: client(111), 0: client(999), "z": client(5)})
    p = sg.formats.write_chunks(wl.iter_chunks(300, chunk=60, rng=3), tmp_path / "c.parquet", "parquet")
    assert pq.ParquetFile(p).num_row_groups > 1
    assert sg.read_parquet(p).equals(wl.sample(300, rng=3))


def test_key_sets_a_format_cannot_hold_fail_at_write_time(tmp_path: Path) -> None:
    r = sg.Workload({"7": client(1), "a": client(2)}).sample(20, rng=0)
    with pytest.raises(ValueError, match=r"csv: client key '7' is a str that reads back as the int 7"):
        write(r, tmp_path / "s.csv", "csv")
    assert not list(tmp_path.iterdir())  # nothing left behind
    both = sg.Workload({1: client(1), "1": client(2)}).sample(20, rng=0)
    with pytest.raises(ValueError, match=r"client keys 1 and '1' differ only in type"):
        both.to_parquet(tmp_path / "b.parquet")
    # JSON has types: both keys come back as they were
    df = read_trace(write(both, tmp_path / "b.jsonl", "jsonl"), "jsonl", relative=False)
    assert df.client.tolist() == both.client_keys.tolist()
    odd = sg.Requests(
        {"timestamp": np.zeros(1), "client": np.zeros(1, np.int32), "input_tokens": np.ones(1, np.int64),
         "output_tokens": np.ones(1, np.int64)}, clients=[1.5],
    )  # fmt: skip
    for fmt in CANONICAL:
        with pytest.raises(TypeError, match=r"client keys must be int or str to be written, got 1.5"):
            write(odd, tmp_path / f"o.{fmt}", fmt)


# -- empty streams -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_an_empty_stream_reads_back_empty(tmp_path: Path, fmt: str) -> None:
    wl = sg.Workload({1: client(10), "a": client(20)})
    empty = wl.sample(10, rng=0).take(np.array([], dtype=np.int64))
    df = read_trace(write(empty, tmp_path / f"e.{fmt}", fmt), fmt)
    assert len(df) == 0
    assert list(df.columns[:3]) == ["timestamp", "input_tokens", "output_tokens"]
    if fmt == "parquet":
        back = sg.read_parquet(tmp_path / f"e.{fmt}")
        assert back.equals(empty) and back.clients == (1, "a")


# -- checks when reading -------------------------------------------------------------------------
def test_csv_count_beyond_int64_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "big.csv"
    p.write_text("timestamp,input_tokens,output_tokens\n0,5,1\n1,99999999999999999999999,1\n")
    with pytest.raises(ValueError, match=r"big.csv'.*'input_tokens' must be a whole number >= 0 and below "
                                         r"2\*\*63.*got 1e\+23 at line 3"):  # fmt: skip
        read_trace(p, "csv")
    q = tmp_path / "big.jsonl"
    q.write_text('{"timestamp": 0, "input_length": 1, "output_length": 1}\n'
                 '{"timestamp": 1, "input_length": 99999999999999999999999, "output_length": 1}\n')  # fmt: skip
    with pytest.raises(ValueError, match=r"big.jsonl'.*'input_length' must be a whole number.*at line 2"):
        read_trace(q, "mooncake")


@pytest.mark.parametrize(
    "stamp", ["2924-05-10 00:00:00", "1024-05-10 00:00:00.061000+00:00"], ids=["arrow-timestamp", "iso-zone"]
)
def test_date_times_beyond_int64_nanoseconds_are_an_error(tmp_path: Path, stamp: str) -> None:
    p = tmp_path / "oob.csv"
    p.write_text(f"TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00,1,2\n{stamp},3,4\n")
    with pytest.raises(
        ValueError, match=r"oob.csv'.*'TIMESTAMP' must be a date-time in the years 1677-2262.*line 3"
    ):
        read_trace(p, "azure")


def _parquet(tmp_path: Path, **cols: object) -> Path:
    base = {
        "timestamp": [0.0, 1.0, 2.0],
        "client": [0, 0, 0],
        "input_tokens": [1, 2, 3],
        "output_tokens": [1, 1, 1],
    }
    p = tmp_path / "bad.parquet"
    pq.write_table(pa.table({**base, **cols}), p)
    return p


@pytest.mark.parametrize(
    ("cols", "message"),
    [
        ({"timestamp": [0.0, float("nan"), 2.0]}, r"'timestamp' must be finite and >= 0, got nan at row 1"),
        ({"timestamp": [-1.0, 0.0, 2.0]}, r"'timestamp' must be finite and >= 0, got -1.0 at row 0"),
        ({"timestamp": [0.0, 2.0, 1.0]}, r"'timestamp' must be sorted, got 1.0 after 2.0 at row 2"),
        ({"timestamp": pa.array([0.0, None, 1.0])}, r"'timestamp' is empty at row 1"),
        ({"timestamp": ["a", "b", "c"]}, r"'timestamp' must be numeric"),
        ({"input_tokens": [1, -2, 3]}, r"'input_tokens' must be a whole number >= 0.*got -2 at row 1"),
        (
            {"output_tokens": [1.0, 2.5, 3.0]},
            r"'output_tokens' must be a whole number >= 0.*got 2.5 at row 1",
        ),
        (
            {"output_tokens": [1.0, 1e30, 3.0]},
            r"'output_tokens' must be a whole number >= 0 \(below 2\*\*63\)",
        ),
        ({"reasoning_tokens": [1, 2, -1]}, r"'reasoning_tokens' must be a whole number >= 0.*at row 2"),
        ({"client": pa.array([0, None, 0])}, r"column 'client' is empty at row 1"),
    ],
)
def test_read_parquet_checks_like_read_trace(tmp_path: Path, cols: dict, message: str) -> None:
    p = _parquet(tmp_path, **cols)
    with pytest.raises(ValueError, match=r"bad.parquet': .*" + message):
        sg.read_parquet(p)


def test_read_parquet_rejects_keys_outside_the_metadata(tmp_path: Path) -> None:
    r = sg.Workload({1: client(1), 0: client(2)}).sample(10, rng=0)
    table = r.to_arrow()
    plain = table.set_column(1, "client", pa.array(np.full(len(r), 5)))
    pq.write_table(plain, tmp_path / "k.parquet")
    with pytest.raises(
        ValueError, match=r"k.parquet'.*client 5 is not one of the file's client keys \[1, 0\]"
    ):
        sg.read_parquet(tmp_path / "k.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match=r"junk.parquet'.*cannot read as Parquet"):
        sg.read_parquet(tmp_path / "junk.parquet")


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("dup.csv", "timestamp,input_tokens,output_tokens,input_tokens\n0,1,1,2\n", "csv"),
        ("dup.vidur.csv", "arrived_at,num_prefill_tokens,num_decode_tokens,arrived_at\n0,1,1,2\n", "vidur"),
        (
            "dup.jsonl",
            '{"timestamp": 0, "input_tokens": 1, "output_tokens": 1, "input_tokens": 5}\n',
            "jsonl",
        ),
    ],
)
def test_duplicate_columns_are_a_clear_error(tmp_path: Path, name: str, text: str, fmt: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(ValueError, match=rf"{name}'.*(input_tokens|arrived_at).*more than once"):
        read_trace(p, fmt)


# -- merge -------------------------------------------------------------------------------------
def test_merge_of_a_part_without_session_rows(tmp_path: Path) -> None:
    chat = sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=10,
                     session=sg.Session(turns=3, think_time=2, new_tokens=5))  # fmt: skip
    wl = sg.Workload({"chat": chat, "api": client(7)})
    api_only = wl.sample(60, rng=0, clients=["api"])
    assert "session" in api_only and (api_only["session"] < 0).all()
    merged = sg.merge([api_only])  # raised IndexError in _parents
    assert merged.equals(api_only)
    parts = [sg.read_parquet(wl.sample(60, rng=0, clients=[k]).to_parquet(tmp_path / f"{k}.parquet"))
             for k in ("api", "chat")]  # fmt: skip
    assert sg.merge(parts).equals(wl.sample(60, rng=0))


# -- atomic writes ------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    live = tmp_path / temporary_name(target)  # this process: a live writer
    dead_name = temporary_name(target).split(".")
    dead_name[-3] = str(_dead_pid())  # .out.csv.<host>.<pid>.<random>.tmp
    dead = tmp_path / ".".join(dead_name)
    other_target = tmp_path / temporary_name(tmp_path / "other.csv").replace(
        str(os.getpid()), str(_dead_pid())
    )
    other_host = tmp_path / f".out.csv.00000000.{_dead_pid()}.0123456789ab.tmp"
    legacy = tmp_path / ".out.csv.k2j3h4_x.tmp"  # an older servegen's name: owner unknown
    for f in (live, dead, other_target, other_host, legacy):
        f.write_text("partial")
    atomic_write(target, lambda tmp: Path(tmp).write_text("done"))
    assert not dead.exists()
    assert live.exists() and other_target.exists() and other_host.exists() and legacy.exists()
    assert target.read_text() == "done"


def test_temporary_mode_follows_the_umask_without_changing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.umask
    old = real(0o027)
    try:

        def touched(*args: object) -> int:  # setting the umask is process-wide: a race with threads
            raise AssertionError("atomic_write changed the umask")

        monkeypatch.setattr(os, "umask", touched)
        p = atomic_write(tmp_path / "m.txt", lambda t: Path(t).write_text("x"))
    finally:
        real(old)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640


def test_write_errors_name_the_target(tmp_path: Path) -> None:
    target = tmp_path / "full.csv"

    def fail(tmp: str) -> None:
        raise OSError(28, "No space left on device", tmp)

    with pytest.raises(OSError, match=r"No space left on device") as info:
        atomic_write(target, fail)
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_write_beyond_the_file_size_limit_names_the_target(tmp_path: Path) -> None:
    # A real write error (EFBIG from RLIMIT_FSIZE): the message names the output, not the temporary.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "from servegen.cli import main\n"
        f"sys.exit(main(['generate', '--pool', 'language/m-large', '--duration', '60', '--rate', '50',"
        f" '-o', {str(tmp_path / 'big.jsonl')!r}, '--format', 'mooncake', '-q']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "big.jsonl'" in out.stderr and ".tmp" not in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_during_generate_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "long.parquet"
    proc = subprocess.Popen(
        [sys.executable, "-m", "servegen", "generate", "--pool", "language/m-large", "--duration", "2h",
         "--chunk", "60", "-o", str(out), "-q"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".long.parquet.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted; nothing was written" in err
    assert list(tmp_path.iterdir()) == []


# -- property: every format round-trips what it carries; merge of Parquet parts is the stream ----
_dist = st.one_of(st.integers(0, 3000), st.builds(sg.Exponential, mean=st.floats(1.0, 500.0)))
_extras = st.fixed_dictionaries(
    {},
    optional={
        "session": st.builds(sg.Session, turns=st.integers(1, 3), think_time=st.floats(0.5, 5.0),
                             new_tokens=st.integers(1, 50)),
        "prefix": st.builds(sg.SharedPrefix, groups=st.just(3), popularity=st.just(sg.Zipf(s=1.0, n=3)),
                            tokens=st.integers(1, 600)),
        "multimodal": st.builds(sg.Multimodal, image=st.builds(sg.Modality, count=st.integers(0, 2),
                                                               tokens=st.integers(1, 300))),
        "reasoning": st.builds(sg.Reasoning, ratio=st.just(sg.Uniform(low=0.1, high=0.9))),
    },
)  # fmt: skip
_clients = st.builds(
    lambda rate, inp, out, extra: sg.Client(arrival=sg.Poisson(rate=rate), input_tokens=inp, output_tokens=out,
                                            **extra),
    st.floats(0.2, 3.0), _dist, _dist, _extras,
)  # fmt: skip
_keys = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=6))


def _canonical(x: object) -> list:
    return [v.tolist() if isinstance(v, np.ndarray) else v for v in x]  # type: ignore[attr-defined]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keyed=st.dictionaries(_keys, _clients, min_size=1, max_size=3),
    block=st.sampled_from([None, 16]),
    seed=st.integers(0, 2**32),
)
@example(  # an empty stream (no arrival in 20 s)
    keyed={1: sg.Client(arrival=sg.Poisson(rate=0.25), input_tokens=1, output_tokens=1)},
    block=None,
    seed=999999999,
)
@pytest.mark.slow
def test_every_format_round_trips_what_it_carries(
    tmp_path: Path, keyed: dict, block: int | None, seed: int
) -> None:
    texts = [str(k) for k in keyed]
    wl = sg.Workload(keyed, block_size=block)
    r = wl.sample(20.0, rng=seed)
    want = r.to_pandas()
    for fmt in CANONICAL:
        try:
            p = write(r, tmp_path / f"p.{fmt}", fmt)
        except ValueError as e:  # only key sets the format cannot hold, refused up front
            assert ("csv" == fmt and "reads back as the int" in str(e)) or (
                fmt != "jsonl" and "differ only in type" in str(e) and len(set(texts)) < len(texts)
            ), e
            continue
        df = read_trace(p, fmt, relative=False)
        assert len(df) == len(r)
        if fmt == "jsonl" and len(r) == 0:  # an empty JSON Lines file cannot name its columns
            assert set(df.columns) <= set(r.columns)
            continue
        for name in r.columns:
            got, exp = df[name].tolist(), want[name].tolist()
            if name in r and isinstance(r[name], sg.Ragged):
                got, exp = _canonical(got), _canonical(exp)
            assert got == exp, (fmt, name)
            if name == "client":
                assert [type(k) for k in got] == [type(k) for k in exp]
        if fmt == "parquet":
            assert sg.read_parquet(p).equals(r)
    # Parquet parts of client groups, merged, are the single-call stream.
    keys = list(keyed)
    groups = [keys[i::2] for i in range(2)]
    try:
        parts = [sg.read_parquet(wl.sample(20.0, rng=seed, clients=g).to_parquet(tmp_path / f"g{i}.parquet"))
                 for i, g in enumerate(groups) if g]  # fmt: skip
    except ValueError as e:
        assert "differ only in type" in str(e)
        return
    assert sg.merge(parts).equals(r)
