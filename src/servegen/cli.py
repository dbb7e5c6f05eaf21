"""The ``servegen`` command line: generate, convert, inspect, plot, fit and compare workloads.

::

    servegen pools
    servegen generate --pool language/m-large --start 18:00 --duration 1h --rate 100 -o evening.parquet
    servegen generate --spec workload.json --duration 24h --format mooncake -o day.jsonl
    servegen convert BurstGPT_1.csv --format burstgpt --to aiperf --clamp -o burst.jsonl
    servegen info evening.parquet
    servegen plot evening.parquet -o evening.png
    servegen fit trace.jsonl --format mooncake -o workload.json
    servegen compare real.jsonl synthetic.parquet --format-a mooncake --plot cmp.png

Built on :mod:`argparse` (standard library, so errors and help are fully predictable).
A user mistake (a bad duration, an unknown pool or format, a missing file) prints one
line on stderr and exits with a non-zero code; set ``SERVEGEN_DEBUG=1`` to get the
traceback instead. Outputs are written atomically: on an error or Ctrl-C nothing is left.

>>> parse_time("1h30m"), parse_time("18:00"), parse_time("1d06:00"), parse_time("90")
(5400.0, 64800.0, 108000.0, 90.0)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main", "parse_time"]

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "ms": 1e-3}
_UNIT_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|min|d|h|m|s)")
_CLOCK_RE = re.compile(r"(?:(\d+)d)?(\d+):(\d{2})(?::(\d{2}(?:\.\d*)?))?")
_TIME_HELP = "seconds, or 90s, 10m, 1h30m, 2d, 18:00 (time of day), 1d18:00 (day 1, 18:00)"
_SUFFIX_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}


def parse_time(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"18:00"``, ``"1d18:00"``.

    ``HH:MM[:SS]`` is a time of day (an offset from midnight), optionally after a day
    number (``1d18:00`` is day 1 at 18:00, i.e. 42 h from the start).

    >>> parse_time("1.5h"), parse_time("2d"), parse_time("00:10:30")
    (5400.0, 172800.0, 630.0)
    >>> parse_time("soon")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: expected seconds, or 90s, 10m, 1h30m, 2d, 18:00 (time of day), ...; got 'soon'
    """
    s = str(text).strip().lower()
    value: float | None = None
    if re.fullmatch(r"\d+(?:\.\d*)?|\.\d+", s):
        value = float(s)
    elif m := _CLOCK_RE.fullmatch(s):
        day, hour, minute, sec = m.groups()
        if int(minute) < 60 and float(sec or 0) < 60:
            value = int(day or 0) * 86400.0 + int(hour) * 3600.0 + int(minute) * 60.0 + float(sec or 0)
    elif s and _UNIT_RE.sub("", s) == "":
        value = sum(float(n) * _UNITS[u] for n, u in _UNIT_RE.findall(s))
    if value is None or not math.isfinite(value):
        raise ValueError(f"expected {_TIME_HELP}; got {text!r}")
    return value


