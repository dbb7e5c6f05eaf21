"""The per-window dispersion of counts that the burst fit checks models against."""

from __future__ import annotations

import numpy as np
import pytest

from servegen import burst_fit


def _reference(t, seg, starts, widths, nseg, scale):
    """Per segment, with numpy.histogram over its full bins: the textbook definition."""
    disp, ss, dof = (np.full(nseg, np.nan), np.zeros(nseg), np.zeros(nseg))
    for s in range(nseg):
        nb = int(np.floor(widths[s] / scale + 1e-9))
        if nb < 1:
            continue
        cnt, _ = np.histogram(t[seg == s] - starts[s], bins=nb, range=(0, nb * scale))
        cnt = cnt.astype(np.float64)
        if cnt.sum() == 0:
            continue
        mean = cnt.mean()
        ss[s] = ((cnt - mean) ** 2).sum()
        dof[s] = (nb - 1) * mean
        if nb >= 2:
            disp[s] = ss[s] / (nb - 1) / mean
    return disp, ss, dof


@pytest.mark.parametrize("per_segment", [3, 2000])  # sparse (few requests per bin) and dense
def test_dispersion_equals_the_histogram_definition(per_segment):
    rng = np.random.default_rng(0)
    starts = np.array([0.0, 600.0, 1200.0, 1800.0, 0.0, 600.0, 1200.0, 1800.0])
    widths = np.array([600.0, 600.0, 600.0, 250.0, 600.0, 600.0, 600.0, 0.5])  # last: no full bin
    nseg = starts.size
    seg = np.repeat(np.arange(nseg), per_segment)
    seg = seg[seg != 2]  # one silent segment
    t = starts[seg] + rng.uniform(0, 1, seg.size) ** 3 * widths[seg]  # clustered near the start
    for scale in (1.0, 10.0, 60.0):
        got = burst_fit._dispersion(t, seg, starts, widths, nseg, scale)
        want = _reference(t, seg, starts, widths, nseg, scale)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, equal_nan=True)
