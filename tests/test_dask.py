"""Dask: out-of-core characterize/fit from Parquet datasets, distributed generation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import servegen as sg
from servegen import cli
from servegen.dask_sample import dataset_tasks, read_dataset, write_dataset

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """Two in-process workers: the scheduling, shuffles and transfers of a real cluster, fast."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


def _trace() -> pd.DataFrame:
    """40 clients, bursty (CV up to 3: sub-ulp gaps and timestamp ties) and varied rates."""
    wl = sg.Workload(
        {
            k: sg.Client(
                arrival=sg.Gamma(rate=0.3 + k % 5, cv=1 + k % 3) if k % 7 else sg.Weibull(rate=2, cv=0.6),
                input_tokens=sg.LogNormal(mu=6, sigma=1),
                output_tokens=sg.Exponential(mean=200),
                dependence=sg.RankCorrelation(input_output=0.5) if k % 4 == 0 else None,
            )
            for k in range(40)
        }
    )
    df = wl.sample(1800, rng=0).to_pandas()
    df["client"] = df["client"].astype(np.int64)
    return df


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The trace as a 20-file Parquet dataset, rows shuffled between files (clients and
    their windows span many files)."""
    df = _trace()
    root = tmp_path_factory.mktemp("ds")
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 20)):
        df.iloc[rows].to_parquet(root / f"part-{i:02d}.parquet", index=False)
    return root, df


def _same_tables(a: pd.DataFrame, b: pd.DataFrame) -> None:
    exact = [
        "client",
        "window",
        "start",
        "end",
        "n",
        "iat_n",
        "iat_censored",
        "law",
        "input_p50",
        "output_p99",
    ]
    exact = [c for c in exact if c in b.columns]  # fit's report has no length columns
    pd.testing.assert_frame_equal(a[exact], b[exact], check_exact=True)
    params = [c for c in ("rate", "iat_mean", "iat_cv", "shape", "scale") if c in b.columns]
    pd.testing.assert_frame_equal(a[params], b[params], check_exact=False, rtol=1e-9, atol=0)
    # log-likelihoods, AICs and KS are sums over ~1000 gaps: 1e-9 of the parameters there
    # (finite-difference Newton of censored windows) is ~1e-9 of the sum.
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-8, atol=0)
    assert a.attrs == b.attrs


@pytest.mark.slow
def test_characterize_from_a_parquet_dataset_equals_in_memory(cluster, dataset):
    root, df = dataset
    got = sg.characterize(str(root), window=600, client="client")
    want = sg.characterize(df, window=600, client="client")
    assert len(got) == 40 * 3
    _same_tables(got, want)
    assert (got["iat_censored"] > 0).any()  # the censored (sub-ulp) gaps took part


@pytest.mark.slow
def test_fit_from_a_parquet_dataset_equals_in_memory(cluster, dataset):
    root, df = dataset
    got = sg.fit(root, window=600, client="client")
    want = sg.fit(df, window=600, client="client")
    _same_tables(got.report, want.report)
    assert list(got.clients) == list(want.clients) == list(range(40))
    for k in want.clients:
        a, b = got.clients[k], want.clients[k]
        assert a.input_tokens == b.input_tokens and a.output_tokens == b.output_tokens  # exact PMFs
        assert a.dependence == b.dependence
        np.testing.assert_array_equal(a.arrival.times, b.arrival.times)
        np.testing.assert_allclose(a.arrival.rates, b.arrival.rates, rtol=1e-12)
        np.testing.assert_allclose(a.arrival.cvs, b.arrival.cvs, rtol=1e-9)
        assert a.arrival.laws == b.arrival.laws
    assert got.info.keys() == want.info.keys()
    for key in ("n_requests", "poisson_windows", "dependence", "quantization", "duration", "resorted"):
        assert got.info[key] == want.info[key], key
    np.testing.assert_allclose(
        list(got.info["io_spearman"].values()), list(want.info["io_spearman"].values()), rtol=1e-12
    )


@pytest.mark.slow
def test_fit_from_a_dask_dataframe_with_hive_partitions_and_length_windows(cluster, dataset, tmp_path):
    _, df = dataset
    df = df.assign(day=(df["timestamp"] // 1200).astype(np.int64))  # hive-partitioned by `day`
    df.to_parquet(tmp_path / "hive", partition_cols=["day"], index=False)
    ddf = dd.read_parquet(tmp_path / "hive")
    got = sg.fit(ddf, window=600, client="client", rate_window=None, length_window=1200, max_points=16)
    want = sg.fit(
        df.drop(columns="day"),
        window=600,
        client="client",
        rate_window=None,
        length_window=1200,
        max_points=16,
    )
    _same_tables(got.report, want.report)
    assert got.clients == want.clients  # Piecewise length models included


@pytest.mark.slow
def test_resorted_and_dequantize_and_bad_input(cluster, dataset, tmp_path):
    root, df = dataset
    df = df[df["client"] < 8]  # small enough to travel inside the task graph
    shuffled = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    got = sg.characterize(dd.from_pandas(shuffled, npartitions=4), window=600, client="client")
    want = sg.characterize(shuffled, window=600, client="client")
    assert got.attrs["resorted"] is want.attrs["resorted"] is True
    _same_tables(got, want)
    # a 1-s logging clock with common ties: de-quantizing needs one stream over the whole trace
    ticks = df.assign(timestamp=np.floor(df["timestamp"]))
    with pytest.raises(ValueError, match=r"1\.0 s clock .*dequantize=False"):
        sg.characterize(dd.from_pandas(ticks, npartitions=3), window=600, client="client")
    got = sg.characterize(dd.from_pandas(ticks, npartitions=3), window=600, client="client", dequantize=False)
    _same_tables(got, sg.characterize(ticks, window=600, client="client", dequantize=False))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['tenant'\]"):
        sg.fit(dd.from_pandas(df, npartitions=2), client="tenant")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['tenant'\]"):
        sg.fit(str(root), client="tenant")
    with pytest.raises(ValueError, match="no Parquet dataset at"):
        sg.fit(str(tmp_path / "nope"), client="client")


def _conversation_trace() -> pd.DataFrame:
    """6 clients with 1-4 turn sessions, three of them with shared prefixes (16-token blocks)."""
    session = sg.Session(turns=sg.Empirical(values=[1, 4], probs=[0.5, 0.5]), think_time=30, new_tokens=40)
    prefix = sg.SharedPrefix(groups=2, popularity=sg.Empirical(values=[1, 2], probs=[0.7, 0.3]), tokens=64)
    wl = sg.Workload(
        {
            k: sg.Client(
                arrival=sg.Poisson(rate=0.5 + k % 3),
                input_tokens=sg.LogNormal(mu=5, sigma=1),
                output_tokens=50,
                session=session,
                prefix=prefix if k % 2 else None,
            )
            for k in range(6)
        },
        block_size=16,
    )
    df = wl.sample(900, rng=2).to_pandas()
    df["client"] = df["client"].astype(np.int64)
    return df


@pytest.mark.parametrize(
    ("links", "drop"),
    [("session", ["parent"]), ("parent rows", ["session"]), ("hash_ids", ["session", "parent"])],
)
@pytest.mark.slow
def test_conversations_from_a_parquet_dataset_equal_in_memory(cluster, tmp_path, links, drop):
    """Files cut through clients and conversations; ``parent`` values are rows of the whole
    dataset; with hash_ids alone the turns and the block size are inferred."""
    df = _conversation_trace().drop(columns=drop)
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 5)):
        df.iloc[rows].to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    rng = (
        np.random.default_rng(3) if links == "parent rows" else 3
    )  # a Generator: seeds drawn in client order
    got = sg.fit(tmp_path, client="client", rng=rng)
    want = sg.fit(df, client="client", rng=np.random.default_rng(3) if links == "parent rows" else 3)
    assert got.block_size == want.block_size == 16 and got.info["sessions"] is True
    assert list(got.clients) == list(want.clients) == list(range(6))
    for k, b in want.clients.items():
        a = got.clients[k]
        assert (a.session, a.prefix, a.input_tokens, a.output_tokens) == (
            b.session,
            b.prefix,
            b.input_tokens,
            b.output_tokens,
        )
        assert a.arrival.laws == b.arrival.laws
        np.testing.assert_array_equal(a.arrival.times, b.arrival.times)
        np.testing.assert_allclose(a.arrival.rates, b.arrival.rates, rtol=1e-9, atol=0)
        np.testing.assert_allclose(a.arrival.cvs, b.arrival.cvs, rtol=1e-9, atol=0)
    assert (want.clients[1].prefix is not None) and want.clients[0].session is not None
    _same_tables(got.report, want.report)
    assert got.info.keys() == want.info.keys()
    for key in ("n_requests", "session_starts", "block_size", "poisson_windows", "dependence", "resorted"):
        assert got.info[key] == want.info[key], key


@pytest.mark.slow
def test_conversation_columns_bad_input(cluster, tmp_path):
    df = _conversation_trace()
    df.drop(columns="session").assign(parent=10**6).to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(ValueError, match=r"`parent` holds row 1000000 of a \d+-row trace"):
        sg.fit(tmp_path / "bad.parquet", client="client")
    plain = df.drop(columns=["session", "parent", "hash_ids", "turn"])
    with pytest.raises(ValueError, match=r"sessions=True\): the trace has no session or prefix information"):
        sg.fit(dd.from_pandas(plain, npartitions=2), client="client", sessions=True)
    with pytest.raises(TypeError, match=r"`sessions` must be None, True or False, got 'yes'"):
        sg.fit(dd.from_pandas(plain, npartitions=2), client="client", sessions="yes")
    with pytest.raises(ValueError, match=r"'hash_ids' are strings .*convert-string"):
        sg.fit(dd.from_pandas(df.iloc[:500], npartitions=2), client="client")
    # every request as an arrival: as in memory
    df.to_parquet(tmp_path / "s.parquet", index=False)
    got = sg.fit(tmp_path / "s.parquet", client="client", sessions=False, rate_window=None)
    assert got.clients == sg.fit(df, client="client", sessions=False, rate_window=None).clients


def _workload() -> sg.Workload:
    session = sg.Session(turns=sg.Empirical(values=[1, 3], probs=[0.5, 0.5]), think_time=20, new_tokens=30)
    clients = {
        "chat": sg.Client(
            arrival=sg.Gamma(rate=2, cv=3),
            input_tokens=sg.LogNormal(mu=5, sigma=1),
            output_tokens=sg.Exponential(mean=100),
            session=session,
        ),
        "vl": sg.Client(
            arrival=sg.Poisson(rate=1),
            input_tokens=50,
            output_tokens=10,
            multimodal=sg.Multimodal(
                image=sg.Modality(count=sg.Empirical(values=[0, 2], probs=[0.5, 0.5]), tokens=256)
            ),
        ),
        "batch": sg.Client(arrival=sg.Deterministic(rate=1), input_tokens=600, output_tokens=9),
    }
    return sg.Workload(clients, rate={0: 10.0, 900: 30.0}, block_size=64)


def _in_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in stream order: timestamp, ties by client index (as sg.merge)."""
    return df.iloc[np.lexsort((df["client"].cat.codes, df["timestamp"]))].reset_index(drop=True)


