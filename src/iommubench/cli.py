"""Command line: run · plot · report · compare · list · info · dma-map-benchmark.

Exit codes: 0 every point ran and passed its audit (the naive control is expected to fail its
own), 1 a point failed, 2 bad input, 70 an internal error (a bug), 130 interrupted. Every
error is one line on standard error, `iommubench: ...`, with no traceback; set
IOMMUBENCH_DEBUG=1 to see the traceback of an internal error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from iommubench.core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
)

DEBUG_ENV = "IOMMUBENCH_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: `iommubench: run: ...; see ... --help`, exit 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("iommubench").strip()
        prefix = f"{where}: " if where else ""
        self.exit(EXIT_BAD_INPUT, f"iommubench: {prefix}{message} (see '{self.prog} --help')\n")


def version_text() -> str:
    """The package version and the native core's version and source hash."""
    from iommubench._version import __version__

    try:
        from iommubench import _core
    except ImportError:
        return f"iommubench {__version__} (native core not built)"
    built = _core.ffi.string(_core.lib.IB_SOURCE_HASH).decode()
    core = f"native core {_core.lib.ib_core_version()}, sources {built}"
    try:
        from iommubench.core import binding

        binding.load()
    except Exception as exc:  # a stale core is still worth naming, with why it would not load
        return f"iommubench {__version__} ({core}; unusable: {exc})"
    return f"iommubench {__version__} ({core})"


