"""``Client``: one source of requests — an arrival process plus per-request value models.

>>> import servegen as sg
>>> chat = sg.Client(arrival=sg.Gamma(rate=4.0, cv=2.5),
...                  input_tokens=sg.LogNormal(mu=5.5, sigma=0.9),
...                  output_tokens=sg.Exponential(mean=250))
>>> reqs = chat.sample(600, rng=7)
>>> 2000 < len(reqs) < 3000
True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import SerializeAsAny, ValidationInfo, field_validator, model_validator

from . import _rng
from ._base import Frozen, parse_model
from ._checks import check_duration
from .arrivals import ArrivalModel, ArrivalProcess
from .attributes import Multimodal, RankCorrelation, Reasoning
from .distributions import Constant, Distribution, Empirical, ValueModel, as_distribution
from .engine import plan as engine
from .engine.kernels import Pieces
from .piecewise import ArrivalLike, Piecewise, ValueLike
from .requests import Ragged, Requests
from .sessions import BlockIds, Session, SharedPrefix, client_turns
from .warm_start import warm_starts

__all__ = ["Client"]

#: Largest token count servegen converts exactly (float64 holds integers up to 2**53).
MAX_TOKENS = 2**53


class Client(Frozen):
    """A client: when its requests arrive and what each request looks like.

    Parameters
    ----------
    arrival
        An arrival process (``Poisson``, ``Gamma``, ``Weibull``, ``Deterministic``,
        ``OnOff``, ``Replay``, ``ArrivalSchedule``), a ``Piecewise`` of them, or any object
        with ``sample(start, end, *, rng)`` (and ``rate`` if it is to be rate-scaled).
    input_tokens, output_tokens
        Value models (a distribution, a ``Piecewise`` of distributions, a number for a
        constant, or any object with ``sample(n, *, rng)``). Draws are rounded to the
        nearest integer; every draw must be finite and >= 0. With ``multimodal``,
        ``input_tokens`` are the text tokens.
    multimodal
        :class:`~servegen.Multimodal` items per request (image/audio/video).
    reasoning
        :class:`~servegen.Reasoning`: split of the output into reasoning and answer.
    dependence
        :class:`~servegen.RankCorrelation` between fields; ``None`` draws every field
        independently.
    session
        :class:`~servegen.Session`: the arrival process starts multi-turn conversations.
    prefix
        :class:`~servegen.SharedPrefix`: shared system prompts prepended to requests.

    Notes
    -----
    Fields are drawn independently of each other for every request (the upstream
    prototype drew all fields from one uniform, making them perfectly rank-correlated).
    """

    kind: Literal["client"] = "client"
    # The validators below replace pydantic's type check ("plain"), which cannot test a
    # Protocol; SerializeAsAny dumps each model with its own fields (and `kind`).
    arrival: SerializeAsAny[ArrivalLike]
    input_tokens: SerializeAsAny[ValueLike]
    output_tokens: SerializeAsAny[ValueLike]
    multimodal: Multimodal | None = None
    reasoning: Reasoning | None = None
    dependence: RankCorrelation | None = None
    session: Session | None = None
    prefix: SharedPrefix | None = None

    @field_validator("arrival", mode="plain")
    @classmethod
    def _coerce_arrival(cls, v: Any) -> ArrivalLike:
        if isinstance(v, dict):
            v = parse_model(v)
        if isinstance(v, Piecewise):
            if not v.is_arrival:
                raise TypeError(
                    "Client: `arrival` is a Piecewise of distributions, expected arrival processes"
                )
            return v
        if isinstance(v, ArrivalProcess) or (isinstance(v, ArrivalModel) and not isinstance(v, Frozen)):
            return v
        raise TypeError(f"Client: `arrival` must be an arrival process, got {v!r}")

    @field_validator("input_tokens", "output_tokens", mode="plain")
    @classmethod
    def _coerce_value(cls, v: Any, info: ValidationInfo) -> ValueLike:
        v = as_distribution(v)
        _check_value_model(v, info.field_name or "value")
        return v

    @model_validator(mode="after")
    def _check(self) -> Client:
        if self.dependence is None:
            return self
        for name in self.dependence.fields:
            model = self._copula_model(name)
            if model is None:
                raise ValueError(
                    f"Client: `dependence` couples {name!r}, but this client has no such field "
                    "(add `reasoning`/`multimodal`, or drop the pair)"
                )
            for m in model.models if isinstance(model, Piecewise) else [model]:
                if not isinstance(m, Distribution):
                    raise TypeError(
                        f"Client: `dependence` needs a quantile function (ppf) for {name!r}, got {m!r}"
                    )
        return self

    def _copula_model(self, name: str) -> Any:
        if name in ("input_tokens", "output_tokens"):
            return getattr(self, name)
        if name == "reasoning":
            r = self.reasoning
            return None if r is None else (r.ratio if r.mode == "ratio" else r.tokens)
        modality = getattr(self.multimodal, name.removesuffix("_count"), None) if self.multimodal else None
        return None if modality is None else modality.count

    # -- arrivals -------------------------------------------------------------------
    @property
    def mean_rate(self) -> float:
        """The arrival process's long-run rate (requests/s); NaN if it does not say."""
        rate = getattr(self.arrival, "mean_rate", getattr(self.arrival, "rate", np.nan))
        return float(rate)

    def _pieces(self) -> Pieces:
        return self._compiled_arrival

    @cached_property
    def _compiled_arrival(self) -> Pieces:
        # compiled once per client: a pool's client has a law per window, and every
        # sample call of a workload (thousands in a sweep) would rebuild them all
        if isinstance(self.arrival, (ArrivalProcess, Piecewise)):
            return self.arrival._pieces()
        wrapped = _CustomArrival(self.arrival)
        return Pieces.of_object(wrapped.mean_rate, wrapped)

    # -- values ---------------------------------------------------------------------
    def value_columns(self) -> dict[str, Any]:
        """Name -> dtype of the flat columns this client adds to every request."""
        cols: dict[str, Any] = {"input_tokens": np.int64, "output_tokens": np.int64}
        if self.multimodal is not None:
            for m in self.multimodal.modalities:
                cols[f"{m}_count"] = np.int64
                cols[f"{m}_tokens_total"] = np.int64
            cols["input_tokens_total"] = np.int64
        if self.reasoning is not None:
            cols["reasoning_tokens"] = np.int64
            cols["answer_tokens"] = np.int64
        if self.session is not None:
            cols["session"] = np.int64
            cols["turn"] = np.int64
            cols["parent"] = np.int64
        if self.prefix is not None:
            cols["prefix_group"] = np.int64
        return cols

    @property
    def requests_per_arrival(self) -> float:
        """Requests each arrival brings: the mean turns of a session, else 1."""
        return 1.0 if self.session is None else self.session.mean_turns()

    def ragged_columns(self) -> dict[str, Any]:
        """Name -> dtype of the ragged (per-item) columns this client adds."""
        if self.multimodal is None:
            return {}
        return {f"{m}_tokens": np.int64 for m in self.multimodal.modalities}

    def sample_values(
        self,
        t: NDArray[np.float64],
        rng: np.random.Generator | Callable[[str], np.random.Generator],
        flat: dict[str, Any] | None = None,
        ragged: dict[str, Any] | None = None,
    ) -> tuple[dict[str, NDArray[Any]], dict[str, Ragged]]:
        """Draw every per-request field for requests arriving at sorted times ``t``.

        ``rng`` is one generator for every field, or ``streams(purpose) -> Generator``
        giving each field its own stream (purposes as in ``servegen._rng.PURPOSES``:
        ``"input_tokens"``, ``"image_count"``, ``"image_tokens"``, ``"reasoning"``,
        ``"dependence"``, ...), so that swapping one field's model leaves the others'
        draws bit-identical. ``flat``/``ragged`` name the columns of the whole workload:
        columns this client does not model get their neutral value (0 items, no
        reasoning, total = text). With one generator the draw order is fixed (copula
        normals, input, output, modalities, reasoning).
        """
        n = len(t)
        gen: Callable[[str], np.random.Generator] = rng if callable(rng) else (lambda _purpose: rng)
        u = {}
        if self.dependence is not None:
            marginals = {f: _model_at(self._copula_model(f), t[0]) for f in self.dependence.fields}
            u = self.dependence.uniforms(n, marginals, gen("dependence"))

        def value(model: Any, name: str, key: str, minimum: int = 1) -> NDArray[np.int64]:
            if key in u:
                return to_tokens(ppf_at(model, t, u[key]), name, minimum=minimum)
            fixed = fixed_tokens(model, t, name, minimum=minimum)  # its stream is never built
            return fixed if fixed is not None else draw_tokens(model, t, gen(key), name, minimum=minimum)

        cols = {
            "input_tokens": value(self.input_tokens, "input_tokens", "input_tokens"),
            "output_tokens": value(self.output_tokens, "output_tokens", "output_tokens"),
        }
        rag: dict[str, Ragged] = {}
        if self.multimodal is not None:
            total = cols["input_tokens"].copy()
            for m in self.multimodal.modalities:
                mod: Any = getattr(self.multimodal, m)
                counts = value(mod.count, f"{m}_count", f"{m}_count", minimum=0)  # 0 items is valid
                cols[f"{m}_count"] = counts
                if not counts.any():  # no items (a pool's "no audio"): nothing to draw or sum
                    cols[f"{m}_tokens_total"] = np.zeros(n, dtype=np.int64)
                    rag[f"{m}_tokens"] = Ragged(np.empty(0, dtype=np.int64), np.zeros(n + 1, dtype=np.int64))
                    continue
                item_t = np.repeat(t, counts)  # each item takes its request's time
                tokens = fixed_tokens(mod.tokens, item_t, f"{m}_tokens")
                if tokens is None:
                    tokens = draw_tokens(mod.tokens, item_t, gen(f"{m}_tokens"), f"{m}_tokens")
                rg = Ragged.from_lengths(counts, tokens)
                csum = np.concatenate([[0], np.cumsum(tokens)])
                cols[f"{m}_tokens_total"] = csum[rg.offsets[1:]] - csum[rg.offsets[:-1]]
                rag[f"{m}_tokens"] = rg
                total += cols[f"{m}_tokens_total"]
            cols["input_tokens_total"] = total
        if self.reasoning is not None:
            r = self.reasoning
            if r.mode == "ratio":
                ratio = (
                    ppf_at(r.ratio, t, u["reasoning"])
                    if "reasoning" in u
                    else draw_at(r.ratio, t, gen("reasoning"))
                )
                if not ((ratio >= 0) & (ratio <= 1)).all():
                    raise ValueError("`reasoning.ratio`: draws must lie in [0, 1]")
                reasoning = np.rint(ratio * cols["output_tokens"]).astype(np.int64)
                cols["reasoning_tokens"] = reasoning
                cols["answer_tokens"] = cols["output_tokens"] - reasoning
            else:
                reasoning = value(r.tokens, "reasoning_tokens", "reasoning")
                cols["reasoning_tokens"] = reasoning
                cols["answer_tokens"] = cols["output_tokens"]
                cols["output_tokens"] = reasoning + cols["output_tokens"]
        _fill_defaults(cols, rag, n, flat or {}, ragged or {})
        return cols, rag

    def sample(self, duration: float, *, rng: _rng.SeedLike = None) -> Requests:
        """This client's requests in [0, ``duration``): ``Workload([self]).sample(duration, rng=rng)``."""
        return engine.sample({0: self}, check_duration(duration), _rng.root_seed(rng))

    # -- hooks of the sampling engine (servegen.engine.plan.ClientLike) ------------------
    def turns(
        self,
        starts: NDArray[np.float64],
        rng: np.random.Generator | Callable[[str], np.random.Generator],
        *args: Any,
    ) -> tuple[NDArray[np.float64], dict[str, NDArray[Any]], dict[str, Ragged]]:
        """Turn rows of sessions starting at ``starts`` (``servegen.sessions.client_turns``)."""
        return client_turns(self, starts, rng, *args)

    def warm_starts(
        self, pieces: Pieces, piece: int, rate: float, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Sessions in progress at t = 0 (:func:`servegen.warm_start.warm_starts`)."""
        return warm_starts(self, pieces, piece, rate, rng)

    def block_ids(self, index: int, prefix_tokens: NDArray[np.int64] | None, block_size: int) -> BlockIds:
        """The block-id counter of this client as client ``index`` of a workload."""
        return BlockIds(index, prefix_tokens, block_size)


def _check_value_model(v: Any, name: str) -> None:
    models = v.models if isinstance(v, Piecewise) else [v]
    if isinstance(v, Piecewise) and v.is_arrival:
        raise TypeError(f"Client: `{name}` is a Piecewise of arrival processes, expected distributions")
    for m in models:
        if isinstance(m, Distribution):
            lo = m.support[0]
            if lo < 0:
                raise ValueError(f"Client: `{name}` must be >= 0 everywhere, but {m!r} can draw {lo!r}")
        elif isinstance(m, Frozen) or not isinstance(m, ValueModel):
            raise TypeError(f"Client: `{name}` must be a distribution (or have sample(n, *, rng)), got {m!r}")


def by_piece(model: Any, t: NDArray[np.float64], fn: Any, dtype: Any) -> NDArray[Any]:
    """``fn(m, lo, hi)`` for each model ``m`` in force over the slice ``t[lo:hi]``.

    ``t`` is sorted, so each piece of a ``Piecewise`` owns one contiguous slice; a plain
    model owns them all. Pieces are visited in order, so random draws stay in time order.
    """
    n = len(t)
    if not isinstance(model, Piecewise):
        return np.asarray(fn(model, 0, n), dtype=dtype)
    out = np.empty(n, dtype=dtype)
    bounds = [*np.searchsorted(t, model.times, side="left").tolist(), n]
    for i, m in enumerate(model.models):
        lo, hi = bounds[i], bounds[i + 1]
        if hi > lo:
            out[lo:hi] = fn(m, lo, hi)
    return out


def draw_tokens(
    model: Any, t: NDArray[np.float64], rng: np.random.Generator, name: str, *, minimum: int = 1
) -> NDArray[np.int64]:
    """Token counts for arrival times ``t``: :func:`draw_at` rounded by :func:`to_tokens`.

    Empirical laws over whole numbers (every pool length) skip the float round trip;
    they consume the same random draws, so the result is identical.
    """
    models = model.models if isinstance(model, Piecewise) else [model]
    if not all(isinstance(m, Empirical) and m.int_values is not None for m in models):
        return to_tokens(draw_at(model, t, rng), name, minimum=minimum)
    drawn = by_piece(model, t, lambda m, lo, hi: m.int_values[m.sample_index(hi - lo, rng=rng)], np.int64)
    return np.maximum(drawn, minimum)


def fixed_tokens(
    model: Any, t: NDArray[np.float64], name: str, *, minimum: int = 1
) -> NDArray[np.int64] | None:
    """What :func:`draw_tokens` returns when ``model`` takes no random draws (no arrival
    times, a ``Constant``, a one-value ``Empirical``, or a ``Piecewise`` of those), else None.

    Such a column (a pool's "no audio" has two) then needs no random stream at all;
    building one per client and window costs more than the column itself.

    >>> fixed_tokens(Empirical(values=[0.0], probs=[1.0]), np.zeros(3), "audio_count", minimum=0)
    array([0, 0, 0])
    >>> fixed_tokens(Empirical(values=[1.0, 2.0], probs=[0.5, 0.5]), np.zeros(3), "x") is None
    True
    """
    if len(t) == 0:
        return np.zeros(0, dtype=np.int64)
    if not isinstance(model, Piecewise):
        value = _fixed_value(model)
        if value is None:
            return None
        # one value: check and round it once, not once per request (this runs per window)
        (count,) = to_tokens(np.array([value]), name, minimum=minimum).tolist()
        return np.full(len(t), count, dtype=np.int64)
    if any(_fixed_value(m) is None for m in model.models):
        return None
    drawn = by_piece(model, t, lambda m, lo, hi: np.full(hi - lo, _fixed_value(m)), np.float64)
    return to_tokens(drawn, name, minimum=minimum)


def _fixed_value(m: Any) -> float | None:
    if isinstance(m, Constant):
        return float(m.value)
    if isinstance(m, Empirical) and m.values.size == 1:
        return float(m.values[0])
    return None


def draw_at(model: Any, t: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """Draw one value per arrival time; a ``Piecewise`` uses the model in force at each time."""
    return by_piece(model, t, lambda m, lo, hi: m.sample(hi - lo, rng=rng), np.float64)


def _model_at(model: Any, t: float) -> Any:
    return model.model_at(t) if isinstance(model, Piecewise) else model


def ppf_at(model: Any, t: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse-CDF values of uniforms ``u`` under the model in force at each time."""
    return by_piece(model, t, lambda m, lo, hi: m.ppf(u[lo:hi]), np.float64)


def _fill_defaults(
    cols: dict[str, NDArray[Any]],
    rag: dict[str, Ragged],
    n: int,
    flat: dict[str, Any],
    ragged: dict[str, Any],
) -> None:
    """Give the workload's columns that this client does not model their neutral value."""
    for name, dtype in flat.items():
        if name in cols or name in ("timestamp", "client"):
            continue
        if name == "input_tokens_total":
            cols[name] = cols["input_tokens"].copy()
        elif name == "answer_tokens":
            cols[name] = cols["output_tokens"].copy()
        elif name in ("session", "parent", "prefix_group"):
            cols[name] = np.full(n, -1, dtype=dtype)
        elif name == "turn":
            cols[name] = np.ones(n, dtype=dtype)
        else:
            cols[name] = np.zeros(n, dtype=dtype)
    for name, dtype in ragged.items():
        if name not in rag:
            rag[name] = Ragged(np.empty(0, dtype=dtype), np.zeros(n + 1, dtype=np.int64))


def to_tokens(x: NDArray[np.float64], name: str, *, minimum: int = 1) -> NDArray[np.int64]:
    """Round draws to integer counts, refusing values that are not counts.

    The discretization rule (docs/concepts.md): ``max(minimum, rint(x))``, round half to
    even, then at least ``minimum``: 1 for every length (a request has at least one
    input and one output token; servers refuse ``max_tokens=0``), 0 for item counts.
    """
    bad = ~((x >= 0) & (x <= MAX_TOKENS))
    if bad.any():
        raise ValueError(
            f"`{name}`: a draw of {float(x[bad][0])!r} is not a token count (must be finite, >= 0 and "
            f"<= 2**53); wrap the model in Clipped(...) to bound it"
        )
    return np.maximum(np.rint(x).astype(np.int64), minimum)


class _CustomArrival:
    """Adapts a user object with ``sample(start, end, *, rng)`` to operational time.

    Its native clock runs at ``rate`` (its ``rate``/``mean_rate`` attribute, or 1 when it
    has none, in which case it cannot be rate-scaled).
    """

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        rate = getattr(obj, "mean_rate", getattr(obj, "rate", None))
        self.has_rate = rate is not None
        self.mean_rate = float(rate) if rate is not None else 1.0
        if not (np.isfinite(self.mean_rate) and self.mean_rate > 0):
            raise ValueError(f"custom arrival process: `rate` must be finite and > 0, got {rate!r}")

    def _op_points(
        self, state: Any, length: float, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], Any]:
        pos = 0.0 if state is None else state
        r = self.mean_rate
        t = np.asarray(self.obj.sample(pos / r, (pos + length) / r, rng=rng), dtype=np.float64)
        return t * r - pos, pos + length
