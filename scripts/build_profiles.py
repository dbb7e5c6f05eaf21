"""Build the compact pool profiles in ``data/pools/`` from the upstream ServeGen release.

Usage::

    python scripts/build_profiles.py [path/to/ServeGen-main.zip] [--out DIR]

The zip defaults to ``../shared/data/ServeGen-main.zip`` next to the repository root (found
from this script's location, not the working directory). For every pool it writes
``<category>__<model>.npz`` (format: ``servegen/pools/_profiles.py``), then ``index.json`` (one
entry per pool) and ``LICENSE-upstream`` (the release's Apache-2.0 text). It then reads
each written file back and prints its size and the worst distance of its length PMFs to
the release's (KS, relative mean, p50, p99). Deterministic: no randomness, and reruns
write identical bytes.

Steps per pool (details in ``servegen/pools/_pmf.py``):

1. parse and validate the release (``servegen.pools._release.read_pool``);
2. impute the PMFs of clients whose ``dataset.json`` is missing: rate-weighted mixture
   of the other clients of the same 6-hour window (``_pmf.impute``);
3. compact every PMF: merge adjacent support points into bins of < 0.75 % mass and
   < 2 % relative width, each represented by its rounded probability-weighted mean
   (``_pmf.compact``);
4. quantise probabilities to integer counts out of ``2**bits``, with bits >= 16 chosen per
   PMF so the mean moves by < 0.2 % (``_pmf.scale_bits``, ``_pmf.quantize``);
5. store each distinct PMF once per field, values delta-encoded, integers split into
   byte planes so zlib compresses their zero high bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "ServeGen-main.zip"
DEFAULT_OUT = ROOT / "data" / "pools"
sys.path.insert(0, str(ROOT / "src"))  # build with this checkout's code, not an installed one

from servegen.pools import _pmf  # noqa: E402
from servegen.pools._profiles import FORMAT, Profile, read_profile, to_planes  # noqa: E402
from servegen.pools._release import FLOAT_FIELDS, LENGTH_WINDOW_S, POOLS, WINDOW_S, RawPool, read_pool  # noqa: E402

SOURCE = {
    "repository": "https://github.com/alibaba/ServeGen",
    "commit": "f891d11",
    "paper": "https://arxiv.org/abs/2505.09999",
}
LICENSE = "Apache-2.0"


def encode_field(
    table: tuple[np.ndarray, np.ndarray, np.ndarray], field: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Arrays ``pmf__<field>__*`` and the stored PMF id of every row of ``table``."""
    co, cv, cp = _pmf.compact(*table, integer=field not in FLOAT_FIELDS)
    bits = _pmf.scale_bits(co, cv, cp)
    counts = _pmf.quantize(co, cp, bits)
    keep = counts > 0  # bins lighter than 1 / 2**bits
    seg = _pmf.segment_ids(co)[keep]
    qo = np.zeros(co.size, dtype=np.int64)
    np.cumsum(np.bincount(seg, minlength=co.size - 1), out=qo[1:])
    counts, cv = counts[keep], cv[keep]

    out: dict[str, np.ndarray] = {}
    if field in FLOAT_FIELDS:
        grid = np.unique(table[1])
        vi = np.searchsorted(grid, cv)
        assert np.array_equal(grid[vi], cv), "float representatives must be release grid points"
        out[f"pmf__{field}__grid"] = grid
    else:
        vi = cv.astype(np.int64)
        assert vi.max(initial=0) < 2**31, f"{field}: value too large for int32"

    # Store each distinct PMF once; ids follow first appearance, so output is deterministic.
    rows: dict[bytes, int] = {}
    ids = np.full(qo.size - 1, -1, dtype=np.int32)
    first: list[int] = []
    for p in np.flatnonzero(np.diff(qo) > 0):
        s = slice(qo[p], qo[p + 1])
        key = bits[p].tobytes() + vi[s].tobytes() + counts[s].tobytes()
        ids[p] = rows.setdefault(key, len(rows))
        if ids[p] == len(first):
            first.append(p)
    uo, uv, uc = _pmf.take(qo, np.array(first, dtype=np.int64), vi, counts)
    deltas = np.diff(uv, prepend=0)
    starts = uo[:-1]
    deltas[starts] = uv[starts]  # each PMF restarts from an absolute value
    out[f"pmf__{field}__offsets"] = uo
    out[f"pmf__{field}__bits"] = bits[first]
    out[f"pmf__{field}__counts"] = to_planes(uc.astype(np.uint32))
    out[f"pmf__{field}__values"] = to_planes(deltas.astype(np.int32))
    return out, ids


def build_pool(raw: RawPool) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[np.ndarray, ...]]:
    """All arrays of one profile file, ``length_source`` and the imputation mixtures."""
    source, mixture = _pmf.impute(raw)
    record = raw.fields_as(np.float32)  # the pool record in the profiles' float32
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT, dtype=np.int64),
        "name": np.array(raw.name),
        "fields": np.array(raw.fields),
        **{k: record[k] for k in ("client_ids", "rate", "cv", "shape", "scale", "law")},
        "imputed": ~raw.has_dataset,
        "length_source": source,
    }
    pmf_id = np.full((*source.shape, len(raw.fields)), -1, dtype=np.int32)
    for f, field in enumerate(raw.fields):
        table, row = _pmf.field_table(raw, source, mixture, field)
        field_arrays, ids = encode_field(table, field)
        arrays.update(field_arrays)
        pmf_id[:, :, f] = np.where(row >= 0, ids[row], -1)
    arrays["pmf_id"] = pmf_id
    return arrays, source, mixture


