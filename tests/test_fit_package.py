"""servegen.fit is a package (arrival laws, lengths, orchestration); its public face is unchanged."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from servegen.fit import ARRIVAL_LAWS


@pytest.mark.slow
def test_public_names_unchanged_after_importing_the_submodules():
    code = (
        "import servegen as sg\n"
        "import servegen.fit.arrival_laws, servegen.fit.lengths, servegen.fit.orchestrate\n"
        "from servegen.fit import ARRIVAL_LAWS, LENGTH_LAWS, FittedWorkload, characterize, fit, fit_lengths\n"
        "assert sg.fit is fit and callable(sg.fit) and sg.characterize is characterize\n"
        "assert sg.FittedWorkload is FittedWorkload and sg.fit_lengths is fit_lengths\n"
        "assert ARRIVAL_LAWS == ('exponential', 'gamma', 'weibull', 'lognormal')\n"
        "assert LENGTH_LAWS == ('exponential', 'lognormal', 'pareto_lognormal')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_candidate_law_has_a_fit_and_a_cdf():
    laws = importlib.import_module("servegen.fit.arrival_laws")
    assert set(laws.LAW_FITTERS) == set(laws.LAW_CDFS) == set(ARRIVAL_LAWS)
    y, a, s = np.array([0.5, 1.0, 3.0]), np.full(3, 1.7), np.full(3, 0.8)
    scipy_cdf = {
        "exponential": stats.expon(scale=s).cdf(y),
        "gamma": stats.gamma(a, scale=s).cdf(y),
        "weibull": stats.weibull_min(a, scale=s).cdf(y),
        "lognormal": stats.lognorm(a, scale=s).cdf(y),
    }
    for law, expected in scipy_cdf.items():
        np.testing.assert_allclose(laws.LAW_CDFS[law](y, a, s), expected, rtol=1e-12)
