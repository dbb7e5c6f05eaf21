"""Writing a file from the command line (``servegen generate``, ``servegen convert``).

What both commands do around the writer: print the notes it reports (a
:class:`~servegen.formats.ContextWarning`: the requests it shortened to fit
``--max-tokens`` or whose counts below 1 it wrote as 1 with ``--clamp``), then the
summary line and the command that replays the file in its consumer tool
(:func:`~servegen.replay.replay_command`).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["convert", "summarize", "write_noting"]


def write_noting(args: argparse.Namespace, write: Callable[[], Path]) -> Path:
    """Run ``write()``; print each note the writer reports on stderr."""
    from .formats import ContextWarning

    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always", ContextWarning)
        path = write()
    for note in notes:
        print(f"servegen {args.command}: note: {note.message}", file=sys.stderr)
    return path


def summarize(
    args: argparse.Namespace, path: Path, fmt: str, n: int, what: str, options: dict[str, Any]
) -> int:
    """The summary line and the replay command (unless ``--quiet``); the exit code 0."""
    if not args.quiet:
        from .replay import replay_command

        print(f"wrote {what} to {path} ({fmt})", file=sys.stderr)
        command = replay_command(fmt, path, n_requests=n, max_tokens=options.get("max_tokens", 4096))
        if command is not None:
            print(f"replay it with:\n{command}", file=sys.stderr)
    return 0


def convert(args: argparse.Namespace, df: Any) -> int:
    """``servegen convert``: write the trace ``df`` (read from ``args.trace``) as ``args.to``."""
    from .formats import write

    options: dict[str, Any] = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
    if args.clamp:
        options["clamp"] = True
    path = write_noting(args, lambda: write(df, args.output, args.to, **options))
    return summarize(args, path, args.to, len(df), f"{len(df):,} requests of {args.trace}", options)