def _time_arg(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as e:  # argparse shows ArgumentTypeError messages verbatim
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_time_arg(text: str) -> float:
    value = _time_arg(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text!r}")
    return value


def _human(seconds: float) -> str:
    """``5400.0`` -> ``'1h30m'`` (for messages)."""
    if seconds < 60:
        return f"{seconds:g}s"
    out, rest = "", round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


# -- the parser ------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (argparse prints the whole usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _build_parser() -> argparse.ArgumentParser:
    from ._version import __version__
    from .formats import READ_FORMATS, WRITE_FORMATS

    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="servegen",
        description="Generate realistic LLM-serving workloads, and inspect, plot, fit and compare traces.",
        epilog="Run 'servegen COMMAND --help' for a command's options.",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"servegen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=fmt)

    def read_format(p: argparse.ArgumentParser, flag: str = "--format", what: str = "the trace") -> None:
        p.add_argument(
            flag,
            choices=READ_FORMATS,
            metavar="FORMAT",
            help=f"format of {what}: {', '.join(READ_FORMATS)} (default: from the suffix, "
            ".parquet, .csv or .jsonl)",
        )

    def trace_input(p: argparse.ArgumentParser) -> None:
        p.add_argument("trace", type=Path, help="the trace file")
        read_format(p)

    def max_tokens(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-tokens",
            type=int,
            metavar="N",
            help="fit every request into a context of N tokens (output <= N-1, prompt + output <= N) "
            "for mooncake, vllm, aiperf, guidellm, vidur, vidur_pip (default: 4096 for the vidur "
            "formats, Vidur's own limit; none for the others)",
        )

    p = command("pools", "List the production client pools shipped with servegen.", "example: servegen pools")
    p.set_defaults(func=_cmd_pools)

    p = command(
        "generate",
        "Sample a workload (a production pool or a JSON spec) and write it to a file.",
        "examples:\n"
        "  servegen generate --pool language/m-large --start 18:00 --duration 1h --rate 100 \\\n"
        "                    -o evening.parquet\n"
        "  servegen generate --spec workload.json --duration 24h --format mooncake -o day.jsonl\n\n"
        f"times: {_TIME_HELP}",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--pool", metavar="NAME", help="a pool name from 'servegen pools' (e.g. language/m-large)"
    )
    src.add_argument("--spec", metavar="FILE", type=Path, help="a Workload JSON file (Workload.to_json())")
    p.add_argument("--duration", required=True, type=_positive_time_arg, help="how long a stream to generate")
    p.add_argument(
        "--start",
        type=_time_arg,
        default=0.0,
        help="with --pool: where in the pool's data to start (default 0)",
    )
    p.add_argument(
        "--wrap", action="store_true", help="with --pool: repeat the pool's data by day past its end"
    )
    p.add_argument(
        "--rate",
        type=float,
        metavar="REQ_PER_S",
        help="scale the clients to this aggregate rate (default: native rates)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed (default 0: the same command writes the same file)"
    )
    p.add_argument(
        "--format",
        choices=WRITE_FORMATS,
        metavar="FORMAT",
        help=f"output format: {', '.join(WRITE_FORMATS)} (default: from the suffix of -o)",
    )
    p.add_argument(
        "--chunk",
        type=_positive_time_arg,
        default=600.0,
        help="seconds generated and written per step; bounds memory (default 10m)",
    )
    max_tokens(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="the file to write")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="write a Parquet dataset (-o: a new directory, by day/hour) with N local Dask processes",
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="the same on a running Dask cluster (shared disk)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, summary or replay command")
    p.set_defaults(func=_cmd_generate)

    p = command(
        "convert",
        "Write a trace file in another format, e.g. for a consumer tool to replay.",
        "example: servegen convert BurstGPT_1.csv --format burstgpt --to aiperf --clamp -o burst.jsonl",
    )
    trace_input(p)
    p.add_argument("--to", required=True, choices=WRITE_FORMATS, metavar="FORMAT", help="the output format")
    max_tokens(p)
    p.add_argument(
        "--clamp",
        action="store_true",
        help="write token counts below 1 (e.g. BurstGPT failures) as 1, reporting how many, instead of "
        "refusing them (mooncake, vllm, aiperf, guidellm; the vidur formats always clamp)",
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="the file to write")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary or replay command")
    p.set_defaults(func=_cmd_convert)

    p = command(
        "info",
        "Summarize a trace: counts, rate, burstiness, lengths, clients.",
        "example: servegen info evening.parquet",
    )
    trace_input(p)
    p.set_defaults(func=_cmd_info)

    p = command(
        "plot",
        "Draw the standard figure of a trace: rate, inter-arrival CDF, length CDFs, client shares.",
        "example: servegen plot evening.parquet -o evening.png",
    )
    trace_input(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="image file (.png, .svg, .pdf)")
    p.add_argument("--bin", type=_positive_time_arg, help="rate bin width (default: at most 200 bins)")
    p.add_argument("--top", type=int, default=5, help="clients stacked in the rate panel (default 5)")
    p.set_defaults(func=_cmd_plot)

    p = command(
        "fit",
        "Fit a workload to a trace and save it as a Workload JSON spec.",
        "example: servegen fit trace.jsonl --format mooncake -o workload.json\n"
        "then:    servegen generate --spec workload.json --duration 1h -o synthetic.parquet",
    )
    trace_input(p)
    p.add_argument(
        "--window", type=_positive_time_arg, default=600.0, help="seconds per fitted window (default 10m)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for de-quantizing coarse clocks (default 0)")
    p.add_argument("--client", default=None, help="column that names each request's client")
    p.add_argument(
        "--sessions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit conversations and shared prefixes (default: when the trace has hash_ids, session or "
        "parent columns; the spec then regenerates hash ids); --no-sessions: every request is an arrival",
    )
    p.add_argument("-o", "--output", required=True, type=Path, help="the JSON file to write")
    p.set_defaults(func=_cmd_fit)

    p = command(
        "compare",
        "Compare two traces side by side: rates, burstiness, lengths, clients.",
        "example: servegen compare real.jsonl synthetic.parquet --format-a mooncake --plot cmp.png",
    )
    p.add_argument("a", type=Path, help="the first trace (e.g. the recorded one)")
    p.add_argument("b", type=Path, help="the second trace (e.g. the synthetic one)")
    read_format(p, "--format", "both traces")
    read_format(p, "--format-a", "the first trace (overrides --format)")
    read_format(p, "--format-b", "the second trace (overrides --format)")
    p.add_argument(
        "--window", type=_positive_time_arg, default=600.0, help="seconds per window (default 10m)"
    )
    p.add_argument("--plot", type=Path, metavar="IMAGE", help="also draw the comparison figure to this file")
    p.set_defaults(func=_cmd_compare)
    return parser


