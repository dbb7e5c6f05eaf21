"""Fitting requests into a consumer's context window (``max_tokens``), with a report.

The rule, shared by every writer with a ``max_tokens`` option: a request keeps at
least one prompt token and its output is cut first only when it alone would fill the
window, then the prompt is shortened so that prompt + output fits:

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
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ContextFit", "ContextWarning", "check_max_tokens"]


class ContextWarning(UserWarning):
    """Requests were shortened to fit a consumer's ``max_tokens``."""


def check_max_tokens(value: Any, fmt: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise ValueError(f"{fmt}: `max_tokens` must be an integer >= 2 or None, got {value!r}")
    return int(value)


class ContextFit:
    """Applies the rule chunk by chunk and counts what it changed."""

    def __init__(self, max_tokens: int | None) -> None:
        self.max_tokens = max_tokens
        self.changed = 0
        self.outputs_cut = 0
        self.rows = 0

    def __call__(
        self, prompt: NDArray[np.int64], output: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        self.rows += len(prompt)
        if self.max_tokens is None:
            return prompt, output
        m = self.max_tokens
        out = np.minimum(output, m - 1)
        inp = np.minimum(prompt, m - out)
        self.outputs_cut += int(np.count_nonzero(out != output))
        self.changed += int(np.count_nonzero((out != output) | (inp != prompt)))
        return inp, out

    def report(self, fmt: str) -> None:
        """Warn once with the totals, when anything was shortened."""
        if self.changed:
            warnings.warn(
                f"{fmt}: {self.changed} of {self.rows} requests shortened to fit max_tokens="
                f"{self.max_tokens} (prompt + output <= max_tokens; {self.outputs_cut} outputs cut to "
                f"{self.max_tokens - 1}); pass the consumer's own limit as max_tokens, or None to keep "
                "every length",
                ContextWarning,
                stacklevel=2,
            )
