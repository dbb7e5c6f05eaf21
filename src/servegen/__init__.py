"""servegen: realistic LLM-serving workloads, generated per client and composed.

>>> import servegen as sg
>>> wl = sg.Workload([sg.Client(arrival=sg.Gamma(rate=2, cv=3), input_tokens=sg.LogNormal(mu=6, sigma=1),
...                             output_tokens=sg.Exponential(mean=200))])
>>> len(wl.sample(3600, rng=0)) > 0
True
"""

import importlib as _importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._version import __version__

# Names are imported on first use (PEP 562), so `import servegen` and `servegen --version`
# stay light: scipy, pandas and pyarrow load only when a name that needs them is used.
_LAZY = {
    "ArrivalProcess": ".arrivals",
    "ArrivalSchedule": ".arrivals",
    "Client": ".client",
    "Clipped": ".distributions",
    "Comparison": ".comparison",
    "Constant": ".distributions",
    "Deterministic": ".arrivals",
    "Distribution": ".distributions",
    "Empirical": ".distributions",
    "Exponential": ".distributions",
    "FittedWorkload": ".fit",
    "Gamma": ".arrivals",
    "Hyperexponential": ".bursts",
    "LogNormal": ".distributions",
    "Mixture": ".distributions",
    "Modality": ".attributes",
    "Multimodal": ".attributes",
    "OnOff": ".arrivals",
    "OnOffRenewal": ".bursts",
    "Pareto": ".distributions",
    "Piecewise": ".piecewise",
    "Poisson": ".arrivals",
    "Pool": ".pools",
    "Ragged": ".requests",
    "RankCorrelation": ".attributes",
    "Reasoning": ".attributes",
    "Replay": ".arrivals",
    "Requests": ".requests",
    "STREAM_WINDOW": ".workload",
    "SeedLike": "._rng",
    "Session": ".sessions",
    "SharedPrefix": ".sessions",
    "Uniform": ".distributions",
    "Weibull": ".arrivals",
    "Workload": ".workload",
    "Zipf": ".distributions",
    "characterize": ".fit",
    "compare": ".comparison",
    "fit": ".fit",
    "fit_lengths": ".fit",
    "fit_sessions": ".session_fit",
    "list_pools": ".pools",
    "load_pool": ".pools",
    "merge": ".engine.merge",
    "parse_model": "._base",
    "read_parquet": ".requests",
    "read_release": ".pools",
    "read_results": ".results",
    "read_trace": ".formats",
    "replay_command": ".replay",
    "slo_table": ".results",
}

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
    "SeedLike",
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


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'servegen' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """The package object: ``servegen.fit`` is both a submodule and the function ``fit``.

    Importing the submodule sets the package attribute ``fit`` to the module (the import
    system does it after ``__getattr__`` above has run), which would hide the function;
    the public name is the function, as eager imports made it.
    """

    def __getattribute__(self, name: str) -> _Any:
        value = super().__getattribute__(name)
        if name == "fit" and isinstance(value, _types.ModuleType):
            return value.fit
        return value


_sys.modules[__name__].__class__ = _Package


if _TYPE_CHECKING:  # the real imports, for type checkers and IDEs
    from ._base import parse_model
    from ._rng import SeedLike
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
    from .comparison import Comparison, compare
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
    from .engine.merge import merge
    from .fit import FittedWorkload, characterize, fit, fit_lengths
    from .formats import read_trace
    from .piecewise import Piecewise
    from .pools import Pool, list_pools, load_pool, read_release
    from .replay import replay_command
    from .requests import Ragged, Requests, read_parquet
    from .results import read_results, slo_table
    from .session_fit import fit_sessions
    from .sessions import Session, SharedPrefix
    from .workload import STREAM_WINDOW, Workload
