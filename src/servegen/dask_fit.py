"""Out-of-core :func:`~servegen.characterize` and :func:`~servegen.fit` on Dask.

A trace too large for one process — a Dask DataFrame, or the path of a Parquet dataset
(a directory of files, hive-partitioned or not) — is measured with the same code as an
in-memory trace: the rows are shuffled by client (every request of a client lands in one
partition, so no window and no gap is cut by a partition edge), and each partition is
characterized or fitted by the in-memory functions. The few statistics that span
clients are computed over the whole dataset first and handed to every partition:

* the observed span (last timestamp plus one mean gap), so every partition cuts the
  same windows;
* the logging clock (:func:`~servegen.metrics.clock_resolution`): when no two
  timestamps are equal (the usual case for logs with sub-millisecond clocks) it is
  "no clock", from an exact distributed count of distinct timestamps; with ties the
  timestamp column alone (8 bytes a request) is read to detect the clock.
  De-quantizing (spreading requests inside clock ticks with one random stream over the
  whole trace) is not done out of core: de-quantize the dataset first, or pass
  ``dequantize=False``;
* whether the rows were in time order (``attrs["resorted"]``).

So counts, histograms and length statistics equal the in-memory result exactly and law
parameters agree to ~1e-9 (each window's Newton iteration stops on its own tolerance;
the last digits of finite-difference steps depend on how numpy vectorizes a batch).
Parametric length fits (``lengths="parametric"``) are the exception: their EM starts
come from one generator shared by the clients of a partition, so they equal the
in-memory fit only in distribution. Conversations (``fit``'s ``sessions``) are not
fitted out of core: a dataset with ``hash_ids``/``session``/``parent`` columns needs
``sessions=False``.

One client's requests must fit in a worker's memory; the trace as a whole need not.
The functions run on the current Dask scheduler: create a ``distributed.Client``
first to use a cluster. This module imports Dask only when called: ``import servegen``
does not need it (``pip install "servegen[dask]"``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .metrics import Quantization, Trace, as_trace, clock_resolution

__all__ = ["is_dask_input", "run"]


def is_dask_input(trace: Any) -> bool:
    """True for a Dask DataFrame or a path (``str``/``PathLike``) to a Parquet dataset.

    Checked without importing Dask: a Dask collection's class lives in a ``dask`` module.

    >>> import pandas as pd
    >>> is_dask_input(pd.DataFrame()), is_dask_input("logs/")
    (False, True)
    """
    if isinstance(trace, (str, os.PathLike)):
        return True
    return type(trace).__module__.split(".")[0] in ("dask", "dask_expr")


class _PartitionTrace(Trace):
    """A partition's trace carrying the whole dataset's span and clock."""

    clock: Quantization

    def dequantize(self, mode: bool | None, rng: np.random.Generator) -> None:
        if mode not in (None, True, False):
            raise TypeError(f"`dequantize` must be None (auto), True or False, got {mode!r}")
        self.quantization = self.clock  # the whole trace's clock, not this partition's


def _needs_spread(q: Quantization, mode: Any) -> bool:
    """Whether the in-memory code would de-quantize (the rule of ``Trace.dequantize``)."""
    return not (mode is False or q.resolution <= 0 or (mode is None and not q.quantized))


def _load(trace: Any, columns: list[str]) -> Any:
    import dask.dataframe as dd

    if isinstance(trace, (str, os.PathLike)):
        path = os.fspath(trace)
        if not os.path.exists(path):
            raise ValueError(f"trace: no Parquet dataset at {path!r}")
        trace = dd.read_parquet(path)  # columns are projected lazily below
    missing = [c for c in columns if c not in trace.columns]
    if missing:
        raise ValueError(f"trace: missing column(s) {missing!r}; columns: {list(trace.columns)!r}")
    return trace[columns]


def _edges(part: pd.DataFrame) -> pd.DataFrame:
    t = part["timestamp"].to_numpy(dtype=np.float64)
    ok = t.size == 0 or bool((np.diff(t) >= 0).all())
    lo, hi = (float(t[0]), float(t[-1])) if t.size else (np.nan, np.nan)
    return pd.DataFrame({"n": [t.size], "first": [lo], "last": [hi], "max": [t.max(initial=-np.inf)],
                         "sorted": [ok]})  # fmt: skip


def _global(ddf: Any, mode: Any) -> tuple[float, Quantization, bool, int]:
    """Span, clock, 'resorted' and request count of the whole dataset."""
    import dask

    edges, distinct = dask.compute(
        ddf.map_partitions(_edges, meta=_edges(pd.DataFrame({"timestamp": np.zeros(0)}))),
        ddf["timestamp"].drop_duplicates(split_out=max(1, ddf.npartitions // 4)).size,
    )
    edges = edges[edges["n"] > 0]
    n = int(edges["n"].sum())
    if n == 0:
        raise ValueError("trace is empty (0 requests)")
    last = float(edges["max"].max())
    span = last + last / (n - 1) if n > 1 else last  # Trace.span without a recorded duration
    ordered = bool(
        edges["sorted"].all() and (edges["first"].to_numpy()[1:] >= edges["last"].to_numpy()[:-1]).all()
    )
    if int(distinct) == n:
        q = Quantization(0.0, 0.0, False, "none")  # clock_resolution's answer without ties
    else:
        q = clock_resolution(ddf["timestamp"].compute().to_numpy(dtype=np.float64))
    if _needs_spread(q, mode):
        raise ValueError(
            f"trace: timestamps are logged on a {q.resolution!r} s clock ({q.tie_fraction:.0%} ties), and "
            "de-quantizing is not done out of core: de-quantize the dataset first "
            "(servegen.metrics.dequantize) or pass `dequantize=False`"
        )
    return span, q, not ordered, n


def _one(
    part: pd.DataFrame, func: Callable[..., Any], kw: dict[str, Any], span: float, q: Quantization | None
) -> Any:
    """Run ``func`` (characterize or fit) on one partition: whole clients, the global span/clock."""
    if len(part) == 0:
        return None
    tr = as_trace(part, client=kw.get("client"), by=kw.get("by"))
    pt = _PartitionTrace(**{f.name: getattr(tr, f.name) for f in dataclasses.fields(tr)})
    pt.duration, pt.clock = span, q
    return func(pt, **kw)


def _check_no_sessions(trace: Any, sessions: Any) -> None:
    """Conversations are not fitted out of core: say so instead of fitting them differently."""
    from .session_fit import SESSION_COLUMNS

    if sessions is True:
        raise ValueError("fit(sessions=True) is not available on a Dask trace: fit conversations in memory")
    if sessions is not None:
        raise TypeError(f"fit: `sessions` must be None, True or False, got {sessions!r}")
    found = [c for c in SESSION_COLUMNS if c in trace.columns] if hasattr(trace, "columns") else []
    if isinstance(trace, (str, os.PathLike)):
        import dask.dataframe as dd

        found = [c for c in SESSION_COLUMNS if c in dd.read_parquet(os.fspath(trace)).columns]
    if found:
        raise ValueError(
            f"fit: the Dask trace has conversation columns {found!r}, whose sessions are not fitted "
            "out of core: pass `sessions=False` to fit every request as an arrival, or fit in memory"
        )


def _order(keys: list[Hashable], multi: bool) -> list[Hashable]:
    """Client keys in the in-memory order (``pd.factorize(sort=True)``)."""
    if multi:
        return sorted(keys, key=lambda k: tuple(str(k).split("|")))
    return sorted(keys)


def run(func: Callable[..., Any], args: Mapping[str, Any]) -> Any:
    """Run ``characterize``/``fit`` (``func``) out of core; ``args`` are its arguments.

    The hook at the top of :func:`servegen.characterize` and :func:`servegen.fit`
    calls this with its own ``locals()``; see the module docstring.
    """
    from .fit import FittedWorkload

    kw = dict(args)
    trace = kw.pop("trace")
    client, by = kw.get("client"), kw.get("by")
    cols = ([client] if client else []) + ([by] if isinstance(by, str) else list(by or []))
    ddf = _load(trace, ["timestamp", "input_tokens", "output_tokens", *cols])
    if func.__name__ == "fit" and kw.get("sessions") is not False:
        _check_no_sessions(trace, kw.get("sessions"))
    span, q, resorted, n = _global(ddf, kw.get("dequantize"))
    if cols:
        ddf = ddf.shuffle(on=cols if len(cols) > 1 else cols[0])
    else:
        ddf = ddf.repartition(npartitions=1)  # one client: it must fit in one worker
    import dask

    parts = [p for p in dask.compute(*[dask.delayed(_one)(d, func, kw, span, q) for d in ddf.to_delayed()])
             if p is not None]  # fmt: skip
    multi = len(cols) > 1
    if func.__name__ == "characterize":
        return _merge_tables(parts, multi, resorted)
    keyed = {k: (p, c) for p in parts for k, c in p.clients.items()}
    keys = _order(list(keyed), multi)
    report = _merge_tables([p.report for p in parts], multi, resorted)
    info = dict(parts[0].info)
    info.update(
        n_requests=n, poisson_windows=sum(p.info["poisson_windows"] for p in parts), resorted=resorted
    )
    for name in ("io_spearman", "dependence", "rate_shrink"):
        if name in info:
            merged = {k: v for p in parts for k, v in p.info[name].items()}
            info[name] = {k: merged[k] for k in keys}
    if "length_fits" in info:
        info["length_fits"] = {
            col: {k: v for p in parts for k, v in p.info["length_fits"][col].items()}
            for col in info["length_fits"]
        }
    return FittedWorkload({k: keyed[k][1] for k in keys}, report=report, info=info)


def _merge_tables(tables: list[pd.DataFrame], multi: bool, resorted: bool) -> pd.DataFrame:
    """Concatenate per-partition (client, window) tables in the in-memory row order."""
    attrs = dict(tables[0].attrs)
    table = pd.concat(tables, ignore_index=True)
    keys = _order(list(dict.fromkeys(table["client"])), multi)
    rank = {k: i for i, k in enumerate(keys)}
    order = np.lexsort((table["window"].to_numpy(), table["client"].map(rank).to_numpy()))
    out = table.iloc[order].reset_index(drop=True)
    out.attrs = {**attrs, "resorted": resorted}
    return out