# -- helpers -----------------------------------------------------------------------------
def _format_of(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {str(path)!r} from its suffix; pass --format")
    return fmt


def _read(path: Path, fmt: str | None) -> Any:
    from .formats import detect_format, read_trace

    if fmt is None and path.is_file():
        chosen = detect_format(path)  # from the content: x.jsonl may be a vllm or aiperf file
    else:
        chosen = _format_of(path, fmt)
    try:
        return read_trace(path, chosen)
    except ValueError as e:
        if fmt is None:  # the guess may be what is wrong
            raise ValueError(
                f"{e} (read as {chosen}, detected from the file; pass --format to choose another)"
            ) from e
        raise


def _progress(chunks: Iterable[Any], total: float, quiet: bool) -> Iterator[Any]:
    """Yield the chunks, drawing a progress bar on stderr when it is a terminal."""
    if quiet or not sys.stderr.isatty():
        yield from chunks
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[n]:,} requests"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("generating", total=total, n=0)
        n = 0
        for c in chunks:
            n += len(c)
            lo, hi = c.meta.get("chunk", (0.0, total))
            bar.update(task, advance=hi - lo, n=n)
            yield c


def _status(text: str) -> Any:
    """A spinner with the elapsed time on stderr when it is a terminal (a long fit shows life)."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)  # fmt: skip
    progress.add_task(text, total=None)
    return progress


class _Counter:
    """Pass chunks through, counting requests (for the summary line)."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        self.chunks, self.n = chunks, 0

    def __iter__(self) -> Iterator[Any]:
        for c in self.chunks:
            self.n += len(c)
            yield c