class _Version(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_text())
        parser.exit(EXIT_OK)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="iommubench",
        description="iommubench: what IOMMU page-table locking and IOVA allocation strategies "
        "cost under DMA load.",
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument(
        "--version", action=_Version, help="print the package and native core versions and exit"
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a sweep config",
        description="Run every point of a sweep config; print the run directory.",
    )
    run.add_argument(
        "config", type=Path, help="the sweep config (YAML, a regular file of at most 1 MiB)"
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, repeatable: a top-level key (repetitions=5), a "
        "parameter (workers=2, workers=auto), defaults.PARAMETER or sweep.PARAMETER=[1,2]; "
        "the value is YAML (default: none)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="directory to create the run directory in; made if missing, must be writable "
        "(default: results)",
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="run only the missing (point, rep) pairs of RUN_DIR, after checking every stored "
        "row; the command to use is in RUN_DIR/RESUME (default: start a new run)",
    )
    run.add_argument(
        "--redo-failed",
        action="store_true",
        help="with --resume, also run again the (point, rep) pairs that failed on their own "
        "(a crash of the core, a failed audit other than the negative control's); failures "
        "from outside the point (a lost host or scheduler, a full /dev/shm, a timeout, a "
        "killed worker) run again always (default: keep the point's own failures)",
    )
    run.add_argument(
        "--allow-different-build",
        action="store_true",
        help="let --resume continue a run made by another version, native core or git SHA; "
        "recorded in meta.json (default: refuse)",
    )
    run.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="run every (point, rep) as a Dask task on the workers of this Dask scheduler "
        "(start them with 'iommubench worker'); workers: auto expands per host (default: "
        "run here, no scheduler)",
    )
    run.add_argument(
        "--kernel-src",
        type=Path,
        metavar="PATH",
        help="a kernel source tree (e.g. your patched checkout) for points on the kernel's "
        "own page table (pgtable: kernel-arm); recorded in meta.json and every row (default: "
        "Debian's linux-source-6.12, fetched once into the cache)",
    )
    run.add_argument(
        "--report",
        action="store_true",
        help="write the figures and the report after the run (default: off)",
    )
    run.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="with --report: the report goes to DIR/<run-id> (default: reports)",
    )

    plot = sub.add_parser("plot", help="draw a run's figures (PNG and SVG)")
    plot.add_argument("run_dir", type=Path, help="a run directory (the one holding points.csv)")
    plot.add_argument(
        "--x",
        default="workers",
        metavar="COLUMN",
        help="parameter on the x axis (default: workers); allowed: any parameter column of "
        "the run, e.g. workers, strategy, driver, lock, allocator, chunk_pages, cs_ns",
    )
    plot.add_argument(
        "--hue",
        default="strategy",
        metavar="COLUMN",
        help="parameter told apart by colour and marker (default: strategy, the driver with "
        "its lock, e.g. domain-lock/ticket; 'none' for none); allowed: as --x, and different "
        "from it",
    )
    plot.add_argument(
        "--facet",
        default=None,
        metavar="COLUMN",
        help="parameter that splits each figure into panels (default: none, or workload when "
        "the run has several); allowed: as --x, different from --x and --hue",
    )
    plot.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the figures go (default: reports/<run dir name>)",
    )

    report = sub.add_parser(
        "report", help="write summary.json, report.md, report.html and figures for a run"
    )
    report.add_argument("run_dir", type=Path, help="a run directory (with points.csv)")
    report.add_argument(
        "--out", type=Path, default=None, help="output directory (default: reports/RUN_ID)"
    )
    report.add_argument(
        "--format",
        choices=("files", "text"),
        default="files",
        help="files (default): write the report files; text: print a summary of at most "
        "72 columns to standard output and write nothing",
    )

    compare = sub.add_parser(
        "compare",
        help="compare two runs point by point; exit 1 on a significant regression",
    )
    compare.add_argument("base", type=Path, help="the base run directory")
    compare.add_argument("new", type=Path, help="the new run directory")
    compare.add_argument(
        "--threshold",
        default="5%",
        help="smallest relative change that counts, in percent: 5 and 5%% both mean 5%% "
        "(a bare number is always percent; 0 < threshold < 100; default 5%%)",
    )
    compare.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PARAM",
        help="match points that differ only in this parameter (repeatable; any points.csv "
        "parameter column, e.g. cs_ns; default: none)",
    )
    compare.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default) or json: a list of objects with params, ratio, lo, hi, verdict",
    )
    compare.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 when any point is inconclusive (a regression's exit 1 wins; default off)",
    )

    worker = sub.add_parser(
        "worker",
        help="serve a Dask scheduler as one fleet machine",
        description="Start a Dask worker for 'iommubench run --cluster': one thread, one "
        "'machine' resource, so this host runs one point at a time. Runs until stopped.",
    )
    worker.add_argument("scheduler", metavar="tcp://HOST:PORT", help="the Dask scheduler")
    worker.add_argument(
        "--name",
        default=None,
        help="the host name its rows carry (default: this machine's; sets IOMMUBENCH_HOST)",
    )

    lister = sub.add_parser(
        "list",
        help="drivers, allocators, invalidation modes, workloads, walkers, parameters",
        description="List every strategy a config may name, with what it models, and every "
        "parameter with its default, allowed values and meaning.",
    )
    lister.add_argument(
        "--markdown",
        action="store_true",
        help="print the parameter table as Markdown, the README's list (default: plain text)",
    )
    sub.add_parser(
        "info",
        help="machine metadata and noise warnings",
        description="Print this machine's metadata and the settings that add noise. No options.",
    )

    _reproduce_parser(sub)
    _dma_map_benchmark_parser(sub)
    return ap


