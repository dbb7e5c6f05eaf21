"""Vectorised operations on many discrete PMFs stored as one flat ragged table.

A table is ``(offsets, values, probs)``: PMF ``k`` is ``values[offsets[k]:offsets[k + 1]]``
with probabilities ``probs[...]``, values strictly increasing within a PMF. Every function
here works on all PMFs at once (no Python loop per PMF or per point), which is what makes
checking and compacting a whole pool take seconds.

Used by the profile loader (statistics), the profile build script (imputation,
compaction, quantisation) and the fidelity tests (KS distance, statistics).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from servegen._release import FLOAT_FIELDS, LENGTH_WINDOW_S, WINDOW_S, RawPool

__all__ = [
    "BIN_MASS",
    "BIN_REL_WIDTH",
    "PROB_SCALE",
    "QUANTILE_ATOL",
    "SOURCE_IMPUTED",
    "SOURCE_NONE",
    "SOURCE_RELEASE",
    "compact",
    "impute",
    "ks_distance",
    "quantize",
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
PROB_SCALE = 65535
"""Probabilities are stored as uint16 counts: the CDF rounded to multiples of 1/65535."""
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


def take(
    offsets: NDArray[np.int64], idx: NDArray[np.int64], *arrays: np.ndarray
) -> tuple[NDArray[np.int64], ...]:
    """Sub-table of the PMFs ``idx``: new offsets, then each of ``arrays`` gathered."""
    starts = offsets[idx]
    lens = offsets[idx + 1] - starts
    new = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(lens, out=new[1:])
    pos = np.repeat(starts - new[:-1], lens) + np.arange(new[-1])
    return (new, *(a[pos] for a in arrays))


def _segment_cumsum(offsets: NDArray[np.int64], x: np.ndarray) -> NDArray[np.float64]:
    """Cumulative sum restarting at every PMF (float64)."""
    c = np.cumsum(x, dtype=np.float64)
    before = np.concatenate(([0.0], c))[offsets[:-1]]
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
        cdf = _segment_cumsum(offsets, probs) / np.repeat(total, lens)
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
    gap = np.abs(_segment_cumsum(merged, diff))
    # Only compare after the last point of a run of equal values: in between, one
    # table's mass at that value has been added and the other's not yet.
    last = np.ones(seg.size, dtype=bool)
    last[:-1] = (seg[1:] != seg[:-1]) | (val[1:] != val[:-1])
    out = np.zeros(n)
    np.maximum.at(out, seg[last], gap[last])
    out[(ta == 0) | (tb == 0)] = np.nan
    return out


def impute(raw: RawPool) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]:
    """Fill the PMFs a client lacks with the rate-weighted mixture of the other clients.

    For each length window ``d`` and field, the donors are the clients whose PMF comes
    from the release in that window; donor ``c`` weighs its mean rate over the window's
    600 s windows (equal weights if every donor's rate is 0). Recipients are the clients
    without a ``dataset.json`` (every window), and clients with a dataset whose window
    is empty although their rate there is > 0 (none in release f891d11). A client with a
    dataset, an empty window and rate 0 over it keeps no PMF: it sends no request.

    Returns
    -------
    offsets, values, probs
        The completed table, same layout as ``raw.pmf_*`` (zero-probability points of
        the release are kept; mixture points are the union of the donors' supports).
    length_source : ndarray of uint8, shape (C, D)
        ``SOURCE_RELEASE``, ``SOURCE_IMPUTED`` or ``SOURCE_NONE`` per client and window.
    """
    n_c, n_d, n_f = raw.client_ids.size, raw.length_window_start.size, len(raw.fields)
    per = LENGTH_WINDOW_S // WINDOW_S
    padded = np.zeros((n_c, n_d * per))
    padded[:, : raw.rate.shape[1]] = raw.rate
    mean_rate = padded.reshape(n_c, n_d, per).mean(axis=2)
    has = (np.diff(raw.pmf_offsets) > 0).reshape(n_c, n_d, n_f).all(axis=2)
    source = np.where(has, SOURCE_RELEASE, SOURCE_NONE).astype(np.uint8)
    wanted = ~has & (~raw.has_dataset[:, None] | (mean_rate > 0))

    sizes = np.diff(raw.pmf_offsets).reshape(n_c, n_d, n_f).copy()
    fills: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for d in range(n_d):
        recipients = np.flatnonzero(wanted[:, d])
        donors = np.flatnonzero(has[:, d])
        if recipients.size == 0 or donors.size == 0:
            continue
        w = mean_rate[donors, d]
        w = w / w.sum() if w.sum() > 0 else np.full(donors.size, 1.0 / donors.size)
        for f in range(n_f):
            k = (donors * n_d + d) * n_f + f
            off, v, p = take(raw.pmf_offsets, k, raw.pmf_values, raw.pmf_probs)
            support, inv = np.unique(v, return_inverse=True)
            mix = np.bincount(inv, p * np.repeat(w, np.diff(off)), minlength=support.size)
            fills[d, f] = support, mix / mix.sum()
        for c in recipients:
            source[c, d] = SOURCE_IMPUTED
            sizes[c, d] = [fills[d, f][0].size for f in range(n_f)]

    offsets = np.zeros(sizes.size + 1, dtype=np.int64)
    np.cumsum(sizes.ravel(), out=offsets[1:])
    values = np.empty(offsets[-1])
    probs = np.empty(offsets[-1])
    old = raw.pmf_offsets
    keep = np.repeat(np.diff(old) > 0, np.diff(old))  # every release point is copied
    is_release = (source == SOURCE_RELEASE).repeat(n_f).reshape(-1)
    dest = np.repeat(offsets[:-1][is_release] - old[:-1][is_release], np.diff(old)[is_release])
    src_pos = np.flatnonzero(keep)
    values[src_pos + dest] = raw.pmf_values[src_pos]
    probs[src_pos + dest] = raw.pmf_probs[src_pos]
    for c, d in zip(*np.nonzero(source == SOURCE_IMPUTED)):
        for f in range(n_f):
            k = (c * n_d + d) * n_f + f
            values[offsets[k] : offsets[k + 1]], probs[offsets[k] : offsets[k + 1]] = fills[d, f]
    return offsets, values, probs, source


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
    cdf_before = _segment_cumsum(kept, p) - p
    seg_start = np.zeros(seg.size, dtype=bool)
    seg_start[kept[:-1][np.diff(kept) > 0]] = True
    with np.errstate(divide="ignore"):
        cell = np.where(v > 0, np.floor(np.log(v) / np.log1p(BIN_REL_WIDTH)), -np.inf)
    mass_cell = np.floor(cdf_before / BIN_MASS)
    big = p >= BIN_MASS / 2
    start = seg_start.copy()
    start[1:] |= (cell[1:] != cell[:-1]) | (mass_cell[1:] != mass_cell[:-1]) | big[1:] | big[:-1]
    b = np.cumsum(start) - 1
    mass = np.bincount(b, p)
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


def quantize(
    offsets: NDArray[np.int64], probs: NDArray[np.float64], scale: int = PROB_SCALE
) -> NDArray[np.int64]:
    """Integer counts summing to ``scale`` in every non-empty PMF.

    The CDF is rounded (not each probability), so the quantised CDF is within
    ``0.5 / scale`` of the exact one everywhere and errors do not accumulate. Then, for
    each of ``QUANTILE_LEVELS``, a CDF that reaches the level keeps reaching it and one
    that does not keeps not reaching it: those quantiles land in the same bin as with
    exact probabilities. Points may get a count of 0 (mass below ~1/scale).
    """
    seg = segment_ids(offsets)
    total = np.bincount(seg, probs, minlength=offsets.size - 1)
    cdf = _segment_cumsum(offsets, probs) / total[seg]
    q = np.rint(cdf * scale).astype(np.int64)
    for level in QUANTILE_LEVELS:
        c = int(np.ceil((level - QUANTILE_ATOL) * scale))
        reached = cdf >= level - QUANTILE_ATOL
        q = np.where(reached, np.maximum(q, c), np.minimum(q, c - 1))
    last = np.zeros(seg.size, dtype=bool)
    last[offsets[1:][np.diff(offsets) > 0] - 1] = True
    q[last] = scale
    prev = np.concatenate(([0], q[:-1]))
    first = np.zeros(seg.size, dtype=bool)
    first[offsets[:-1][np.diff(offsets) > 0]] = True
    prev[first] = 0
    return q - prev
