"""Request attributes beyond two lengths: multimodal items, reasoning tokens, dependence.

* :class:`Multimodal` — per modality (image, audio, video) a :class:`Modality` gives the
  number of items per request and the tokens of each item. Requests get ``m_count``,
  the ragged ``m_tokens`` (one value per item) and ``m_tokens_total``, and
  ``input_tokens_total`` = text tokens + all item tokens.
* :class:`Reasoning` — splits output into ``reasoning_tokens`` + ``answer_tokens``, by a
  reasoning share (``ratio``, on [0, 1]) or by reasoning lengths (``tokens``).
* :class:`RankCorrelation` — a Gaussian copula over the marginals that gives chosen
  pairs of fields a target Spearman correlation while leaving every marginal unchanged.
  Without it every field of a request is drawn independently.

>>> import numpy as np, servegen as sg
>>> vl = sg.Client(arrival=sg.Poisson(rate=2.0), input_tokens=sg.LogNormal(mu=5, sigma=1),
...                output_tokens=sg.Exponential(mean=120),
...                multimodal=sg.Multimodal(image=sg.Modality(
...                    count=sg.Empirical(values=[0, 1, 2, 3], probs=[.05, .8, .1, .05]),
...                    tokens=sg.Empirical(values=[256, 1196], probs=[.4, .6]))))
>>> r = vl.sample(600, rng=0)
>>> bool((r["input_tokens_total"] == r.input_tokens + r["image_tokens_total"]).all())
True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, SerializeAsAny, field_validator, model_validator
from scipy import optimize, special, stats

from ._base import Frozen
from .distributions import Constant, Distribution, Empirical, Zipf, as_distribution
from .piecewise import Piecewise, ValueLike

__all__ = ["MAX_ITEMS", "MODALITIES", "Modality", "Multimodal", "RankCorrelation", "Reasoning"]

MODALITIES = ("image", "audio", "video")
#: Most items of one modality in a request. Every token draw is at most 2**53, so with
#: at most 256 items per modality a request's ``input_tokens_total`` (text + 3 * 256
#: items) stays below 769 * 2**53 < 2**63 and can never wrap around in int64. (The
#: release's multimodal pool has at most 49 images per request.)
MAX_ITEMS = 256


def value_field(
    v: Any, owner: str, name: str, *, low: float = 0.0, high: float = np.inf, why: str = ""
) -> Any:
    """Validate a field holding a value model (or a ``Piecewise`` of them) for ``owner``.

    Numbers and dicts are parsed as by :func:`~servegen.distributions.as_distribution`;
    each built-in distribution's support must lie in ``[low, high]`` (``why`` explains the
    bound in the message). Shared by the attribute and session models.

    >>> value_field(3, "Modality", "count")
    Constant(value=3.0)
    >>> value_field(-1, "Modality", "count")
    Traceback (most recent call last):
    ...
    ValueError: Modality: `count` must lie in [0, inf], but Constant(value=-1.0) spans [-1.0, -1.0]
    """
    v = as_distribution(v)
    models = v.models if isinstance(v, Piecewise) else [v]
    if isinstance(v, Piecewise) and v.is_arrival:
        raise TypeError(f"{owner}: `{name}` is a Piecewise of arrival processes, expected distributions")
    for m in models:
        if not isinstance(m, Distribution):
            if isinstance(m, Frozen) or not hasattr(m, "sample"):
                raise TypeError(f"{owner}: `{name}` must be a distribution, got {m!r}")
            continue
        lo, hi = m.support
        if lo < low or hi > high:
            raise ValueError(
                f"{owner}: `{name}` must lie in [{low:g}, {high:g}]{why}, but {m!r} spans [{lo!r}, {hi!r}]"
            )
    return v


class Modality(Frozen):
    """Items of one modality: ``count`` items per request, each of ``tokens`` tokens.

    Both are value models (or ``Piecewise`` of them); draws are rounded to integers.
    ``count`` must be bounded by ``MAX_ITEMS`` (256; wrap an unbounded law in
    ``Clipped(..., high=...)``) so that token totals cannot overflow.

    >>> Modality(count=1, tokens=sg.Empirical(values=[256, 1196], probs=[.4, .6])).count
    Constant(value=1.0)
    """

    kind: Literal["modality"] = "modality"
    count: SerializeAsAny[ValueLike]
    tokens: SerializeAsAny[ValueLike]

    @field_validator("count", mode="plain")
    @classmethod
    def _coerce_count(cls, v: Any) -> ValueLike:
        why = " (at most MAX_ITEMS items per request, so that token totals fit in int64)"
        return value_field(v, "Modality", "count", high=MAX_ITEMS, why=why)

    @field_validator("tokens", mode="plain")
    @classmethod
    def _coerce_tokens(cls, v: Any) -> ValueLike:
        return value_field(v, "Modality", "tokens")


class Multimodal(Frozen):
    """Per-modality item models; each of ``image``, ``audio``, ``video`` is optional.

    >>> Multimodal(image=Modality(count=2, tokens=256)).modalities
    ['image']
    """

    kind: Literal["multimodal"] = "multimodal"
    image: Modality | None = None
    audio: Modality | None = None
    video: Modality | None = None

    @model_validator(mode="after")
    def _check(self) -> Multimodal:
        if not self.modalities:
            raise ValueError("Multimodal: give at least one of `image`, `audio`, `video`")
        return self

    @property
    def modalities(self) -> list[str]:
        """The configured modality names, in image/audio/video order."""
        return [m for m in MODALITIES if getattr(self, m) is not None]


class Reasoning(Frozen):
    """How a reasoning model splits its output: exactly one of ``ratio`` and ``tokens``.

    * ``ratio``: the reasoning share of the output, a model on [0, 1]. The client's
      ``output_tokens`` is the total; ``reasoning_tokens = round(ratio * output)`` and
      ``answer_tokens = output - reasoning_tokens``.
    * ``tokens``: reasoning lengths directly. The client's ``output_tokens`` is then the
      answer, and ``output_tokens`` reported = reasoning + answer.

    >>> Reasoning(ratio=sg.Uniform(low=0.2, high=0.9)).mode
    'ratio'
    """

    kind: Literal["reasoning"] = "reasoning"
    ratio: SerializeAsAny[ValueLike | None] = None
    tokens: SerializeAsAny[ValueLike | None] = None

    @field_validator("ratio", mode="plain")
    @classmethod
    def _coerce_ratio(cls, v: Any) -> ValueLike | None:
        return None if v is None else value_field(v, "Reasoning", "ratio", high=1.0)

    @field_validator("tokens", mode="plain")
    @classmethod
    def _coerce_tokens(cls, v: Any) -> ValueLike | None:
        return None if v is None else value_field(v, "Reasoning", "tokens")

    @model_validator(mode="after")
    def _check(self) -> Reasoning:
        if (self.ratio is None) == (self.tokens is None):
            raise ValueError("Reasoning: give exactly one of `ratio` and `tokens`")
        return self

    @property
    def mode(self) -> str:
        return "ratio" if self.ratio is not None else "tokens"


#: Names of the fields a copula can couple, and the shortcut names of common pairs.
COPULA_FIELDS = ("input_tokens", "output_tokens", "reasoning", "image_count", "audio_count", "video_count")
_SHORTCUTS = {
    "input_output": ("input_tokens", "output_tokens"),
    "output_reasoning": ("output_tokens", "reasoning"),
    "input_reasoning": ("input_tokens", "reasoning"),
    "text_image": ("input_tokens", "image_count"),
}


class RankCorrelation(Frozen):
    """Target Spearman correlations between fields of a request (a Gaussian copula).

    Shortcuts: ``input_output``, ``output_reasoning`` (output vs reasoning share or
    length), ``input_reasoning``, ``text_image`` (text tokens vs image count). Any other
    pair goes in ``pairs`` as ``[field_a, field_b, rho]`` with field names from
    ``input_tokens, output_tokens, reasoning, image_count, audio_count, video_count``.

    Each marginal is kept exactly (values are drawn by inverse CDF from the copula's
    uniforms). For discrete marginals, whose ties weaken rank correlation, the normal
    correlation is calibrated so that the *achieved* Spearman hits the target.

    >>> RankCorrelation(input_output=0.4).targets()
    {('input_tokens', 'output_tokens'): 0.4}
    """

    kind: Literal["rank_correlation"] = "rank_correlation"
    input_output: float | None = Field(default=None, ge=-1, le=1)
    output_reasoning: float | None = Field(default=None, ge=-1, le=1)
    input_reasoning: float | None = Field(default=None, ge=-1, le=1)
    text_image: float | None = Field(default=None, ge=-1, le=1)
    pairs: list[tuple[str, str, float]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> RankCorrelation:
        for a, b, rho in self.pairs:
            for f in (a, b):
                if f not in COPULA_FIELDS:
                    raise ValueError(
                        f"RankCorrelation: unknown field {f!r} in `pairs`; use one of {COPULA_FIELDS}"
                    )
            if a == b:
                raise ValueError(f"RankCorrelation: a pair needs two different fields, got {a!r} twice")
            if not -1 <= rho <= 1:
                raise ValueError(f"RankCorrelation: rho must be in [-1, 1], got {rho!r} for ({a!r}, {b!r})")
        if not self.targets():
            raise ValueError("RankCorrelation: give at least one target correlation")
        return self

    def targets(self) -> dict[tuple[str, str], float]:
        """Every requested pair (in canonical field order) -> target Spearman rho."""
        out: dict[tuple[str, str], float] = {}
        for name, pair in _SHORTCUTS.items():
            rho = getattr(self, name)
            if rho is not None:
                out[pair] = float(rho)
        for a, b, rho in self.pairs:
            key = tuple(sorted((a, b), key=COPULA_FIELDS.index))
            out[key] = float(rho)  # type: ignore[index]
        return out

    @property
    def fields(self) -> list[str]:
        """The fields the copula couples, in canonical order."""
        names = {f for pair in self.targets() for f in pair}
        return [f for f in COPULA_FIELDS if f in names]

    def uniforms(
        self, n: int, marginals: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, NDArray[np.float64]]:
        """Correlated uniforms for ``n`` requests, one array per coupled field.

        ``marginals`` maps each coupled field to its model in force (used to calibrate
        the normal correlation for discrete marginals).
        """
        names = self.fields
        corr = np.eye(len(names))
        for (a, b), rho in self.targets().items():
            i, j = names.index(a), names.index(b)
            corr[i, j] = corr[j, i] = _normal_corr(rho, marginals.get(a), marginals.get(b))
        try:
            chol = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"RankCorrelation: the targets {self.targets()!r} are not jointly achievable "
                "(their correlation matrix is not positive definite)"
            ) from None
        z = rng.standard_normal((n, len(names))) @ chol.T
        u = special.ndtr(z)
        return {name: u[:, k] for k, name in enumerate(names)}


def _is_discrete(model: Any) -> bool:
    return isinstance(model, (Empirical, Zipf, Constant))


@lru_cache(maxsize=4096)
def _calibrated(rho: float, a: Any, b: Any) -> float:
    """The normal correlation whose copula gives Spearman ``rho`` for marginals a, b.

    Ties in discrete marginals attenuate rank correlation; find r by root-finding on a
    fixed internal Monte-Carlo sample (seeded: this is a deterministic computation, not
    a draw of the workload).
    """
    z = np.random.default_rng(20250515).standard_normal((40_000, 2))

    def achieved(r: float) -> float:
        x = a.ppf(special.ndtr(z[:, 0]))
        y = b.ppf(special.ndtr(r * z[:, 0] + np.sqrt(1 - r * r) * z[:, 1]))
        return float(stats.spearmanr(x, y).statistic)

    limit = achieved(0.999 * np.sign(rho))
    if abs(rho) > abs(limit):
        raise ValueError(
            f"RankCorrelation: Spearman {rho!r} is not achievable between {a!r} and {b!r} "
            f"(their ties cap it at {limit:.3f})"
        )
    lo, hi = (0.0, 0.999) if rho > 0 else (-0.999, 0.0)
    return float(optimize.brentq(lambda r: achieved(r) - rho, lo, hi, xtol=1e-4))


def _coarse(model: Any) -> bool:
    """Discrete with a value of mass >= 1 %: its ties visibly weaken rank correlation."""
    if isinstance(model, Empirical):
        return bool(model.probs.max() >= 0.01)
    return _is_discrete(model)


def _normal_corr(rho: float, a: Any, b: Any) -> float:
    if rho == 0:
        return 0.0
    if _coarse(a) or _coarse(b):
        if isinstance(a, Constant) or isinstance(b, Constant):
            raise ValueError(f"RankCorrelation: cannot correlate with a constant ({a!r}, {b!r})")
        return _calibrated(rho, a, b)
    # Pearson's relation for a bivariate normal: rho_s = (6 / pi) * arcsin(r / 2).
    return float(2 * np.sin(np.pi * rho / 6))