@pytest.mark.parametrize("kind", ["sessions_multimodal", "pool"])
@pytest.mark.slow
def test_to_dask_compute_equals_sample(cluster, kind):
    if kind == "pool":
        # a view as long as the sample (sampling past a view's end is refused)
        wl = sg.Workload(sg.load_pool("language/m-large").span(18 * 3600, 18 * 3600 + 1200), rate=50.0)
    else:
        wl = _workload()
    ddf = wl.to_dask(1200, rng=7, partitions=3)
    assert isinstance(ddf, dd.DataFrame) and ddf.npartitions == 3
    got = _in_order(ddf.compute())
    want = wl.sample(1200, rng=7).to_pandas().drop(columns="parent", errors="ignore")
    assert list(got.columns) == list(want.columns)
    if kind != "pool":
        assert {"session", "turn", "hash_ids", "image_tokens"} <= set(got.columns)
    for col in want.columns:
        if want[col].dtype == object:  # ragged: arrays per row (hash ids, image sizes)
            assert all(np.array_equal(np.asarray(a), b) for a, b in zip(got[col], want[col], strict=True)), (
                col
            )
        else:
            pd.testing.assert_series_equal(got[col], want[col], check_exact=True)


@pytest.mark.slow
def test_to_dask_time_ranges_equal_sample(cluster):
    """Client groups x 20-minute ranges: each range starts from the arrival state (renewal
    offsets of bursty and regular processes) the earlier windows leave."""
    wl = sg.Workload(
        {
            "bursty": sg.Client(
                arrival=sg.Gamma(rate=2, cv=3), input_tokens=sg.LogNormal(mu=5, sigma=1), output_tokens=9
            ),
            "regular": sg.Client(arrival=sg.Weibull(rate=1, cv=0.3), input_tokens=50, output_tokens=10),
            "vl": _workload().clients["vl"],
        },
        rate={0: 10.0, 1500: 30.0},
    )
    ddf = wl.to_dask(3000, rng=7, partitions=2, chunk=1200)
    assert ddf.npartitions == 3 * 2
    parts = dask.compute(*ddf.to_delayed())
    assert parts[2]["timestamp"].min() >= 1200 and parts[5]["timestamp"].min() >= 2400  # ranges in time order
    got = _in_order(ddf.compute())
    want = wl.sample(3000, rng=7).to_pandas()
    for col in want.columns:
        if want[col].dtype == object:
            assert all(np.array_equal(np.asarray(a), b) for a, b in zip(got[col], want[col], strict=True)), (
                col
            )
        else:
            pd.testing.assert_series_equal(got[col], want[col], check_exact=True)
    with pytest.raises(ValueError, match=r"`chunk` must be a positive multiple of 600\.0 s, got 1000"):
        wl.to_dask(3000, rng=7, chunk=1000)
    with pytest.raises(
        ValueError, match=r"`chunk` \(time-range partitions\) needs a workload without sessions"
    ):
        _workload().to_dask(3000, rng=7, chunk=1200)
    assert _workload().to_dask(1200, rng=7, partitions=2, chunk=1200).npartitions == 2  # one range: fine
    with pytest.raises(ValueError, match=r"`start` 600 > 0 needs a workload without sessions"):
        _workload().sample(1200, rng=7, start=600)
    with pytest.raises(
        ValueError, match=r"`start` must be a multiple of 600\.0 s below the duration, got 1200"
    ):
        wl.sample(1200, rng=7, start=1200)


