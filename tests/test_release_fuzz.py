"""``read_release`` on hostile input: zip bombs, bounds, and random corruption.

Every release here is built by the test (a few clients, a few windows, in the upstream
layout ``ServeGen-main/data/<category>/<model>/chunk-<client>-{trace.csv,dataset.json}``);
no shared data is used. Whatever is done to it, ``read_release`` must either read it or
raise a ``ValueError`` that names the file (and the line, for a trace row), quickly and
without inflating anything past the format's bounds.
"""

from __future__ import annotations

import json
import re
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import servegen as sg
from servegen.pools import _release

POOL = "language/m-test"
ROOT = f"ServeGen-main/data/{POOL}"
N_WIN = 72  # two 6-hour length windows


def _trace(rate: float, n: int = N_WIN) -> bytes:
    law = "Gamma,0.5,4.0" if rate > 0 else ",0,0"
    return "".join(f"{600 * i},{rate},1.4,{law}\n" for i in range(n)).encode()


def _dataset(shift: int) -> bytes:
    doc = {
        str(21600 * d): {
            "input_tokens": f"{{{100 + shift}: 0.25, {300 + d}: 0.75}}",
            "output_tokens": f"{{{7 + shift}: 0.5, 40: 0.5}}",
        }
        for d in range(N_WIN // 36)
    }
    return json.dumps(doc).encode()


def _members() -> dict[str, bytes]:
    out = {}
    for c, rate in ((1, 0.5), (2, 2.0), (5, 0.0)):
        out[f"chunk-{c}-trace.csv"] = _trace(rate)
        if c != 5:
            out[f"chunk-{c}-dataset.json"] = _dataset(c)
    return out


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr("ServeGen-main/README.md", b"ServeGen\n")
        for name, data in members.items():
            zf.writestr(f"{ROOT}/{name}", data)
    return path


def _peak_mib(fn) -> tuple[object, float]:
    """fn()'s result (or exception) and its peak traced allocation in MiB (numpy included)."""
    tracemalloc.start()
    try:
        try:
            result: object = fn()
        except Exception as e:  # returned for the caller to inspect
            result = e
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_small_release_reads(tmp_path):
    pool = sg.read_release(_zip(tmp_path / "r.zip", _members()), POOL)
    assert pool.keys == [1, 2] and pool.data_span == N_WIN * 600


def test_zip_bomb_fails_before_inflating(tmp_path):
    # 22 MB of trace rows deflate to ~40 KB; the declared size alone must stop it
    members = _members() | {"chunk-1-trace.csv": b"0,0,0,,0,0\n" * 2_000_000}
    archive = _zip(tmp_path / "bomb.zip", members)
    assert archive.stat().st_size < 100_000
    err, peak = _peak_mib(lambda: sg.read_release(archive, POOL))
    assert isinstance(err, ValueError)
    assert re.search(
        r"bomb\.zip:.*chunk-1-trace\.csv: 22000000 bytes uncompressed, more than the bound", str(err)
    )
    assert peak < 5, f"{peak:.1f} MiB allocated before refusing"


def _set_declared_size(raw: bytes, member: str, size: int) -> bytes:
    """A zip whose local and central headers claim ``size`` bytes for ``member``."""
    buf = bytearray(raw)
    name = member.encode()
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = buf.find(sig + b"", 0)
        while at >= 0:
            name_at = at + (30 if sig == b"PK\x03\x04" else 46)
            if buf[name_at : name_at + len(name)] == name:
                buf[at + offset : at + offset + 4] = struct.pack("<I", size)
            at = buf.find(sig, at + 4)
    return bytes(buf)


def test_lying_declared_size_is_caught(tmp_path):
    # headers claim 1 KB while the data inflates to 22 MB: the read stops at 1 KB
    members = _members() | {"chunk-2-trace.csv": b"0,0,0,,0,0\n" * 2_000_000}
    raw = _zip(tmp_path / "tmp.zip", members).read_bytes()
    archive = tmp_path / "liar.zip"
    archive.write_bytes(_set_declared_size(raw, f"{ROOT}/chunk-2-trace.csv", 1000))
    err, peak = _peak_mib(lambda: sg.read_release(archive, POOL))
    assert isinstance(err, ValueError) and "liar.zip" in str(err) and "chunk-2-trace.csv" in str(err)
    assert peak < 5


@pytest.mark.parametrize(
    ("members", "bound", "message"),
    [
        (
            {"chunk-1-trace.csv": b"0,0,0,,0,0\n" * 2017},
            None,
            r"chunk-1-trace\.csv: 2017 lines, more than MAX_WINDOWS=2016",
        ),
        (
            {"chunk-1-dataset.json": b"{" + b" " * 3_000_000 + b"}"},
            None,
            r"chunk-1-dataset\.json: compression ratio \d+ .*more than MAX_RATIO=100",
        ),
        ({}, ("MAX_MEMBERS", 4), r"r\.zip: 6 zip members, more than MAX_MEMBERS=4"),
        ({}, ("MAX_CLIENTS", 2), r"3 clients in .*r\.zip, more than MAX_CLIENTS=2"),
        ({}, ("MAX_POOL_BYTES", 5000), r"bytes of files in .*r\.zip, more than MAX_POOL_BYTES=5000"),
        (
            {},
            ("MAX_DATASET_BYTES", 100),
            r"chunk-1-dataset\.json: \d+ bytes uncompressed, more than the bound of 100",
        ),
    ],
)
def test_bounds_name_the_file(tmp_path, monkeypatch, members, bound, message):
    if bound is not None:
        monkeypatch.setattr(_release, *bound)
    archive = _zip(tmp_path / "r.zip", _members() | members)
    with pytest.raises(ValueError, match=message):
        sg.read_release(archive, POOL)


def test_no_dataset_files_is_a_clear_error(tmp_path):
    members = {k: v for k, v in _members().items() if k.endswith("trace.csv")}
    with pytest.raises(ValueError, match=r"no chunk-<client>-dataset\.json files found in .*r\.zip"):
        sg.read_release(_zip(tmp_path / "r.zip", members), POOL)


def test_window_counts_disagree_names_the_file(tmp_path):
    members = _members() | {"chunk-2-trace.csv": _trace(2.0, n=N_WIN - 1)}
    with pytest.raises(ValueError, match=r"chunk-2-trace\.csv: 71 windows, but .*chunk-1-trace\.csv has 72"):
        sg.read_release(_zip(tmp_path / "r.zip", members), POOL)


@pytest.mark.parametrize(
    ("source", "pool", "message"),
    [(5, POOL, r"`source` must be a path .*got 5"), ("x.zip", 5, r"`pool` must be a str .*got 5")],
)
def test_argument_types(source, pool, message):
    with pytest.raises(TypeError, match=message):  # TypeError/AttributeError without the name before
        sg.read_release(source, pool)


def test_deeply_nested_json_is_a_value_error(tmp_path):
    members = _members() | {"chunk-1-dataset.json": b"[" * 100_000}  # RecursionError before
    with pytest.raises(ValueError, match=r"chunk-1-dataset\.json: not valid dataset JSON: nested too deeply"):
        sg.read_release(_zip(tmp_path / "r.zip", members), POOL)


def test_non_utf8_trace_names_the_line(tmp_path):
    rows = _trace(0.5).split(b"\n")
    rows[3] = b"1800,0.5,1.4,Gamma,\xff,4.0"
    members = _members() | {"chunk-1-trace.csv": b"\n".join(rows)}
    with pytest.raises(ValueError, match=r"chunk-1-trace\.csv, line 4: not UTF-8 text"):
        sg.read_release(_zip(tmp_path / "r.zip", members), POOL)


def _check(archive: Path, names: tuple[str, ...], line_rule: bool) -> str:
    """Read ``archive``; return "ok" or the error; fail on anything but a clear ValueError."""
    result, peak = _peak_mib(lambda: sg.read_release(archive, POOL))
    assert peak < 20, f"{peak:.1f} MiB for a {archive.stat().st_size} byte release"
    if isinstance(result, sg.Pool):
        return "ok"
    assert isinstance(result, ValueError), f"{type(result).__name__}: {result}"
    msg = str(result)
    assert str(archive) in msg or any(n in msg for n in names), msg
    if line_rule and "trace.csv" in msg and "corrupt zip" not in msg:
        # a trace row error names its line; whole-file rules name the file only
        assert re.search(r"trace\.csv(, line \d+:| has \d+ \(| windows, but|: empty trace)", msg), msg
    return msg


@pytest.mark.slow
def test_fuzz_zip_bytes(tmp_path):
    """Truncations and byte flips of the archive itself (fixed seed)."""
    good = _zip(tmp_path / "good.zip", _members()).read_bytes()
    rng = np.random.default_rng(11)
    archive = tmp_path / "fuzz.zip"
    outcomes = []
    for cut in rng.integers(1, len(good), size=25):
        archive.write_bytes(good[:cut])
        outcomes.append(_check(archive, (), line_rule=False))
    for _ in range(60):
        buf = bytearray(good)
        for at in rng.integers(0, len(buf), size=rng.integers(1, 4)):
            buf[at] ^= int(rng.integers(1, 256))
        archive.write_bytes(bytes(buf))
        outcomes.append(_check(archive, (), line_rule=False))
    assert sum(o != "ok" for o in outcomes) > len(outcomes) // 2  # most corruptions are caught


@pytest.mark.parametrize("member", ["chunk-2-trace.csv", "chunk-2-dataset.json"])
@pytest.mark.slow
def test_fuzz_member_text(tmp_path, member):
    """Truncations and byte flips of one member's text, zipped intact (fixed seed)."""
    members = _members()
    good = members[member]
    rng = np.random.default_rng(7)
    archive = tmp_path / "fuzz.zip"
    outcomes = []
    for i in range(40):
        if i < 10:
            data = good[: int(rng.integers(0, len(good)))]
        else:
            buf = bytearray(good)
            for at in rng.integers(0, len(buf), size=rng.integers(1, 3)):
                buf[at] = int(rng.integers(0, 256))
            data = bytes(buf)
        _zip(archive, members | {member: data}, zipfile.ZIP_STORED)
        outcomes.append(_check(archive, (member,), line_rule=True))
    assert sum(o != "ok" for o in outcomes) > len(outcomes) // 2