def _dma_map_benchmark_parser(sub: Any) -> None:
    from iommubench.spec import profiles

    bench = sub.add_parser(
        "dma-map-benchmark",
        help="the kernel's dma_map_benchmark, on the model (same options, same output)",
        description="The kernel's tools/dma/dma_map_benchmark (option string t:s:n:b:d:x:g:m:) "
        "run on the model: lockfree driver, rcache allocator, one worker per thread. Prints "
        "upstream's three lines; the kernel truncates each sample to whole 100 ns units "
        "before averaging, and so does this (see --ns). An option out of upstream's range "
        "prints upstream's message and exits 1, as the tool does; a value that is not an "
        "integer exits 2.",
    )
    for flag, dest, default, what in (
        ("-t", "threads", 1, "threads, 1-1024 and at most 64 x the allowed CPUs"),
        ("-s", "seconds", 20, "seconds to run, 1-300"),
        ("-n", "node", -1, "NUMA node, -1 (none) or a node of this machine; changes nothing"),
        ("-b", "bits", 32, "DMA mask bits, 20-64"),
        ("-d", "dir", 0, "direction, 0 bidirectional, 1 to device, 2 from device"),
        ("-x", "dma_trans_ns", 0, "ns each mapping is held, 0-10000000"),
        ("-g", "granule", 1, "pages per mapping (-m 1: single-page sg entries), 1-1024"),
        ("-m", "mode", 0, "0 single (dma_map_single), 1 scatter-gather (dma_map_sg)"),
    ):
        bench.add_argument(
            flag, dest=dest, default=str(default), metavar="N", help=f"{what} (default: {default})"
        )
    bench.add_argument(
        "--ns",
        action="store_true",
        help="print the mean and standard deviation in ns from the untruncated samples "
        "(default: off, the kernel's lines in whole 0.1 us)",
    )
    bench.add_argument(
        "--invalidation",
        default="strict",
        choices=("strict", "lazy"),
        help="IOTLB invalidation: strict (arm64's default) or lazy (x86's) (default: strict)",
    )
    bench.add_argument(
        "--profile",
        default=profiles.NONE,
        choices=tuple(profiles.PROFILES),
        help="per-call costs from published measurements (`iommubench list`) (default: none)",
    )


def _reproduce_parser(sub: Any) -> None:
    rp = sub.add_parser(
        "reproduce",
        help="run the reproduction cases: published numbers against measured ones",
        description="Run every case under --cases (one YAML file per published result), "
        "print the table (case, measure, published, measured, ratio, kind, verdict, note) "
        "and write it to OUT/reproduce.md and OUT/reproduce.json, with each case's run under "
        "OUT/runs. Exit 0 when every case ran, 1 when a case failed or a shape check failed, "
        "2 on a bad case file.",
    )
    rp.add_argument(
        "--cases",
        type=Path,
        default=Path("bench/reproduce"),
        help="directory of case files (default: bench/reproduce)",
    )
    rp.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="CASE",
        help="run only this case (repeatable, or comma-separated)",
    )
    rp.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: results/reproduce-YYYYMMDD-HHMMSS)",
    )


def _reports_dir(run_dir: Path, out: Path | None) -> Path:
    from iommubench.run import session

    return session.writable_dir(out if out is not None else Path("reports") / run_dir.name, "--out")


def _report_destination(run_dir: Path, out: Path | None) -> Path:
    """Where a report goes: its parent made and writable, the report itself not made yet
    (it appears whole when written, report/build.py)."""
    from iommubench.run import session

    dest = out if out is not None else Path("reports") / run_dir.name
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--out {dest}: exists and is not a directory")
    session.writable_dir(dest.parent, "--out")
    return dest


def _require_run_dir(run_dir: Path) -> None:
    if not (run_dir / "points.csv").is_file():
        raise UsageError(f"{run_dir}: not a run directory (no points.csv)")


def _parse_threshold(text: str) -> float:
    """'5' and '5%' both mean 5% (a bare number is percent); returns the fraction."""
    body = text.strip()
    body = body[:-1] if body.endswith("%") else body
    try:
        value = float(body)
    except ValueError:
        raise UsageError(f"--threshold: {text!r} is not a percentage (e.g. 5 or 5%)") from None
    if not 0 < value < 100:
        raise UsageError(f"--threshold: {text!r} must lie between 0% and 100% (exclusive)")
    return value / 100


def cmd_list(args: argparse.Namespace) -> int:
    from iommubench.spec import parameters

    if args.markdown:
        print(parameters.markdown(), end="")
    else:
        print("\n".join(parameters.list_lines()))
    return EXIT_OK


def cmd_info(_: argparse.Namespace) -> int:
    from iommubench.run import machine

    print(machine.format_info(machine.collect()))  # noise warnings included
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    import warnings

    import pandas as pd

    from iommubench.report import plots

    _require_run_dir(args.run_dir)
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # pandas' hint that a wide frame is slow to build says nothing about the figures
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            plots.check_run(args.run_dir, args.x, args.hue, args.facet)
            paths = plots.make_figures(
                args.run_dir,
                _reports_dir(args.run_dir, args.out),
                args.x,
                args.hue,
                args.facet,
                notes=notes,
            )
    except plots.PlotInputError as exc:
        raise UsageError(f"plot: {exc}") from None
    for path in paths:
        print(path)
    for note in notes:
        print(f"iommubench: plot: {note}", file=sys.stderr)
    return EXIT_OK


