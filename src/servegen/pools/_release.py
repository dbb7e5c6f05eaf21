"""Strict, safe reader of the upstream ServeGen release (github.com/alibaba/ServeGen).

The release stores, per client of a pool, two files::

    data/<category>/<model>/chunk-<client>-trace.csv
    data/<category>/<model>/chunk-<client>-dataset.json

``trace.csv`` has no header and one row per 600 s window:
``window_start_s, rate_rps, iat_cv, law, arg1, arg2``, where ``law`` is ``Gamma`` or
``Weibull`` (``arg1`` = shape, ``arg2`` = scale of the inter-arrival times) or empty when
the rate is 0. ``dataset.json`` maps each 6-hour window start to ``{field: literal}``
where ``literal`` is the text of a Python dict ``{value: probability}``.

The dict literals are data, never code: they are checked against a regular expression
for ``{number: number, ...}`` and then converted by numpy, with no ``eval`` and no
``ast.literal_eval``. Every rule below raises ``ValueError`` naming the file, the line
(CSV) or window and field (JSON), the bad value and the rule.

Rules
-----
trace.csv
    6 comma-separated fields per line; numbers finite; ``window_start_s`` equal to
    ``600 * line_index`` (consecutive windows from 0, same count for every client of the
    pool); ``rate_rps >= 0``; ``iat_cv >= 0``; ``law`` one of ``Gamma``, ``Weibull`` or
    empty; a law requires ``rate_rps > 0`` and ``shape > 0``, ``scale > 0``; an empty law
    requires ``rate_rps == 0`` (so ``law == 0`` exactly when ``rate == 0``).
dataset.json
    keys are 6-hour window starts (multiples of 21600 s inside the trace span); every
    window has the same fields as the pool's first dataset; a literal ``{}`` means the
    client sent no request in that window (in this release it happens only when the
    client's rate is 0 for the whole 6 hours) and must then be empty for every field of
    the window; values are non-negative integers, except ``reason_ratio`` values which
    lie in [0, 1]; no duplicate values; probabilities are finite, ``>= 0`` and sum to 1
    within ``PROB_SUM_ATOL`` (1e-6, absolute, i.e. relative to the total of 1: the
    release is exact to ~1e-15, so 1e-6 only admits re-serialised files while still
    catching a dropped support point of mass >= 1e-6). A window key absent from a
    file is read as "no data" (empty PMFs), like ``{}``. A pool needs at least one
    ``dataset.json`` (there are no lengths to impute from otherwise).

Bounds
------
A release is untrusted input and a zip can hold a "bomb" (a few hundred KB that inflate
to gigabytes). Before anything is decompressed, the declared sizes of the pool's files
are checked against the format's known sizes, and every read stops one byte past its
bound (the declared size can lie), so a bad source costs at most these bounds:

* at most ``MAX_MEMBERS`` zip members and ``MAX_CLIENTS`` clients per pool;
* ``trace.csv`` at most ``MAX_WINDOWS`` lines (the release's longest pool: 14 days of
  600 s windows) of at most ``MAX_LINE_BYTES`` bytes (the release's longest is 96);
* ``dataset.json`` at most ``MAX_DATASET_BYTES`` (the release's largest is 4.1 MB);
* the pool's files together at most ``MAX_POOL_BYTES`` (m-large holds 117 MB);
* a zip member above 1 MiB at most ``MAX_RATIO`` times its compressed size (the
  release's highest ratio is 11).

Any corruption of the zip itself (bad CRC, truncated or undecodable data, unsupported
compression, encryption) is reported as a ``ValueError`` naming the zip and member.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from ._record import PoolRecord

__all__ = [
    "FLOAT_FIELDS",
    "LAW_CODES",
    "LENGTH_WINDOW_S",
    "MAX_CLIENTS",
    "MAX_DATASET_BYTES",
    "MAX_LINE_BYTES",
    "MAX_MEMBERS",
    "MAX_POOL_BYTES",
    "MAX_RATIO",
    "MAX_WINDOWS",
    "POOLS",
    "PROB_SUM_ATOL",
    "WINDOW_S",
    "RawPool",
    "read_pool",
]

WINDOW_S = 600
"""Width of an arrival window (seconds): one row of ``trace.csv``."""
LENGTH_WINDOW_S = 21600
"""Width of a length-distribution window (seconds): one key of ``dataset.json``."""
POOLS = (
    "language/m-large",
    "language/m-mid",
    "language/m-small",
    "multimodal/mm-image",
    "reason/deepseek-r1",
)
"""The pools of the release (commit f891d11)."""
LAW_CODES = {"": 0, "Gamma": 1, "Weibull": 2}
"""``law`` column text -> uint8 code; 0 means no law (rate 0). The file format's own
spelling: the engine's law table (above this reader) gives each law its
``release_name``/``release_code``, and tests/test_engine.py checks the two agree."""
FLOAT_FIELDS = frozenset({"reason_ratio"})
"""Fields whose values are fractions in [0, 1]; every other field holds integer counts."""
PROB_SUM_ATOL = 1e-6
"""Allowed ``|sum(probabilities) - 1|`` of a non-empty PMF."""

MAX_WINDOWS = 2016
"""Most rows of a ``trace.csv``: 14 days of 600 s windows, the release's longest pool."""
MAX_LINE_BYTES = 256
"""Longest ``trace.csv`` row in bytes (the release's longest is 96)."""
MAX_DATASET_BYTES = 64 * 2**20
"""Largest ``dataset.json`` (the release's largest is 4.1 MB)."""
MAX_POOL_BYTES = 2**30
"""Most bytes read for one pool, all files together (m-large holds 117 MB)."""
MAX_CLIENTS = 10_000
"""Most clients in one pool (the release's largest pool has 155)."""
MAX_MEMBERS = 100_000
"""Most members of a release zip (the release has 791)."""
MAX_RATIO = 100
"""Highest compression ratio of a zip member above 1 MiB (the release's highest is 11)."""

