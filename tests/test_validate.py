"""servegen._validate: the one set of argument checks, and the callers moved onto it."""

from __future__ import annotations

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
