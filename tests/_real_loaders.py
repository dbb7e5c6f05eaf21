"""Run a consumer tool's own loader on a servegen export; print what it made of it as JSON.

Run as a script in a subprocess by tests/test_real_loaders.py, so the tool's imports,
logging setup and warnings stay out of the test process::

    python tests/_real_loaders.py aiperf FILE [FILE ...]
    python tests/_real_loaders.py guidellm-cli 'guidellm run --backend ...'

``aiperf``: AIPerf 0.13's ``CustomDatasetComposer`` (what ``aiperf profile --input-file
FILE --custom-dataset-type mooncake_trace`` runs) turns each file into conversations;
printed per conversation: its session id and per turn ``timestamp``, ``delay``,
``max_tokens`` and the synthesized prompt's token ids. AIPerf's ``builtin`` tokenizer is
tiktoken's ``o200k_base``, whose BPE file is a download; a byte-level tiktoken encoding
built here stands in (tests never download), so a prompt's tokens are its bytes.

``guidellm-cli``: GuideLLM 0.8.1's own ``guidellm run`` click command parses and
validates the command line (``BenchmarkScenario``); the benchmark itself is replaced by
printing the validated spec.

Importing this module imports neither tool (pytest's doctest collection imports it).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def aiperf(paths: list[str]) -> list[list[dict[str, Any]]]:
    import tiktoken

    encoding = tiktoken.Encoding(
        name="bytes",
        pat_str=r"[\s\S]",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={"<|endoftext|>": 256},
    )
    tiktoken.get_encoding = lambda name: encoding  # the stand-in for o200k_base

    from aiperf.common import random_generator
    from aiperf.common.tokenizer import Tokenizer
    from aiperf.config import BenchmarkConfig, BenchmarkRun
    from aiperf.dataset.composer.custom import CustomDatasetComposer

    random_generator.init(0)
    tokenizer = Tokenizer.from_pretrained("builtin")
    out = []
    for path in paths:
        cfg = BenchmarkConfig.model_validate(
            {
                "models": ["m"],
                "endpoint": {
                    "urls": ["http://localhost:8000/v1/chat/completions"],
                    "wait_for_model_timeout": 0,
                },
                "datasets": [{"name": "default", "type": "file", "path": path, "format": "mooncake_trace"}],
                "phases": [{"name": "profiling", "type": "concurrency", "requests": 1, "concurrency": 1}],
                "runtime": {"ui": "simple"},
            }
        )
        run = BenchmarkRun(benchmark_id="servegen", cfg=cfg, artifact_dir=cfg.artifacts.dir)
        try:
            conversations = CustomDatasetComposer(run=run, tokenizer=tokenizer).create_dataset()
        except Exception as e:  # report the loader's refusal (e.g. max_tokens < 1) to the test
            out.append([{"error": f"{type(e).__name__}: {e}"}])
            continue
        out.append(
            [
                {
                    "session_id": c.session_id,
                    "turns": [
                        {
                            "timestamp": t.timestamp,
                            "delay": t.delay,
                            "max_tokens": t.max_tokens,
                            "tokens": tokenizer.encode(t.texts[0].contents[0]),
                        }
                        for t in c.turns
                    ],
                }
                for c in conversations
            ]
        )
    return out


def guidellm_cli(command: str) -> dict[str, Any]:
    import shlex

    import guidellm.entrypoints as entry
    from guidellm.cli import cli

    got: dict[str, Any] = {}

    async def capture(args: Any, **kwargs: Any) -> None:
        got.update(args.model_dump(mode="json"))

    entry.benchmark_generative_text = capture
    # as a shell reads it: the first line is a comment, a backslash-newline a space
    argv = shlex.split(command.replace("\\\n", " "), comments=True)
    assert argv[:2] == ["guidellm", "run"], argv[:2]
    try:
        cli.main([*argv[1:], "--disable-console"], standalone_mode=False)
    except Exception as e:  # a click usage error or a validation error: the flags are wrong
        return {"error": f"{type(e).__name__}: {e}"}
    return got


if __name__ == "__main__":
    tool, rest = sys.argv[1], sys.argv[2:]
    result = aiperf(rest) if tool == "aiperf" else guidellm_cli(rest[0])
    print(json.dumps(result))
