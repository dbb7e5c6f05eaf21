"""Compact production client-pool profiles shipped with servegen.

Each pool of the upstream ServeGen release (see ``data/pools/NOTICE.md``) is stored as one
``<category>__<model>.npz`` plus an entry in ``index.json``, built by
``scripts/build_profiles.py``. ``load_profile`` returns it as a frozen ``Profile`` of
read-only numpy arrays.

File format (``np.savez_compressed``, read with ``allow_pickle=False``)
-----------------------------------------------------------------------
``C`` clients, ``W`` windows of 600 s, ``D`` windows of 21600 s, ``F`` length fields.

==========================  ========  ==========  ============================================
key                         dtype     shape       meaning
==========================  ========  ==========  ============================================
``format``                  int64     ()          ``FORMAT`` (bumped on incompatible change)
``name``                    unicode   ()          pool name, e.g. ``language/m-large``
``fields``                  unicode   (F,)        length fields, in the release's order
``client_ids``              int64     (C,)        upstream chunk numbers, ascending
``rate`` ``cv``             float32   (C, W)      requests/s; CV of inter-arrival times
``shape`` ``scale``         float32   (C, W)      parameters of ``law`` (0 when no law)
``law``                     uint8     (C, W)      0 none (rate 0), 1 Gamma, 2 Weibull
``imputed``                 bool      (C,)        the client's length file is missing upstream
``length_source``           uint8     (C, D)      0 release, 1 imputed, 2 none (no requests)
``pmf_id``                  int32     (C, D, F)   row of the field's PMF table; -1 for none
``pmf__<f>__offsets``       int64     (P+1,)      PMF ``p`` is points ``offsets[p]:offsets[p+1]``
``pmf__<f>__bits``          uint8     (P,)        PMF ``p``'s probabilities are counts / 2**bits
``pmf__<f>__counts``        uint8     (4, N)      byte planes of uint32 counts
``pmf__<f>__values``        uint8     (4, N)      byte planes of int32 deltas of the values
``pmf__<f>__grid``          float64   (G,)        float fields only: values are indices into it
==========================  ========  ==========  ============================================

Why this encoding: values are sorted within a PMF, so their deltas are small; counts
are mostly below 2**16. Splitting each 4-byte integer into its 4 byte planes (the
"shuffle" filter of HDF5/Blosc) puts the mostly-zero high bytes together, which zlib
then stores for almost nothing: 2x smaller than plain arrays, with a decode that is two
numpy calls. npz needs nothing but numpy to read (Parquet would need pyarrow, an
optional dependency) and loads without pickle. Identical PMFs are stored once (the
imputed clients of a window share one mixture).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from ._pmf import segment_cumsum, stats
from ._record import PoolRecord

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["FORMAT", "PmfTable", "Profile", "list_profiles", "load_profile"]

_T = TypeVar("_T")

FORMAT = 1
_ARRAYS = ("client_ids", "rate", "cv", "law", "shape", "scale", "imputed", "length_source", "pmf_id")
WINDOW_S = 600
LENGTH_WINDOW_S = 21600


@dataclass(frozen=True, eq=False)
class PmfTable:
    """All distinct compact PMFs of one length field of a pool.

    Attributes
    ----------
    offsets : ndarray of int64, shape (P + 1,)
        PMF ``p`` is ``values[offsets[p]:offsets[p + 1]]`` (never empty).
    values : ndarray, shape (N,)
        Support points, strictly increasing within a PMF: int64 token or item counts,
        float64 for ``reason_ratio``.
    probs : ndarray of float64, shape (N,)
        Probabilities; exactly ``counts / 2**bits``, so they sum to 1 exactly.
    cdf : ndarray of float64, shape (N,)
        Cumulative probabilities within each PMF; the last point of a PMF is exactly 1.0,
        ready for inverse-CDF sampling with ``searchsorted``.
    mean, p50, p99 : ndarray of float64, shape (P,)
        Statistics of each PMF (quantile = smallest value with CDF >= q).
    """

    offsets: NDArray[np.int64]
    values: NDArray[Any]
    probs: NDArray[np.float64]
    cdf: NDArray[np.float64]
    mean: NDArray[np.float64]
    p50: NDArray[np.float64]
    p99: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Profile(PoolRecord[np.float32]):
    """One production client pool: arrival parameters and length distributions.

    ``C`` clients, ``W`` arrival windows of ``WINDOW_S`` = 600 s, ``D`` length windows of
    ``LENGTH_WINDOW_S`` = 21600 s, ``F`` fields. Client ``i`` means row ``i`` (its upstream
    id is ``client_ids[i]``). Arrays are read-only: the profile is cached and shared.

    The arrival fields are those of :class:`~servegen.pools._record.PoolRecord` in
    float32: ``rate``, ``cv``, ``shape``, ``scale`` are exactly the float32 of the
    release's CSV values (``name`` is ``"<category>/<model>"``, ``window_start`` is
    ``600 * arange(W)``, ``law`` is 0 exactly when the rate is 0). The length data follow.

    Attributes
    ----------
    meta : Mapping
        This pool's entry of ``index.json`` (see ``list_profiles``).
    length_window_start : ndarray of int64, shape (D,)
        ``21600 * arange(D)``; window ``w`` of 600 s lies in length window ``w // 36``.
    imputed : ndarray of bool, shape (C,)
        The client's ``dataset.json`` is missing upstream: all its PMFs are imputed.
    length_source : ndarray of uint8, shape (C, D)
        0 from the release, 1 imputed (rate-weighted mixture of the other clients of the
        window), 2 none: the client sent no request in that window (rate 0 throughout).
    pmf_id : ndarray of int32, shape (C, D, F)
        Row of ``tables[f]`` holding the PMF of (client, length window, field); -1 exactly
        where ``length_source`` is 2.
    tables : tuple of PmfTable, length F
        Distinct compact PMFs per field.
    """

    meta: Mapping[str, Any]
    length_window_start: NDArray[np.int64]
    imputed: NDArray[np.bool_]
    length_source: NDArray[np.uint8]
    pmf_id: NDArray[np.int32]
    tables: tuple[PmfTable, ...]
    # what pmf_model built, per (builder, field, PMF row): the pool's views share them
    _models: dict[tuple[Any, int, int], Any] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def table(self, field: str) -> PmfTable:
        """The ``PmfTable`` of ``field``."""
        return self.tables[self._field_index(field)]

    def pmf(self, client: int, window: int, field: str) -> tuple[NDArray[Any], NDArray[np.float64]]:
        """Values and probabilities of the PMF of row ``client``, length window ``window``.

        Both empty when the client sent no request in that window.
        """
        f = self._field_index(field)
        p = int(self.pmf_id[client, window, f])
        t = self.tables[f]
        if p < 0:
            return t.values[:0], t.probs[:0]
        lo, hi = t.offsets[p], t.offsets[p + 1]
        return t.values[lo:hi], t.probs[lo:hi]

    def pmf_model(
        self, client: int, window: int, field: str, build: Callable[[NDArray[Any], NDArray[np.float64]], _T]
    ) -> _T | None:
        """``build(values, probs)`` of the PMF of (``client``, ``window``, ``field``), made
        once per distinct PMF of this profile; None where the client sent no request.

        Views of a pool (``span``, ``filter``) build their clients afresh, and a length
        model's sampler tables cost more to set up than an hour of its draws; rows with the
        same PMF share one model.
        """
        f = self._field_index(field)
        p = int(self.pmf_id[client, window, f])
        if p < 0:
            return None
        model = self._models.get((build, f, p))
        if model is None:
            model = self._models[(build, f, p)] = build(*self.pmf(client, window, field))
        return model

    def length_stats(self, field: str) -> dict[str, NDArray[np.float64]]:
        """``{"mean", "p50", "p99"}`` of ``field``, each of shape (C, D); NaN where no PMF."""
        f = self._field_index(field)
        t, ids = self.tables[f], self.pmf_id[:, :, f]
        out = {}
        for key in ("mean", "p50", "p99"):
            col = np.append(getattr(t, key), np.nan)  # id -1 picks the trailing NaN
            out[key] = col[ids]
        return out

    def _field_index(self, field: str) -> int:
        try:
            return self.fields.index(field)
        except ValueError:
            raise ValueError(
                f"{self.name}: field must be one of {list(self.fields)}, got {field!r}"
            ) from None


def list_profiles() -> list[dict[str, Any]]:
    """Metadata of every shipped pool profile (copies of the ``index.json`` entries).

    Each dict has ``name``, ``category``, ``model``, ``file``, ``window_s`` (600),
    ``length_window_s`` (21600), ``span_s``, ``n_windows``, ``n_length_windows``,
    ``n_clients``, ``fields``, ``n_imputed``, ``imputed_clients``, ``source`` (upstream
    repository, commit, paper), ``license`` and ``fidelity``: the worst, over every
    client-window-field, KS distance (``ks``) and relative error of the mean, median and
    99th percentile (``mean_rel``, ``p50_rel``, ``p99_rel``) of the compact length PMFs
    against the release's (or against the imputation mixture), plus ``file``, ``bytes``
    and ``sha256`` of the profile file.
    """
    return [json.loads(json.dumps(p)) for p in _index()["pools"]]


def load_profile(name: str) -> Profile:
    """Load a pool profile by name (cached: repeated calls return the same object).

    Parameters
    ----------
    name : str
        ``"<category>/<model>"`` such as ``"language/m-large"``, or just the model
        (``"m-large"``). See ``list_profiles()``.

    Raises
    ------
    ValueError
        If ``name`` is not a shipped pool.

    Examples
    --------
    >>> p = load_profile("language/m-large")
    >>> p.rate.shape, p.fields
    ((162, 2016), ('input_tokens', 'output_tokens'))
    >>> int(p.imputed.sum()), load_profile("m-large") is p
    (15, True)
    >>> values, probs = p.pmf(0, 0, "input_tokens")  # client row 0, first 6 hours
    >>> bool(probs.sum() == 1.0)
    True
    """
    pools = {p["name"]: p for p in _index()["pools"]}
    short = {p["model"]: p["name"] for p in pools.values()}
    full = name if name in pools else short.get(name) if isinstance(name, str) else None
    if full is None:
        raise ValueError(f"unknown pool {name!r}; valid names: {sorted(pools)}")
    return _load(full)


@cache
def _load(name: str) -> Profile:
    meta = next(p for p in _index()["pools"] if p["name"] == name)
    with (_data_dir() / meta["file"]).open("rb") as fh:
        return read_profile(fh, meta)


def read_profile(file: Any, meta: Mapping[str, Any] | None = None) -> Profile:
    """Decode one profile file (a path or binary file object); no caching.

    Used by ``load_profile`` and by the build script to check what it wrote.
    """
    with np.load(file, allow_pickle=False) as z:
        if int(z["format"]) != FORMAT:
            raise ValueError(f"{file}: profile format {int(z['format'])}, this servegen reads {FORMAT}")
        name = str(z["name"])
        fields = tuple(str(f) for f in z["fields"])
        tables = tuple(_read_table(z, f) for f in fields)
        arrays = {k: z[k] for k in _ARRAYS}
    n_win, n_len = arrays["rate"].shape[1], arrays["length_source"].shape[1]
    profile = Profile(
        name=name,
        meta=MappingProxyType(json.loads(json.dumps(dict(meta or {})))),
        window_start=np.arange(n_win, dtype=np.int64) * WINDOW_S,
        length_window_start=np.arange(n_len, dtype=np.int64) * LENGTH_WINDOW_S,
        fields=fields,
        tables=tables,
        **arrays,
    )
    frozen = (profile.window_start, profile.length_window_start, *arrays.values())
    for arr in (*frozen, *(a for t in tables for a in vars(t).values())):
        arr.flags.writeable = False
    return profile


def _read_table(z: Any, field: str) -> PmfTable:
    key = f"pmf__{field}__"
    offsets = z[key + "offsets"]
    lens = np.diff(offsets)
    counts = from_planes(z[key + "counts"], np.uint32).astype(np.int64)
    deltas = from_planes(z[key + "values"], np.int32).astype(np.int64)
    values: NDArray[Any] = segment_cumsum(offsets, deltas)
    if key + "grid" in z:
        values = z[key + "grid"][values]
    cum = segment_cumsum(offsets, counts)
    # counts / 2**bits is exact in float64, and so is the cumulative sum: cdf ends at 1.0
    denom = np.repeat(np.ldexp(1.0, z[key + "bits"].astype(np.int64)), lens)
    probs = counts / denom
    cdf = cum / denom
    mean, q = stats(offsets, values, probs)
    return PmfTable(offsets, values, probs, cdf, mean, q[:, 0].copy(), q[:, 1].copy())


def to_planes(a: np.ndarray) -> NDArray[np.uint8]:
    """Byte planes ``(itemsize, n)`` of a little-endian 1-D integer array."""
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a.view(np.uint8).reshape(a.size, a.itemsize).T)


def from_planes(planes: NDArray[np.uint8], dtype: type) -> np.ndarray:
    """Inverse of ``to_planes``."""
    return np.ascontiguousarray(planes.T).view(np.dtype(dtype).newbyteorder("<")).reshape(-1)


def _data_dir() -> Traversable:
    """``servegen/_data/pools`` of an installed wheel, else ``data/pools`` of the checkout."""
    installed = resources.files("servegen").joinpath("_data", "pools")
    if installed.joinpath("index.json").is_file():
        return installed
    checkout = Path(__file__).resolve().parents[3] / "data" / "pools"
    if (checkout / "index.json").is_file():
        return checkout
    raise FileNotFoundError(
        f"servegen pool profiles not found in {installed} nor {checkout}; "
        "reinstall servegen or run scripts/build_profiles.py in the source checkout"
    )


@cache
def _index() -> dict[str, Any]:
    return json.loads(_data_dir().joinpath("index.json").read_text(encoding="utf-8"))


def profile_from_release(source: Any, pool: str) -> Profile:
    """A ``Profile`` read straight from a ServeGen release, with its exact PMFs.

    Missing length files are imputed as in the shipped profiles; zero-probability points
    are dropped and each PMF is renormalized (the release sums to 1 within 1e-15).
    """
    from . import _pmf
    from ._release import FLOAT_FIELDS, read_pool

    raw = read_pool(source, pool)
    src, mixture = _pmf.impute(raw)
    tables, ids = [], []
    for field in raw.fields:
        (offsets, values, probs), row = _pmf.field_table(raw, src, mixture, field)
        keep = probs > 0
        seg = _pmf.segment_ids(offsets)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(seg[keep], minlength=offsets.size - 1))])
        values, probs = values[keep], probs[keep]
        total = np.bincount(_pmf.segment_ids(offsets), probs, minlength=offsets.size - 1)
        probs = probs / np.repeat(np.where(total > 0, total, 1.0), np.diff(offsets))
        cdf = segment_cumsum(offsets, probs)
        cdf[offsets[1:][np.diff(offsets) > 0] - 1] = 1.0
        values = values if field in FLOAT_FIELDS else values.astype(np.int64)
        mean, q = stats(offsets, values, probs)
        tables.append(PmfTable(offsets, values, probs, cdf, mean, q[:, 0].copy(), q[:, 1].copy()))
        ids.append(row.astype(np.int32))
    return Profile(
        **raw.fields_as(np.float32),
        meta=MappingProxyType({"name": raw.name, "source": str(source), "exact": True}),
        length_window_start=raw.length_window_start,
        imputed=~raw.has_dataset,
        length_source=src,
        pmf_id=np.stack(ids, axis=2),
        tables=tuple(tables),
    )
