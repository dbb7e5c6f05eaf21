"""By-hand checks of servegen exports with consumer loaders too heavy for CI.

Run each in its own environment (never servegen's), on files written by servegen; each
prints, per file, how many rows the tool's own loader made and whether arrival times,
prompt lengths (in tokens) and output lengths are the file's::

    # vLLM 0.33.0: only benchmarks/datasets/datasets.py of the wheel (336 MB, the rest needs
    # torch) is run, unmodified; the vllm.* modules it imports for other datasets are
    # replaced by empty stand-ins. Needs numpy, pillow, pybase64.
    pip download vllm==0.33.0 --no-deps -d wheels
    unzip wheels/vllm-0.33.0-*.whl 'vllm/benchmarks/datasets/*' -d vllm-src
    python scripts/check_consumer_loaders.py vllm vllm-src/vllm/benchmarks/datasets \\
        t.vllm.jsonl t.mooncake.jsonl

    # GuideLLM 0.8.1: its TraceDatasetDeserializer (needs guidellm with its requirements:
    # torch, datasets, transformers, faker, culsans, httpx, websockets).
    python scripts/check_consumer_loaders.py guidellm t.guidellm.jsonl t.mooncake.jsonl

Both use a byte-level tokenizer built here (the tools would download one), so a prompt's
length in tokens is exact. Results (see docs/howto/benchmark.md): every row, exact times
and lengths, and equal leading hash ids give equal leading prompt tokens.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any


def _rows(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _report(
    name: str,
    rows: list[dict[str, Any]],
    times: list[float],
    scale: float,
    prompts: list[int],
    outputs: list[int],
) -> None:
    t0 = rows[0]["timestamp"]
    ok_t = all(abs(t - (r["timestamp"] - t0) * scale) < 1e-9 for t, r in zip(times, rows, strict=True))
    ok_p = prompts == [r["input_length"] for r in rows]
    ok_o = outputs == [r["output_length"] for r in rows]
    print(f"{name}: {len(times)} of {len(rows)} rows; times {ok_t}, prompt tokens {ok_p}, outputs {ok_o}")


def _prefixes(name: str, rows: list[dict[str, Any]], tokens: list[list[int]], block: int) -> None:
    """Equal leading hash ids <=> equal leading prompt tokens (over the first 1024 tokens)."""
    k = 1024 // block
    pairs = [(i, j) for i in range(len(rows)) for j in range(i)]
    same = [(rows[i]["hash_ids"][:k] == rows[j]["hash_ids"][:k]) for i, j in pairs]
    agree = all((tokens[i][:1024] == tokens[j][:1024]) == s for (i, j), s in zip(pairs, same, strict=True))
    print(f"{name}: {sum(same)} of {len(pairs)} pairs share the ids of 1024 tokens; prompts agree: {agree}")


def check_vllm(source: str, vllm_file: str, mooncake_file: str) -> None:
    stubs: dict[str, dict[str, Any]] = {
        "vllm": {},
        "vllm.benchmarks": {},
        "vllm.benchmarks.datasets": {},
        "vllm.inputs": {"MultiModalDataDict": dict},
        "vllm.lora": {},
        "vllm.lora.request": {"LoRARequest": object},
        "vllm.lora.utils": {"get_adapter_absolute_path": None},
        "vllm.multimodal": {},
        "vllm.multimodal.audio": {"get_audio_duration": None},
        "vllm.multimodal.image": {"convert_image_mode": None},
        "vllm.multimodal.utils": {"encode_image_url": None, "fetch_image": None},
        "vllm.tokenizers": {"TokenizerLike": object},
        "vllm.transformers_utils": {},
        "vllm.transformers_utils.repo_utils": {"hf_api": None},
        "vllm.utils": {},
        "vllm.utils.argparse_utils": {"FlexibleArgumentParser": argparse.ArgumentParser},
        "vllm.utils.import_utils": {
            "PlaceholderModule": lambda name: types.SimpleNamespace(placeholder_attr=repr)
        },
        "vllm.utils.mistral": {"is_mistral_tokenizer": lambda tokenizer: False},
    }
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs, __path__=[])
        sys.modules[name] = module
    for name in ("utils", "datasets"):
        spec = importlib.util.spec_from_file_location(
            f"vllm.benchmarks.datasets.{name}", f"{source}/{name}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    datasets = sys.modules["vllm.benchmarks.datasets.datasets"]

    class ByteTokenizer:
        all_special_ids = (256,)

        def get_vocab(self) -> dict[str, int]:
            return {f"<{i}>": i for i in range(257)}

    parser = argparse.ArgumentParser()
    datasets.add_dataset_parser(parser)
    for path, multiplier, chunk in ((vllm_file, "1", "16"), (mooncake_file, "0.001", "512")):
        rows = _rows(path)
        args = parser.parse_args(
            [
                "--dataset-name",
                "timed_trace",
                "--dataset-path",
                path,
                "--timed-trace-sec-multiplier",
                multiplier,
                "--timed-trace-chunk-hash-size",
                chunk,
                "--num-prompts",
                str(len(rows)),
            ]
        )
        got = datasets.TimedTrace(**vars(args)).sample(tokenizer=ByteTokenizer(), num_requests=len(rows))
        times = [s.timestamp - got[0].timestamp for s in got]  # vLLM keeps the file's origin
        _report(
            path,
            rows,
            times,
            float(multiplier),
            [s.prompt_len for s in got],
            [s.expected_output_len for s in got],
        )
        _prefixes(path, rows, [s.prompt for s in got], int(chunk))


def check_guidellm(guidellm_file: str, mooncake_file: str) -> None:
    from guidellm.data.deserializers.trace_common import TraceDatasetDeserializer
    from guidellm.schemas.benchmark import BenchmarkScenario
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    byte_level = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    byte_level.decoder = decoders.ByteLevel()
    processor = PreTrainedTokenizerFast(tokenizer_object=byte_level)
    for path, kind, scale in ((guidellm_file, "trace_synthetic", 1.0), (mooncake_file, "mooncake", 0.001)):
        data = {"kind": kind, "source": {"kind": "json_file", "path": path}, "time_scale": scale}
        spec = {
            "backend": {"kind": "openai_http", "target": "http://x", "model": "m"},
            "profile": {"kind": "replay"},
            "data": [data],
        }
        config = BenchmarkScenario.create(spec=spec, scenario=None).spec.data[0]
        dataset = TraceDatasetDeserializer()(
            config=config, processor_factory=lambda: processor, random_seed=42
        )
        turns = [json.loads(x["conversation_turns"])["turns"][0]["columns"] for x in dataset]
        tokens = [processor.encode(t["text_column"][0]) for t in turns]
        rows = _rows(path)
        _report(
            path,
            rows,
            [t["relative_timestamp_column"][0] for t in turns],
            scale,
            [len(t) for t in tokens],
            [t["output_tokens_count_column"][0] for t in turns],
        )
        if kind == "mooncake":
            _prefixes(path, rows, tokens, 512)


if __name__ == "__main__":
    tool, *files = sys.argv[1:]
    if tool == "vllm":
        check_vllm(*files)
    elif tool == "guidellm":
        check_guidellm(*files)
    else:
        name = Path(__file__).name
        sys.exit(
            f"usage: {name} vllm DATASETS_DIR VLLM_FILE MOONCAKE_FILE\n"
            f"       {name} guidellm GUIDELLM_FILE MOONCAKE_FILE"
        )
