"""A drop-in for scripts written against the upstream ServeGen prototype.

Change the import and keep the script::

    from servegen import Category, ClientPool              # upstream
    from servegen.compat import Category, ClientPool       # servegen

Every upstream name is here (``servegen.compat``), and under the upstream module paths
(``servegen.compat.clientpool``, ``.construct``, ``.utils``, ``.workload_types``), so
``from servegen.construct import generate_workload`` becomes
``from servegen.compat.construct import generate_workload``. Pools load from the
profiles shipped with servegen, and generation runs on servegen's own samplers: same
structures, much faster, and the semantics documented in ``docs/migration.md`` (random
request counts, recorded CVs, independent fields, per-client streams).

>>> from servegen.compat import Category, ClientPool, generate_workload, get_constant_rate_fn
>>> view = ClientPool(Category.REASON, "deepseek-r1").span(0, 600)
>>> reqs = generate_workload(view, get_constant_rate_fn(view, 20.0), duration=600, seed=1)
>>> sorted(reqs[0].data)
['input_tokens', 'output_tokens', 'reason_ratio']
"""

from .clientpool import Client, ClientPool, ClientPoolView
from .construct import Request, generate_workload
from .utils import get_bounded_rate_fn, get_constant_rate_fn, get_scaled_rate_fn, sample_from_cdf
from .workload_types import ArrivalPat, Category, ClientWindow

__all__ = [
    "ArrivalPat",
    "Category",
    "Client",
    "ClientPool",
    "ClientPoolView",
    "ClientWindow",
    "Request",
    "generate_workload",
    "get_bounded_rate_fn",
    "get_constant_rate_fn",
    "get_scaled_rate_fn",
    "sample_from_cdf",
]
