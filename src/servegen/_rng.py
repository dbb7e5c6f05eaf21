"""Seed normalization and the tree of independent random streams.

The stream of one client in one time window depends only on ``(seed, client key,
window index, purpose)``: adding a client leaves the others untouched, and sampling in
chunks, in parallel or on a cluster yields the same requests as one call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any, TypeAlias

import numpy as np

__all__ = ["PURPOSES", "SeedLike", "WindowStreams", "generator", "key_hash", "root_seed", "stream"]

#: What every public ``rng=`` accepts: ``None`` (fresh OS entropy), a seed ``int >= 0``,
#: a ``numpy.random.SeedSequence``, or a ``numpy.random.Generator`` (asked once for a seed).
SeedLike: TypeAlias = int | np.integer[Any] | np.random.SeedSequence | np.random.Generator | None

#: Purposes of a leaf: a client's requests in one window (:class:`WindowStreams`, one
#: stream per purpose below), a client's shared-prefix lengths (once per run, window 0),
#: and a client's sessions already in progress at t = 0 (its warm start: once per run,
#: window 0, itself split into the purposes below).
WINDOW, PREFIX, WARM = 0, 3, 4

#: What draws from its own stream in each (client, window): arrival gaps, session turns
#: (counts, think times, new tokens), the prefix each session uses, the copula's normals,
#: and each value column. Swapping one model leaves every other purpose's draws as they
#: were. Append only: a purpose's index fixes its stream.
PURPOSES = (
    "arrivals", "input_tokens", "output_tokens", "sessions", "prefix", "dependence", "reasoning",
    "image_count", "image_tokens", "audio_count", "audio_tokens", "video_count", "video_tokens",
)  # fmt: skip
_INDEX = {name: i for i, name in enumerate(PURPOSES)}
_WORDS = 4  # uint64 words a PCG64 takes from its seed sequence


def root_seed(rng: SeedLike) -> np.random.SeedSequence:
    """Normalize what a user passes as ``rng`` into the root of the stream tree.

    ``None`` draws fresh OS entropy, an ``int`` or ``SeedSequence`` is used as is, and a
    ``Generator`` is asked once for 128 bits of entropy (so passing the same generator
    twice gives two different workloads, as with any other numpy consumer).

    >>> root_seed(7).entropy
    7
    """
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63)))
    if rng is None:
        return np.random.SeedSequence()
    if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)):
        raise TypeError(
            f"rng must be None, an int >= 0, a numpy SeedSequence or Generator, got {rng!r}"
            f" ({type(rng).__name__})"
        )
    if rng < 0:
        raise ValueError(f"rng: a seed must be >= 0, got {rng!r}")
    return np.random.SeedSequence(int(rng))


def generator(rng: SeedLike) -> np.random.Generator:
    """A ``Generator`` from what a user passes as ``rng``, checked like :func:`root_seed`.

    A ``Generator`` is used as is; otherwise the stream is ``numpy.random.default_rng``'s
    for the same seed (so results do not change), but a bad ``rng`` is reported by name.

    >>> generator(7).integers(100) == np.random.default_rng(7).integers(100)
    np.True_
    """
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.Generator(np.random.PCG64(root_seed(rng)))


def key_hash(key: Hashable) -> int:
    """A stable 63-bit integer for a client key (the same across runs and machines).

    Python's ``hash`` is salted per process, so it cannot be used here.

    >>> key_hash("chat") == key_hash("chat") and key_hash(1) != key_hash("1")
    True
    """
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"client key must be an int or a str, got {key!r}")
    if isinstance(key, (int, np.integer)):
        text = f"i:{int(key)}"
    elif isinstance(key, str):
        text = f"s:{key}"
    else:
        raise TypeError(f"client key must be an int or a str, got {key!r}")
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def stream(root: np.random.SeedSequence, client: int, window: int, purpose: int) -> np.random.Generator:
    """The generator of one (client hash, window index, purpose) leaf of the tree."""
    seq = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, client, window, purpose))
    return np.random.Generator(np.random.PCG64(seq))


class WindowStreams:
    """The random streams of one (client, window): ``streams(purpose)`` -> a Generator.

    Every purpose in :data:`PURPOSES` gets its own generator, seeded from one
    ``SeedSequence`` leaf of the tree (``(seed, client, window)``) that hands each purpose
    its own words, so the streams are independent and one hash serves them all (a
    ``SeedSequence`` per purpose would cost ~20 us each, per client and window). Asking
    twice for a purpose continues its stream.

    >>> root = root_seed(1)
    >>> a, b = WindowStreams(root, 7, 0), WindowStreams(root, 7, 0)
    >>> a("output_tokens").random() == b("output_tokens").random()  # whatever a drew before
    True
    >>> a("input_tokens").random() != a("output_tokens").random()
    True
    """

    def __init__(self, root: np.random.SeedSequence, client: int, window: int, base: int = WINDOW) -> None:
        self.root, self.client, self.window, self.base = root, client, window, base
        self._seq: np.random.SeedSequence | None = None
        self._words: Any = ()
        self._gens: dict[str, np.random.Generator] = {}

    def __call__(self, purpose: str) -> np.random.Generator:
        gen = self._gens.get(purpose)
        if gen is None:
            i = _INDEX[purpose]  # an unknown purpose is a programming error
            end = _WORDS * (i + 1)
            if len(self._words) < end:
                # generate_state's first k words do not depend on how many are asked, and
                # the common purposes come first: usually 12 words are hashed, not 52
                if self._seq is None:
                    key = (*self.root.spawn_key, self.client, self.window, self.base)
                    self._seq = np.random.SeedSequence(self.root.entropy, spawn_key=key)
                self._words = self._seq.generate_state(max(end, 3 * _WORDS), np.uint64)
            words = self._words[end - _WORDS : end]
            # numpy accepts any ISeedSequence; its stubs name only SeedSequence
            gen = self._gens[purpose] = np.random.Generator(np.random.PCG64(_Words(words)))  # type: ignore[arg-type]
        return gen


class _Words(np.random.bit_generator.ISeedSequence):
    """Seed words handed to one bit generator (numpy's documented seed-sequence interface)."""

    def __init__(self, words: np.ndarray) -> None:
        self.words = words

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if dtype is not np.uint64 or n_words != self.words.size:  # PCG64 asks (4, np.uint64)
            raise ValueError(f"_Words: holds {self.words.size} uint64 words, asked {n_words} {dtype}")
        return self.words
