"""``read_release`` on a zip bomb and on the real release: time and peak memory.

Issue #11 measured a 485 KB zip holding an 8 M-line ``trace.csv`` at 118 s and 6 GB
before an error. This builds such a zip (in a temporary directory), and a second one
whose headers lie about the member's size, and times ``read_release`` on each; with
``--release PATH`` it also reads one pool of a real release, to show the bounds do not
slow the honest case (m-small, untraced).

Run: python benchmarks/bench_release_bomb.py [--lines 8000000] [--release ../shared/data/ServeGen-main.zip]
"""

from __future__ import annotations

import argparse
import resource
import struct
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import servegen as sg

POOL = "language/m-bomb"
ROOT = f"ServeGen-main/data/{POOL}"


def build(path: Path, lines: int) -> Path:
    row = b"0,0.0,0.0,,0,0\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open(f"{ROOT}/chunk-1-trace.csv", "w", force_zip64=True) as f:
            block = row * 100_000
            for _ in range(lines // 100_000):
                f.write(block)
        zf.writestr(f"{ROOT}/chunk-1-dataset.json", b'{"0": {"input_tokens": "{1: 1.0}"}}')
    return path


def lie(path: Path, out: Path, size: int) -> Path:
    """The same zip with the trace member's declared size set to ``size`` in both headers."""
    buf = bytearray(path.read_bytes())
    name = f"{ROOT}/chunk-1-trace.csv".encode()
    for sig, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = buf.find(sig)
        while at >= 0:
            if buf[at + name_at : at + name_at + len(name)] == name:
                buf[at + size_at : at + size_at + 4] = struct.pack("<I", size)
            at = buf.find(sig, at + 4)
    out.write_bytes(bytes(buf))
    return out


def measure(label: str, source: Path, pool: str, trace: bool = True) -> None:
    """Time one read; with ``trace``, its peak Python/numpy allocation (slows the read)."""
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    try:
        sg.read_release(source, pool)
        outcome = "read"
    except ValueError as e:
        outcome = f"ValueError: {str(e)[-90:]}"
    dt = time.perf_counter() - t0
    peak = f"peak {tracemalloc.get_traced_memory()[1] / 2**20:>7.1f} MiB" if trace else "(untraced)"
    tracemalloc.stop()
    size = source.stat().st_size / 1e3
    print(f"{label:<18} {size:>10.0f} KB  {dt:>7.3f} s  {peak}  {outcome}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=8_000_000)
    ap.add_argument("--release", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bomb = build(Path(tmp) / "bomb.zip", args.lines)
        print(f"built a {args.lines:,}-line trace.csv zip in {time.perf_counter() - t0:.1f} s")
        measure("declared size", bomb, POOL)
        measure("lying header", lie(bomb, Path(tmp) / "liar.zip", 4000), POOL)
    if args.release is not None:
        measure("real m-small", args.release, "language/m-small", trace=False)
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