_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    UnicodeDecodeError,  # a member name flagged UTF-8 that is not
    OverflowError,
    OSError,  # a seek to a corrupt (negative) offset
)
"""What ``zipfile`` raises on a corrupt archive (RuntimeError: "encrypted", from a flipped flag bit)."""

_CHUNK = re.compile(r"chunk-(\d+)-(trace\.csv|dataset\.json)")
# A number as Python's repr writes it; nan/inf are admitted here only so that the
# finiteness check below can reject them with a precise message.
_NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)"
_PAIR = rf"\s*{_NUM}\s*:\s*{_NUM}\s*"
_DICT = re.compile(rf"\{{(?:{_PAIR}(?:,{_PAIR})*,?)?\s*\}}", re.IGNORECASE)
_DICT_PREFIX = re.compile(rf"\{{(?:{_PAIR},)*", re.IGNORECASE)  # locates a syntax error
_TO_SPACES = str.maketrans({"{": " ", "}": " ", ":": " ", ",": " "})


@dataclass(frozen=True, eq=False)
class RawPool(PoolRecord[np.float64]):
    """One pool of the release, as plain numpy arrays: the pool record, in float64.

    ``C`` clients, ``W`` arrival windows of ``WINDOW_S`` seconds, ``D`` length windows
    of ``LENGTH_WINDOW_S`` seconds, ``F`` length fields. The arrival fields are those of
    :class:`~servegen.pools._record.PoolRecord` (``client_ids`` sorted ascending,
    ``window_start`` = ``600 * arange(W)``, ``rate``/``cv``/``shape``/``scale`` the CSV's
    values, 0 where there is no law, ``law`` its ``LAW_CODES``); the length data follow.

    Attributes
    ----------
    length_window_start : ndarray of int64, shape (D,)
        Start of each length window, seconds (``21600 * arange(D)``).
    has_dataset : ndarray of bool, shape (C,)
        Whether the client's ``dataset.json`` exists.
    pmf_offsets : ndarray of int64, shape (C * D * F + 1,)
        The PMF of (client ``c``, length window ``d``, field ``f``) is
        ``pmf_values[o[k]:o[k + 1]]``, ``pmf_probs[o[k]:o[k + 1]]`` with
        ``k = (c * D + d) * F + f``. Empty when the client has no data there.
    pmf_values : ndarray of float64, shape (N,)
        Support points, strictly increasing within a PMF (integers for every field but
        ``FLOAT_FIELDS``; float64 holds them exactly).
    pmf_probs : ndarray of float64, shape (N,)
        Probabilities as written in the release (zeros included).
    """

    length_window_start: NDArray[np.int64]
    has_dataset: NDArray[np.bool_]
    pmf_offsets: NDArray[np.int64]
    pmf_values: NDArray[np.float64]
    pmf_probs: NDArray[np.float64]

    def pmf_index(self, client: int, window: int, field: str) -> int:
        """Flat index ``k`` into ``pmf_offsets`` of (row ``client``, length window ``window``, ``field``)."""
        return (client * self.length_window_start.size + window) * len(self.fields) + self.fields.index(field)

    def pmf(self, client: int, window: int, field: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Values and probabilities of one PMF (row index ``client``, not the client id)."""
        k = self.pmf_index(client, window, field)
        lo, hi = self.pmf_offsets[k], self.pmf_offsets[k + 1]
        return self.pmf_values[lo:hi], self.pmf_probs[lo:hi]


def read_pool(source: str | Path, pool: str) -> RawPool:
    """Read one pool of a ServeGen release.

    Parameters
    ----------
    source : str or Path
        The GitHub zip of the release, or a directory holding ``data/`` (the repository
        root, e.g. the extracted ``ServeGen-main``) or holding ``ServeGen-main/data/``.
    pool : str
        ``"<category>/<model>"``, e.g. ``"language/m-large"``.

    Returns
    -------
    RawPool

    Raises
    ------
    ValueError
        If the source or pool is not found, or any file breaks a rule of this module
        (the message names the file, line or window and field, value and rule).
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"`source` must be a path (str or Path) to a release zip or directory, got {source!r}"
        )
    if not isinstance(pool, str):
        raise TypeError(f"`pool` must be a str like 'language/m-large', got {pool!r}")
    with _pool_files(Path(source), pool) as files:
        traces: dict[int, _Member] = {}
        datasets: dict[int, _Member] = {}
        for fname, member in files.items():
            m = _CHUNK.fullmatch(fname)
            if m is not None:
                (traces if m.group(2) == "trace.csv" else datasets)[int(m.group(1))] = member
        if not traces:
            raise ValueError(f"{pool!r}: no chunk-<client>-trace.csv files found in {source}")
        orphans = sorted(set(datasets) - set(traces))
        if orphans:
            raise ValueError(f"{datasets[orphans[0]].name}: no chunk-{orphans[0]}-trace.csv beside it")
        _check_sizes(pool, source, traces, datasets)
        client_ids = np.array(sorted(traces), dtype=np.int64)

        arrival = [_parse_trace(traces[c].read(), traces[c].name) for c in client_ids]
        n_win = arrival[0][0].size
        for c, a in zip(client_ids, arrival, strict=True):
            if a[0].size != n_win:
                raise ValueError(
                    f"{traces[c].name}: {a[0].size} windows, but {traces[client_ids[0]].name} has {n_win} "
                    "(every trace.csv of a pool covers the same windows)"
                )
        window_start = np.arange(n_win, dtype=np.int64) * WINDOW_S
        rate, cv, law, shape, scale = (np.stack([a[i] for a in arrival]) for i in range(1, 6))

        if not datasets:
            raise ValueError(
                f"{pool!r}: no chunk-<client>-dataset.json files found in {source}; a pool needs "
                "the length distributions of at least one client"
            )
        per_length = LENGTH_WINDOW_S // WINDOW_S
        n_len = -(-n_win // per_length)
        length_window_start = np.arange(n_len, dtype=np.int64) * LENGTH_WINDOW_S
        fields: tuple[str, ...] | None = None
        pmfs: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {}
        for i, c in enumerate(client_ids):
            if c not in datasets:
                continue
            parsed, file_fields = _parse_dataset(datasets[c].read(), datasets[c].name, n_len, fields)
            fields = file_fields
            for d, per_field in parsed.items():
                pmfs[i, d] = per_field
    if fields is None:
        fields = ()

    n_f = len(fields)
    sizes = np.zeros(client_ids.size * n_len * n_f, dtype=np.int64)
    chunks_v: list[np.ndarray] = []
    chunks_p: list[np.ndarray] = []
    for (i, d), per_field in sorted(pmfs.items()):
        for f, (v, p) in enumerate(per_field):
            sizes[(i * n_len + d) * n_f + f] = v.size
            chunks_v.append(v)
            chunks_p.append(p)
    offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    empty = np.empty(0, dtype=np.float64)
    return RawPool(
        name=pool,
        client_ids=client_ids,
        window_start=window_start,
        rate=rate,
        cv=cv,
        law=law.astype(np.uint8),
        shape=shape,
        scale=scale,
        length_window_start=length_window_start,
        fields=fields,
        has_dataset=np.isin(client_ids, list(datasets)),
        pmf_offsets=offsets,
        pmf_values=np.concatenate(chunks_v) if chunks_v else empty,
        pmf_probs=np.concatenate(chunks_p) if chunks_p else empty,
    )


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Member:
    """One file of the pool: its name for messages, sizes, and how to open it."""

    name: str
    size: int  # declared (zip) or on-disk size, bytes
    packed: int | None  # compressed size in the zip; None in a directory
    open: Callable[..., IO[bytes]]  # called without arguments (`...`: the lambdas bind their file)
    limit: int  # bound on the bytes this file may hold

    def read(self) -> bytes:
        """The file's bytes, reading at most one byte past ``limit`` (a declared size can lie)."""
        chunks: list[bytes] = []
        size = 0
        try:
            with self.open() as f:
                # 1 MiB at a time: read(n) allocates n bytes up front, whatever the file holds
                while size <= self.limit and (chunk := f.read(min(2**20, self.limit + 1 - size))):
                    chunks.append(chunk)
                    size += len(chunk)
        except _ZIP_ERRORS as e:
            if self.packed is None:  # a plain file: its OSError already names it
                raise
            raise ValueError(f"{self.name}: corrupt zip member: {e}") from None
        raw = b"".join(chunks)
        if len(raw) > self.limit:
            raise ValueError(f"{self.name}: more than {self.limit} bytes, the bound for this file")
        return raw


def _limit(fname: str) -> int:
    return MAX_WINDOWS * MAX_LINE_BYTES if fname.endswith("trace.csv") else MAX_DATASET_BYTES


def _check_sizes(pool: str, source: object, *groups: dict[int, _Member]) -> None:
    """Refuse a pool whose declared sizes break a bound, before decompressing anything."""
    n_clients = len(groups[0])
    if n_clients > MAX_CLIENTS:
        raise ValueError(f"{pool!r}: {n_clients} clients in {source}, more than MAX_CLIENTS={MAX_CLIENTS}")
    total = 0
    for members in groups:
        for m in members.values():
            if m.size > m.limit:
                raise ValueError(f"{m.name}: {m.size} bytes uncompressed, more than the bound of {m.limit}")
            if m.packed is not None and m.size > 2**20 and m.size > MAX_RATIO * max(m.packed, 1):
                raise ValueError(
                    f"{m.name}: compression ratio {m.size / max(m.packed, 1):.0f} "
                    f"({m.packed} -> {m.size} bytes), more than MAX_RATIO={MAX_RATIO}"
                )
            total += m.size
    if total > MAX_POOL_BYTES:
        raise ValueError(
            f"{pool!r}: {total} bytes of files in {source}, more than MAX_POOL_BYTES={MAX_POOL_BYTES}"
        )


@contextmanager
def _pool_files(source: Path, pool: str) -> Iterator[dict[str, _Member]]:
    """File name -> member, for every file directly in the pool folder."""
    if pool.count("/") != 1 or ".." in pool:
        raise ValueError(f"pool must look like '<category>/<model>', got {pool!r}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise ValueError(f"{source}: not a zip file or directory")
        try:
            zf = zipfile.ZipFile(source)
        except _ZIP_ERRORS as e:
            raise ValueError(f"{source}: corrupt zip file: {e}") from None
        with zf:
            yield _zip_files(zf, source, pool)
        return
    if not source.is_dir():
        raise ValueError(f"{source}: no such release directory or zip file")
    for data in (source / "data", source / "ServeGen-main" / "data"):
        folder = data / pool
        if folder.is_dir():
            yield {
                p.name: _Member(str(p), p.stat().st_size, None, lambda p=p: p.open("rb"), _limit(p.name))
                for p in sorted(folder.iterdir())
                if p.is_file()
            }
            return
    found = [
        p.relative_to(data).as_posix()
        for data in (source / "data", source / "ServeGen-main" / "data")
        if data.is_dir()
        for p in data.glob("*/*")
        if p.is_dir()
    ]
    raise ValueError(f"{source}: pool {pool!r} not found; pools present: {sorted(found)}")


def _zip_files(zf: zipfile.ZipFile, path: Path, pool: str) -> dict[str, _Member]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ValueError(f"{path}: {len(infos)} zip members, more than MAX_MEMBERS={MAX_MEMBERS}")
    # A member is ".../data/<pool>/<file>" with any (or no) leading folder.
    pattern = re.compile(rf"(?:(.*)/)?data/{re.escape(pool)}/([^/]+)")
    out: dict[str, _Member] = {}
    roots = set()
    for info in infos:
        m = pattern.fullmatch(info.filename)
        if m is None or info.is_dir():
            continue
        roots.add(m.group(1))
        out[m.group(2)] = _Member(
            f"{path}:{info.filename}",
            info.file_size,
            info.compress_size,
            lambda info=info: zf.open(info),
            _limit(m.group(2)),
        )
    if len(roots) > 1:
        raise ValueError(f"{path}: pool {pool!r} found under several roots {sorted(map(str, roots))}")
    if not out:
        found = {
            m.group(1)
            for n in zf.namelist()
            if (m := re.search(r"(?:^|/)data/([^/]+/[^/]+)/chunk-", n)) is not None
        }
        raise ValueError(f"{path}: pool {pool!r} not found; pools present: {sorted(found)}")
    return out


# --------------------------------------------------------------------------- trace.csv


def _parse_trace(raw: bytes, name: str) -> tuple[np.ndarray, ...]:
    """Arrays (window_start, rate, cv, law, shape, scale) of one ``trace.csv``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"{name}, line {line}: not UTF-8 text: {e}") from None
    lines = text.split("\n")  # not splitlines(): line numbers must be an editor's (no \f, \x1c, ...)
    while lines and not lines[-1].strip():  # a trailing newline is not a row
        lines.pop()
    if len(lines) > MAX_WINDOWS:
        raise ValueError(
            f"{name}: {len(lines)} lines, more than MAX_WINDOWS={MAX_WINDOWS} (14 days of 600 s windows)"
        )
    if not lines:
        raise ValueError(f"{name}: empty trace file")
    rows = [ln.split(",") for ln in lines]
    for i, r in enumerate(rows):
        if len(r) != 6:
            raise ValueError(
                f"{name}, line {i + 1}: expected 6 comma-separated fields "
                f"(window_start_s, rate_rps, iat_cv, law, arg1, arg2), got {len(r)}: {lines[i]!r}"
            )
    cols = list(zip(*rows, strict=True))
    numeric = {}
    for j, col in ((0, "window_start_s"), (1, "rate_rps"), (2, "iat_cv"), (4, "arg1"), (5, "arg2")):
        try:
            numeric[col] = np.array(cols[j], dtype=np.float64)
        except ValueError:
            for i, s in enumerate(cols[j]):
                try:
                    float(s)
                except ValueError:
                    raise ValueError(
                        f"{name}, line {i + 1}: {col} must be a number, got {s.strip()!r}"
                    ) from None
            raise  # pragma: no cover - numpy and float() disagree
    law_text = np.array([s.strip() for s in cols[3]])

    def fail(mask: np.ndarray, col: str, values: np.ndarray, rule: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise ValueError(f"{name}, line {i + 1}: {col} {rule}, got {values[i].item()!r}")

    for col, v in numeric.items():
        fail(~np.isfinite(v), col, v, "must be finite")
    start = numeric["window_start_s"]
    fail(
        start != np.arange(start.size) * WINDOW_S,
        "window_start_s",
        start,
        f"must be {WINDOW_S} * (line - 1) (consecutive windows from 0)",
    )
    rate, cv = numeric["rate_rps"], numeric["iat_cv"]
    fail(rate < 0, "rate_rps", rate, "must be >= 0")
    fail(cv < 0, "iat_cv", cv, "must be >= 0")
    known = np.isin(law_text, list(LAW_CODES))
    fail(~known, "law", law_text, f"must be one of {[k for k in LAW_CODES if k]} or empty")
    law = np.zeros(law_text.size, dtype=np.uint8)
    for text_, code in LAW_CODES.items():
        law[law_text == text_] = code
    has_law = law > 0
    fail(has_law & (rate <= 0), "rate_rps", rate, "must be > 0 when a law is given")
    fail(~has_law & (rate != 0), "law", law_text, "must be given when rate_rps > 0")
    shape, scale = numeric["arg1"], numeric["arg2"]
    fail(has_law & (shape <= 0), "arg1 (shape)", shape, "must be > 0 when a law is given")
    fail(has_law & (scale <= 0), "arg2 (scale)", scale, "must be > 0 when a law is given")
    return start, rate, cv, law, shape, scale


# --------------------------------------------------------------------------- dataset.json


def _parse_dataset(
    raw: bytes, name: str, n_len: int, fields: tuple[str, ...] | None
) -> tuple[dict[int, list[tuple[np.ndarray, np.ndarray]]], tuple[str, ...]]:
    """Non-empty windows of one ``dataset.json`` -> per-field (values, probs), and the fields."""
    try:
        doc = json.loads(raw)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{name}: not valid JSON: {e}") from None
    except RecursionError:  # e.g. "[[[[...": the format nests two objects deep
        raise ValueError(f"{name}: not valid dataset JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{name}: top level must be an object {{window_start_s: {{...}}}}")
    out: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for key, entry in doc.items():
        where = f"{name}, window {key!r}"
        aligned = re.fullmatch(r"\d+", key) is not None and int(key) % LENGTH_WINDOW_S == 0
        if not aligned or int(key) // LENGTH_WINDOW_S >= n_len:
            raise ValueError(
                f"{where}: window start must be a multiple of {LENGTH_WINDOW_S} s "
                f"below {n_len * LENGTH_WINDOW_S} (the trace span)"
            )
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must map field names to dict literals")
        if fields is None:
            fields = tuple(entry)
        if set(entry) != set(fields):
            raise ValueError(f"{where}: fields must be {list(fields)}, got {list(entry)}")
        per_field = [_parse_literal(entry[f], f"{where}, field {f!r}", f) for f in fields]
        n_empty = sum(v.size == 0 for v, _ in per_field)
        if n_empty == len(fields):
            continue
        if n_empty:
            raise ValueError(f"{where}: some fields are empty '{{}}' and others are not")
        out[int(key) // LENGTH_WINDOW_S] = per_field
    return out, fields if fields is not None else ()


def _parse_literal(text: object, where: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (values, probs) of one ``"{value: prob, ...}"`` literal, validated."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: must be a string holding a dict literal, got {type(text).__name__}")
    if _DICT.fullmatch(text) is None:
        stop = _DICT_PREFIX.match(text)
        pos = stop.end() if stop is not None else 0
        pos += len(text[pos:]) - len(text[pos:].lstrip())  # point at the offending token
        raise ValueError(
            f"{where}: malformed dict literal (expected {{number: number, ...}}) "
            f"at character {pos}: {text[pos : pos + 40]!r}"
        )
    nums = np.array(text.translate(_TO_SPACES).split(), dtype=np.float64)
    values, probs = nums[0::2], nums[1::2]

    def fail(mask: np.ndarray, what: str, arr: np.ndarray, rule: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise ValueError(f"{where}: {what} {rule}, got {arr[i].item()!r} (value {values[i].item()!r})")

    fail(~np.isfinite(values), "value", values, "must be finite")
    fail(~np.isfinite(probs), "probability", probs, "must be finite")
    if field in FLOAT_FIELDS:
        fail((values < 0) | (values > 1), "value", values, "must lie in [0, 1]")
    else:
        fail((values < 0) | (values != np.round(values)), "value", values, "must be a non-negative integer")
    fail(probs < 0, "probability", probs, "must be >= 0")
    if values.size:
        total = probs.sum()
        if abs(total - 1.0) > PROB_SUM_ATOL:
            raise ValueError(
                f"{where}: probabilities must sum to 1 (within {PROB_SUM_ATOL:g}), got {float(total)!r}"
            )
    order = np.argsort(values, kind="stable")
    values, probs = values[order], probs[order]
    dup = values[1:] == values[:-1]
    if dup.any():
        raise ValueError(f"{where}: value {values[1:][dup][0].item()!r} appears twice")
    return values, probs
