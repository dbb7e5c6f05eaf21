"""Seed normalization and the tree of independent random streams.

The stream of one client in one time window depends only on ``(seed, client key,
window index, purpose)``: adding a client leaves the others untouched, and sampling in
chunks, in parallel or on a cluster yields the same requests as one call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any

import numpy as np

__all__ = ["SeedLike", "generator", "key_hash", "root_seed", "stream"]

SeedLike = Any  # None | int | np.random.SeedSequence | np.random.Generator

#: Purposes of a leaf: a client's requests in one window (arrival gaps first, then the
#: request values, in a fixed order, so values never shift arrivals), and a client's
#: shared-prefix lengths (drawn once per run, window 0), and a client's sessions already
#: in progress at t = 0 (its warm start, drawn once per run, window 0).
WINDOW, PREFIX, WARM = 0, 3, 4


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
