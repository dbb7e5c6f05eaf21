"""servegen.formats: golden files, round trips through every reader, streaming, errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import servegen as sg
from servegen.formats import READ_FORMATS, WRITE_FORMATS, ContextWarning, read_trace, write, write_chunks
from servegen.formats._io import HashIds
from servegen.formats.bailian import session_roots

DATA = Path(__file__).resolve().parent / "data" / "formats"

# Time resolution each format keeps (0: the float64 reads back exactly).
RESOLUTION = {
    "parquet": 0, "csv": 0, "jsonl": 0, "vllm": 0, "guidellm": 0, "vidur": 0, "vidur_pip": 0, "burstgpt": 0,
    "mooncake": 5e-4, "aiperf": 5e-4, "azure": 5e-7, "llmservingsim": 5e-10,
}  # fmt: skip


def tiny(**extra: np.ndarray) -> sg.Requests:
    """Three requests: two clients, a 0-token answer, a sub-millisecond arrival."""
    cols = {
        "timestamp": np.array([0.0, 0.0016, 1.25]),
        "client": np.array([0, 1, 0], np.int32),
        "input_tokens": np.array([40, 16, 530]),
        "output_tokens": np.array([20, 0, 7]),
    }
    return sg.Requests({**cols, **extra}, clients=["chat", "api"])


def rich() -> sg.Requests:
    """``tiny`` plus multimodal, reasoning, session columns and 256-token hash ids."""
    req = tiny(
        input_tokens_total=np.array([616, 16, 530]),
        image_count=np.array([1, 0, 0]),
        reasoning_tokens=np.array([12, 0, 0]),
        session=np.array([5, -1, 5]),
        turn=np.array([1, 0, 2]),
        parent=np.array([-1, -1, 0]),
    )
    hashes = sg.Ragged.from_lengths(np.array([3, 1, 3]), np.array([10, 11, 12, 20, 10, 11, 30]))
    return sg.Requests(
        {n: req[n] for n in req.columns}, clients=req.clients, ragged={"hash_ids": hashes},
        meta={"block_size": 256},
    )  # fmt: skip


@pytest.fixture(scope="module")
def workload_requests() -> sg.Requests:
    wl = sg.Workload([sg.Client(arrival=sg.Poisson(rate=5), input_tokens=sg.LogNormal(mu=5, sigma=1),
                                output_tokens=sg.Exponential(mean=100))])  # fmt: skip
    return wl.sample(60, rng=0)


# -- golden files: exact field names, types, units ------------------------------------------
GOLDEN = [
    ("mooncake", "tiny.mooncake.jsonl"), ("vllm", "tiny.vllm.jsonl"),
    ("guidellm", "tiny.guidellm.jsonl"), ("aiperf", "tiny.aiperf.jsonl"),
    ("vidur", "tiny.vidur.csv"), ("vidur_pip", "tiny.vidur_pip.csv"), ("azure", "tiny.azure.csv"),
    ("burstgpt", "tiny.burstgpt.csv"), ("llmservingsim", "tiny.llmservingsim.jsonl"),
    ("csv", "tiny.csv"), ("jsonl", "tiny.jsonl"),
]  # fmt: skip
RICH_GOLDEN = [
    ("mooncake", "rich.mooncake.jsonl"), ("aiperf", "rich.aiperf.jsonl"),
    ("vidur", "rich.vidur.csv"), ("azure", "rich.azure.csv"),
    ("burstgpt", "rich.burstgpt.csv"), ("csv", "rich.csv"), ("jsonl", "rich.jsonl"),
]  # fmt: skip


#: Formats whose consumers need counts >= 1: tiny()'s 0-token answer is written as 1 (clamp=True).
CONSUMERS = ("mooncake", "vllm", "guidellm", "aiperf", "vidur", "vidur_pip")


def write_clamped(req: sg.Requests, path: Path, fmt: str, **options: Any) -> Path:
    """``write``, with the 0-token answer of ``tiny()`` clamped (and reported) for consumers."""
    if fmt not in CONSUMERS:
        return write(req, path, fmt, **options)
    with pytest.warns(ContextWarning, match=rf"{fmt}: 1 of \d requests had a count below 1"):
        return write(req, path, fmt, clamp=True, **options)


@pytest.mark.parametrize(("fmt", "name"), GOLDEN)
def test_golden_plain(tmp_path: Path, fmt: str, name: str) -> None:
    out = write_clamped(tiny(), tmp_path / name, fmt)
    assert out.read_text() == (DATA / name).read_text()


@pytest.mark.parametrize(("fmt", "name"), RICH_GOLDEN)
def test_golden_multimodal_sessions_hashes(tmp_path: Path, fmt: str, name: str) -> None:
    # input lengths use input_tokens_total; 256-token hash ids re-blocked to 512 keep the
    # id of the last 256-block inside each 512-block; sessions become aiperf delays.
    out = write_clamped(rich(), tmp_path / name, fmt)
    assert out.read_text() == (DATA / name).read_text()


def test_every_write_format_has_a_golden_file() -> None:
    assert {f for f, _ in GOLDEN} | {"parquet"} == set(WRITE_FORMATS)
    assert set(WRITE_FORMATS) <= set(READ_FORMATS)


# -- round trips through the matching reader -------------------------------------------------
@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_round_trip(tmp_path: Path, workload_requests: sg.Requests, fmt: str) -> None:
    r = workload_requests
    df = read_trace(write(r, tmp_path / f"out.{fmt}", fmt), fmt, relative=False)
    assert len(df) == len(r)
    tol = RESOLUTION[fmt]
    if fmt == "azure":  # date-times: compare times from the first request
        got, want = df.timestamp.to_numpy(), r.timestamp - r.timestamp[0]
        got = got - got[0]
        tol = 2 * tol
    else:
        got, want = df.timestamp.to_numpy(), r.timestamp
    if tol == 0:
        np.testing.assert_array_equal(got, want)
    else:
        assert np.abs(got - want).max() <= tol + 1e-9
    assert (np.diff(got) >= 0).all()
    assert df.input_tokens.dtype == np.int64 and df.output_tokens.dtype == np.int64
    np.testing.assert_array_equal(df.input_tokens, r.input_tokens)
    np.testing.assert_array_equal(
        df.output_tokens, np.maximum(r.output_tokens, 1) if fmt.startswith("vidur") else r.output_tokens
    )
    if fmt in ("parquet", "csv", "jsonl"):
        np.testing.assert_array_equal(df.client.astype(int), r.client_keys.astype(int))


def test_round_trip_keeps_every_canonical_column(tmp_path: Path) -> None:
    r = rich()
    for fmt in ("parquet", "csv", "jsonl"):
        df = read_trace(write(r, tmp_path / f"rich.{fmt}", fmt), fmt, relative=False)
        want = r.to_pandas()
        assert list(df.columns[:3]) == ["timestamp", "input_tokens", "output_tokens"]
        assert set(df.columns) == set(want.columns), fmt
        for name in ("input_tokens_total", "image_count", "reasoning_tokens", "session", "turn", "parent"):
            np.testing.assert_array_equal(df[name], want[name], err_msg=f"{fmt} {name}")
        assert [h.tolist() for h in df.hash_ids] == [[10, 11, 12], [20], [10, 11, 30]]
        assert df.client.astype(str).tolist() == ["chat", "api", "chat"]
        if fmt == "parquet":  # the block size travels in the schema metadata
            assert df.attrs["block_size"] == 256


def test_parquet_is_exact_servegen_requests(tmp_path: Path, workload_requests: sg.Requests) -> None:
    p = write(workload_requests, tmp_path / "r.parquet", "parquet")
    assert sg.read_parquet(p).equals(workload_requests)


def test_dataframe_converts_between_formats(tmp_path: Path) -> None:
    # A BurstGPT trace read and written again is the same file: Model / Log Type columns
    # travel as model / log_type, failures (0 response tokens) are kept.
    df = read_trace(DATA / "burstgpt_v1.csv", "burstgpt", relative=False)
    out = write(df, tmp_path / "b.csv", "burstgpt")
    assert out.read_text() == (DATA / "burstgpt_v1.csv").read_text()


def test_aiperf_text_sessions_and_partial_hash_ids_convert(tmp_path: Path) -> None:
    # Rows without hash_ids get fresh ids above the file's own (3..6 after 1, 2); later
    # turns become delays from the previous turn of the same session.
    df = read_trace(DATA / "aiperf_sessions.jsonl", "aiperf", relative=False)
    out = write(df, tmp_path / "s.jsonl", "aiperf")
    assert out.read_text() == (DATA / "aiperf_sessions.out.jsonl").read_text()


def test_missing_values_in_canonical_files(tmp_path: Path) -> None:
    r = tiny(elapsed=np.array([np.nan, 2.5, 1.0]), tag=np.array([None, "x,y", 'say "hi"'], dtype=object))
    assert write(r, tmp_path / "m.csv", "csv").read_text().splitlines()[1:3] == [
        "0,chat,40,20,,",
        '0.0016,api,16,0,2.5,"x,y"',
    ]
    line = write(r, tmp_path / "m.jsonl", "jsonl").read_text().splitlines()[0]
    assert line.endswith('"elapsed": null, "tag": null}')
    for fmt in ("csv", "jsonl", "parquet"):
        df = read_trace(write(r, tmp_path / f"m.{fmt}", fmt), fmt)
        assert np.isnan(df.elapsed.iloc[0]) and df.elapsed.iloc[1] == 2.5
        assert pd.isna(df.tag.iloc[0]) and df.tag.iloc[1:].tolist() == ["x,y", 'say "hi"']


def test_zero_requests_write_a_header_only(tmp_path: Path) -> None:
    empty = tiny().take(np.array([], dtype=np.int64))
    assert write(empty, tmp_path / "z.csv", "burstgpt").read_text().count("\n") == 1
    assert write(empty, tmp_path / "z.jsonl", "mooncake").read_text() == ""


def test_compressed_inputs(tmp_path: Path) -> None:
    for name, fmt in (("azure_2023.csv", "azure"), ("tiny.mooncake.jsonl", "mooncake")):
        gz = tmp_path / (name + ".gz")
        gz.write_bytes(gzip.compress((DATA / name).read_bytes()))
        pd.testing.assert_frame_equal(read_trace(gz, fmt), read_trace(DATA / name, fmt))


# -- hash ids ------------------------------------------------------------------------------
def test_fresh_hash_ids_are_unique_deterministic_and_sized(
    tmp_path: Path, workload_requests: sg.Requests
) -> None:
    r = workload_requests
    for fmt, block in (("mooncake", 512), ("vllm", 16), ("aiperf", 512)):
        df = read_trace(write(r, tmp_path / f"h.{fmt}", fmt), fmt)
        lengths = df.hash_ids.map(len).to_numpy()
        np.testing.assert_array_equal(lengths, -(-r.input_tokens // block))
        flat = np.concatenate(df.hash_ids.to_numpy())
        np.testing.assert_array_equal(flat, np.arange(lengths.sum()))  # a running counter: no sharing
        assert df.attrs["block_size"] == block


def test_hash_start_and_block_size_options(tmp_path: Path) -> None:
    out = write_clamped(tiny(), tmp_path / "m.jsonl", "mooncake", block_size=16, hash_start=100)
    df = read_trace(out, "mooncake", block_size=16)
    assert [h.tolist() for h in df.hash_ids] == [[100, 101, 102], [103], list(range(104, 138))]


def test_reblocking_keeps_prefix_sharing() -> None:
    rg = sg.Ragged.from_lengths(np.array([3, 1, 3]), np.array([10, 11, 12, 20, 10, 11, 30]))
    req = sg.Requests({**{n: tiny()[n] for n in tiny().columns}, "input_tokens_total": np.array([616, 16, 530])},
                      clients=["chat", "api"], ragged={"hash_ids": rg}, meta={"block_size": 256})  # fmt: skip
    off, vals = HashIds(512)(req)  # coarser: the last 256-block of each 512-block
    assert np.split(vals, off[1:-1])[0].tolist() == [11, 12]
    assert [v.tolist() for v in np.split(vals, off[1:-1])] == [[11, 12], [20], [11, 30]]
    off, vals = HashIds(128)(req)  # finer: id h -> 2h, 2h+1; only as many as the input needs
    rows = [v.tolist() for v in np.split(vals, off[1:-1])]
    assert rows == [[20, 21, 22, 23, 24], [40], [20, 21, 22, 23, 60]]
    with pytest.raises(ValueError, match="one must divide the other"):
        HashIds(384)(req)


# -- streaming ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_chunks_write_the_same_file(tmp_path: Path, fmt: str) -> None:
    wl = sg.Workload({"a": sg.Client(arrival=sg.Gamma(rate=3, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1),
                                     output_tokens=sg.Exponential(mean=50))})  # fmt: skip
    opts = {"max_tokens": None} if fmt.startswith("vidur") else {}  # every length, no warning
    one = write(wl.sample(900, rng=3), tmp_path / f"one.{fmt}", fmt, **opts)
    many = write_chunks(wl.iter_chunks(900, chunk=100, rng=3), tmp_path / f"many.{fmt}", fmt, **opts)
    if fmt == "parquet":  # one row group per chunk: compare contents
        assert sg.read_parquet(many).equals(sg.read_parquet(one))
    else:
        assert many.read_bytes() == one.read_bytes()


def test_aiperf_sessions_span_chunks(tmp_path: Path) -> None:
    r = rich()
    parts = [r.take(np.array([0])), r.take(np.array([1])), r.take(np.array([2]))]
    with pytest.warns(ContextWarning, match="aiperf: 1 of 3 requests had a count below 1"):
        out = write_chunks(parts, tmp_path / "s.jsonl", "aiperf", clamp=True)
    assert out.read_text() == (DATA / "rich.aiperf.jsonl").read_text()


@pytest.mark.slow
def test_large_write_spans_encoding_batches(tmp_path: Path) -> None:
    n = 300_000  # more rows than one encoding batch (2**18)
    t = np.arange(n) * 0.01
    req = sg.Requests({"timestamp": t, "client": np.zeros(n, np.int32), "input_tokens": np.full(n, 1000),
                       "output_tokens": np.full(n, 3)}, clients=[0])  # fmt: skip
    df = read_trace(write(req, tmp_path / "big.jsonl", "mooncake"), "mooncake")
    assert len(df) == n and df.hash_ids.iloc[-1].tolist() == [2 * n - 2, 2 * n - 1]
    np.testing.assert_allclose(df.timestamp, t, atol=5e-4)


# -- atomicity ------------------------------------------------------------------------------
def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "v.csv"
    target.write_text("old\n")

    def chunks():
        yield tiny()
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError, match="generator broke"):
        write_chunks(chunks(), target, "vidur")
    with pytest.raises(
        ValueError, match=r"vidur: `num_decode_tokens` must be >= 1 .*got 0 at request 1; 1 of 3"
    ):
        write(tiny(), target, "vidur", clamp=False)
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["v.csv"]


# -- readers of other tools' traces ----------------------------------------------------------
def test_read_mooncake_sample() -> None:
    df = read_trace(DATA / "tiny.mooncake.jsonl", "mooncake")
    assert df.timestamp.tolist() == [0.0, 0.002, 1.25]
    assert df.attrs == {"format": "mooncake", "path": str(DATA / "tiny.mooncake.jsonl"), "time_unit": "ms",
                        "time_origin": 0.0, "block_size": 512}  # fmt: skip


def test_read_azure_2023_sorts_and_keeps_100ns_ticks() -> None:
    df = read_trace(DATA / "azure_2023.csv", "azure")
    assert df.input_tokens.tolist() == [4808, 110, 3180]  # stable-sorted by time
    np.testing.assert_allclose(df.timestamp, [0.0, 1e-7, 4.04941], rtol=0, atol=1e-12)
    assert df.attrs["time_origin"] == "2023-11-16T18:15:46.680590+00:00"


def test_read_azure_2024_offsets_and_2025_images() -> None:
    df = read_trace(DATA / "azure_2024.csv", "azure")
    np.testing.assert_allclose(df.timestamp, [0.0, 0.05107], atol=1e-12)
    mm = read_trace(DATA / "azure_2025.csv", "azure")
    assert list(mm.columns) == ["timestamp", "input_tokens", "output_tokens", "image_count"]
    assert mm.image_count.tolist() == [2, 0] and mm.timestamp.tolist() == [0.0, 1.75]
    epoch = read_trace(DATA / "azure_2025.csv", "azure", relative=False)
    assert epoch.timestamp.iloc[0] == pd.Timestamp("2024-10-15 00:00:01.25", tz="UTC").timestamp()


def test_read_burstgpt_keeps_failures_and_labels() -> None:
    df = read_trace(DATA / "burstgpt_v1.csv", "burstgpt")
    assert df.timestamp.tolist() == [0.0, 40.0, 113.0]
    assert df.failed.tolist() == [False, True, False] and df.attrs["failed"] == 1
    assert df.model.tolist() == ["ChatGPT", "ChatGPT", "GPT-4"]
    assert df.log_type.tolist() == ["Conversation log", "Conversation log", "API log"]
    v11 = read_trace(DATA / "burstgpt_v11.csv", "burstgpt")
    assert v11.session.tolist() == [1021, 1021] and v11.elapsed_time.tolist() == [2.31, 1.02]


def test_read_bailian_links_chains_into_sessions() -> None:
    df = read_trace(DATA / "bailian.jsonl", "bailian")
    assert df.chat_id.tolist() == [3, 9, 7, 12, 15]
    assert df.session.tolist() == [3, 9, 3, 3, 4]  # 15's parent 4 is not in the file
    assert df.turn.tolist() == [1, 1, 2, 3, 2] and df.parent.tolist() == [-1, -1, 3, 7, 4]
    assert df.type.tolist() == ["text", "image", "text", "text", "search"]
    np.testing.assert_allclose(df.timestamp, [0.0, 0.886, 4.386, 9.136, 9.886], atol=1e-12)
    assert df.attrs["block_size"] == 16 and df.hash_ids.iloc[2].tolist() == [100, 101, 102, 104]


def test_session_roots_on_long_shuffled_chains() -> None:
    rng = np.random.default_rng(0)
    n_chains, depth = 50, 300
    ids = rng.permutation(n_chains * depth) + 1000
    chains = ids.reshape(n_chains, depth)
    parent = np.full_like(chains, -1)
    parent[:, 1:] = chains[:, :-1]
    order = rng.permutation(ids.size)
    roots = session_roots(chains.ravel()[order], parent.ravel()[order])
    np.testing.assert_array_equal(roots, np.repeat(chains[:, 0], depth)[order])
    with pytest.raises(ValueError, match="cycle"):
        session_roots(np.array([1, 2]), np.array([2, 1]))
    with pytest.raises(ValueError, match="chat_id 1 appears more than once"):
        session_roots(np.array([1, 1]), np.array([-1, -1]))


def test_read_aiperf_resolves_delays() -> None:
    df = read_trace(DATA / "aiperf_sessions.jsonl", "aiperf")
    assert df.timestamp.tolist() == [0.0, 0.5, 0.75, 1.0, 2.0]
    assert df.session.tolist() == ["a", "b", "b", None, "a"]
    # a later turn's input_length is its new message: the context adds the history
    assert df.input_tokens.tolist() == [300, 100, 100 + 10 + 120, 50, 300 + 40 + 150]
    assert [h.tolist() for h in df.hash_ids] == [[1, 2], [], [], [], []]


def test_generic_csv_with_mapping_and_units(tmp_path: Path) -> None:
    p = tmp_path / "log.csv"
    p.write_text("when,prompt,gen,model\n2024-03-01T10:00:01Z,10,5,x\n2024-03-01T10:00:00Z,20,7,y\n")
    df = read_trace(p, "csv", columns={"timestamp": "when", "input_tokens": "prompt", "output_tokens": "gen"})
    assert df.values.tolist() == [[0.0, 20, 7, "y"], [1.0, 10, 5, "x"]]
    assert df.attrs["time_origin"] == "2024-03-01T10:00:00+00:00"
    q = tmp_path / "ns.jsonl"
    q.write_text('{"t": 1700000000000000000, "i": 1, "o": 2}\n{"t": 1700000000000000001, "i": 3, "o": 4}\n')
    df = read_trace(q, "jsonl", columns={"timestamp": "t", "input_tokens": "i", "output_tokens": "o"},
                    time_unit="ns")  # fmt: skip
    assert df.timestamp.tolist() == [0.0, 1e-9]  # integer-domain subtraction keeps 1 ns


def test_servegen_format_picks_by_extension(tmp_path: Path) -> None:
    for ext in ("parquet", "csv", "jsonl"):
        p = write(tiny(), tmp_path / f"t.{ext}", ext)
        df = read_trace(p, "servegen", relative=False)
        assert df.timestamp.tolist() == [0.0, 0.0016, 1.25] and df.attrs["format"] == "servegen"
    odd = tmp_path / "t.txt"
    odd.write_text("timestamp,input_tokens,output_tokens\n0,1,1\n")
    with pytest.raises(ValueError, match=r"cannot tell the encoding of .*t\.txt' from its extension"):
        read_trace(odd, "servegen")


# -- errors ---------------------------------------------------------------------------------
def test_unknown_formats_and_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown format 'nope'; valid formats are \['parquet', 'csv'"):
        write(tiny(), tmp_path / "x", "nope")
    with pytest.raises(ValueError, match=r"read_trace: unknown format 'nope'.*'bailian'"):
        read_trace(DATA / "tiny.csv", "nope")
    with pytest.raises(TypeError, match=r"format 'mooncake' takes no option\(s\) \['blocksize'\]"):
        write(tiny(), tmp_path / "x", "mooncake", blocksize=16)
    with pytest.raises(TypeError, match="takes no option"):
        read_trace(DATA / "tiny.mooncake.jsonl", "mooncake", time_unit="s")
    with pytest.raises(ValueError, match="`columns` is for the generic formats"):
        read_trace(DATA / "tiny.mooncake.jsonl", "mooncake", columns={"timestamp": "t"})
    with pytest.raises(ValueError, match="`block_size` must be a whole number >= 1, got 0"):
        write(tiny(), tmp_path / "x", "vllm", block_size=0)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("block_size", 16.0, ">= 1"),
        ("block_size", True, ">= 1"),
        ("block_size", -3, ">= 1"),
        ("hash_start", 1.5, ">= 0"),
        ("hash_start", False, ">= 0"),
        ("hash_start", -1, ">= 0"),
    ],
)
def test_hash_id_options_are_whole_numbers(option, value, rule, tmp_path: Path) -> None:
    """The project's template (servegen._validate): a float or a bool is not a count."""
    with pytest.raises(ValueError, match=rf"^`{option}` must be a whole number {rule}, got {value!r}$"):
        write(tiny(), tmp_path / "x", "mooncake", **{option: value})
    assert not (tmp_path / "x").exists()


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"timestamp": 1, "input_length": 5}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl' is missing column\(s\) \['output_length'\]"):
        read_trace(p, "mooncake")
    with pytest.raises(ValueError, match=r"is missing column\(s\) \['ts'\]"):
        read_trace(DATA / "tiny.csv", "csv", columns={"timestamp": "ts"})


