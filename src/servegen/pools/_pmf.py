"""Vectorised operations on many discrete PMFs stored as one flat ragged table.

A table is ``(offsets, values, probs)``: PMF ``k`` is ``values[offsets[k]:offsets[k + 1]]``
with probabilities ``probs[...]``, values strictly increasing within a PMF. Every function
here works on all PMFs at once (no Python loop per PMF or per point), which is what makes
checking and compacting a whole pool take seconds.

Used by the profile loader (statistics), the profile build script (imputation,
compaction, quantisation) and the fidelity tests (KS distance, statistics).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._release import LENGTH_WINDOW_S, WINDOW_S, RawPool

__all__ = [
    "BIN_MASS",
    "BIN_REL_WIDTH",
    "MIN_SCALE_BITS",
    "QUANTILE_ATOL",
    "SOURCE_IMPUTED",
    "SOURCE_NONE",
    "SOURCE_RELEASE",
    "compact",
    "fidelity",
    "field_table",
    "impute",
    "ks_distance",
    "quantize",
    "scale_bits",
    "segment_cumsum",
    "segment_ids",
    "stats",
    "take",
]

BIN_MASS = 0.005
"""A compact bin of several support points never starts more than this much CDF after
its first point, and a point of mass >= ``BIN_MASS / 2`` is a bin of its own: every bin
of several points weighs < 1.5 * BIN_MASS = 0.0075, which bounds the KS distance."""
BIN_REL_WIDTH = 0.02
"""The points of a bin lie in one geometric cell ``[(1+w)^j, (1+w)^(j+1))``, so
``max / min < 1.02`` inside a bin: every quantile is kept within 2 %."""
MIN_SCALE_BITS = 16
"""Probabilities are stored as integer counts out of ``2**bits`` per PMF, at least 2**16."""
QUANTILE_LEVELS = (0.5, 0.9, 0.95, 0.99, 0.999)
"""Levels whose side of the CDF quantisation never flips (see ``quantize``)."""
QUANTILE_ATOL = 1e-9
"""``quantile(q)`` is the first value whose CDF is >= ``q - QUANTILE_ATOL``, so that a CDF
that should equal ``q`` exactly but is summed to ``q - 1e-16`` does not skip a point."""

SOURCE_RELEASE, SOURCE_IMPUTED, SOURCE_NONE = 0, 1, 2
"""Codes of ``length_source``: PMF from the release, imputed, or none (no requests)."""


def segment_ids(offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """Index of the PMF each point belongs to, shape ``(offsets[-1],)``."""
    return np.repeat(np.arange(offsets.size - 1), np.diff(offsets))


def take(offsets: NDArray[np.int64], idx: NDArray[np.int64], *arrays: np.ndarray) -> tuple[NDArray[Any], ...]:
    """Sub-table of the PMFs ``idx``: new offsets, then each of ``arrays`` gathered."""
    starts = offsets[idx]
    lens = offsets[idx + 1] - starts
    new = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(lens, out=new[1:])
    pos = np.repeat(starts - new[:-1], lens) + np.arange(new[-1])
    return (new, *(a[pos] for a in arrays))


def segment_cumsum(offsets: NDArray[np.int64], x: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at every PMF, in the dtype of ``x`` (exact for integers)."""
    c = np.cumsum(x)
    before = np.concatenate((np.zeros(1, dtype=c.dtype), c))[offsets[:-1]]
    return c - np.repeat(before, np.diff(offsets))