def write_report(run_dir: Path, out: Path) -> list[Path]:
    from iommubench.report import build

    return list(build.write_report(run_dir, out))


def cmd_report(args: argparse.Namespace) -> int:
    from iommubench.analysis.run_reader import RunDataError

    _require_run_dir(args.run_dir)
    try:
        if args.format == "text":
            from iommubench.report import build

            print(build.text_report(args.run_dir))
            return EXIT_OK
        paths = write_report(args.run_dir, _report_destination(args.run_dir, args.out))
    except RunDataError as exc:
        raise UsageError(str(exc)) from None
    for path in paths:
        print(path)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from iommubench.analysis import compare
    from iommubench.analysis.run_reader import RunDataError

    for run_dir in (args.base, args.new):
        _require_run_dir(run_dir)
    threshold = _parse_threshold(args.threshold)
    try:
        text, code = compare.compare(
            args.base, args.new, threshold, args.ignore, args.format, args.strict
        )
    except (compare.CompareError, RunDataError) as exc:
        raise UsageError(str(exc)) from None
    print(text)
    return code


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from iommubench.analysis import adaptive
    from iommubench.run import session

    def after(run_dir: Path, run_id: str) -> None:
        if args.report:
            for path in write_report(run_dir, args.reports_dir / run_id):
                print(path)

    if args.redo_failed and args.resume is None:
        raise UsageError("--redo-failed: only with --resume RUN_DIR")
    if args.kernel_src is not None:
        from iommubench.run import kernel_code

        if not args.kernel_src.is_dir():
            raise UsageError(f"--kernel-src {args.kernel_src}: not a directory")
        os.environ[kernel_code.SOURCE_ENV] = str(args.kernel_src.resolve())
    fl = session.Fleet(args.cluster)
    fl.connect()
    try:
        return session.run(args, argv, fl, adaptive.adaptive_round, after)
    finally:
        fl.close()


def cmd_worker(args: argparse.Namespace) -> int:
    """Become a Dask worker of one thread and one `machine` resource (exec: the Dask CLI)."""
    from iommubench.run import fleet

    try:
        fleet.check_address(args.scheduler)
    except fleet.FleetError as exc:
        raise UsageError(f"worker: {exc}".replace("--cluster ", "")) from None
    if args.name:
        os.environ[fleet.HOST_ENV] = args.name
    removed = fleet.remove_stale_semaphores()
    if removed:
        print(
            f"iommubench: worker: removed {len(removed)} semaphore(s) that killed workers left "
            "in /dev/shm (sem.mp-*, mapped by no process)",
            file=sys.stderr,
        )
    os.execv(sys.executable, [sys.executable, *fleet.worker_command(args.scheduler)])
    return EXIT_FAILED  # not reached: exec replaces this process


