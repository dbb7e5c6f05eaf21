"""The command that replays a written file in its consumer tool.

Each consumer format has one tool that reads it and one command line that replays it
faithfully: the time unit of the file, its hash-id block size, the full request count
(vLLM's ``--num-prompts`` defaults to 1000 and silently cuts a longer trace) and the
flags that make a real server honour the output lengths (``ignore_eos``).
``servegen generate`` prints this command after writing, and
:doc:`/howto/benchmark` shows the same commands (a test keeps them equal).

============ ================================== ======== ===================================
format       tool (checked against)             time     what the command sets
============ ================================== ======== ===================================
vllm         ``vllm bench serve`` (vLLM 0.33)   s        ``timed_trace``, multiplier 1,
                                                         16-token blocks, all prompts
mooncake     ``vllm bench serve`` (vLLM 0.33)   ms       multiplier 0.001, 512-token blocks
aiperf       ``aiperf profile`` (AIPerf 0.13)   ms       ``mooncake_trace``, ``ignore_eos``
guidellm     ``guidellm run`` (GuideLLM 0.8.1)  s        ``replay`` profile,
                                                         ``trace_synthetic`` data
vidur        ``python -m vidur.main`` (GitHub)  s        ``trace_replay``, ``max_tokens``,
                                                         scale factors 1
vidur_pip    ``python -m vidur.main``           s        as vidur, plus the file's ``date``
             (``pip install vidur`` 0.0.26)              (its defaults scale prefill x 0.3
                                                         and time x 0.04)
============ ================================== ======== ===================================

``MODEL`` and the URL are placeholders to replace. Formats without a replay tool of
their own (``parquet``, ``csv``, ``jsonl``, ``azure``, ``burstgpt``,
``llmservingsim``) have no command.

>>> print(replay_command("vllm", "bench.jsonl", n_requests=12000))
# vLLM bench: 12000 requests, timestamps in s, 16-token hash blocks
vllm bench serve --model MODEL --base-url http://localhost:8000 \\
    --dataset-name timed_trace --dataset-path bench.jsonl --num-prompts 12000 \\
    --timed-trace-sec-multiplier 1 --timed-trace-chunk-hash-size 16 \\
    --ignore-eos --save-result --save-detailed --result-filename bench-result.json
"""

from __future__ import annotations

import os
from pathlib import Path

from ._validate import check_whole

__all__ = ["REPLAY_FORMATS", "replay_command"]

#: Formats that :func:`replay_command` knows a replay command for.
REPLAY_FORMATS: tuple[str, ...] = ("vllm", "mooncake", "aiperf", "guidellm", "vidur", "vidur_pip")
_DEFAULT_BLOCK = {"vllm": 16, "mooncake": 512, "aiperf": 512}
_URL = "http://localhost:8000"


def replay_command(
    format: str,
    path: str | os.PathLike[str],
    *,
    n_requests: int,
    model: str = "MODEL",
    url: str = _URL,
    block_size: int | None = None,
    max_tokens: int | None = 4096,
    date: str = "2023-08-21",
) -> str | None:
    """The shell command that replays ``path`` (written in ``format``) in its tool.

    Parameters
    ----------
    format
        The format the file was written in; ``None`` is returned for a format without a
        replay tool (see :data:`~servegen.replay.REPLAY_FORMATS`).
    path
        The written file, as it should appear in the command.
    n_requests
        Requests in the file (vLLM replays only ``--num-prompts`` of them).
    model, url
        The served model name and the server's base URL.
    block_size
        Tokens per hash id, when the file was written with a non-default ``block_size``.
    max_tokens
        For Vidur: the ``max_tokens`` the file was fitted to (the writer's option).
    date
        For ``vidur_pip``: the ``date`` written in the file.

    Returns
    -------
    str or None
        A comment line (tool, request count, units) and the command, continued with
        ``\\`` over lines of at most about 100 characters.

    Examples
    --------
    >>> print(replay_command("mooncake", "day.jsonl", n_requests=2926))
    # vLLM bench: 2926 requests, timestamps in ms, 512-token hash blocks
    vllm bench serve --model MODEL --base-url http://localhost:8000 \\
        --dataset-name timed_trace --dataset-path day.jsonl --num-prompts 2926 \\
        --timed-trace-sec-multiplier 0.001 --timed-trace-chunk-hash-size 512 \\
        --ignore-eos --save-result --save-detailed --result-filename day-result.json
    >>> replay_command("parquet", "x.parquet", n_requests=5) is None
    True
    """
    check_whole(n_requests, "n_requests", owner="replay_command")
    if format not in REPLAY_FORMATS:
        return None
    p = str(path)
    stem = Path(p).name.split(".")[0] or "trace"
    block = block_size or _DEFAULT_BLOCK.get(format)
    if format in ("vllm", "mooncake"):
        unit, mult = ("s", "1") if format == "vllm" else ("ms", "0.001")
        head = f"# vLLM bench: {n_requests} requests, timestamps in {unit}, {block}-token hash blocks"
        lines = [
            f"vllm bench serve --model {model} --base-url {url}",
            f"--dataset-name timed_trace --dataset-path {p} --num-prompts {n_requests}",
            f"--timed-trace-sec-multiplier {mult} --timed-trace-chunk-hash-size {block}",
            f"--ignore-eos --save-result --save-detailed --result-filename {stem}-result.json",
        ]
    elif format == "aiperf":
        head = f"# AIPerf: {n_requests} requests, times in ms, {block}-token hash blocks"
        lines = [
            f"aiperf profile --model {model} --url {url} --endpoint-type chat --streaming",
            f"--input-file {p} --custom-dataset-type mooncake_trace",
            f"--extra-inputs ignore_eos:true --artifact-dir {stem}-results",
        ]
        if block != 512:  # AIPerf's prompts assume its default block of 512 tokens
            head += f"; AIPerf assumes 512-token blocks, this file has {block}: write it with block_size=512"
    elif format == "guidellm":
        head = f"# GuideLLM: {n_requests} requests, timestamps in s"
        lines = [
            f"guidellm run --backend kind=openai_http,target={url},model={model}",
            "--profile kind=replay",
            f'--data "kind=trace_synthetic,source.kind=json_file,source.path={p}"',
            f"--constraint kind=max_requests,count={n_requests}",
            f"--output kind=json,path={stem}-benchmarks.json",
        ]
    else:
        pip = format == "vidur_pip"
        limit = 4096 if max_tokens is None else max_tokens
        head = (
            f"# Vidur ({'pip install vidur 0.0.26' if pip else 'GitHub source'}): {n_requests} requests, "
            f"arrivals in s, prompt + output <= {limit} tokens"
        )
        cfg = "--trace_request_generator_config"
        lines = [
            "python -m vidur.main --request_generator_config_type trace_replay",
            f"{cfg}_trace_file {p}",
            *([f"{cfg}_date {date}"] if pip else []),
            f"{cfg}_max_tokens {limit}",
            f"{cfg}_prefill_scale_factor 1",
            f"{cfg}_decode_scale_factor 1",
            f"{cfg}_time_scale_factor 1",
        ]
    return head + "\n" + " \\\n    ".join(lines)
