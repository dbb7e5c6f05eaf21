"""pydantic's rejections speak the project's template: ``Model: `field` must <rule>, got <value>``.

Before, building a model with a bad argument surfaced pydantic's own text
("1 validation error for Gamma / cv / Input should be greater than 0 [type=greater_than,
...]"); every case below checks the whole message.
"""

from __future__ import annotations

import json
import re

import pytest

import servegen as sg
from servegen._base import registered_kinds

P = sg.Poisson(rate=1.0)

# (thunk, the exact message, also a TypeError?)
CASES = [
    (lambda: sg.Gamma(rate=1, cv=-1.0), "Gamma: `cv` must be > 0, got -1.0", False),
    (lambda: sg.Gamma(rate=-2, cv=1), "Gamma: `rate` must be >= 0, got -2", False),
    (lambda: sg.Gamma(rate="fast", cv=1), "Gamma: `rate` must be a number, got 'fast'", True),
    (lambda: sg.Gamma(rate=1), "Gamma: `cv` must be given (no default)", False),
    (lambda: sg.Gamma.model_validate({"rate": 1, "cv": 0}), "Gamma: `cv` must be > 0, got 0", False),
    (
        lambda: sg.Gamma.model_validate_json('{"rate": 1, "cv": 2, "shape": 3}'),
        "Gamma: `shape` is not a field (its fields: rate, cv), got 3",
        False,
    ),
    (
        lambda: sg.Client(arrival=P, input_tokens=10),
        "Client: `output_tokens` must be given (no default)",
        False,
    ),
    (
        lambda: sg.Client(arrival=P, input_tokens=10, output_tokens=5, sesion=None),
        "Client: `sesion` is not a field (its fields: arrival, input_tokens, output_tokens, multimodal, "
        "reasoning, dependence, session, prefix), got None",
        False,
    ),
    (
        lambda: sg.Client(arrival=P, input_tokens=10, output_tokens=5, session={"turns": 2, "think_time": 1}),
        "Client: `session`: Session: `new_tokens` must be given (no default)",
        False,
    ),
    (
        lambda: sg.Session(),
        "Session: `turns`, `think_time` and `new_tokens` must be given (no default)",
        False,
    ),
    (
        lambda: sg.Session(turns=2, think_time=1, new_tokens=1, response_rate=0),
        "Session: `response_rate` must be > 0, got 0",
        False,
    ),
    (lambda: sg.OnOffRenewal(), "OnOffRenewal: `rate` must be given (no default)", False),
    (lambda: sg.OnOffRenewal(rate=0), "OnOffRenewal: `rate` must be > 0, got 0", False),
    (lambda: sg.Exponential(mean=0), "Exponential: `mean` must be > 0, got 0", False),
    (lambda: sg.Zipf(s=1, n=0), "Zipf: `n` must be >= 1, got 0", False),
    (
        lambda: setattr(sg.Gamma(rate=1, cv=2), "cv", 3.0),
        "Gamma: `cv` cannot be changed (models are frozen: use model_copy(update={'cv': ...})), got 3.0",
        False,
    ),
]


@pytest.mark.parametrize(("thunk", "text", "is_type"), CASES)
def test_pydantic_errors_in_the_template(thunk, text, is_type):
    with pytest.raises(ValueError) as e:  # as before: pydantic's ValidationError was a ValueError
        thunk()
    assert str(e.value) == text
    assert isinstance(e.value, TypeError) is is_type


def _client_spec(**arrival):
    client = {
        "kind": "client",
        "arrival": {"kind": "gamma", **arrival},
        "input_tokens": 3,
        "output_tokens": 3,
    }
    return json.dumps({"kind": "workload", "clients": [["chat", client]]})


def test_workload_json_names_the_client_and_the_inner_model():
    with pytest.raises(ValueError) as e:
        sg.Workload.from_json(_client_spec(rate=1, cv=-1))
    assert (
        str(e.value)
        == "Workload.from_dict: client 'chat': Client: `arrival`: Gamma: `cv` must be > 0, got -1"
    )
    with pytest.raises(ValueError, match=r"^Workload.from_dict: client 'chat': .*`cv` must be given"):
        sg.Workload.from_json(_client_spec(rate=1))
    assert sg.Workload.from_json(_client_spec(rate=1, cv=2)).clients["chat"].arrival == sg.Gamma(rate=1, cv=2)


def _load_all_models():
    for name in sg.__all__:  # the package loads its modules lazily; each registers its kinds
        getattr(sg, name)
    return registered_kinds()


@pytest.mark.parametrize("kind", _load_all_models())
def test_no_model_speaks_pydantic(kind):
    """An unknown field for every spec kind: the model is named, no pydantic vocabulary."""
    with pytest.raises(ValueError) as e:
        sg.parse_model({"kind": kind, "zzz": 1})
    text = str(e.value)
    assert re.search(r"(^|; )\w+: `zzz` is not a field \(its fields: [^)]*\), got 1(;|$)", text), text
    for pydantic_word in ("Input should", "Field required", "[type=", "validation error", "pydantic"):
        assert pydantic_word not in text
