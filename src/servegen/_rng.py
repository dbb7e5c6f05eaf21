"""Seed normalization and the tree of independent random streams.

The stream of one client in one time window depends only on ``(seed, client key,
window index, purpose)``: adding a client leaves the others untouched, and sampling in
chunks, in parallel or on a cluster yields the same requests as one call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np

__all__ = [
    "PURPOSES",
    "LeafSeeds",
    "SeedLike",
    "WindowStreams",
    "generator",
    "key_hash",
    "root_seed",
    "stream",
]

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
    twice for a purpose continues its stream. A purpose's generator is only built when
    it is asked for. ``words`` and ``pool`` are the leaf's first seed words and mixed
    entropy pool when ``seeds`` (a :class:`LeafSeeds`) has already computed them (the
    same words).

    >>> root = root_seed(1)
    >>> a, b = WindowStreams(root, 7, 0), WindowStreams(root, 7, 0)
    >>> a("output_tokens").random() == b("output_tokens").random()  # whatever a drew before
    True
    >>> a("input_tokens").random() != a("output_tokens").random()
    True
    """

    def __init__(
        self,
        root: np.random.SeedSequence,
        client: int,
        window: int,
        base: int = WINDOW,
        *,
        words: Any = (),
        pool: Any = None,
        seeds: LeafSeeds | None = None,
    ) -> None:
        self.root, self.client, self.window, self.base = root, client, window, base
        self._seq: np.random.SeedSequence | None = None
        self._words: Any = words
        self._pool = pool
        self._seeds = seeds
        self._gens: dict[str, np.random.Generator] = {}

    def __call__(self, purpose: str) -> np.random.Generator:
        gen = self._gens.get(purpose)
        if gen is None:
            i = _INDEX[purpose]  # an unknown purpose is a programming error
            end = _WORDS * (i + 1)
            if len(self._words) < end:
                # generate_state's first k words do not depend on how many are asked, and
                # the common purposes come first: usually 12 words are hashed, not 52
                n = max(end, 3 * _WORDS)
                if self._seeds is not None:  # the batch's next windows hash this many words
                    self._seeds.n_words = max(self._seeds.n_words, n)
                if self._pool is not None:
                    self._words = seed_words(self._pool[None], n)[0]
                else:
                    if self._seq is None:
                        key = (*self.root.spawn_key, self.client, self.window, self.base)
                        self._seq = np.random.SeedSequence(self.root.entropy, spawn_key=key)
                    self._words = self._seq.generate_state(n, np.uint64)
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


# -- numpy's SeedSequence hash, for many leaves at once ------------------------------------
# Melissa O'Neill's seed_seq_fe as numpy implements it (numpy/random/bit_generator.pyx):
# its constants, and the same steps on 32-bit words. numpy has no batch form, and building
# a SeedSequence per (client, window) leaf costs ~30 us of Python-level work, as much as
# drawing a small client's requests; LeafSeeds checks its words against numpy's.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _M32, _POOL = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF, 4


def _u32(x: Any) -> list[int]:
    """An int, or a sequence of them, as numpy's 32-bit entropy words (low word first)."""
    if isinstance(x, (int, np.integer)):
        n = int(x)
        if n < 0:
            raise ValueError(f"entropy must be >= 0, got {n!r}")
        out = [n & _M32]
        while n > _M32:
            n >>= 32
            out.append(n & _M32)
        return out
    if isinstance(x, (str, bytes, float, np.floating)):  # numpy's own rules: the slow path
        raise TypeError(f"entropy word {x!r} is not an int")
    return [w for v in x for w in _u32(v)]


def _hashmix(value: Any, hc: int) -> tuple[Any, int]:
    """numpy's hashmix of ``value`` (an int or a uint64 array of 32-bit words)."""
    hc2 = hc * _MULT_A & _M32
    value = (value ^ hc) * hc2 & _M32
    return value ^ value >> 16, hc2


def _mix(x: Any, y: Any) -> Any:
    """numpy's mix of two 32-bit words (ints or uint64 arrays; the products fit in 64 bits)."""
    r = (_MIX_L * x - _MIX_R * y) & _M32
    return r ^ r >> 16


def _mix_entropy(words: list[int]) -> tuple[list[int], int]:
    """The pool after mixing ``words`` (numpy's mix_entropy), and the hash constant."""
    hc = _INIT_A
    pool = [0] * _POOL
    for i in range(_POOL):
        pool[i], hc = _hashmix(words[i] if i < len(words) else 0, hc)
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                h, hc = _hashmix(pool[src], hc)
                pool[dst] = _mix(pool[dst], h)
    for w in words[_POOL:]:
        for dst in range(_POOL):
            h, hc = _hashmix(w, hc)
            pool[dst] = _mix(pool[dst], h)
    return pool, hc


def _word_hashes(words: Sequence[Any], hc: int) -> tuple[list[Any], int]:
    """Per entropy word, its hashmix into each pool slot (they do not depend on the pool)."""
    out = []
    for w in words:
        row = []
        for _ in range(_POOL):
            h, hc = _hashmix(w, hc)
            row.append(h)
        out.append(row)
    return out, hc


