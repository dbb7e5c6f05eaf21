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
in-memory fit only in distribution.

Conversations (``fit``'s ``sessions``: a ``hash_ids``, ``session`` or ``parent``
column) are fitted as in memory (``session_fit.fit_conversations``): one
pass finds the request count, first and last timestamp and (with ``hash_ids`` and no
``block_size``) the block size; each row gets its position in the dataset, which
``parent`` values refer to; after the shuffle by client each partition links its
clients' turns and fits their session models with the in-memory code; the whole
stream is fitted as above; last, each client's schedule of session starts is derived
from its whole-stream schedule on the workers (one seed per client, drawn in client
order from ``rng`` as in memory). A Dask DataFrame built
with ``dd.from_pandas`` turns ``hash_ids`` arrays into text unless Dask's
``dataframe.convert-string`` is off; that is an error, Parquet datasets keep lists.

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
from numpy.typing import NDArray

from ..clock import Quantization, clock_resolution
from ..trace import Trace, as_trace

__all__ = ["PARTITION_ROWS", "is_dask_input", "run"]

#: Rows per partition after the shuffle by client, at most (the trace's own partitions
#: are kept when there are more): a worker fits one partition's clients at a time, about
#: 100 bytes a request on top of the data.
PARTITION_ROWS = 1_000_000


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


def _open(trace: Any) -> Any:
    import dask.dataframe as dd

    if isinstance(trace, (str, os.PathLike)):
        path = os.fspath(trace)
        if not os.path.exists(path):
            raise ValueError(f"trace: no Parquet dataset at {path!r}")
        # a partition per row group (about a million rows in files written by pyarrow),
        # not per file: a worker's memory holds a few partitions while it shuffles them
        trace = dd.read_parquet(path, split_row_groups=True)  # columns are projected lazily
    return trace


def _load(trace: Any, columns: list[str]) -> Any:
    trace = _open(trace)
    missing = [c for c in columns if c not in trace.columns]
    if missing:
        raise ValueError(f"trace: missing column(s) {missing!r}; columns: {list(trace.columns)!r}")
    return trace[columns]


def _edges(part: pd.DataFrame) -> pd.DataFrame:
    """One partition's request count, time range, order and whether two of its timestamps tie."""
    t = part["timestamp"].to_numpy(dtype=np.float64)
    ok = t.size == 0 or bool((np.diff(t) >= 0).all())
    lo, hi = (float(t[0]), float(t[-1])) if t.size else (np.nan, np.nan)
    ties = bool((np.diff(t if ok else np.sort(t)) == 0).any())
    return pd.DataFrame({"n": [t.size], "first": [lo], "last": [hi], "min": [t.min(initial=np.inf)],
                         "max": [t.max(initial=-np.inf)], "sorted": [ok], "ties": [ties]})  # fmt: skip