def cmd_dma_map_benchmark(args: argparse.Namespace) -> int:
    from iommubench.kernelparity import dma_map_benchmark
    from iommubench.run.point import run_point
    from iommubench.spec.config import max_workers

    opts: dict[str, int] = {}
    for _, name, _ in dma_map_benchmark.OPTIONS:
        text = getattr(args, name)
        try:
            opts[name] = int(text)
        except ValueError:
            raise UsageError(f"dma-map-benchmark: {name}: {text!r} is not an integer") from None
    try:
        dma_map_benchmark.check_options(opts, max_workers())
    except dma_map_benchmark.BenchmarkInputError as exc:  # upstream exits 1 on these
        return _fail(f"dma-map-benchmark: {exc}", EXIT_FAILED)
    point = dma_map_benchmark.benchmark_point(opts, args.invalidation, args.profile)
    result = run_point(point, timeout_s=60.0 + 2 * opts["seconds"])
    if result.status != "ok":
        print(f"iommubench: dma-map-benchmark failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED
    for line in dma_map_benchmark.lines(opts, result.workers, ns=args.ns):
        print(line)
    if not result.measures.get("audit_ok"):
        print("iommubench: dma-map-benchmark: the audit failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    from iommubench.kernelparity import reproduce
    from iommubench.run import session

    return reproduce.command(args, session.writable_dir)


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from iommubench.run import interrupt

    if args.command == "run":
        return cmd_run(args, argv)
    if args.command != "worker":  # SIGTERM and SIGHUP end a report as Ctrl-C does: cleanly
        interrupt.install()
    handlers = {
        "list": cmd_list,
        "info": cmd_info,
        "plot": cmd_plot,
        "report": cmd_report,
        "compare": cmd_compare,
        "worker": cmd_worker,
        "dma-map-benchmark": cmd_dma_map_benchmark,
        "reproduce": cmd_reproduce,
    }
    return handlers[args.command](args)


def _fail(message: str, code: int) -> int:
    print(f"iommubench: {' '.join(message.split())}", file=sys.stderr)
    return code


def _out_of_memory(exc: BaseException) -> str | None:
    """One line for running out of memory under the address-space limit, or None when this
    is not that (no limit, or an ImportError of another kind)."""
    from iommubench.core import memlimit

    text = str(exc)
    mapping = ("failed to map segment", "cannot allocate memory", "Cannot allocate memory")
    if isinstance(exc, ImportError) and not any(m in text for m in mapping):
        return None
    detail = f"{type(exc).__name__}: {text.splitlines()[0][:160]}" if text else type(exc).__name__
    return memlimit.out_of_memory(detail)


def _say_run_data_warnings() -> None:
    """What the run reader refuses or sets aside (a damaged file, a bad value, a run still
    being written) goes to standard error as one line each, once per command, as it is found;
    other warnings keep Python's own handling."""
    import warnings

    shown = warnings.showwarning
    said: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if category.__name__ != "RunDataWarning":
            shown(message, category, *args, **kwargs)
            return
        text = " ".join(str(message).split())
        if text not in said:
            said.add(text)
            print(f"iommubench: warning: {text}", file=sys.stderr, flush=True)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error ends as one line on standard error and an exit code.

    Bad input (a config, a usage or native-core error, an OS error naming a path the user
    gave, or an address-space limit, `ulimit -v`, too low for the command) exits 2; Ctrl-C
    exits 130; anything else is a bug: one line naming the exception,
    exit 70, and the traceback only with IOMMUBENCH_DEBUG=1.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from iommubench.core import memlimit

    try:
        memlimit.prepare()  # before anything loads numpy: under `ulimit -v` it must not spin
    except memlimit.MemoryLimitError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    try:
        from iommubench.core.binding import NativeCoreError
        from iommubench.spec.config import ConfigError

        _say_run_data_warnings()
        args, extra = _parser().parse_known_args(argv)
        if extra:  # name the command whose --help lists what it takes
            return _fail(
                f"{args.command}: unrecognized arguments: {shlex.join(extra)} "
                f"(see 'iommubench {args.command} --help')",
                EXIT_BAD_INPUT,
            )
        try:
            return _dispatch(args, argv)
        except (ConfigError, UsageError, NativeCoreError, memlimit.MemoryLimitError) as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
        except OSError as exc:
            if exc.filename is None:
                raise
            return _fail(f"{exc.filename}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        from iommubench.run import interrupt

        signame = interrupt.received()
        return _fail(f"interrupted by {signame}" if signame else "interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # e.g. `iommubench list | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        line = _out_of_memory(exc) if isinstance(exc, MemoryError | ImportError) else None
        if line is not None:
            return _fail(line, EXIT_BAD_INPUT)
        if os.environ.get(DEBUG_ENV):
            raise
        return _fail(
            f"internal error: {type(exc).__name__}: {str(exc)[:300]} (a bug; rerun with "
            f"{DEBUG_ENV}=1 for the traceback and report it)",
            EXIT_INTERNAL,
        )


if __name__ == "__main__":
    sys.exit(main())
