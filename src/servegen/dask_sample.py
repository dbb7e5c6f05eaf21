"""Distributed generation on Dask: lazy DataFrames and partitioned Parquet datasets.

A client's requests depend only on (seed, client key, window), never on the other clients
(see :doc:`/howto/parallel`), so a workload splits into groups of clients that workers
sample independently with the same seed; joined in timestamp order (ties by client
index, as :func:`servegen.merge` does) the groups are exactly the single-process
stream. Session ids and prefix ``hash_ids`` are drawn from per-client streams, so
they agree across groups too. Only ``parent`` (a row index) depends on the joined
order: :func:`to_dask` leaves it out and :func:`read_dataset` recomputes it.

:func:`to_dask` makes one lazy partition per group (and time range, without
sessions: ``Workload.sample``'s ``start`` carries the arrival state over);
:func:`write_dataset` has every worker stream its group, in its time range, hour by hour
(:meth:`~servegen.Workload.iter_chunks`, so a worker's memory is bounded by an hour of
its group) into a hive-partitioned Parquet dataset ``day=D/hour=HH/part-GGGG.parquet``;
time is cut when one client is too large a share of the work for client groups to
balance (:func:`dataset_tasks`).

The module knows a workload only as the object it is handed (its ``sample``,
``iter_chunks``, ``expected_requests`` and ``to_json``, and its class's ``from_json`` to
rebuild it on the workers): it sits below ``servegen.workload`` (see :doc:`/architecture`), and
:meth:`Workload.to_dask <servegen.Workload.to_dask>` calls down into it. Dask is imported
only when these run (``pip install "servegen[dask]"``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._validate import check_whole, check_whole_or_none
from .engine.merge import merge
from .engine.timeline import STREAM_WINDOW
from .requests import Requests, read_parquet

__all__ = [
    "REDRAW_COST",
    "WORKER_ENV",
    "client_groups",
    "cluster",
    "dataset_tasks",
    "read_dataset",
    "to_dask",
    "write_dataset",
]

#: Seconds of stream per file of a dataset written by :func:`write_dataset`.
DATASET_CHUNK = 3600.0


def client_groups(keys: Sequence[Hashable], partitions: int, weights: Any = None) -> list[list[Hashable]]:
    """Split client keys into ``partitions`` groups of about equal total ``weights``.

    Greedy longest-processing-time: heaviest client first, each into the lightest group
    so far (within 4/3 of the best split). Without weights, every client weighs 1.

    >>> client_groups(["a", "b", "c", "d"], 2, weights=[5, 3, 1, 1])
    [['a'], ['b', 'c', 'd']]
    """
    n = min(check_whole(partitions, "partitions", low=1), len(keys))
    w = np.ones(len(keys)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = np.where(np.isfinite(w) & (w >= 0), w, np.nanmedian(w) if np.isfinite(w).any() else 1.0)
    load = np.zeros(n)
    members: list[list[int]] = [[] for _ in range(n)]
    for i in np.argsort(-w, kind="stable"):  # one step per client, not per request
        g = int(np.argmin(load))
        members[g].append(int(i))
        load[g] += w[i]
    return [[keys[i] for i in sorted(m)] for m in members]


def _seed(rng: Any) -> np.random.SeedSequence:
    """One root seed for every group (workers must not each draw their own)."""
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):  # the rule of Workload.sample: 128 bits from it
        return np.random.SeedSequence(int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)))
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)) or rng < 0:
        raise TypeError(f"`rng` must be None, an int >= 0, a SeedSequence or a Generator, got {rng!r}")
    return np.random.SeedSequence(int(rng))


def _groups(wl: Any, partitions: Any, duration: float) -> list[list[Hashable]]:
    if partitions is None:
        partitions = min(len(wl.clients), 2 * (os.cpu_count() or 1))
    if isinstance(partitions, (int, np.integer)) and not isinstance(partitions, bool):
        # groups of equal expected work, so the workers finish together
        return client_groups(
            list(wl.clients), int(partitions), wl.expected_requests(duration, by_client=True)
        )
    groups = [list(g) for g in partitions]
    flat = [k for g in groups for k in g]
    if sorted(map(repr, flat)) != sorted(map(repr, wl.clients)):
        raise ValueError(
            "`partitions`: the client groups must hold every client exactly once, "
            f"got {len(flat)} keys for {len(wl.clients)} clients"
        )
    return groups


def _payload(wl: Any) -> Any:
    """What travels to the workers: the workload's class and JSON spec when they rebuild
    ``wl`` exactly (a pool view is a few bytes where the pickled models are megabytes),
    else the object. The class comes with ``wl``, so this module imports no Workload."""
    # the class whose from_json reads the spec (a subclass such as FittedWorkload inherits it)
    cls: Any = next((c for c in type(wl).__mro__ if "from_json" in vars(c)), None)
    try:
        spec = wl.to_json()
        same = cls is not None and cls.from_json(spec) == wl
    except (TypeError, ValueError):  # callable rates, custom models: no spec
        return wl
    return (cls, spec) if same else wl


@functools.lru_cache(maxsize=4)
def _from_spec(cls: Any, spec: str) -> Any:
    return cls.from_json(spec)  # once per worker process, not per task


def _workload(payload: Any) -> Any:
    return _from_spec(*payload) if isinstance(payload, tuple) else payload


def _part(payload: Any, duration: float, seed: np.random.SeedSequence, group: list[Hashable],
          start: float = 0.0) -> Any:  # fmt: skip
    req = _workload(payload).sample(duration, rng=seed, clients=group, start=start)
    df = req.to_pandas()
    table = req.to_arrow()
    for name in [
        c for c in df.columns if df[c].dtype == np.dtype(object)
    ]:  # ragged: Arrow lists (Dask keeps them)
        df[name] = pd.Series(pd.arrays.ArrowExtensionArray(table.column(name)), index=df.index)
    return df.drop(columns=[c for c in ("parent",) if c in df.columns])


def _ranges(wl: Any, duration: float, chunk: Any) -> list[tuple[float, float]]:
    """``[start, end)`` time ranges of ``chunk`` seconds covering ``[0, duration)``."""
    if chunk is None:
        return [(0.0, duration)]
    n = chunk / STREAM_WINDOW if isinstance(chunk, (int, float)) and not isinstance(chunk, bool) else 0
    if not (n >= 1 and n == int(n)):
        raise ValueError(
            f"to_dask: `chunk` must be a positive multiple of {STREAM_WINDOW!r} s, got {chunk!r}"
        )
    starts = np.arange(0.0, duration, float(chunk)).tolist()
    if len(starts) > 1 and not _cuttable(wl):
        raise ValueError(
            "to_dask: `chunk` (time-range partitions) needs a workload without sessions, shared prefixes "
            "or block ids: their turns and ids carry over from earlier windows; partition by client groups"
        )
    return [(a, min(a + float(chunk), duration)) for a in starts]


def _cuttable(wl: Any) -> bool:
    """Whether ``wl``'s stream can be cut in time (the rule of ``Workload.sample(start=...)``:
    session turns, prefix groups and block ids carry over between windows)."""
    return wl.block_size is None and all(c.session is None and c.prefix is None for c in wl.clients.values())


def to_dask(wl: Any, duration: float, *, rng: Any = None, partitions: Any = None, chunk: Any = None) -> Any:
    """A lazy Dask DataFrame of ``wl.sample(duration, rng=rng)``, one partition per client
    group and time range.

    Parameters
    ----------
    wl
        The :class:`~servegen.Workload`.
    duration, rng
        As for :meth:`~servegen.Workload.sample` (``None`` draws one seed for all groups).
    partitions
        Number of client groups (default: two per local core, at most one per client), or
        the groups themselves (lists of keys covering every client once).
    chunk
        Seconds per time range (a multiple of 600 s, the stream window), or ``None``
        (default): one range. Each partition is one group in one range, ranges in time
        order; a range's arrivals start from the state the earlier windows leave, so the
        ranges are the single stream cut in time (``Workload.sample``'s ``start``). Not for
        workloads with sessions, shared prefixes or block ids (a ``ValueError``): their
        turns and ids carry over between ranges.

    Returns
    -------
    dask.dataframe.DataFrame
        The columns of :meth:`Requests.to_pandas <servegen.Requests.to_pandas>` except
        ``parent``; ragged columns (``hash_ids``, per-item sizes) are Arrow lists. Each
        partition is one group's requests in one time range, in time order; sorted by
        ``(timestamp, client)`` (stably) the rows are those of ``wl.sample``.

    Examples
    --------
    >>> import numpy as np, servegen as sg
    >>> wl = sg.Workload([sg.Client(arrival=sg.Gamma(rate=k + 1, cv=2), input_tokens=9, output_tokens=9)
    ...                   for k in range(4)])
    >>> ddf = wl.to_dask(600, rng=1, partitions=2)
    >>> df = ddf.compute(scheduler="synchronous")
    >>> df = df.iloc[np.lexsort((df["client"].cat.codes, df["timestamp"]))]
    >>> ref = wl.sample(600, rng=1)
    >>> ddf.npartitions, bool((df["timestamp"].to_numpy() == ref.timestamp).all())
    (2, True)
    """
    import dask
    import dask.dataframe as dd

    seed = _seed(rng)
    groups = _groups(wl, partitions, float(duration))
    ranges = _ranges(wl, float(duration), chunk)
    meta = _part(wl, min(float(duration), 1e-9), seed, groups[0]).iloc[:0]
    payload = dask.delayed(_payload(wl), pure=True)  # one graph key shared by the partitions
    parts = [dask.delayed(_part)(payload, end, seed, g, start) for start, end in ranges for g in groups]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


#: What the skipped hours before a time range cost again, as a share of sampling them
#: (their arrivals are drawn to carry the arrival state, not their request values): an
#: estimate that places the cuts so that the ranges cost about the same. Measured 0.12 on
#: language/m-mid's largest client scaled 30x (6 h, 147 M requests: the first 4 h take
#: 15.9 CPU s to sample; from 4 h on, 8.9 CPU s, 1.8 of them drawing the first 4 h again).
REDRAW_COST = 0.12


def dataset_tasks(
    wl: Any, duration: float, partitions: Any = None, ranges: Any = None, workers: int = 1
) -> list[tuple[int, list[Hashable], float, float]]:
    """The tasks of :func:`write_dataset`: ``(group index, client keys, start, end)``.

    ``partitions`` client groups of about equal expected requests (or the groups
    themselves), each cut into ``ranges`` time ranges of whole hours (fewer when cuts
    fall into the same hour). With ``ranges=None``
    the ranges are as many as the ``workers`` need: a client with more than
    ``1/workers`` of the requests cannot be shared out by grouping clients, so time is cut
    into ``ceil(workers x its share)`` ranges (and the clients into correspondingly
    fewer groups). The cuts fall on hours where the ranges' expected requests
    (``wl.expected_requests``) are about equal, counting the hours before a range at
    :data:`REDRAW_COST` (it draws their arrivals again), and no more ranges are made than
    the workers need. A workload with sessions, shared prefixes or block ids is
    not cut in time.

    >>> import servegen as sg
    >>> wl = sg.Workload({"big": sg.Client(arrival=sg.Poisson(rate=50), input_tokens=9, output_tokens=9),
    ...                   "small": sg.Client(arrival=sg.Poisson(rate=1), input_tokens=9, output_tokens=9)})
    >>> [(g, keys, a / 3600, b / 3600) for g, keys, a, b in dataset_tasks(wl, 4 * 3600, 2, workers=2)]
    [(0, ['big', 'small'], 0.0, 2.0), (0, ['big', 'small'], 2.0, 4.0)]
    """
    hours = max(1, math.ceil(duration / DATASET_CHUNK))
    # a number of client groups (a list of groups is taken as given)
    counted = isinstance(partitions, (int, np.integer)) and not isinstance(partitions, bool)
    if ranges is not None:
        ranges = check_whole_or_none(ranges, "ranges", owner="write_dataset", low=1)
        if ranges > 1 and not _cuttable(wl):
            raise ValueError(
                f"`ranges` {ranges!r} > 1 needs a workload without sessions, shared prefixes or block ids: "
                "their turns and ids carry over from earlier windows"
            )
        r = int(ranges)
    elif counted and _cuttable(wl):
        work = wl.expected_requests(duration, by_client=True)
        share = float(work.max() / work.sum()) if work.sum() > 0 else 0.0
        r = max(1, math.ceil(int(workers) * share - 1e-9))
    else:
        r = 1
    # equal cost per range: range k pays its own requests plus REDRAW_COST x those before
    # it, so the k-th cut falls where the expected requests so far reach `frac[k]` of all
    a, n = REDRAW_COST, min(r, hours)
    frac = (1 - (1 - a) ** np.arange(n + 1)) / (1 - (1 - a) ** n)
    edges = np.minimum(np.arange(hours + 1) * DATASET_CHUNK, float(duration))
    done = wl.expected_requests(float(duration), edges) if n > 1 else edges  # at each hour's end
    if done[-1] > 0:
        cuts = np.unique(edges[np.abs(done[None, :] - frac[:, None] * done[-1]).argmin(axis=1)])
    else:
        cuts = np.unique(np.round(frac * hours)) * DATASET_CHUNK
    cuts[0], cuts[-1] = 0.0, float(duration)
    if counted and partitions >= 1:
        partitions = max(1, -(-int(partitions) // (cuts.size - 1)))
    groups = _groups(wl, partitions, float(duration))
    return [
        (g, grp, float(lo), float(hi)) for lo, hi in itertools.pairwise(cuts) for g, grp in enumerate(groups)
    ]


def _costs(wl: Any, duration: float, plan: list[tuple[int, list[Hashable], float, float]]) -> list[float]:
    """Expected requests of each task of ``plan``: those of its range, plus the hours
    before it at :data:`REDRAW_COST` (their arrivals are drawn again)."""
    index = {k: i for i, k in enumerate(wl.clients)}
    ends = sorted({x for _, _, a, b in plan for x in (a, b)})
    upto = dict(zip(ends, wl.expected_requests(duration, ends, by_client=True).T, strict=True))
    return [
        float(sum(upto[b][index[k]] - (1 - REDRAW_COST) * upto[a][index[k]] for k in grp))
        for _, grp, a, b in plan
    ]


def _workers() -> int:
    """Workers of the active ``distributed.Client``, else 1 (the local scheduler)."""
    try:
        from distributed import get_client

        return max(1, len(get_client().nthreads()))
    except (ImportError, ValueError):  # no distributed, or no client
        return 1


def _write_part(payload: Any, duration: float, seed: np.random.SeedSequence, group: list[Hashable],
                g: int, start: float, end: float, root: str) -> int:  # fmt: skip
    """One task: stream the group's hours in [start, end) into ``root``; returns its row count."""
    n = 0
    chunks = _workload(payload).iter_chunks(duration, DATASET_CHUNK, rng=seed, clients=group, start=start)
    for chunk in chunks:
        lo = chunk.meta["chunk"][0]
        if lo >= end:
            break  # the next range's task writes the rest
        h = int(lo // DATASET_CHUNK)
        d = Path(root) / f"day={h // 24}" / f"hour={h % 24:02d}"
        d.mkdir(parents=True, exist_ok=True)
        chunk.to_parquet(d / f"part-{g:04d}.parquet")
        n += len(chunk)
    return n


def write_dataset(
    wl: Any,
    duration: float,
    path: str | os.PathLike[str],
    *,
    rng: Any = None,
    partitions: Any = None,
    ranges: Any = None,
) -> Path:
    """Write ``wl.sample(duration, rng=rng)`` as a Parquet dataset partitioned by day and hour.

    Every client group (``partitions``, as for :func:`to_dask`) in every time range
    (``ranges``: see :func:`dataset_tasks`; by default as many as it takes to share out
    a dominant client over the workers of the active ``distributed.Client``) is one task
    of the current Dask scheduler: it writes its group's hours as
    ``day=D/hour=HH/part-GGGG.parquet`` (workers must share the file system). A range
    starts from the arrival state the earlier hours leave (their arrivals are drawn
    again, not their requests), so the files are the single stream cut in time. The
    dataset is built in a temporary directory beside ``path`` and renamed into place at
    the end: on any error nothing is left at ``path``. :func:`read_dataset` reads it back
    as the single-process stream.

    >>> import servegen as sg, tempfile, os
    >>> wl = sg.Workload([sg.Client(arrival=sg.Poisson(rate=k + 1), input_tokens=9, output_tokens=9)
    ...                   for k in range(3)])
    >>> out = write_dataset(wl, 5400, os.path.join(tempfile.mkdtemp(), "ds"), rng=3, partitions=2)
    >>> sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))[:3]
    ['day=0/hour=00/part-0000.parquet', 'day=0/hour=00/part-0001.parquet', 'day=0/hour=01/part-0000.parquet']
    >>> read_dataset(out).equals(wl.sample(5400, rng=3))
    True
    """
    import dask

    target = Path(path)
    if target.exists():
        raise ValueError(f"dataset output {str(target)!r} already exists; give a new directory")
    if not target.parent.is_dir():
        raise ValueError(f"output directory does not exist: {str(target.parent)!r}")
    seed = _seed(rng)
    plan = dataset_tasks(wl, float(duration), partitions, ranges, workers=_workers())
    tmp = tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        payload = dask.delayed(_payload(wl), pure=True)
        write = dask.delayed(_write_part)
        tasks = []
        for (g, grp, a, b), cost in zip(plan, _costs(wl, float(duration), plan), strict=True):
            # the costliest tasks first, so that no long one starts last and runs alone
            with dask.annotate(priority=cost):
                tasks.append(write(payload, duration, seed, grp, g, a, b, tmp))
        dask.compute(*tasks)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def read_dataset(path: str | os.PathLike[str]) -> Requests:
    """Read a dataset of :func:`write_dataset` into one stream (``parent`` links recomputed).

    Loads everything: for data larger than memory, read it with ``dask.dataframe.read_parquet``.
    """
    files = sorted(Path(path).rglob("*.parquet"))
    if not files:
        raise ValueError(f"no Parquet files under {str(path)!r}")
    out = merge([read_parquet(f) for f in files])
    out.meta.pop("chunk", None)
    return out


#: Imported by each local worker as it starts, alongside the others, rather than by the
#: first task of each (about a second of numpy, scipy and pandas imports).
_PRELOAD = "servegen.workload"

#: Environment of the local workers :func:`cluster` starts, set before they spawn (glibc
#: and Arrow read it at start-up; a variable already in this process's environment wins).
#: Dask's own ``MALLOC_TRIM_THRESHOLD_`` (64 KiB) also pins glibc's mmap threshold at
#: 128 KiB: every array above it is mapped afresh and its pages faulted in again, which
#: cost sampling 60 % more CPU (24 h of language/m-mid in 4 tasks: 30.6 CPU s, 12.8 of
#: them in the kernel, against 18.9 and 1.8). Arrays below 32 MiB are then taken from
#: the heap and reused. Arrow's default allocator keeps the memory of every Parquet file
#: read (see docs/howto/scale-out.md); the system allocator gives it back.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "ARROW_DEFAULT_MEMORY_POOL": "system"}


@contextlib.contextmanager
def cluster(
    workers: int | None = None, scheduler: str | None = None, *, memory_limit: str | None = None
) -> Iterator[Any]:
    """A ``distributed.Client``: of a running cluster at ``scheduler``, or of ``workers`` local processes.

    Local workers get one thread each (sampling is single-threaded numpy work), the
    environment :data:`WORKER_ENV`, and ``memory_limit`` each (default: the local memory
    split evenly between them). A running cluster's workers are as they were started:
    give them :data:`WORKER_ENV` there (docs/howto/scale-out.md).
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if workers is not None:
            raise ValueError(f"give `workers` or `scheduler`, not both (got {workers!r} and {scheduler!r})")
        with Client(scheduler) as client:
            yield client
        return
    n_workers = check_whole(workers, "workers", low=1)
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}), **WORKER_ENV)
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": env}),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit="auto" if memory_limit is None else memory_limit,
            preload=[_PRELOAD],
        ) as lc,  # fmt: skip
        Client(lc) as client,
    ):
        yield client
