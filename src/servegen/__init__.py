"""servegen: realistic LLM-serving workloads, generated per client and composed.

>>> import servegen as sg
>>> wl = sg.Workload([sg.Client(arrival=sg.Gamma(rate=2, cv=3), input_tokens=sg.LogNormal(mu=6, sigma=1),
...                             output_tokens=sg.Exponential(mean=200))])
>>> len(wl.sample(3600, rng=0)) > 0
True
"""

from ._base import parse_model
from .arrivals import (
    ArrivalProcess,
    ArrivalSchedule,
    Deterministic,
    Gamma,
    OnOff,
    Poisson,
    Replay,
    Weibull,
)
from .attributes import Modality, Multimodal, RankCorrelation, Reasoning
from .bursts import Hyperexponential, OnOffRenewal
from .client import Client
from .distributions import (
    Clipped,
    Constant,
    Distribution,
    Empirical,
    Exponential,
    LogNormal,
    Mixture,
    Pareto,
    Uniform,
    Zipf,
)
from .fit import FittedWorkload, characterize, fit, fit_lengths
from .formats import read_trace
from .metrics import Comparison, compare
from .piecewise import Piecewise
from .pools import Pool, list_pools, load_pool, read_release
from .replay import replay_command
from .requests import Ragged, Requests, merge, read_parquet
from .results import read_results, slo_table
from .session_fit import fit_sessions
from .sessions import Session, SharedPrefix
from .workload import STREAM_WINDOW, Workload

__version__ = "0.1.0"

__all__ = [
    "STREAM_WINDOW",
    "ArrivalProcess",
    "ArrivalSchedule",
    "Client",
    "Clipped",
    "Comparison",
    "Constant",
    "Deterministic",
    "Distribution",
    "Empirical",
    "Exponential",
    "FittedWorkload",
    "Gamma",
    "Hyperexponential",
    "LogNormal",
    "Mixture",
    "Modality",
    "Multimodal",
    "OnOff",
    "OnOffRenewal",
    "Pareto",
    "Piecewise",
    "Poisson",
    "Pool",
    "Ragged",
    "RankCorrelation",
    "Reasoning",
    "Replay",
    "Requests",
    "Session",
    "SharedPrefix",
    "Uniform",
    "Weibull",
    "Workload",
    "Zipf",
    "__version__",
    "characterize",
    "compare",
    "fit",
    "fit_lengths",
    "fit_sessions",
    "list_pools",
    "load_pool",
    "merge",
    "parse_model",
    "read_parquet",
    "read_release",
    "read_results",
    "read_trace",
    "replay_command",
    "slo_table",
]