def _any_ties(ddf: Any, edges: pd.DataFrame) -> bool:
    """Whether two timestamps of the dataset are equal.

    Inside a partition ``_edges`` saw it; between partitions whose time ranges do not
    overlap (log files in time order) none can tie; only when ranges overlap are the
    distinct timestamps counted, which shuffles the timestamp column.
    """
    if edges["ties"].any():
        return True
    lo, hi = edges["min"].to_numpy(), edges["max"].to_numpy()
    order = np.argsort(lo, kind="stable")
    if bool((lo[order][1:] > hi[order][:-1]).all()):
        return False
    distinct = ddf["timestamp"].drop_duplicates(split_out=max(1, ddf.npartitions // 4)).size.compute()
    return int(distinct) < int(edges["n"].sum())


def _timestamps(ddf: Any, batch: int = 4) -> NDArray[np.float64]:
    """Every timestamp, gathered a few partitions at a time into this process: a plain
    ``compute()`` first joins the partitions on one worker, and gathering all at once
    leaves all of them waiting in the workers' memory."""
    import dask

    parts = ddf["timestamp"].to_delayed()
    out = []
    for i in range(0, len(parts), batch):
        out += [np.asarray(p, dtype=np.float64) for p in dask.compute(*parts[i : i + batch])]
    return np.concatenate(out)


def _global(ddf: Any, mode: Any) -> tuple[float, Quantization, bool, int]:
    """Span, clock, 'resorted' and request count of the whole dataset."""
    ddf = ddf[["timestamp"]]  # read that column alone
    edges = ddf.map_partitions(_edges, meta=_edges(pd.DataFrame({"timestamp": np.zeros(0)}))).compute()
    edges = edges[edges["n"] > 0]
    n = int(edges["n"].sum())
    if n == 0:
        raise ValueError("trace is empty (0 requests)")
    last = float(edges["max"].max())
    span = last + last / (n - 1) if n > 1 else last  # Trace.span without a recorded duration
    ordered = bool(
        edges["sorted"].all() and (edges["first"].to_numpy()[1:] >= edges["last"].to_numpy()[:-1]).all()
    )
    if not _any_ties(ddf, edges):
        q = Quantization(0.0, 0.0, False, "none")  # clock_resolution's answer without ties
    else:
        q = clock_resolution(_timestamps(ddf))
    if _needs_spread(q, mode):
        raise ValueError(
            f"trace: timestamps are logged on a {q.resolution!r} s clock ({q.tie_fraction:.0%} ties), and "
            "de-quantizing is not done out of core: de-quantize the dataset first "
            "(servegen.metrics.dequantize) or pass `dequantize=False`"
        )
    return span, q, not ordered, n


def _by_client_partitions(ddf: Any, cols: list[str], n: int) -> Any:
    """``ddf`` shuffled so that each client's rows are in one partition of about
    :data:`PARTITION_ROWS` rows (a worker fits a partition's clients in memory)."""
    if not cols:
        return ddf.repartition(npartitions=1)  # one client: it must fit in one worker
    parts = max(ddf.npartitions, -(-n // PARTITION_ROWS))
    return ddf.shuffle(on=cols if len(cols) > 1 else cols[0], npartitions=parts)


def _one(
    part: pd.DataFrame, func: Callable[..., Any], kw: dict[str, Any], span: float, q: Quantization
) -> Any:
    """Run ``func`` (characterize or fit) on one partition: whole clients, the global span/clock."""
    if len(part) == 0:
        return None
    tr = as_trace(part, client=kw.get("client"), by=kw.get("by"))
    pt = _PartitionTrace(**{f.name: getattr(tr, f.name) for f in dataclasses.fields(tr)})
    pt.duration, pt.clock = span, q
    return func(pt, **kw)


def _order(keys: list[Any], multi: bool) -> list[Any]:
    """Client keys in the in-memory order (``pd.factorize(sort=True)``)."""
    if multi:
        return sorted(keys, key=lambda k: tuple(str(k).split("|")))
    return sorted(keys)


def run(func: Callable[..., Any], args: Mapping[str, Any]) -> Any:
    """Run ``characterize``/``fit`` (``func``) out of core; ``args`` are its arguments.

    The hook at the top of :func:`servegen.characterize` and :func:`servegen.fit`
    calls this with its own ``locals()``; see the module docstring.
    """
    kw = dict(args)
    trace = kw.pop("trace")
    client, by = kw.get("client"), kw.get("by")
    cols = ([client] if client else []) + ([by] if isinstance(by, str) else list(by or []))
    base = ["timestamp", "input_tokens", "output_tokens", *cols]
    if "sessions" in kw and kw["sessions"] is not False:  # fit (characterize has no sessions)
        if (conv := _conversations(trace, func, kw, base, cols)) is not None:
            return conv
    ddf = _load(trace, base)
    span, q, resorted, n = _global(ddf, kw.get("dequantize"))
    ddf = _by_client_partitions(ddf, cols, n)
    return _by_client(ddf, func, kw, multi=len(cols) > 1, span=span, clock=q, resorted=resorted, n=n)


def _by_client(
    ddf: Any, func: Callable[..., Any], kw: dict[str, Any], *, multi: bool, span: float, clock: Quantization,
    resorted: bool, n: int,
) -> Any:  # fmt: skip
    """``func`` on each partition of ``ddf`` (whole clients), the results merged in client order."""
    import dask

    tasks = [dask.delayed(_one)(d, func, kw, span, clock) for d in ddf.to_delayed()]
    parts = [p for p in dask.compute(*tasks) if p is not None]
    if isinstance(parts[0], pd.DataFrame):  # characterize's table
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
    return type(parts[0])({k: keyed[k][1] for k in keys}, report=report, info=info)  # fit's FittedWorkload


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


# Conversations: fit's ``sessions`` path (session_fit.fit_conversations) out of core.
# Trace-wide values come from one pass (request count, last timestamp, the largest
# ``parent`` row, block-size agreement counts); the rows get their position in the
# dataset (``_row``, what ``parent`` values refer to); after the shuffle by client each
# partition links its clients' turns with the in-memory code; the whole stream is fitted
# (``_by_client``); each client's schedule of session starts is derived on the workers.

_BLOCK_SIZES = 2 ** np.arange(13)  # session_fit.infer_block_size's candidates


def _conv_stats(part: pd.DataFrame, blocks: bool) -> pd.DataFrame:
    t = part["timestamp"].to_numpy(dtype=np.float64)
    row: dict[str, Any] = {"n": t.size, "t0": t.min(initial=np.inf), "t1": t.max(initial=-np.inf)}
    row["pmax"] = int(part["parent"].max()) if "parent" in part.columns and len(part) else -1
    if blocks:  # requests whose hash_ids count blocks of each candidate size
        lengths = np.array([len(h) for h in part["hash_ids"]], dtype=np.int64)
        inp = part["input_tokens"].to_numpy(dtype=np.int64)
        row.update({f"m{bs}": int((-(-inp // bs) == lengths).sum()) for bs in _BLOCK_SIZES})
    return pd.DataFrame({k: [v] for k, v in row.items()})


def _with_rows(part: pd.DataFrame, offsets: list[int], partition_info: Any = None) -> pd.DataFrame:
    """``part`` with each row's position in the dataset (partition ``offsets`` from the stats pass)."""
    offset = offsets[partition_info["number"]] if partition_info else 0
    return part.assign(_row=np.arange(offset, offset + len(part), dtype=np.int64))


def _link_part(part: pd.DataFrame, kw: dict[str, Any], block_size: int | None, base: list[str]) -> Any:
    """One partition's clients: their session models (arrival to come) and session starts."""
    from ..session_fit import client_links, session_client

    if len(part) == 0:
        return None
    # the in-memory order: time, ties in trace order (fit_conversations' stable sort)
    part = part.sort_values(["timestamp", "_row"], kind="stable").reset_index(drop=True)
    tr = as_trace(part, client=kw.get("client"), by=kw.get("by"))
    codes = np.zeros(len(part), dtype=np.intp) if tr.codes is None else tr.codes
    keys = [0] if tr.codes is None else tr.keys
    links = client_links(part, codes, keys, block_size)
    clients = {
        k: (session_client(g, lk, block_size), float((~lk.cont).mean()), int((~lk.cont).sum()))
        for k, (_, g, lk) in zip(keys, links, strict=True)
    }
    found = any(lk.cont.any() or lk.prefix is not None for _, _, lk in links)
    return clients, found


def _starts_part(todo: dict[Hashable, tuple[Any, ...]], end: float, window: float) -> dict[Hashable, Any]:
    from ..session_starts import starts_schedule

    return {
        k: c.model_copy(update={"arrival": starts_schedule(c, total, end, start_share=share, rng=seed,
                                                           window=window, shrink=shrink)})
        for k, (c, total, share, seed, shrink) in todo.items()
    }  # fmt: skip


def _conversations(trace: Any, func: Callable[..., Any], kw: dict[str, Any], base: list[str],
                   cols: list[str]) -> Any:  # fmt: skip
    """``fit``'s conversation path out of core, or None where the in-memory fit has none."""
    import dask

    from .._rng import generator
    from ..arrivals import ArrivalSchedule
    from ..session_fit import SESSION_COLUMNS

    sessions = kw.get("sessions")
    if sessions not in (None, True):
        raise TypeError(f"fit: `sessions` must be None, True or False, got {sessions!r}")
    required = sessions is True
    trace = _open(trace)
    names = list(trace.columns)
    found = [c for c in SESSION_COLUMNS if c in names]
    if not found:
        if required:
            raise ValueError(
                "fit(sessions=True): the trace has no session or prefix information "
                "(a 'hash_ids', 'session' or 'parent' column)"
            )
        return None
    ddf = _load(trace, base + found + (["turn"] if "session" in found and "turn" in names else []))
    if "hash_ids" in found and isinstance(ddf["hash_ids"].dtype, pd.StringDtype):
        raise ValueError(
            "fit: the Dask trace's 'hash_ids' are strings (Dask converts object columns of "
            "`dd.from_pandas` to text): build it under "
            "`dask.config.set({'dataframe.convert-string': False})`, or read it from Parquet"
        )
    block_size = kw.get("block_size")
    blocks = block_size is None and "hash_ids" in found
    meta = _conv_stats(ddf._meta, blocks)
    stats = ddf.map_partitions(_conv_stats, blocks, meta=meta).compute()
    n = int(stats["n"].sum())
    if n < 10:
        if required:
            raise ValueError(f"fit: need at least 10 requests, got {n}")
        return None
    if blocks:  # session_fit.infer_block_size's rule on the merged counts
        best, agree = None, 0.99
        for bs in _BLOCK_SIZES:
            a = int(stats[f"m{bs}"].sum()) / n
            if a >= agree:
                best, agree = int(bs), a
        block_size = best
        if block_size is None and required and not {"session", "parent"} & set(found):
            raise ValueError("fit(sessions=True): give `block_size` (the trace does not record one)")
    if "parent" in found and "session" not in found and int(stats["pmax"].max()) >= n:
        raise ValueError(f"fit: `parent` holds row {int(stats['pmax'].max())!r} of a {n}-row trace")
    offsets = np.concatenate([[0], np.cumsum(stats["n"].to_numpy())[:-1]]).tolist()
    ddf = ddf.map_partitions(_with_rows, offsets, meta=_with_rows(ddf._meta, [0]))
    span, q, _, _ = _global(ddf[base], kw.get("dequantize"))  # before the shuffle: files in time order
    ddf = _by_client_partitions(ddf, cols, n)
    small = dask.compute(*[dask.delayed(_link_part)(d, kw, block_size, base) for d in ddf.to_delayed()])
    small = [s for s in small if s is not None]
    if not required and not any(s[1] for s in small):
        return None
    # the in-memory fit of the whole stream is of the time-sorted trace: not "resorted"
    whole = _by_client(ddf[base], func, {**kw, "sessions": False}, multi=len(cols) > 1, span=span, clock=q,
                       resorted=False, n=n)  # fmt: skip
    seeds = generator(kw.get("rng", 0))  # one seed per client, in client order (as in memory)
    seed = {k: int(seeds.integers(2**62)) for k in whole.clients}
    shrink = whole.info.get("rate_shrink", {})
    tasks = []
    for s in small:
        todo = {}
        for k, (c, share, _) in s[0].items():
            total = whole.clients[k].arrival
            if not isinstance(total, ArrivalSchedule):
                raise TypeError(
                    f"fit: conversations need an ArrivalSchedule of the whole stream, got {total!r}"
                )
            todo[k] = (c, total, share, seed[k], shrink.get(k))
        tasks.append(todo)
    t1 = float(stats["t1"].max())
    done = dask.compute(*[dask.delayed(_starts_part)(t, t1, kw["window"]) for t in tasks])
    done = {k: c for r in done for k, c in r.items()}
    n_starts = sum(v[2] for s in small for v in s[0].values())
    info = {**whole.info, "sessions": True, "n_requests": n, "session_starts": n_starts}
    info["block_size"] = block_size
    wl = type(whole)({k: done[k] for k in whole.clients}, report=whole.report, info=info)
    wl.block_size = None if block_size is None or "hash_ids" not in found else int(block_size)
    return wl
