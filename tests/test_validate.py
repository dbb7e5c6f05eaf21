"""servegen._validate: the one set of argument checks, and the callers moved onto it."""

from __future__ import annotations

import re

import numpy as np
import pytest

import servegen as sg
from servegen._validate import check_number, check_whole, is_number, message


@pytest.mark.parametrize("value", [0, 7, np.int8(3), np.uint64(2**40)])
def test_check_whole_accepts_integers(value):
    got = check_whole(value, "n")
    assert got == int(value) and type(got) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 2.0, np.float64(1), "3", None, -1, np.int64(-2)])
def test_check_whole_refuses_the_rest(value):
    with pytest.raises(ValueError, match=r"^f: `n` must be a whole number >= 0, got ") as e:
        check_whole(value, "n", owner="f")
    assert str(e.value).endswith(repr(value))


def test_check_whole_low_and_unit():
    assert check_whole(1, "capacity", low=1) == 1
    with pytest.raises(ValueError, match=r"^`capacity` must be a whole number of blocks >= 1, got 0$"):
        check_whole(0, "capacity", low=1, unit="blocks")


@pytest.mark.parametrize(
    ("value", "kw", "ok"),
    [
        (0, {"low": 0}, True),
        (0, {"low": 0, "strict": True}, False),
        (1e-300, {"low": 0, "strict": True}, True),
        (-0.5, {"low": 0}, False),
        (-0.5, {}, True),
        (float("inf"), {}, False),
        (float("nan"), {}, False),
        (np.float32(2.5), {"low": 1}, True),
        (True, {}, False),
        ("1", {}, False),
    ],
)
def test_check_number(value, kw, ok):
    if ok:
        assert check_number(value, "x", **kw) == float(value)
    else:
        with pytest.raises(ValueError, match=r"^`x` must be a finite number"):
            check_number(value, "x", **kw)


def test_message_is_the_template():
    assert message("Gamma", "cv", "be > 0", -1.0) == "Gamma: `cv` must be > 0, got -1.0"
    assert is_number(np.float16(1)) and not is_number(np.bool_(False))


# Callers now on the shared checks: the messages are unchanged, and bool is no number.
def test_pool_span_refuses_bool():
    pool = sg.load_pool("language/m-large")
    with pytest.raises(
        ValueError, match=r"Pool.span: `start` must be a finite number of seconds >= 0, got True"
    ):
        pool.span(True, 3600)


def test_lru_capacity_message():
    from servegen.cache import lru_hit_rate

    with pytest.raises(
        ValueError, match=r"lru_hit_rate: `capacity` must be a whole number of blocks >= 1, got 1.0"
    ):
        lru_hit_rate(None, 1.0)


# Every whole-number argument goes through check_whole: one rule (numpy integers count,
# bool and 2.0 do not) and one message. Before, five modules each had a copy, three
# saying "an integer" and one refusing numpy integers (replay_command's `n_requests`).
def _whole_callers():
    from servegen._checks import check_workers
    from servegen.dask_sample import client_groups
    from servegen.fit.common import check_count
    from servegen.formats._context import check_max_tokens

    client = sg.Client(arrival=sg.Poisson(rate=1.0), input_tokens=10, output_tokens=5)
    return [
        (lambda v: check_count(v, "max_points", 2), 2, "`max_points` must be a whole number >= 2"),
        (
            lambda v: check_max_tokens(v, "vidur"),
            2,
            "vidur: `max_tokens` must be a whole number >= 2 or None",
        ),
        (check_workers, 1, "`workers` must be a whole number >= 1"),
        (lambda v: client_groups(["a", "b"], v), 1, "`partitions` must be a whole number >= 1"),
        (
            lambda v: sg.Workload({"a": client}, block_size=v).block_size,
            1,
            "Workload: `block_size` must be a whole number of tokens >= 1 or None",
        ),
        (
            lambda v: sg.replay_command("vllm", "x.jsonl", n_requests=v),
            0,
            "replay_command: `n_requests` must be a whole number >= 0",
        ),
    ]


@pytest.mark.parametrize("case", range(6))
def test_whole_number_arguments_share_one_check(case):
    call, low, text = _whole_callers()[case]
    call(np.int64(low + 3))  # numpy integers are whole numbers everywhere
    for bad in (low - 1, True, float(low + 1)):
        with pytest.raises(ValueError, match="^" + re.escape(f"{text}, got {bad!r}") + "$"):
            call(bad)
