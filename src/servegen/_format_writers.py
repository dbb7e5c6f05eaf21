"""The writers :meth:`Requests.to_format` dispatches to, found through package entry points.

``Requests`` (data layer) sits below the export formats (outputs layer), which all read
``Requests``; so ``to_format`` cannot import them. Instead every writer is declared as an
entry point of the group ``servegen.formats`` in a package's metadata, and looked up here
by format name. servegen declares its own formats in ``pyproject.toml``::

    [project.entry-points."servegen.formats"]
    mooncake = "servegen.formats:write"

Another package adds a format the same way, with its own callable (same signature as
:func:`servegen.formats.write`: ``write(requests, path, format, **options) -> Path``);
installing that package is all it takes for ``reqs.to_format(path, "its-name")`` to work.

The group is read once per process (a scan of the installed metadata costs milliseconds)
and each writer is loaded once, on its first use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["GROUP", "format_names", "format_writer", "refresh"]

#: The entry-point group of format writers.
GROUP = "servegen.formats"

_LOADED: dict[str, Callable[..., Any]] = {}  # format name -> its loaded writer


def _entry_points(group: str) -> list[EntryPoint]:
    # Imported here: importlib.metadata costs tens of milliseconds to import, and
    # `servegen.requests` (which imports this module) is on the light import path.
    from importlib.metadata import entry_points

    return list(entry_points(group=group))


@functools.cache
def _declared() -> dict[str, list[EntryPoint]]:
    """Every entry point of :data:`GROUP`, by format name (sorted)."""
    table: dict[str, list[EntryPoint]] = {}
    for ep in sorted(_entry_points(GROUP), key=lambda e: e.name):
        if ep.value not in [e.value for e in table.get(ep.name, [])]:  # one package seen twice
            table.setdefault(ep.name, []).append(ep)
    return table


def format_names() -> list[str]:
    """The format names :meth:`Requests.to_format` accepts, as installed (sorted).

    >>> {"mooncake", "vidur", "parquet"} <= set(format_names())
    True
    """
    return list(_declared())


def format_writer(name: Any) -> Callable[..., Any]:
    """The writer declared for format ``name`` (loaded, i.e. its module imported, once).

    Raises
    ------
    ValueError
        ``name`` is not a declared format (the message lists those that are), or two
        installed packages declare it; or no format is declared at all (servegen run
        from a source tree without being installed, or installed before the entry
        points existed: ``pip install -e .`` writes them).

    >>> format_writer("mooncake").__module__
    'servegen.formats'
    >>> format_writer("sharegpt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: to_format: unknown format 'sharegpt'; valid formats are ['aiperf', 'azure', 'burstgpt', ...]
    """
    if isinstance(name, str) and name in _LOADED:
        return _LOADED[name]
    table = _declared()
    if not table:
        raise ValueError(
            f"to_format: no format writers are installed (the entry-point group {GROUP!r} is empty), "
            f"so format {name!r} cannot be written; servegen declares its formats in its package "
            "metadata: install it (`pip install -e .` in a checkout, again after pulling a version "
            "that adds formats), or call servegen.formats.write(requests, path, format) directly"
        )
    found = table.get(name) if isinstance(name, str) else None
    if not found:
        raise ValueError(f"to_format: unknown format {name!r}; valid formats are {list(table)!r}")
    if len(found) > 1:
        raise ValueError(
            f"to_format: format {name!r} is declared by several installed packages "
            f"({sorted(e.value for e in found)!r}); uninstall all but one"
        )
    writer = found[0].load()
    if not callable(writer):
        raise TypeError(f"to_format: entry point {found[0].value!r} of format {name!r} is not callable")
    _LOADED[name] = writer
    return writer


def refresh() -> None:
    """Forget what was read, so packages installed since are seen (for tests and notebooks)."""
    _declared.cache_clear()
    _LOADED.clear()