def test_bad_rows_are_named_by_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"timestamp": 1, "input_length": 5, "output_length": 1}\n{"timestamp": 2, oops}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl'.*not valid JSON Lines \(line 2\)"):
        read_trace(p, "mooncake")
    q = tmp_path / "neg.csv"
    q.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,10,2\n0.7,-3,2\n")
    with pytest.raises(ValueError, match=r"column 'num_prefill_tokens' must be >= 0, got -3 at line 3"):
        read_trace(q, "vidur")
    q.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,10,2\n0.7,,2\n")
    with pytest.raises(ValueError, match=r"'num_prefill_tokens' must be a whole number .* at line 3"):
        read_trace(q, "vidur")
    with pytest.raises(FileNotFoundError):
        read_trace(tmp_path / "absent.jsonl", "mooncake")


def test_write_rejects_unsorted_mismatched_or_empty_input(tmp_path: Path) -> None:
    r = tiny()
    unsorted = r.take(np.array([1, 0, 2]))
    with pytest.raises(ValueError, match="sorted by timestamp; chunk 0 row 1"):
        write(unsorted, tmp_path / "u.jsonl", "mooncake")
    with pytest.raises(ValueError, match="sorted by timestamp; chunk 1 row 0"):
        write_chunks([r, r], tmp_path / "u.jsonl", "mooncake")
    with pytest.raises(ValueError, match="chunk 1 has columns"):
        write_chunks([r.take(np.array([0])), rich().take(np.array([2]))], tmp_path / "u.jsonl", "jsonl")
    with pytest.raises(ValueError, match="`chunks` is empty"):
        write_chunks([], tmp_path / "u.jsonl", "mooncake")
    with pytest.raises(TypeError, match="must be servegen Requests or a pandas DataFrame"):
        write([1, 2], tmp_path / "u.jsonl", "mooncake")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output directory does not exist"):
        write(r, tmp_path / "no" / "u.jsonl", "mooncake")
    assert os.listdir(tmp_path) == []


# -- the shared data ------------------------------------------------------------------------
def test_mooncake_release_round_trips_byte_for_byte(
    conversation_trace, synthetic_trace, tmp_path: Path
) -> None:
    # the real traces, or else stand-ins (tests/_synthetic.py)
    for source, real_rows in ((conversation_trace, 12_031), (synthetic_trace, 3_993)):
        src = source.path
        df = read_trace(src, "mooncake", relative=False)
        assert len(df) == source.rows(real_rows)
        lengths = df.hash_ids.map(len).to_numpy()
        np.testing.assert_array_equal(lengths, -(-df.input_tokens.to_numpy() // 512))
        assert write(df, tmp_path / src.name, "mooncake").read_bytes() == src.read_bytes()
    conv = read_trace(conversation_trace.path, "mooncake")
    assert 58 * 60 < conv.timestamp.iloc[-1] < 60 * 60  # 59 minutes