def stats(
    offsets: NDArray[np.int64],
    values: np.ndarray,
    probs: np.ndarray,
    quantiles: tuple[float, ...] = (0.5, 0.99),
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and quantiles of every PMF.

    Probabilities are normalised per PMF. ``quantile(q)`` is the smallest value whose CDF
    is ``>= q - QUANTILE_ATOL`` (the inverse CDF, numpy's ``"inverted_cdf"``).

    Returns
    -------
    mean : ndarray of float64, shape (K,)
    q : ndarray of float64, shape (K, len(quantiles))
        Both NaN for empty PMFs.
    """
    n = offsets.size - 1
    lens = np.diff(offsets)
    seg = segment_ids(offsets)
    total = np.bincount(seg, probs, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(seg, probs * values, minlength=n) / total
        cdf = segment_cumsum(offsets, probs) / np.repeat(total, lens)
    # 2 * seg + cdf increases through the whole table (cdf <= 1 + 1e-15 < 2), so one
    # searchsorted finds the first point reaching q in every PMF at once.
    key = 2.0 * seg + cdf
    out = np.full((n, len(quantiles)), np.nan)
    ok = lens > 0
    for j, q in enumerate(quantiles):
        pos = np.searchsorted(key, 2.0 * np.arange(n) + q - QUANTILE_ATOL, side="left")
        pos = np.minimum(pos, offsets[1:] - 1)  # guards rounding at the last point
        out[ok, j] = values[pos[ok]]
    mean[~ok] = np.nan
    return mean, out


def ks_distance(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> NDArray[np.float64]:
    """Kolmogorov-Smirnov distance ``sup |F_a - F_b|`` of PMF ``k`` of ``a`` and of ``b``.

    ``a`` and ``b`` are ``(offsets, values, probs)`` tables with the same number of PMFs;
    probabilities are normalised per PMF. NaN when either PMF is empty.
    """
    (oa, va, pa), (ob, vb, pb) = a, b
    n = oa.size - 1
    sa, sb = segment_ids(oa), segment_ids(ob)
    ta = np.bincount(sa, pa, minlength=n)
    tb = np.bincount(sb, pb, minlength=n)
    seg = np.concatenate((sa, sb))
    val = np.concatenate((va, vb)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        da = np.concatenate((pa / ta[sa], np.zeros(vb.size)))
        db = np.concatenate((np.zeros(va.size), pb / tb[sb]))
    order = np.lexsort((val, seg))
    seg, val, diff = seg[order], val[order], (da - db)[order]
    merged = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(seg, minlength=n), out=merged[1:])
    gap = np.abs(segment_cumsum(merged, diff))
    # Only compare after the last point of a run of equal values: in between, one
    # table's mass at that value has been added and the other's not yet.
    last = np.ones(seg.size, dtype=bool)
    last[:-1] = (seg[1:] != seg[:-1]) | (val[1:] != val[:-1])
    out = np.zeros(n)
    np.maximum.at(out, seg[last], gap[last])
    out[(ta == 0) | (tb == 0)] = np.nan
    return out


Table = tuple[NDArray[np.int64], NDArray[Any], NDArray[np.float64]]
"""A ragged PMF table ``(offsets, values, probs)``."""


def impute(raw: RawPool) -> tuple[NDArray[np.uint8], Table]:
    """Where each client's PMFs come from, and the mixtures that fill the missing ones.

    For each length window ``d`` and field, the donors are the clients whose PMF comes
    from the release in that window; donor ``c`` weighs its mean rate over the window's
    600 s windows (equal weights if every donor's rate is 0). Recipients are the clients
    without a ``dataset.json`` (every window), and clients with a dataset whose window
    is empty although their rate there is > 0 (none in release f891d11). A client with a
    dataset, an empty window and rate 0 over it keeps no PMF: it sends no request.
    All recipients of a window share its mixture.

    Returns
    -------
    length_source : ndarray of uint8, shape (C, D)
        ``SOURCE_RELEASE``, ``SOURCE_IMPUTED`` or ``SOURCE_NONE`` per client and window.
    mixture : (offsets, values, probs)
        ``D * F`` PMFs, ``k = d * F + f``: support is the union of the donors' supports.
        Empty for a window without donors or recipients.
    """
    n_c, n_d, n_f = raw.client_ids.size, raw.length_window_start.size, len(raw.fields)
    per = LENGTH_WINDOW_S // WINDOW_S
    padded = np.zeros((n_c, n_d * per))
    padded[:, : raw.rate.shape[1]] = raw.rate
    mean_rate = padded.reshape(n_c, n_d, per).mean(axis=2)
    has = np.asarray((np.diff(raw.pmf_offsets) > 0).reshape(n_c, n_d, n_f).all(axis=2))
    wanted = ~has & (~raw.has_dataset[:, None] | (mean_rate > 0))
    source = np.full((n_c, n_d), SOURCE_NONE, dtype=np.uint8)
    source[has] = SOURCE_RELEASE

    parts: list[tuple[np.ndarray, np.ndarray]] = []
    empty = np.empty(0)
    for d in range(n_d):
        donors = np.flatnonzero(has[:, d])
        if donors.size == 0 or not wanted[:, d].any():
            parts += [(empty, empty)] * n_f
            continue
        source[wanted[:, d], d] = SOURCE_IMPUTED
        w = mean_rate[donors, d]
        w = w / w.sum() if w.sum() > 0 else np.full(donors.size, 1.0 / donors.size)
        for f in range(n_f):
            off, v, p = take(raw.pmf_offsets, (donors * n_d + d) * n_f + f, raw.pmf_values, raw.pmf_probs)
            support, inv = np.unique(v, return_inverse=True)
            mix = np.bincount(inv, p * np.repeat(w, np.diff(off)), minlength=support.size)
            parts.append((support, mix / mix.sum()))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([v.size for v, _ in parts], out=offsets[1:])
    values = np.concatenate([v for v, _ in parts])
    probs = np.concatenate([p for _, p in parts])
    return source, (offsets, values, probs)


def field_table(
    raw: RawPool,
    source: NDArray[np.uint8],
    mixture: tuple[np.ndarray, np.ndarray, np.ndarray],
    field: str,
) -> tuple[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]], NDArray[np.int64]]:
    """The exact PMFs of one field, each distinct source once, and who uses which.

    Returns
    -------
    table : (offsets, values, probs)
        ``C * D + D`` PMFs: row ``c * D + d`` is the release PMF of client ``c`` in window
        ``d`` (empty unless ``source[c, d]`` is ``SOURCE_RELEASE``), row ``C * D + d`` is
        the mixture of window ``d``.
    row : ndarray of int64, shape (C, D)
        Row of ``table`` holding each (client, window)'s PMF; -1 for ``SOURCE_NONE``.
    """
    n_c, n_d, n_f = raw.client_ids.size, raw.length_window_start.size, len(raw.fields)
    f = raw.fields.index(field)
    k_release = np.arange(n_c * n_d) * n_f + f
    k_mix = np.arange(n_d) * n_f + f
    ro, rv, rp = take(raw.pmf_offsets, k_release, raw.pmf_values, raw.pmf_probs)
    mo, mv, mp = take(mixture[0], k_mix, *mixture[1:])
    offsets = np.concatenate((ro, ro[-1] + mo[1:]))
    table = (offsets, np.concatenate((rv, mv)), np.concatenate((rp, mp)))
    row = np.arange(n_c * n_d, dtype=np.int64).reshape(n_c, n_d)
    row = np.where(source == SOURCE_IMPUTED, n_c * n_d + np.arange(n_d), row)
    row[source == SOURCE_NONE] = -1
    return table, row


def compact(
    offsets: NDArray[np.int64], values: NDArray[np.float64], probs: NDArray[np.float64], *, integer: bool
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Merge adjacent support points of every PMF into few bins.

    A new bin starts at a point when any of these holds (see ``BIN_MASS`` and
    ``BIN_REL_WIDTH`` for what they guarantee): it starts a PMF; its geometric cell
    ``floor(log(v) / log(1 + BIN_REL_WIDTH))`` differs from the previous point's; its
    CDF-before crosses into another multiple of ``BIN_MASS``; it or the previous point
    weighs ``>= BIN_MASS / 2``. Zero-probability points are dropped first.

    A bin keeps its total mass and is represented by its probability-weighted mean,
    rounded to an integer for ``integer`` fields, or else the bin's support point
    nearest to that mean (so float values stay on the release's grid). Both lie within
    the bin's [min, max], so quantiles move by less than ``BIN_REL_WIDTH``.
    """
    keep = probs > 0
    n = offsets.size - 1
    seg = segment_ids(offsets)[keep]
    v, p = values[keep], probs[keep]
    kept = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(seg, minlength=n), out=kept[1:])
    total = np.bincount(seg, p, minlength=n)
    p = p / total[seg]
    cdf_before = segment_cumsum(kept, p) - p
    seg_start = np.zeros(seg.size, dtype=bool)
    seg_start[kept[:-1][np.diff(kept) > 0]] = True
    with np.errstate(divide="ignore"):
        cell = np.where(v > 0, np.floor(np.log(v) / np.log1p(BIN_REL_WIDTH)), -np.inf)
    mass_cell = np.floor(cdf_before / BIN_MASS)
    big = p >= BIN_MASS / 2
    start = seg_start.copy()
    start[1:] |= (cell[1:] != cell[:-1]) | (mass_cell[1:] != mass_cell[:-1]) | big[1:] | big[:-1]
    b = np.cumsum(start) - 1
    mass: NDArray[np.float64] = np.bincount(b, p)  # type: ignore[assignment]  # weighted: float64
    mean = np.bincount(b, p * v) / mass
    if integer:
        rep = np.rint(mean)
    else:
        # nearest support point: sort points by (bin, distance) and keep each bin's first
        order = np.lexsort((np.abs(v - mean[b]), b))
        first = np.ones(order.size, dtype=bool)
        first[1:] = b[order][1:] != b[order][:-1]
        rep = v[order][first]
    bin_seg = seg[start]
    new = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(bin_seg, minlength=n), out=new[1:])
    return new, rep, mass


def scale_bits(offsets: NDArray[np.int64], values: np.ndarray, probs: np.ndarray) -> NDArray[np.uint8]:
    """Bits ``b`` of the probability scale ``2**b`` to use for every PMF.

    Rounding the CDF to multiples of ``1 / 2**b`` moves the mean by at most
    ``0.5 / 2**b * (max - min)``. A PMF with a tiny mass far out in the tail (e.g. 1e-5 at
    8192 tokens next to 1 at 1 token) needs many bits, a typical one does not: ``b`` is
    the smallest in [MIN_SCALE_BITS, 31] keeping that bound under 0.2 % of the mean.
    """
    lens = np.diff(offsets)
    ok = lens > 0
    lo = np.zeros(lens.size)
    hi = np.zeros(lens.size)
    lo[ok] = np.minimum.reduceat(values, offsets[:-1][ok])
    hi[ok] = np.maximum.reduceat(values, offsets[:-1][ok])
    mean, _ = stats(offsets, values, probs, quantiles=())
    with np.errstate(invalid="ignore", divide="ignore"):
        need = np.where(ok & (mean > 0), 250.0 * (hi - lo) / mean, 1.0)
    bits = np.ceil(np.log2(np.maximum(need, 1.0)))
    return np.clip(bits, MIN_SCALE_BITS, 31).astype(np.uint8)


def quantize(
    offsets: NDArray[np.int64], probs: NDArray[np.float64], bits: NDArray[np.uint8]
) -> NDArray[np.uint32]:
    """Integer counts summing to ``2**bits[k]`` in every non-empty PMF ``k``.

    The CDF is rounded (not each probability), so the quantised CDF is within
    ``0.5 / 2**bits`` of the exact one everywhere and errors do not accumulate. Then, for
    each of ``QUANTILE_LEVELS``, a CDF that reaches the level keeps reaching it and one
    that does not keeps not reaching it: those quantiles land in the same bin as with
    exact probabilities. Points may get a count of 0 (mass below ~1/scale).
    """
    lens = np.diff(offsets)
    seg = segment_ids(offsets)
    scale = np.ldexp(1.0, bits.astype(np.int64))[seg]
    total = np.bincount(seg, probs, minlength=lens.size)
    cdf = segment_cumsum(offsets, probs) / total[seg]
    q = np.rint(cdf * scale)
    for level in QUANTILE_LEVELS:
        c = np.ceil((level - QUANTILE_ATOL) * scale)
        q = np.where(cdf >= level - QUANTILE_ATOL, np.maximum(q, c), np.minimum(q, c - 1))
    q[offsets[1:][lens > 0] - 1] = scale[offsets[1:][lens > 0] - 1]
    q = q.astype(np.int64)
    counts = np.diff(q, prepend=0)
    counts[offsets[:-1][lens > 0]] = q[offsets[:-1][lens > 0]]
    return counts.astype(np.uint32)


def fidelity(
    exact: tuple[np.ndarray, np.ndarray, np.ndarray], approx: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[str, NDArray[np.float64]]:
    """Distances between PMF ``k`` of two aligned tables, NaN where either is empty.

    Returns a dict of arrays of shape (K,): ``ks`` (KS distance), and ``mean``, ``p50``,
    ``p99``: ``|approx - exact| / |exact|`` of those statistics (0 when equal, so an exact
    0 is only matched by 0).
    """
    me, qe = stats(*exact)
    ma, qa = stats(*approx)
    out = {"ks": ks_distance(exact, approx)}
    for key, e, a in (("mean", me, ma), ("p50", qe[:, 0], qa[:, 0]), ("p99", qe[:, 1], qa[:, 1])):
        with np.errstate(invalid="ignore", divide="ignore"):
            out[key] = np.where(a == e, 0.0, np.abs(a - e) / np.abs(e))
        out[key][np.isnan(e) | np.isnan(a)] = np.nan
    return out