_N32 = 2 * _WORDS * len(PURPOSES)  # 32-bit output words of every purpose of a leaf
_SLOT = np.arange(_N32) % _POOL
_HX = np.array([_INIT_B * pow(_MULT_B, j, 2**32) & _M32 for j in range(_N32)], dtype=np.uint64)
_HM = np.array([_INIT_B * pow(_MULT_B, j + 1, 2**32) & _M32 for j in range(_N32)], dtype=np.uint64)


def seed_words(pools: np.ndarray, n: int) -> np.ndarray:
    """``generate_state(n, np.uint64)`` of each leaf whose mixed pool is a row of ``pools``."""
    d = (pools[:, _SLOT[: 2 * n]] ^ _HX[: 2 * n]) * _HM[: 2 * n] & _M32
    d ^= d >> 16
    return np.ascontiguousarray(d[:, 0::2] | d[:, 1::2] << 32)


class LeafSeeds:
    """The streams of many (client, window) leaves of one root, seeded in batches.

    Leaf ``(client, window)`` is ``SeedSequence(root.entropy, spawn_key=(*root.spawn_key,
    client, window, base))``, as :class:`WindowStreams` builds it; here the root is mixed
    once, each client's key once, and each window into all its clients' pools at once
    with array arithmetic, giving the same words. On construction the words of one leaf
    are compared with numpy's own ``SeedSequence``; if they differ (a root entropy of a
    kind not handled here, or a numpy whose hash has changed), :meth:`streams` builds
    every leaf through ``SeedSequence`` instead, so the streams never depend on this.

    >>> root = root_seed(3)
    >>> (fast,) = LeafSeeds(root, [11, 2**40 + 5]).streams(np.array([1]), 4)
    >>> fast("input_tokens").random() == WindowStreams(root, 2**40 + 5, 4)("input_tokens").random()
    True
    """

    def __init__(self, root: np.random.SeedSequence, clients: Sequence[int], base: int = WINDOW) -> None:
        self.root, self.clients, self.base = root, list(clients), base
        self.n_words = 3 * _WORDS  # grows to the most a leaf has asked for
        try:
            run = _u32(root.entropy)
            words = run + [0] * (_POOL - len(run)) + _u32(root.spawn_key)  # numpy pads short entropy
            self._root_pool, hc = _mix_entropy(words)
            self._pool, self._two, self._hc = self._client_pools(self.clients, hc)
            probe = 2**40 + 7  # a two-word key, in window 1: checks the whole path
            pool, two, hcs = self._client_pools([probe], hc)
            got = seed_words(self._window_pools(pool, two, hcs, 1), 2)[0]
            want = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, probe, 1, base))
            self.exact = bool(np.array_equal(got, want.generate_state(2, np.uint64)))
        except (TypeError, ValueError):
            self.exact = False

    def _client_pools(
        self, clients: Sequence[int], hc: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Each client's pool after its key words, whether the key took two words, and
        the hash constant after one and after two words."""
        h = np.array(clients, dtype=np.uint64).reshape(-1)
        pool = np.tile(np.array(self._root_pool, dtype=np.uint64), (h.size, 1))
        (lo,), hc1 = _word_hashes([h & _M32], hc)
        pool = _mix(pool, np.stack(lo, axis=1))
        (hi,), hc2 = _word_hashes([h >> 32], hc1)
        two = h > _M32  # numpy's words of a key below 2**32 are one word
        pool = np.where(two[:, None], _mix(pool, np.stack(hi, axis=1)), pool)
        return pool, two, (hc1, hc2)

    def _window_pools(
        self, pool: np.ndarray, two: np.ndarray, hcs: tuple[int, int], window: int
    ) -> np.ndarray:
        tail = _u32(window) + _u32(self.base)
        # a window's words hash the same for every client whose key had as many words
        rows = {g: _word_hashes(tail, hcs[g])[0] for g in {int(x) for x in np.unique(two)}}
        for j in range(len(tail)):
            if len(rows) == 1:
                (r,) = rows.values()
                h = np.array(r[j], dtype=np.uint64)
            else:
                h = np.where(two[:, None], np.array(rows[1][j], np.uint64), np.array(rows[0][j], np.uint64))
            pool = _mix(pool, h)
        return pool

    def streams(self, idx: np.ndarray, window: int) -> Iterator[WindowStreams]:
        """The :class:`WindowStreams` of clients ``idx`` (positions in ``clients``) in ``window``.

        One at a time: a leaf and its generators are freed once its client is drawn
        (thousands held at once would push them through the garbage collector's
        generations and trigger full collections).
        """
        if not self.exact:
            for i in idx.tolist():
                yield WindowStreams(self.root, self.clients[i], window, self.base)
            return
        pools = self._window_pools(self._pool[idx], self._two[idx], self._hc, window)
        words = seed_words(pools, self.n_words)
        for j, i in enumerate(idx.tolist()):
            yield WindowStreams(
                self.root, self.clients[i], window, self.base, words=words[j], pool=pools[j], seeds=self
            )
