"""A replay's per-request results, read back and joined to the workload that was sent.

After a replay, :func:`read_results` reads the tool's per-request file into one
DataFrame with the same columns for every tool, and (given ``sent``) joins each result
to the request it measured, so latency can be cut by client, session turn or burst.
:func:`slo_table` then gives per-client latency percentiles and SLO attainment, and
:func:`servegen.plot.latency_over_time` draws latency against the arrival rate.

============ ============================================== ==================================
tool         file (how to get it)                           matched to the sent rows by
============ ============================================== ==================================
``aiperf``   ``profile_export.jsonl`` in ``--artifact-dir`` session turns: ``conversation_id``
                                                            (the ``session_id`` written) and
                                                            ``turn_index``; other rows: start
                                                            order
``vllm``     the result JSON of ``--save-result             position: the lists follow the
             --save-detailed`` (``--result-filename``)      file's rows (all ``--num-prompts``)
``guidellm`` the JSON report (``--output kind=json``)       start order (GuideLLM sends rows in
                                                            timestamp order)
``vidur``    ``request_metrics.csv`` of the simulation      ``Request Id`` (rows in file order)
============ ============================================== ==================================

Columns (seconds throughout; NaN where the tool does not report it):

===================== ===============================================================
``start``             when the request was sent, seconds from the first one
``ttft``              time to first token
``tpot``              time per output token after the first (decode time / (n - 1))
``e2e``               end-to-end latency
``prompt_tokens``     prompt tokens the tool counted (its tokenizer; may differ a few)
``completion_tokens`` output tokens the tool counted
``ok``                the request succeeded
``error``             the tool's error text (None when ok)
===================== ===============================================================

With ``sent`` (the :class:`~servegen.Requests` written, or :func:`~servegen.read_trace`
of the written file) the sent columns follow: ``timestamp``, ``client``, ``session``,
``turn``, ``input_tokens``, ``output_tokens`` and every other flat column. A count that
differs between the results and ``sent`` is an error: replay every request.

>>> import json, os, tempfile, numpy as np, servegen as sg
>>> from pathlib import Path
>>> sent = sg.Requests({"timestamp": np.array([0.0, 0.5]), "client": np.array([0, 1], np.int32),
...                     "input_tokens": np.array([100, 900]), "output_tokens": np.array([3, 2])},
...                    clients=["chat", "batch"])
>>> path = os.path.join(tempfile.mkdtemp(), "result.json")  # vllm bench serve --save-detailed
>>> _ = Path(path).write_text(json.dumps({"ttfts": [0.1, 0.4], "itls": [[0.02, 0.02], [0.05]],
...     "output_lens": [3, 2], "input_lens": [100, 900], "errors": ["", ""]}))
>>> res = sg.read_results(path, "vllm", sent=sent)
>>> res[["client", "ttft", "tpot", "e2e", "ok"]]
  client  ttft  tpot   e2e    ok
0   chat   0.1  0.02  0.14  True
1  batch   0.4  0.05  0.45  True
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RESULT_TOOLS", "read_results", "slo_table"]

#: Tools whose per-request results :func:`read_results` reads.
RESULT_TOOLS: tuple[str, ...] = ("aiperf", "vllm", "guidellm", "vidur")
_COLUMNS = ("start", "ttft", "tpot", "e2e", "prompt_tokens", "completion_tokens", "ok", "error")
_METRICS = ("ttft", "tpot", "e2e")


def read_results(path: str | os.PathLike[str], tool: str, *, sent: Any = None) -> pd.DataFrame:
    """Per-request results of a replay by ``tool``, optionally joined to what was ``sent``.

    Parameters
    ----------
    path
        The tool's per-request result file (see the module table).
    tool
        One of :data:`~servegen.results.RESULT_TOOLS` (``vidur`` for both Vidur codebases).
    sent
        The requests that were replayed: a :class:`~servegen.Requests` or a canonical
        DataFrame, in the order they were written.

    Returns
    -------
    pandas.DataFrame
        One row per request, in the order of ``sent`` (of the file when ``sent`` is
        None), with the columns of the module docs; ``attrs`` holds ``tool`` and ``path``.

    Raises
    ------
    ValueError
        Unknown tool, a file that is not the tool's result format (named), or a count
        that differs from ``sent``.
    """
    if tool not in _READERS:
        raise ValueError(f"read_results: `tool` must be one of {list(RESULT_TOOLS)!r}, got {tool!r}")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"read_results: no such file: {str(file)!r}")
    res, keys = _READERS[tool](file)
    if sent is not None:
        res = _join(res, keys, _sent_frame(sent), tool, file)
    res.attrs.update({"tool": tool, "path": str(file)})
    return res


# -- the tools' files --------------------------------------------------------------------
def _frame(cols: Mapping[str, Any]) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    out = {c: cols.get(c, np.full(n, np.nan)) for c in _COLUMNS}
    df = pd.DataFrame(out)
    df["ok"] = df["ok"].astype(bool)
    df["error"] = df["error"].astype(object).where(~df["ok"], None)
    df.loc[~df["ok"], list(_METRICS)] = np.nan  # a failed request has no latency to report
    return df


def _relative(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return t - np.nanmin(t) if np.isfinite(t).any() else t


def _load_json(path: Path, tool: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"read_results: {str(path)!r} is not a {tool} result file (not JSON: {e})") from None


def _read_vllm(path: Path) -> tuple[pd.DataFrame, None]:
    d = _load_json(path, "vllm")
    need = ("ttfts", "itls", "errors", "output_lens")
    if not isinstance(d, dict) or any(k not in d for k in need):
        raise ValueError(
            f"read_results: {str(path)!r} lacks the per-request lists {list(need)!r} of a vLLM result; "
            "run `vllm bench serve` with --save-result --save-detailed"
        )
    errors = pd.Series(d["errors"], dtype=object)
    ok = (errors.isna() | (errors == "")).to_numpy()
    out_len = np.asarray(d["output_lens"], dtype=np.float64)
    decode = np.array([float(np.sum(x)) if x else 0.0 for x in d["itls"]])  # ragged lists (s)
    ttft = np.where(ok, np.asarray(d["ttfts"], dtype=np.float64), np.nan)
    cols = {
        "ttft": ttft,
        "tpot": np.where(ok & (out_len > 1), decode / np.maximum(out_len - 1, 1), np.nan),
        "e2e": np.where(ok, ttft + decode, np.nan),
        "prompt_tokens": np.asarray(d.get("input_lens", np.full(len(ok), np.nan)), dtype=np.float64),
        "completion_tokens": out_len,
        "ok": ok,
        "error": errors.to_numpy(),
    }
    if "start_times" in d:
        cols["start"] = _relative(np.asarray(d["start_times"], dtype=np.float64))
    return _frame(cols), None


def _read_aiperf(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ValueError(f"read_results: {str(path)!r} line {number} is not JSON") from None
    if not rows or not all(isinstance(r, dict) and "metadata" in r for r in rows):
        raise ValueError(
            f"read_results: {str(path)!r} is not an AIPerf profile_export.jsonl (records with metadata)"
        )
    meta = pd.DataFrame([r["metadata"] for r in rows])
    metrics = [r.get("metrics") or {} for r in rows]

    def metric(name: str, scale: float = 1.0) -> np.ndarray:
        return np.array(
            [m[name]["value"] * scale if name in m else np.nan for m in metrics], dtype=np.float64
        )

    err = [r.get("error") for r in rows]
    ok = np.array([e is None for e in err])
    cols = {
        "start": _relative(meta["request_start_ns"].to_numpy(dtype=np.float64) / 1e9),
        "ttft": metric("time_to_first_token", 1e-3),
        "tpot": metric("inter_token_latency", 1e-3),
        "e2e": metric("request_latency", 1e-3),
        "prompt_tokens": np.where(ok, metric("input_sequence_length"), metric("error_isl")),
        "completion_tokens": metric("output_sequence_length"),
        "ok": ok,
        "error": [None if e is None else f"{e.get('code')} {e.get('type')}: {e.get('message')}" for e in err],
    }
    df = _frame(cols)
    keys = pd.DataFrame({"conversation": meta["conversation_id"].astype(str), "turn": meta["turn_index"]})
    order = np.argsort(df["start"].to_numpy(), kind="stable")
    return df.iloc[order].reset_index(drop=True), keys.iloc[order].reset_index(drop=True)


def _read_guidellm(path: Path) -> tuple[pd.DataFrame, None]:
    d = _load_json(path, "guidellm")
    benches = d.get("benchmarks") if isinstance(d, dict) else None
    if not benches or not all(isinstance(b, dict) and "requests" in b for b in benches):
        raise ValueError(f"read_results: {str(path)!r} is not a GuideLLM report (benchmarks with requests)")
    if len(benches) != 1:
        raise ValueError(
            f"read_results: {str(path)!r} holds {len(benches)} benchmarks; a replay has one "
            "(split the report or pass a single benchmark's file)"
        )
    stats = []
    for status in ("successful", "errored", "incomplete"):
        stats += [(status, r) for r in benches[0]["requests"].get(status) or []]

    def col(name: str, scale: float = 1.0) -> np.ndarray:
        return np.array(
            [np.nan if r.get(name) is None else r[name] * scale for _, r in stats], dtype=np.float64
        )

    ok = np.array([s == "successful" for s, _ in stats])
    cols = {
        "start": _relative(col("request_start_time")),
        "ttft": col("time_to_first_token_ms", 1e-3),
        "tpot": col("inter_token_latency_ms", 1e-3),
        "e2e": col("request_latency"),
        "prompt_tokens": col("prompt_tokens"),
        "completion_tokens": col("output_tokens"),
        "ok": ok,
        "error": [s for s, _ in stats],
    }
    df = _frame(cols)
    return df.iloc[np.argsort(df["start"].to_numpy(), kind="stable")].reset_index(drop=True), None


def _read_vidur(path: Path) -> tuple[pd.DataFrame, None]:
    d = pd.read_csv(path)
    need = [
        "Request Id",
        "prefill_e2e_time",
        "request_e2e_time",
        "decode_time_execution_plus_preemption_normalized",
    ]
    missing = [c for c in need if c not in d.columns]
    if missing:
        raise ValueError(
            f"read_results: {str(path)!r} is not a Vidur request_metrics.csv: no column(s) {missing!r}"
        )
    d = d.sort_values("Request Id", kind="stable").reset_index(drop=True)
    cols = {
        "ttft": d["prefill_e2e_time"].to_numpy(dtype=np.float64),
        "tpot": d["decode_time_execution_plus_preemption_normalized"].to_numpy(dtype=np.float64),
        "e2e": d["request_e2e_time"].to_numpy(dtype=np.float64),
        "prompt_tokens": d.get("request_num_prefill_tokens", pd.Series(np.nan, index=d.index)).to_numpy(
            float
        ),
        "completion_tokens": d.get("request_num_decode_tokens", pd.Series(np.nan, index=d.index)).to_numpy(
            float
        ),
        "ok": np.ones(len(d), dtype=bool),  # a simulation does not fail requests
        "error": [None] * len(d),
    }
    if "request_inter_arrival_delay" in d.columns:  # the first request's delay is 0 or empty
        cols["start"] = np.nancumsum(d["request_inter_arrival_delay"].to_numpy(dtype=np.float64))
    return _frame(cols), None


_READERS = {"aiperf": _read_aiperf, "vllm": _read_vllm, "guidellm": _read_guidellm, "vidur": _read_vidur}


# -- joining to the sent workload ---------------------------------------------------------
def _sent_frame(sent: Any) -> pd.DataFrame:
    from .requests import Ragged, Requests

    if isinstance(sent, Requests):
        cols = {c: sent[c] for c in sent.columns if not isinstance(sent[c], Ragged) and c != "client"}
        df = pd.DataFrame(cols)
        df.insert(1, "client", pd.Series(pd.Categorical(sent.client_keys), index=df.index))
        return df
    if isinstance(sent, pd.DataFrame):
        keep = [c for c in sent.columns if not (sent[c].dtype == object and _is_list(sent[c]))]
        return sent[keep].reset_index(drop=True)
    raise TypeError(
        f"read_results: `sent` must be servegen Requests or a DataFrame, got {type(sent).__name__}"
    )


def _is_list(s: pd.Series) -> bool:
    first = s.dropna()
    return len(first) > 0 and isinstance(first.iloc[0], (list, tuple, np.ndarray))


def _join(
    res: pd.DataFrame, keys: pd.DataFrame | None, sent: pd.DataFrame, tool: str, path: Path
) -> pd.DataFrame:
    if len(res) != len(sent):
        raise ValueError(
            f"read_results: {str(path)!r} has {len(res)} requests but {len(sent)} were sent; replay every "
            "request (vLLM: --num-prompts) and pass the requests of this file as `sent`"
        )
    order = np.argsort(sent["timestamp"].to_numpy(), kind="stable")
    if keys is not None:  # AIPerf: session turns by (session, turn), other rows by start order
        order = _aiperf_order(keys, sent, order)
    extra = sent.iloc[order].reset_index(drop=True).drop(columns=[c for c in _COLUMNS if c in sent.columns])
    out = pd.concat([res.reset_index(drop=True), extra], axis=1)
    back = np.empty(len(order), dtype=np.intp)
    back[order] = np.arange(len(order))
    return out.iloc[back].reset_index(drop=True)  # rows in the order of `sent`


def _aiperf_order(keys: pd.DataFrame, sent: pd.DataFrame, by_time: np.ndarray) -> np.ndarray:
    """For each result row (in start order), the row of ``sent`` it measured."""
    n = len(sent)
    if "session" in sent.columns:
        s = sent["session"]
        member = (s.notna() & (pd.to_numeric(s, errors="coerce").fillna(0) >= 0)).to_numpy()
        label = s.astype(str).str.replace(r"\.0$", "", regex=True).to_numpy(dtype=object)
        label[~member] = None  # rows outside a session carry no label
    else:
        member = np.zeros(n, dtype=bool)
        label = np.full(n, None, dtype=object)
    t = sent["timestamp"].to_numpy()
    turn = pd.Series(t).groupby(pd.Series(label).fillna("")).rank(method="first").to_numpy() - 1
    sent_key = pd.DataFrame({"row": np.arange(n), "conversation": label, "turn": turn.astype(np.int64)})
    res_key = keys.assign(pos=np.arange(len(keys)))
    in_session = res_key["conversation"].isin(set(label[member]))
    matched = res_key[in_session].merge(sent_key[member], on=["conversation", "turn"], how="left")
    out = np.full(len(keys), -1, dtype=np.intp)
    out[matched["pos"].to_numpy()] = matched["row"].fillna(-1).to_numpy(dtype=np.intp)
    lone_sent = by_time[~member[by_time]]
    lone_pos = np.flatnonzero(~in_session.to_numpy())
    if len(lone_pos) != len(lone_sent) or (out[in_session.to_numpy()] < 0).any():
        raise ValueError(
            "read_results: the AIPerf records do not match the sent sessions (a conversation_id or "
            "turn_index that was not sent); pass the requests of the replayed file as `sent`"
        )
    out[lone_pos] = lone_sent
    return out


# -- SLOs -----------------------------------------------------------------------------------
def slo_table(
    results: pd.DataFrame,
    slo: Mapping[str, float] | None = None,
    *,
    by: str | None = "client",
    percentiles: Sequence[float] = (50, 90, 99),
) -> pd.DataFrame:
    """Latency percentiles and SLO attainment per group (client), plus an ``all`` row.

    Parameters
    ----------
    results
        :func:`read_results` output (joined to ``sent`` to group by client).
    slo
        Bounds in seconds, any of ``ttft``, ``tpot``, ``e2e``: e.g. ``{"ttft": 1.0,
        "tpot": 0.05}``. A request attains an SLO when it succeeded and its value is
        within the bound (a one-token answer has no TPOT and meets a TPOT bound).
    by
        The column to group by (None: only the ``all`` row).
    percentiles
        Percentiles of each latency over the successful requests.

    Returns
    -------
    pandas.DataFrame
        ``requests``, ``ok`` (success fraction), ``ttft_p50`` ... (seconds), then for
        each bound ``attain_ttft`` ... and ``attain_all`` (fractions of all requests).

    Examples
    --------
    >>> import numpy as np, pandas as pd, servegen as sg
    >>> res = pd.DataFrame({"client": ["chat", "chat", "chat", "batch"], "ok": [True, True, False, True],
    ...                     "ttft": [0.1, 0.3, np.nan, 2.0], "tpot": [0.02, 0.04, np.nan, 0.01],
    ...                     "e2e": [1.0, 2.0, np.nan, 5.0]})
    >>> t = sg.slo_table(res, {"ttft": 0.5, "tpot": 0.03}, percentiles=[50])
    >>> cols = ["requests", "ok", "ttft_p50", "attain_ttft", "attain_tpot", "attain_all"]
    >>> t[cols].round(3)  # doctest: +NORMALIZE_WHITESPACE
            requests     ok  ttft_p50  attain_ttft  attain_tpot  attain_all
    client
    batch          1  1.000       2.0        0.000        1.000       0.000
    chat           3  0.667       0.2        0.667        0.333       0.333
    all            4  0.750       0.3        0.500        0.500       0.250
    """
    slo = dict(slo or {})
    for key, bound in slo.items():
        if key not in _METRICS:
            raise ValueError(f"slo_table: SLO keys must be among {list(_METRICS)!r}, got {key!r}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not bound > 0:
            raise ValueError(f"slo_table: the `{key}` bound must be a number of seconds > 0, got {bound!r}")
    q = [float(p) for p in percentiles]
    if any(not 0 <= p <= 100 for p in q):
        raise ValueError(f"slo_table: `percentiles` must lie in [0, 100], got {list(percentiles)!r}")
    if by is not None and by not in results.columns:
        raise ValueError(
            f"slo_table: no column {by!r} to group by; join the results to the sent workload "
            "(read_results(..., sent=...)) or pass by=None"
        )
    ok = results["ok"].to_numpy(dtype=bool)
    met = {}
    for key, bound in slo.items():
        v = results[key].to_numpy(dtype=np.float64)
        met[key] = ok & ((v <= bound) | (np.isnan(v) if key == "tpot" else False))
    frame = pd.DataFrame({"ok": ok, **{f"attain_{k}": m for k, m in met.items()}})
    if slo:
        frame["attain_all"] = np.logical_and.reduce(list(met.values()))
    for key in _METRICS:
        frame[key] = np.where(ok, results[key].to_numpy(dtype=np.float64), np.nan)

    def summary(g: pd.DataFrame) -> dict[str, float]:
        row: dict[str, float] = {"requests": len(g), "ok": g["ok"].mean()}
        for key in _METRICS:
            for p in q:
                row[f"{key}_p{p:g}"] = float(g[key].quantile(p / 100)) if g[key].notna().any() else np.nan
        row.update({c: g[c].mean() for c in g.columns if c.startswith("attain_")})
        return row

    rows: dict[Hashable, dict[str, float]] = {}
    if by is not None:
        for name, g in frame.groupby(results[by].to_numpy(), sort=True):
            rows[name] = summary(g)
    rows["all"] = summary(frame)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = by
    table["requests"] = table["requests"].astype(np.int64)
    return table
