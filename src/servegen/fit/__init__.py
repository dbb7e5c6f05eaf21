"""Characterization: measure a recorded trace and fit client models that regenerate it.

:func:`characterize` cuts the trace into windows (per client) and reports, for each, the
request rate, the inter-arrival CV, the best inter-arrival law by maximum likelihood
with its parameters, AIC/BIC and a KS goodness of fit, and length statistics.
:func:`fit` turns the same measurements into a :class:`~servegen.Workload`: one
:class:`~servegen.ArrivalSchedule` per client (per window: recorded rate, measured CV,
chosen law; rates refined inside windows where counts demand it) and length models
(compact empirical by default, parametric on request), plus the input/output rank
correlation.

How the fitting works, and why
------------------------------
* **Clock quantization.** Traces logged on a coarse clock (Mooncake's conversation
  trace logs a batch about every 3 s, so ~90 % of gaps are exactly 0) would read as
  extreme burstiness. The clock is detected (:func:`servegen.metrics.clock_resolution`)
  and, when ties are common, every request is spread uniformly inside its tick with a
  seeded generator before any gap statistic (:func:`servegen.metrics.dequantize`). The
  report says so (``attrs["quantization"]``, column ``dequantized``, ``info``).
* **Maximum likelihood for every window at once.** Exponential and log-normal fits are
  closed form; Gamma solves ``log k - digamma(k) = log(mean) - mean(log x)`` by Newton
  from Minka's closed-form start; Weibull runs Newton on the shape of its profile
  likelihood from the start given by the measured CV. All windows of all clients
  iterate together with ``np.bincount`` sums over the gaps, so a 10-million-request
  trace fits in about 10 s on one core, with no subsampling. (Calling
  ``scipy.stats.gamma.fit``/``weibull_min.fit`` per window gives the same estimates —
  the tests check it — but costs milliseconds per window, minutes for a pool.)
* **Censored gaps.** Gaps shorter than the clock resolution (ties of a clock that was
  not de-quantized, or gaps below float64 rounding, which a Gamma law with CV 3 produces
  for ~5 % of its gaps) enter the likelihood as left-censored, not as their recorded
  value 0; for those windows the Gamma and log-normal fits run a damped Newton on the
  censored likelihood. The CV is the plain sample CV of all gaps.
* **Few requests.** A window with fewer than ``min_requests`` requests (default 10) gets
  no law in the report and a Poisson piece at its measured rate in the fitted model.
* **Gaps** are taken between consecutive requests of one client inside one window; a
  gap that crosses a window edge is not counted.
* **Rates inside windows** (``fit(rate_window=...)``, default a tenth of the window):
  counts per sub-window minus the noise a renewal process would add by itself; traffic
  that clusters over tens of seconds keeps its dispersion of counts, traffic that does
  not keeps one rate per window.

The stages live in submodules: :mod:`servegen.fit.arrival_laws` (per-window
inter-arrival law estimation: MLEs, censoring, AIC/BIC, KS), :mod:`servegen.fit.lengths`
(length statistics, compact empirical PMFs, parametric laws) and
:mod:`servegen.fit.orchestrate` (:func:`characterize`, :func:`fit`,
:class:`FittedWorkload`). Bursts come from :mod:`servegen.burst_fit`, conversations from
:mod:`servegen.session_fit`; out-of-core inputs (a Dask DataFrame, a Parquet dataset) go
through :mod:`servegen.fit.out_of_core`.

>>> import servegen as sg
>>> from servegen.fit import characterize, fit
>>> true = sg.Client(arrival=sg.Gamma(rate=5, cv=2), input_tokens=sg.LogNormal(mu=6, sigma=1),
...                  output_tokens=sg.Exponential(mean=200))
>>> trace = true.sample(1800, rng=0).to_pandas()
>>> report = characterize(trace, window=600)
>>> report["law"].tolist(), bool(report["iat_cv"].between(1.8, 2.2).all())
(['gamma', 'gamma', 'gamma'], True)
>>> wl = fit(trace, window=600)
>>> len(wl.sample(1800, rng=1)) > 8000
True
"""

from __future__ import annotations

from .common import ARRIVAL_LAWS, CV_RANGE, LENGTH_LAWS, SCHEDULE_FIT_LAWS
from .lengths import fit_lengths
from .orchestrate import RHO_SIGMAS, FittedWorkload, characterize, fit

__all__ = [
    "ARRIVAL_LAWS",
    "CV_RANGE",
    "LENGTH_LAWS",
    "RHO_SIGMAS",
    "SCHEDULE_FIT_LAWS",
    "FittedWorkload",
    "characterize",
    "fit",
    "fit_lengths",
]
