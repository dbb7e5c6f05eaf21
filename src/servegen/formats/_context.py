"""Fitting requests into a consumer's limits, with a report: counts >= 1, ``max_tokens``.

Two rules, shared by the writers of consumer formats (``mooncake``, ``vllm``,
``aiperf``, ``guidellm``, ``vidur``, ``vidur_pip``):

**At least one prompt and one output token.** A consumer sends ``output_length`` as the
request's ``max_tokens``, which servers refuse below 1 (AIPerf 0.13 aborts the whole run
on one such row, vLLM's server answers 400), and an empty prompt is no request. servegen's
own requests always have both (:doc:`/concepts`), but traces read from files may not:
a BurstGPT failure has 0 output tokens. With ``clamp=False`` (the default but for Vidur)
writing such requests is a ``ValueError`` naming the column, the number of such
requests and the first one; with ``clamp=True`` each count below 1 is written as 1 and
the number of requests changed is reported as a :class:`ContextWarning`. (Or drop them
first: ``df[~df.failed]`` for BurstGPT.)

**The context window** (``max_tokens``, when given): a request keeps at least one prompt
token and its output is cut first only when it alone would fill the window, then the
prompt is shortened so that prompt + output fits:

* ``output = min(output, max_tokens - 1)``
* ``prompt = min(prompt, max_tokens - output)``

Vidur's own loaders shorten the prompt alone (``prompt - (prompt + output -
max_tokens)``), which makes it 0 or negative when the output alone reaches the limit
and crashes the simulation; applying the rule at write time leaves nothing for Vidur to
cut. The number of requests changed is reported as a :class:`ContextWarning` when the
file is complete, so nothing changes silently.

>>> import numpy as np, warnings
>>> fit = ContextFit(4096)
>>> fit(np.array([100, 4000, 10]), np.array([50, 200, 5000]))
(array([ 100, 3896,    1]), array([  50,  200, 4095]))
>>> fit.changed, fit.outputs_cut
(2, 1)
>>> fit = ContextFit(None, clamp=True)
>>> fit(np.array([100, 0]), np.array([0, 0]))
(array([100,   1]), array([1, 1]))
>>> fit.raised
2
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._validate import check_whole_or_none

__all__ = ["ContextFit", "ContextWarning", "check_clamp", "check_max_tokens"]


class ContextWarning(UserWarning):
    """Requests were changed to fit a consumer's limits (counts >= 1, ``max_tokens``)."""


def check_max_tokens(value: Any, fmt: str) -> int | None:
    return check_whole_or_none(value, "max_tokens", owner=fmt, low=2)


def check_clamp(value: Any, fmt: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fmt}: `clamp` must be True or False, got {value!r}")
    return bool(value)


class ContextFit:
    """Applies both rules chunk by chunk and counts what they changed (or would refuse).

    ``fields`` name the prompt and output columns of the written file, for messages.
    """

    def __init__(
        self,
        max_tokens: int | None,
        *,
        clamp: bool = False,
        fields: tuple[str, str] = ("input_length", "output_length"),
    ) -> None:
        self.max_tokens = max_tokens
        self.clamp = clamp
        self.fields = fields
        self.changed = 0
        self.outputs_cut = 0
        self.rows = 0
        self.raised = 0  # requests with a count below 1
        self.low = [0, 0]  # of them, per field
        self.first: tuple[int, str, int] | None = None  # (request, field, value)

    def __call__(
        self, prompt: NDArray[np.int64], output: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        start = self.rows
        self.rows += len(prompt)
        low_p, low_o = prompt < 1, output < 1
        either = low_p | low_o
        if either.any():
            self.raised += int(np.count_nonzero(either))
            self.low[0] += int(np.count_nonzero(low_p))
            self.low[1] += int(np.count_nonzero(low_o))
            if self.first is None:
                i = int(np.argmax(either))
                k = 0 if low_p[i] else 1
                self.first = (start + i, self.fields[k], int((prompt, output)[k][i]))
            if self.clamp:
                prompt, output = np.maximum(prompt, 1), np.maximum(output, 1)
        if self.max_tokens is None:
            return prompt, output
        m = self.max_tokens
        out = np.minimum(output, m - 1)
        inp = np.minimum(prompt, m - out)
        self.outputs_cut += int(np.count_nonzero(out != output))
        self.changed += int(np.count_nonzero((out != output) | (inp != prompt)))
        return inp, out

    def report(self, fmt: str) -> None:
        """Refuse counts below 1 unless clamped; warn once with the totals of what changed.

        Called when the file is complete, so the counts cover the whole stream (the
        atomic write then leaves no file behind).
        """
        if self.first is not None:
            i, name, value = self.first
            per = ", ".join(f"{f}: {n}" for f, n in zip(self.fields, self.low, strict=True) if n)
            if not self.clamp:
                raise ValueError(
                    f"{fmt}: `{name}` must be >= 1 (a request has at least one prompt and one output "
                    f"token; servers refuse max_tokens=0), got {value!r} at request {i}; {self.raised} of "
                    f"{self.rows} requests have a count below 1 ({per}); pass clamp=True (CLI --clamp) to "
                    "write them as 1, or drop them (BurstGPT failures: df[~df.failed])"
                )
            warnings.warn(
                f"{fmt}: {self.raised} of {self.rows} requests had a count below 1 ({per}; the first at "
                f"request {i}), written as 1 (clamp=True)",
                ContextWarning,
                stacklevel=2,
            )
        if self.changed and self.max_tokens is not None:  # nothing changes without a limit
            warnings.warn(
                f"{fmt}: {self.changed} of {self.rows} requests shortened to fit max_tokens="
                f"{self.max_tokens} (prompt + output <= max_tokens; {self.outputs_cut} outputs cut to "
                f"{self.max_tokens - 1}); pass the consumer's own limit as max_tokens, or None to keep "
                "every length",
                ContextWarning,
                stacklevel=2,
            )