@pytest.mark.slow
def test_write_dataset_matches_single_process_and_cleans_up(tmp_path):
    wl = _workload()
    out = write_dataset(wl, 5400, tmp_path / "ds", rng=5, partitions=2)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert names[:2] == ["day=0/hour=00/part-0000.parquet", "day=0/hour=00/part-0001.parquet"]
    assert len(names) == 4  # 2 hours x 2 groups
    assert read_dataset(out).equals(wl.sample(5400, rng=5))
    with pytest.raises(ValueError, match="already exists"):
        write_dataset(wl, 60, out, rng=5)
    with pytest.raises(ValueError, match=r"`partitions`: the client groups must hold every client"):
        write_dataset(wl, 60, tmp_path / "x", rng=5, partitions=[["chat"], ["vl"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no partial output left


def _dominant(scale: float = 1.0) -> sg.Workload:
    """One client sends ~90 % of the requests: grouping clients alone cannot share it out."""
    clients = {"big": sg.Client(arrival=sg.Gamma(rate=6, cv=2), input_tokens=sg.LogNormal(mu=5, sigma=1),
                                output_tokens=sg.Exponential(mean=100))}  # fmt: skip
    clients |= {f"s{k}": sg.Client(arrival=sg.Weibull(rate=0.2, cv=0.5), input_tokens=50, output_tokens=9)
                for k in range(3)}  # fmt: skip
    return sg.Workload(clients, rate={0: 4.0, 5400: 8.0}, scale={"big": scale})


def _rows_per_task(out, tasks) -> list[int]:
    """Rows each task of ``dataset_tasks`` wrote: its group's files in its hours."""
    rows = []
    for g, _, a, b in tasks:
        hours = range(int(a // 3600), int(-(-b // 3600)))
        files = [out / f"day={h // 24}" / f"hour={h % 24:02d}" / f"part-{g:04d}.parquet" for h in hours]
        rows.append(sum(len(pd.read_parquet(f)) for f in files if f.exists()))
    return rows


@pytest.mark.slow
def test_write_dataset_cuts_time_for_a_dominant_client(tmp_path):
    wl = _dominant()
    tasks = dataset_tasks(wl, 4 * 3600, partitions=2, workers=2)
    # one group, two ranges (the later one draws the arrivals of the first hours again)
    assert [(a, b) for _, _, a, b in tasks] == [(0.0, 7200.0), (7200.0, 14400.0)]
    six = dataset_tasks(wl, 6 * 3600, partitions=2, workers=2)
    assert [(a, b) for _, _, a, b in six] == [(0.0, 14400.0), (14400.0, 21600.0)]  # the later one shorter
    # cuts follow the expected requests, not the clock: a busy first half is cut early
    front = sg.Workload(wl.clients, rate={0: 8.0, 3 * 3600: 1.0})
    assert [(a, b) for _, _, a, b in dataset_tasks(front, 6 * 3600, partitions=2, workers=2)] == [
        (0.0, 7200.0),
        (7200.0, 21600.0),
    ]
    out = write_dataset(wl, 4 * 3600, tmp_path / "ds", rng=4, partitions=2, ranges=2)
    assert read_dataset(out).equals(wl.sample(4 * 3600, rng=4))
    rows = _rows_per_task(out, tasks)
    assert sum(rows) == len(wl.sample(4 * 3600, rng=4)) and max(rows) < 0.8 * sum(rows)
    # 2 ranges x 2 groups, or explicit ranges; without a dominant client, no cut
    assert len(dataset_tasks(wl, 4 * 3600, partitions=4, workers=2)) == 4
    assert len(dataset_tasks(wl, 8 * 3600, partitions=2, ranges=4)) == 4
    assert len(dataset_tasks(wl, 4 * 3600, partitions=2, ranges=4)) == 3  # whole hours: cuts merge
    assert len(dataset_tasks(wl, 4 * 3600, partitions=2, workers=1)) == 2  # 1 worker: nothing to share
    assert len({t[2] for t in dataset_tasks(_dominant(scale=0.1), 4 * 3600, partitions=8, workers=2)}) == 1
    # half an hour cannot be cut into hours: client groups again
    assert [(keys, b) for _, keys, _, b in dataset_tasks(wl, 1800, partitions=2, workers=2)] == [
        (["big"], 1800.0),
        (["s0", "s1", "s2"], 1800.0),
    ]
    # sessions carry turns across time: client groups only
    assert {(a, b) for _, _, a, b in dataset_tasks(_workload(), 4 * 3600, partitions=4)} == {(0.0, 14400.0)}
    with pytest.raises(ValueError, match=r"`ranges` 2 > 1 needs a workload without sessions"):
        dataset_tasks(_workload(), 4 * 3600, partitions=2, ranges=2)
    with pytest.raises(
        ValueError, match=r"write_dataset: `ranges` must be a whole number >= 1 or None, got 0"
    ):
        dataset_tasks(wl, 3600, ranges=0)


def test_tied_timestamps_are_found_across_partitions():
    """The clock is that of the whole trace whether ties sit inside a partition, on the edge
    between two, or in partitions whose time ranges overlap."""
    from servegen.clock import clock_resolution
    from servegen.fit import out_of_core

    t = np.round(np.cumsum(np.random.default_rng(0).exponential(0.5, 400)), 6)
    edge = t.copy()
    edge[200] = edge[199]  # a tie across the edge of the two partitions only
    for times, split in [(t, 200), (edge, 200), (t, None)]:
        a, b = (times[:split], times[split:]) if split else (times[::2], times[1::2])  # None: overlapping
        ddf = dd.concat([dd.from_pandas(pd.DataFrame({"timestamp": x}), npartitions=1) for x in (a, b)])
        with dask.config.set(scheduler="synchronous"):
            q = out_of_core._global(ddf, None)[1]
        assert q == clock_resolution(times)
    assert clock_resolution(edge).tie_fraction > 0 and clock_resolution(t).tie_fraction == 0


@pytest.mark.slow
def test_cli_workers_2_equals_workers_1_with_a_dominant_client(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wl.json").write_text(_dominant().to_json())
    base = ["generate", "--spec", "wl.json", "--duration", "3h", "--seed", "5", "-q"]
    assert cli.main([*base, "-o", "one", "--workers", "1"]) == 0
    assert cli.main([*base, "-o", "two", "--workers", "2"]) == 0
    one, two = read_dataset("one"), read_dataset("two")
    assert one.equals(two) and one.equals(_dominant().sample(3 * 3600, rng=5))
    tasks = dataset_tasks(_dominant(), 3 * 3600, partitions=8, workers=2)  # what --workers 2 runs
    rows = _rows_per_task(tmp_path / "two", tasks)
    assert len({(a, b) for _, _, a, b in tasks}) == 2 and max(rows) < 0.7 * sum(rows)


@pytest.mark.slow
def test_cli_workers_2_equals_workers_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["generate", "--pool", "language/m-large", "--start", "18:00", "--duration", "70m", "--rate", "5"]
    base += ["--seed", "3", "-q"]
    assert cli.main([*base, "-o", "one", "--workers", "1"]) == 0
    assert cli.main([*base, "-o", "two", "--workers", "2"]) == 0
    one, two = read_dataset("one"), read_dataset("two")
    assert one.equals(two)  # 4 tasks on one worker, 8 on two
    view = sg.load_pool("language/m-large").span(18 * 3600, 18 * 3600 + 4200)
    wl = sg.Workload(view, rate=5.0)
    for out, parts in (("one", 4), ("two", 8)):  # a file per group and hour
        files = {(g, h) for g, _, a, b in dataset_tasks(wl, 4200, parts, workers=parts // 4)
                 for h in range(int(a // 3600), 2)
                 if h * 3600 < b}  # fmt: skip
        assert len(list((tmp_path / out).rglob("*.parquet"))) == len(files)
    assert one.equals(wl.sample(4200, rng=3))
    assert cli.main([*base, "-o", "bad", "--workers", "2", "--format", "jsonl"]) == 1
    assert not (tmp_path / "bad").exists()


def test_import_servegen_does_not_import_dask():
    code = "import sys, servegen; print('dask' in sys.modules, 'servegen.dask_sample' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_costliest_dataset_tasks_run_first(tmp_path):
    """One worker runs the tasks one at a time: the costliest first, so that no long task
    starts last and runs alone while the other workers idle."""
    wl = sg.Workload(
        {
            k: sg.Client(arrival=sg.Poisson(rate=r), input_tokens=9, output_tokens=9)
            for k, r in [("a", 1.0), ("b", 8.0), ("c", 2.0), ("d", 4.0)]
        }
    )
    tasks = dataset_tasks(wl, 3600, partitions=4)
    cost = {g: {"a": 1, "b": 8, "c": 2, "d": 4}[keys[0]] for g, keys, _, _ in tasks}
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as lc,
        distributed.Client(lc),
    ):
        out = write_dataset(wl, 3600, tmp_path / "ds", rng=1, partitions=4)
    started = sorted(
        cost, key=lambda g: (out / "day=0" / "hour=00" / f"part-{g:04d}.parquet").stat().st_mtime_ns
    )
    assert [cost[g] for g in started] == [8, 4, 2, 1]


@pytest.mark.slow
def test_local_workers_start_with_the_sampling_environment():
    """cluster()'s workers: glibc keeps arrays below 32 MiB in the heap (Dask's trim setting
    alone maps every array afresh: 60 % more CPU), Arrow uses the system allocator, and
    servegen is imported as each worker starts, not by its first task."""
    import os

    from servegen.dask_sample import WORKER_ENV, cluster

    def probe():
        import pyarrow as pa

        return (
            {k: os.environ.get(k) for k in WORKER_ENV},
            pa.default_memory_pool().backend_name,
            "servegen.workload" in sys.modules,
        )

    with cluster(1, memory_limit="1GB") as client:
        (got,) = client.run(probe).values()
        (info,) = client.scheduler_info()["workers"].values()
    assert got == (
        {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "ARROW_DEFAULT_MEMORY_POOL": "system"},
        "system",
        True,
    )
    assert info["memory_limit"] == 10**9