def check(raw: RawPool, source: np.ndarray, mixture: tuple[np.ndarray, ...], path: Path) -> dict[str, float]:
    """Read ``path`` back, check it, and return the worst fidelity numbers over every PMF."""
    prof = read_profile(path)
    record = raw.fields_as(np.float32)
    for name in ("rate", "cv", "shape", "scale"):
        assert np.array_equal(getattr(prof, name), record[name]), name
    assert np.array_equal(prof.law, raw.law) and np.array_equal(prof.client_ids, raw.client_ids)
    assert np.array_equal(prof.length_source, source)
    worst = dict.fromkeys(("ks", "mean", "p50", "p99"), 0.0)
    for field in raw.fields:
        exact, row = _pmf.field_table(raw, source, mixture, field)
        approx = profile_rows(prof, field, row, exact[0].size - 1)
        for key, arr in _pmf.fidelity(exact, approx).items():
            if np.isfinite(arr).any():
                worst[key] = max(worst[key], float(np.nanmax(arr)))
    return worst


def profile_rows(prof: Profile, field: str, row: np.ndarray, n_rows: int) -> tuple[np.ndarray, ...]:
    """The profile's PMFs of ``field`` aligned with the rows of ``_pmf.field_table``."""
    ids = prof.pmf_id[:, :, prof.fields.index(field)].astype(np.int64)
    assert np.array_equal(ids < 0, row < 0), "pmf_id must be -1 exactly where there is no PMF"
    by_row = np.full(n_rows, -1, dtype=np.int64)
    by_row[row[row >= 0]] = ids[row >= 0]
    assert np.array_equal(by_row[row[row >= 0]], ids[row >= 0]), "clients sharing a PMF share its id"
    t = prof.table(field)
    offsets = np.append(t.offsets, t.offsets[-1])  # an extra, empty PMF for id -1
    return _pmf.take(offsets, np.where(by_row < 0, offsets.size - 2, by_row), t.values, t.probs)


def upstream_license(source: Path) -> bytes:
    """The release's top-level LICENSE file (from the zip or the extracted folder)."""
    if source.is_dir():
        for candidate in (source / "LICENSE", source / "ServeGen-main" / "LICENSE"):
            if candidate.is_file():
                return candidate.read_bytes()
        raise ValueError(f"{source}: no LICENSE file")
    with zipfile.ZipFile(source) as zf:
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "LICENSE" and n.count("/") <= 1]
        if len(names) != 1:
            raise ValueError(f"{source}: expected one top-level LICENSE, found {names}")
        return zf.read(names[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zip", nargs="?", type=Path, default=DEFAULT_ZIP, help="ServeGen-main.zip")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    entries = []
    total = 0
    for pool in POOLS:
        raw = read_pool(args.zip, pool)
        arrays, source, mixture = build_pool(raw)
        category, model = pool.split("/")
        path = args.out / f"{category}__{model}.npz"
        np.savez_compressed(path, **arrays)
        worst = check(raw, source, mixture, path)
        data = path.read_bytes()
        total += len(data)
        n_win = raw.window_start.size
        entries.append(
            {
                "name": pool,
                "category": category,
                "model": model,
                "file": path.name,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "window_s": WINDOW_S,
                "length_window_s": LENGTH_WINDOW_S,
                "span_s": n_win * WINDOW_S,
                "n_windows": n_win,
                "n_length_windows": raw.length_window_start.size,
                "n_clients": int(raw.client_ids.size),
                "fields": list(raw.fields),
                "n_imputed": int((~raw.has_dataset).sum()),
                "imputed_clients": raw.client_ids[~raw.has_dataset].tolist(),
                "source": SOURCE,
                "license": LICENSE,
                "fidelity": {
                    "ks": round(worst["ks"], 6),
                    **{f"{key}_rel": round(worst[key], 6) for key in ("mean", "p50", "p99")},
                },
            }
        )
        print(
            f"{pool:22s} {len(data) / 1e6:6.2f} MB  clients {raw.client_ids.size:3d} "
            f"(imputed {entries[-1]['n_imputed']:2d})  worst: KS {worst['ks']:.4f}  "
            f"mean {worst['mean']:.2%}  p50 {worst['p50']:.2%}  p99 {worst['p99']:.2%}"
        )
    index = {
        "format": FORMAT,
        "compaction": {
            "bin_mass": _pmf.BIN_MASS,
            "bin_rel_width": _pmf.BIN_REL_WIDTH,
            "min_scale_bits": _pmf.MIN_SCALE_BITS,
        },
        "pools": entries,
    }
    (args.out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    (args.out / "LICENSE-upstream").write_bytes(upstream_license(args.zip))
    print(f"total {total / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
