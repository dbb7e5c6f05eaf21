"""``Workload``: clients composed into one timestamp-sorted request stream.

How a workload is sampled
-------------------------
Time is cut into stream windows of ``STREAM_WINDOW`` (600) seconds. Each (client,
window) pair draws from its own random streams, derived from ``(seed, client key,
window index)``, so adding a client leaves the others' requests unchanged and
``iter_chunks`` with any chunk size concatenates to exactly ``sample``. Inside a window
each client's arrivals are drawn with one vectorized call per stretch of one arrival law
(see :mod:`servegen.engine.timeline`), then all of its request values at once; the clients'
sorted runs are merged with one stable argsort per window (which exploits the runs)
rather than one sort of the whole stream. Only windows where some client has an arrival
due or a session turn pending are visited, and the last is cut at ``duration``, so the
cost follows the requests produced, not the number of windows.

Rate targets
------------
``rate=None`` keeps every client's own rates. A target (a number, a ``{time: rate}``
step function, or a callable of time evaluated every ``STREAM_WINDOW / 10`` seconds)
scales every client in proportion to its own rate at that moment, so the aggregate
follows the target; ``scale`` (a number, or a per-client mapping) multiplies the result.
Scaling is a time change, so it keeps each client's inter-arrival CV.

>>> import servegen as sg
>>> wl = sg.Workload({"a": sg.Client(arrival=sg.Poisson(rate=1), input_tokens=10, output_tokens=5),
...                   "b": sg.Client(arrival=sg.Poisson(rate=3), input_tokens=20, output_tokens=5)},
...                  rate=40.0)
>>> r = wl.sample(600, rng=0)
>>> round(len(r) / 600), round(float((r.client == 1).mean()), 2)
(40, 0.75)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from . import _rng
from ._base import parse_model
from ._checks import SPEC_FIELDS, check_depth, check_duration, check_rate, check_scale, spec_pairs
from ._validate import ModelError, ModelTypeError, check_whole_or_none
from .client import Client
from .engine import plan as engine
from .engine.timeline import STREAM_WINDOW
from .requests import Requests

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["STREAM_WINDOW", "Workload"]


@runtime_checkable
class ClientSource(Protocol):
    """A client pool or pool view: anything whose ``to_clients()`` gives ``{key: Client}``."""

    def to_clients(self) -> Mapping[Any, Client]: ...


class Workload:
    """Clients merged into one stream, optionally scaled to a target aggregate rate.

    Parameters
    ----------
    clients
        ``{key: Client}`` (keys are ints or strs), a list of clients (keys 0..n-1), or a
        client pool or pool view (anything with a ``to_clients()`` method).
    rate
        ``None`` (native rates), a number (req/s), ``{time_s: rate}`` (a step function
        starting at time 0) or a callable ``rate(t)`` (vectorized over a numpy array, or
        scalar).
    scale
        A factor applied after ``rate`` to every client, or ``{key: factor}`` per client.
    block_size
        Tokens per KV-cache block; when given, requests get ``hash_ids`` (see
        :mod:`servegen.sessions`): 512 for Mooncake traces, 16 for vLLM/Bailian.

    Notes
    -----
    For clients with sessions, rates count requests (session starts x mean turns), and
    the stream starts warm, with the sessions in progress at t = 0 (``servegen.warm_start``).
    """

    def __init__(
        self,
        clients: Mapping[Any, Client] | Sequence[Client] | ClientSource,
        rate: float | Mapping[float, float] | Callable[[Any], Any] | None = None,
        scale: float | Mapping[Hashable, float] = 1.0,
        block_size: int | None = None,
    ) -> None:
        self._source = clients if isinstance(clients, ClientSource) else None  # has to_clients()
        if isinstance(clients, ClientSource):
            clients = clients.to_clients()
        if isinstance(clients, Mapping):
            items = list(clients.items())
        elif isinstance(clients, Sequence) and not isinstance(clients, (str, bytes)):
            items = list(enumerate(clients))
        else:
            raise TypeError(f"Workload: `clients` must be a mapping, a list or a pool, got {clients!r}")
        if not items:
            raise ValueError("Workload: `clients` must not be empty")
        self.clients: dict[Hashable, Client] = {}
        for key, c in items:
            _rng.key_hash(key)  # validates the key type
            if isinstance(c, dict):
                c = Client.model_validate(c)
            if not isinstance(c, Client):
                raise TypeError(f"Workload: client {key!r} must be a servegen Client, got {c!r}")
            self.clients[key] = c
        self.rate = check_rate(rate)
        self.scale = check_scale(scale, self.clients)
        self.block_size = check_whole_or_none(
            block_size, "block_size", owner="Workload", low=1, unit="tokens"
        )

    @property
    def keys(self) -> list[Hashable]:
        return list(self.clients)

    def __repr__(self) -> str:
        return f"Workload(clients={len(self.clients)}, rate={self.rate!r}, scale={self.scale!r})"

    # -- sampling -------------------------------------------------------------------
    def sample(
        self,
        duration: float,
        *,
        rng: _rng.SeedLike = None,
        workers: int | None = None,
        clients: Iterable[Hashable] | None = None,
        start: float = 0.0,
    ) -> Requests:
        """All requests in [0, ``duration``) seconds, sorted by timestamp.

        ``rng`` is a seed (int), ``SeedSequence``, ``Generator`` or ``None``. With
        ``workers`` >= 2 (the default on a multi-core machine) each window is merged on a
        background thread while the next is drawn; the result does not depend on it.

        ``clients`` (keys) samples only those clients' requests, exactly as they are in
        the full sample (a target rate is still shared out over every client). Sampling
        disjoint groups in separate processes or on separate machines and joining them
        with :func:`servegen.merge` gives the full sample:

        >>> import servegen as sg
        >>> wl = sg.Workload({k: sg.Client(arrival=sg.Gamma(rate=k + 1, cv=2), input_tokens=9,
        ...                                output_tokens=9) for k in range(4)}, rate=50.0)
        >>> parts = [wl.sample(600, rng=1, clients=g) for g in ([0, 2], [1, 3])]
        >>> sg.merge(parts).equals(wl.sample(600, rng=1))
        True

        ``start`` (a multiple of ``STREAM_WINDOW``, 600 s) keeps only the requests from
        ``start`` on, exactly as in the full sample (earlier windows draw their arrivals, to
        carry the arrival state, but no request values), so time ranges too can be sampled
        apart. Not for sessions, shared prefixes or block ids: their turns carry over.
        """
        duration = check_duration(duration)
        plan = self._plan(duration, workers, clients)
        return engine.sample(self.clients, duration, _rng.root_seed(rng), start=start, **plan)

    def expected_requests(
        self,
        duration: float,
        times: Any = None,
        *,
        clients: Iterable[Hashable] | None = None,
        by_client: bool = False,
    ) -> Any:
        """Expected requests of :meth:`sample` in [0, ``duration``), or in [0, t) for each
        t of ``times`` (an array), with the rate target and scale applied; nothing is drawn.

        With ``by_client``, one row per client of the workload (in ``self.clients`` order;
        zero for those not in the ``clients`` argument) instead of their sum.

        >>> import servegen as sg
        >>> wl = sg.Workload([sg.Client(arrival=sg.Poisson(rate=1), input_tokens=9, output_tokens=9)],
        ...                  rate={0: 2.0, 600: 4.0})
        >>> wl.expected_requests(1200), wl.expected_requests(1200, [300, 900]).tolist()
        (3600.0, [600.0, 2400.0])
        """
        duration = check_duration(duration)
        plan = self._plan(duration, None, clients)
        plan.pop("workers")
        at = [duration] if times is None else times
        out = engine.expected_until(self.clients, duration, at, **plan)
        out = out if by_client else out.sum(axis=0)
        return (out[..., 0] if by_client else float(out[0])) if times is None else out

    def iter_chunks(
        self,
        duration: float,
        chunk: float,
        *,
        rng: _rng.SeedLike = None,
        workers: int | None = None,
        clients: Iterable[Hashable] | None = None,
        start: float = 0.0,
    ) -> Iterator[Requests]:
        """Yield the stream of :meth:`sample` as consecutive ``chunk``-second parts.

        Memory stays bounded by one chunk plus one stream window; the parts concatenate
        to exactly ``sample(duration, rng=rng)`` for the same seed. ``clients`` and
        ``start`` are :meth:`sample`'s: with ``start`` the first part begins there.
        """
        duration = check_duration(duration)
        if not (isinstance(chunk, (int, float)) and math.isfinite(chunk) and chunk > 0):
            raise ValueError(f"iter_chunks: `chunk` must be a finite number > 0, got {chunk!r}")
        yield from engine.iter_chunks(
            self.clients,
            duration,
            float(chunk),
            _rng.root_seed(rng),
            start=start,
            **self._plan(duration, workers, clients),
        )

    def _plan(self, duration: float, workers: int | None, only: Iterable[Hashable] | None) -> dict[str, Any]:
        """The engine's plan keywords for one sample call (a pool view checks its end first)."""
        check_source = getattr(self._source, "check_sample", None)
        if check_source is not None:
            check_source(duration)
        return {"rate": self.rate, "scale": self.scale, "block_size": self.block_size, "workers": workers,
                "only": only}  # fmt: skip

    def to_dask(
        self,
        duration: float,
        *,
        rng: _rng.SeedLike = None,
        partitions: int | Sequence[Sequence[Hashable]] | None = None,
        chunk: float | None = None,
    ) -> dd.DataFrame:
        """A lazy Dask DataFrame of :meth:`sample`, sampled by client group on the workers.

        See :func:`servegen.dask_sample.to_dask` (needs ``servegen[dask]``).
        """
        from .dask_sample import to_dask  # Dask only when asked for

        return to_dask(self, duration, rng=rng, partitions=partitions, chunk=chunk)

    # -- specs ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (callable rates and custom models cannot be saved)."""
        if callable(self.rate):
            raise ValueError("Workload.to_dict: a callable `rate` cannot be saved; use {time: rate}")
        rate: Any = self.rate
        if isinstance(rate, dict):
            rate = [[t, r] for t, r in rate.items()]
        if self._source is not None and hasattr(self._source, "to_spec"):
            clients: Any = self._source.to_spec()
        else:
            clients = [[k, c.model_dump(mode="json")] for k, c in self.clients.items()]
        scale = [[k, v] for k, v in self.scale.items()] if isinstance(self.scale, dict) else self.scale
        spec = {"kind": "workload", "clients": clients, "rate": rate, "scale": scale}
        if self.block_size is not None:
            spec["block_size"] = self.block_size
        return spec

    def to_json(self, **kw: Any) -> str:
        """:meth:`to_dict` as JSON text; ``Workload.from_json`` reads it back exactly."""
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Workload:
        """Rebuild a workload from :meth:`to_dict` output.

        Unknown fields, repeated client keys and malformed pairs are errors, never dropped.
        """
        if not isinstance(spec, Mapping):
            raise ValueError(f"Workload.from_dict: a spec must be a JSON object, got {type(spec).__name__}")
        check_depth(spec)  # before pydantic recurses into it
        if spec.get("kind") != "workload":
            raise ValueError(f"Workload.from_dict: expected kind 'workload', got {spec.get('kind')!r}")
        unknown = [k for k in spec if k not in SPEC_FIELDS]
        if unknown:
            raise ValueError(
                f"Workload.from_dict: unknown field(s) {unknown!r}; a workload spec has {list(SPEC_FIELDS)!r}"
            )
        if "clients" not in spec:
            raise ValueError("Workload.from_dict: the spec has no 'clients' field")
        raw = spec["clients"]
        if isinstance(raw, Mapping) and raw.get("kind") == "pool":
            clients: Any = parse_model(dict(raw))  # the pools register their spec kind
        else:
            if isinstance(raw, Mapping) and raw.get("kind") == "clients":
                raw = raw.get("clients")
            clients = {k: _client_from_dict(k, c) for k, c in spec_pairs(raw, "clients")}
        rate = spec.get("rate")
        if isinstance(rate, list):
            rate = {float(t): float(r) for t, r in spec_pairs(rate, "rate", keys="rate times")}
        scale = spec.get("scale", 1.0)
        if isinstance(scale, list):
            scale = {k: float(v) for k, v in spec_pairs(scale, "scale")}
        return cls(clients, rate=rate, scale=scale, block_size=spec.get("block_size"))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Workload):
            return NotImplemented
        return (
            list(self.clients) == list(other.clients)
            and all(self.clients[k] == other.clients[k] for k in self.clients)
            and self.rate == other.rate
            and self.scale == other.scale
            and self.block_size == other.block_size
        )

    __hash__ = None  # type: ignore[assignment]


def _client_from_dict(key: Hashable, spec: Any) -> Client:
    """One client of a spec; an error says which client it is (a pool spec has hundreds)."""
    try:
        return Client.model_validate(spec)
    except (TypeError, ValueError) as e:
        wrapped = ModelTypeError if isinstance(e, TypeError) else ModelError
        raise wrapped(f"Workload.from_dict: client {key!r}: {e}") from None