# -- commands ----------------------------------------------------------------------------
def _cmd_pools(args: argparse.Namespace) -> int:
    from .pools import list_pools

    table = list_pools()[["name", "clients", "span_days", "fields", "imputed_clients"]]
    print(table.to_string(index=False))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from ._checks import check_duration
    from ._cli_write import summarize, write_noting
    from .formats import write_chunks
    from .workload import Workload

    dataset = args.workers is not None or args.scheduler is not None
    fmt = "parquet" if dataset else _format_of(args.output, args.format)  # a bad name fails at once
    check_duration(args.duration)
    if args.rate is not None and not (math.isfinite(args.rate) and args.rate > 0):
        raise ValueError(f"--rate must be a finite number > 0, got {args.rate!r}")
    if args.pool is not None:
        from .pools import load_pool

        pool = load_pool(args.pool)
        end = args.start + args.duration
        if end > pool.data_span and not args.wrap:
            raise ValueError(
                f"--start + --duration ends at {_human(end)}, past the {_human(pool.data_span)} of "
                f"data in {args.pool}; pass --wrap to repeat the data by day"
            )
        view = pool.span(args.start, end, wrap=args.wrap)
        wl = Workload(view, rate=args.rate)
        source = f"{args.pool} from {_human(args.start)}"
    else:
        if args.start or args.wrap:
            raise ValueError("--start and --wrap apply to --pool only; a spec starts at 0")
        try:
            spec = json.loads(args.spec.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{str(args.spec)!r} is not valid JSON: {e}") from None
        if not isinstance(spec, dict):
            raise ValueError(
                f"{str(args.spec)!r} is not a Workload spec (a JSON object from Workload.to_json())"
            )
        if args.rate is not None:
            spec["rate"] = args.rate  # override in the spec: keeps its pool, scale and block size
        try:
            wl = Workload.from_dict(spec)
        except KeyError as e:  # from_dict indexes required fields directly
            raise ValueError(f"{str(args.spec)!r}: the Workload spec has no field {e}") from None
        source = str(args.spec)
    if dataset:
        return _generate_dataset(args, wl, source)
    options = {} if args.max_tokens is None else {"max_tokens": args.max_tokens}
    chunks = _Counter(wl.iter_chunks(args.duration, args.chunk, rng=args.seed))
    stream = _progress(chunks, args.duration, args.quiet)
    path = write_noting(args, lambda: write_chunks(stream, args.output, fmt, **options))
    rate = chunks.n / args.duration
    what = f"{chunks.n:,} requests ({rate:.2f} req/s over {_human(args.duration)} of {source})"
    return summarize(args, path, fmt, chunks.n, what, options)


def _generate_dataset(args: argparse.Namespace, wl: Any, source: str) -> int:
    """``generate --workers N`` / ``--scheduler ADDRESS``: a partitioned dataset written by Dask."""
    from .dask_sample import cluster, write_dataset

    if args.format not in (None, "parquet"):
        raise ValueError(f"--workers/--scheduler write a Parquet dataset, not --format {args.format!r}")
    with cluster(args.workers, args.scheduler) as client:
        parts = 4 * len(client.nthreads())  # small groups balance the load
        path = write_dataset(wl, args.duration, args.output, rng=args.seed, partitions=parts)
    if not args.quiet:
        print(f"wrote a Parquet dataset of {_human(args.duration)} of {source} to {path}", file=sys.stderr)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ._cli_write import convert

    return convert(args, _read(args.trace, args.format))


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from .metrics import iat_cv
    from .plot import LENGTH_COLUMNS

    df = _read(args.trace, args.format)
    t = df["timestamp"].to_numpy(dtype=np.float64)
    if t.size == 0:
        raise ValueError(f"{str(args.trace)!r} has no requests")
    span = float(t.max() - min(t.min(), 0.0))
    lines = [
        f"file        {args.trace} ({df.attrs.get('format', args.format)})",
        f"requests    {len(df):,}",
        f"span        {span:,.1f} s ({_human(span)})",
        f"mean rate   {len(df) / span if span > 0 else float('nan'):.3f} req/s",
        f"IAT CV      {iat_cv(np.sort(t)) if t.size > 2 else float('nan'):.3f}  (1 = Poisson, > 1 burstier)",
    ]
    if "client" in df.columns:
        share = df["client"].value_counts(normalize=True, sort=True)
        top = ", ".join(f"{k} {v:.1%}" for k, v in share.head(5).items())
        lines.append(f"clients     {len(share):,} (top: {top})")
    print("\n".join(lines))
    q = [0.5, 0.9, 0.99]
    stats = {
        col: {
            "mean": df[col].mean(),
            **{f"p{round(x * 100)}": df[col].quantile(x) for x in q},
            "max": df[col].max(),
        }
        for col in LENGTH_COLUMNS
        if col in df.columns
    }
    import pandas as pd

    print()
    print(pd.DataFrame(stats).T.round(1).to_string())
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from . import plot

    if args.top < 0:
        raise ValueError(f"--top must be >= 0, got {args.top!r}")
    df = _read(args.trace, args.format)
    path = plot.save(plot.overview(df, bin=args.bin, top=args.top), args.output)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from ._atomic import atomic_write
    from .fit import fit

    df = _read(args.trace, args.format)
    with _status(f"fitting {len(df):,} requests in {_human(args.window)} windows"):
        wl = fit(df, window=args.window, client=args.client, rng=args.seed, sessions=args.sessions)
    text = wl.to_json(indent=1)
    path = atomic_write(args.output, lambda tmp: Path(tmp).write_text(text + "\n"))
    print(f"wrote {path}: {len(wl.clients)} client(s) fitted on {len(df):,} requests", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import plot
    from .comparison import compare

    a = _read(args.a, args.format_a or args.format)
    b = _read(args.b, args.format_b or args.format)
    cmp = compare(a, b, window=args.window, names=(args.a.name, args.b.name))
    with pd.option_context(
        "display.width", 160, "display.max_rows", 500, "display.float_format", "{:.4g}".format
    ):
        print(cmp.table.drop(columns="note").to_string())
    if args.plot is not None:
        plot.save(cmp.plot(), args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``timeout``, ``kill``) and SIGHUP (a closed terminal) unwind like Ctrl-C,
    so the atomic writer removes its temporary file (only SIGKILL cannot be caught; the
    next write of the same target removes what it leaves, see ``servegen._atomic``)."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signum)

    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    try:
        old = {n: signal.signal(getattr(signal, n), interrupt) for n in names}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for n, handler in old.items():
            signal.signal(getattr(signal, n), handler)


# -- entry point ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    0 on success, 1 for an error in the input (one line on stderr), 2 for a usage error,
    130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:  # answered before the parser, which imports pandas and pyarrow
        from ._version import __version__

        print(f"servegen {__version__}")
        return 0
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors
        return e.code if isinstance(e.code, int) else 1
    try:
        with _terminate_as_interrupt():
            code = int(args.func(args))
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at exit
            return code
    except KeyboardInterrupt as e:
        print("servegen: interrupted; nothing was written", file=sys.stderr)
        return 128 + e.args[0] if e.args and isinstance(e.args[0], int) else 130
    except BrokenPipeError:  # `servegen info ... | head` closed our stdout: not an error
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off by a pipe
    except (ValueError, TypeError, OSError) as e:
        if os.environ.get("SERVEGEN_DEBUG"):
            raise
        if isinstance(e, OSError) and e.filename is not None:
            msg = f"{e.strerror or e}: {e.filename!r}"
        else:
            msg = " ".join(str(e).split())  # one line, whatever the message
        print(f"servegen {args.command}: error: {msg}", file=sys.stderr)
        return 1
