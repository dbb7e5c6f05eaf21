"""The public models and entry points are typed: what a user's type checker sees.

Before, ``Client.arrival``/``input_tokens``/``output_tokens`` and every ``rng=`` were
``Any``, so a type checker let ``client.sample(60, rng="seed")`` through.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import servegen as sg
from servegen._base import Frozen
from servegen.arrivals import ArrivalModel
from servegen.distributions import ValueModel

ROOT = Path(__file__).resolve().parents[1]


def _public_callables():
    for name in sg.__all__:
        obj = getattr(sg, name)
        if inspect.isfunction(obj):
            yield name, obj
        elif inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if inspect.isfunction(value) and not attr.startswith("_"):
                    yield f"{name}.{attr}", value


def test_every_public_rng_is_seedlike():
    seen = []
    for name, fn in _public_callables():
        param = inspect.signature(fn).parameters.get("rng")
        if param is None or name in ("Client.sample_values", "Client.turns"):  # engine hooks: streams
            continue
        seen.append(name)
        if param.annotation == "np.random.Generator":  # a model's own verb (`sample`) takes a Generator
            model = getattr(sg, name.split(".")[0])
            assert inspect.isclass(model) and issubclass(model, Frozen), name
            continue
        assert param.annotation in ("SeedLike", "_rng.SeedLike"), (name, param.annotation)
    # the entry points a user seeds, at least
    assert {"Client.sample", "Workload.sample", "Workload.iter_chunks", "fit", "compare"} <= set(seen)


def test_seedlike_is_what_root_seed_accepts():
    allowed = typing.get_args(sg.SeedLike)
    assert set(allowed) == {
        int,
        np.integer[typing.Any],
        np.random.SeedSequence,
        np.random.Generator,
        type(None),
    }
    for seed in (None, 3, np.int64(3), np.random.SeedSequence(3), np.random.default_rng(3)):
        assert (
            len(sg.Client(arrival=sg.Poisson(rate=5), input_tokens=1, output_tokens=1).sample(2, rng=seed))
            > 0
        )


def test_client_fields_are_model_unions():
    fields = sg.Client.model_fields
    assert set(typing.get_args(fields["arrival"].annotation)) == {
        sg.ArrivalProcess,
        sg.Piecewise,
        ArrivalModel,
    }
    for name in ("input_tokens", "output_tokens"):
        assert set(typing.get_args(fields[name].annotation)) == {sg.Distribution, sg.Piecewise, ValueModel}
    assert inspect.signature(sg.Client.sample).return_annotation == "Requests"
    value_like = {sg.Distribution, sg.Piecewise, ValueModel}
    for model, name in [(sg.Session, "think_time"), (sg.Session, "new_tokens"), (sg.Modality, "count")]:
        assert set(typing.get_args(model.model_fields[name].annotation)) == value_like, (model, name)
    assert set(typing.get_args(sg.Reasoning.model_fields["ratio"].annotation)) == value_like | {type(None)}
    for model, name in [(sg.Session, "turns"), (sg.SharedPrefix, "popularity")]:
        assert model.model_fields[name].annotation is sg.Distribution
    # the coercions still happen: a number is a Constant, a dict is parsed by its kind
    c = sg.Client(
        arrival={"kind": "poisson", "rate": 2}, input_tokens=7, output_tokens=sg.Exponential(mean=3)
    )
    assert c.arrival == sg.Poisson(rate=2) and c.input_tokens == sg.Constant(value=7)
    assert sg.parse_model(c.model_dump(mode="json")) == c  # each model dumps its own fields


USER_CODE = """
import numpy as np
from typing_extensions import assert_type
import servegen as sg

c = sg.Client(arrival=sg.Gamma(rate=1, cv=2), input_tokens=100, output_tokens=sg.Exponential(mean=5))
sg.Exponential(mean=5).sample(3, rng=7)  # error: a model's own verb takes a Generator
assert_type(c.sample(10, rng=np.random.default_rng(0)), sg.Requests)
assert_type(sg.Workload([c]).sample(10, rng=np.random.SeedSequence(1)), sg.Requests)
c.sample(10, rng="seed")  # error: a string is no seed
n: int = c.input_tokens  # error: a value model, not a number
c.arrival.sample(0.0, 1.0, rng=np.random.default_rng(0))  # every arrival model has sample
"""


@pytest.mark.slow
def test_a_users_type_checker_sees_the_types(tmp_path):
    user = tmp_path / "user.py"
    user.write_text(USER_CODE)
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}  # this checkout, not an installed copy
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(user)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line and "user.py" in line]
    lines = sorted(int(re.search(r"user\.py:(\d+):", e).group(1)) for e in errors)
    expected = [i + 1 for i, text in enumerate(USER_CODE.splitlines()) if "# error:" in text]
    assert lines == expected, proc.stdout[-3000:] + proc.stderr[-2000:]
