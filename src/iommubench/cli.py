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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, distinct from a failed point or a regression (1)
DEBUG_ENV = "IOMMUBENCH_DEBUG"


class UsageError(Exception):
    """Bad input that is not a config error: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: `iommubench: run: ...; see ... --help`, exit 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("iommubench").strip()
        prefix = f"{where}: " if where else ""
        self.exit(EXIT_BAD_INPUT, f"iommubench: {prefix}{message} (see '{self.prog} --help')\n")


def version_text() -> str:
    """The package version and the native core's version and source hash."""
    from iommubench import __version__

    try:
        from iommubench import _core
    except ImportError:
        return f"iommubench {__version__} (native core not built)"
    built = _core.ffi.string(_core.lib.IB_SOURCE_HASH).decode()
    core = f"native core {_core.lib.ib_core_version()}, sources {built}"
    try:
        from iommubench import native_core

        native_core.load()
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
    run.add_argument("--out", type=Path, default=Path("results"), help="where run dirs go")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR", help="run only missing points")
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

    plot = sub.add_parser("plot", help="draw a run's figures")
    plot.add_argument("run_dir", type=Path)
    plot.add_argument("--x", default="workers")
    plot.add_argument("--hue", default="driver")
    plot.add_argument("--facet", default=None)
    plot.add_argument("--out", type=Path, default=None)

    report = sub.add_parser("report", help="write report.md and report.html for a run")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--out", type=Path, default=None)

    compare = sub.add_parser("compare", help="compare two runs; exit 1 on a regression")
    compare.add_argument("base", type=Path)
    compare.add_argument("new", type=Path)
    compare.add_argument("--threshold", default="5%")

    sub.add_parser(
        "list",
        help="drivers, allocators, invalidation modes, workloads, walkers",
        description="List every strategy a config may name, with what it models. No options.",
    )
    sub.add_parser(
        "info",
        help="machine metadata and noise warnings",
        description="Print this machine's metadata and the settings that add noise. No options.",
    )

    bench = sub.add_parser(
        "dma-map-benchmark",
        help="the kernel's dma_map_benchmark, on the model (same options, same output)",
        description="The kernel's tools/testing/selftests/dma/dma_map_benchmark, with its "
        "options and output, run on the model (lockfree driver, rcache allocator).",
    )
    for flag, dest, default, what in (
        ("-t", "threads", "1", "threads, 1..1024 and at most 64 x the allowed CPUs"),
        ("-s", "seconds", "20", "seconds to run, 1..300"),
        ("-n", "node", "-1", "NUMA node, -1 (none) or an online node; printed, changes nothing"),
        ("-b", "bits", "32", "DMA mask bits, 20..64"),
        ("-d", "dir", "0", "direction, 0 bidirectional, 1 to device, 2 from device"),
        ("-x", "dma_trans_ns", "0", "ns each mapping is held, 0..10000000"),
        ("-g", "granule", "1", "pages per mapping, 1..1024"),
    ):
        bench.add_argument(
            flag, dest=dest, default=default, metavar="N", help=f"{what} (default: {default})"
        )
    bench.add_argument(
        "--invalidation",
        default="strict",
        choices=("strict", "lazy"),
        help="IOTLB invalidation: strict (arm64's default) or lazy (x86's) (default: strict)",
    )
    return ap


def _reports_dir(run_dir: Path, out: Path | None) -> Path:
    return out if out is not None else Path("reports") / run_dir.name


def _require_run_dir(run_dir: Path) -> None:
    if not (run_dir / "points.csv").is_file():
        raise UsageError(f"{run_dir}: not a run directory (no points.csv)")


def _parse_threshold(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise UsageError(f"--threshold: {text!r} is not a number or percentage") from None
    if not 0 < value < 1:
        raise UsageError(f"--threshold: {text!r} must lie between 0% and 100%")
    return value


def cmd_list(_: argparse.Namespace) -> int:
    from iommubench import native_core
    from iommubench.registry import CATALOGUE
    from iommubench.walkers import safety_names

    implemented = {
        "driver": native_core.driver_names(),
        "workload": native_core.workload_names(),
        "allocator": native_core.allocator_names(),
        "invalidation": native_core.invalidation_names(),
        "walker_safety": safety_names(),
    }
    for kind, entries in CATALOGUE.items():
        print(f"{kind}:")
        for name, what in entries.items():
            missing = kind in implemented and name not in implemented[kind]
            print(f"  {name:<14} {what}{'  (not built yet)' if missing else ''}")
    return EXIT_OK


def cmd_info(_: argparse.Namespace) -> int:
    from iommubench import machine

    print(machine.format_info(machine.collect()))  # noise warnings included
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from iommubench import plots

    _require_run_dir(args.run_dir)
    for path in plots.make_figures(
        args.run_dir, _reports_dir(args.run_dir, args.out), args.x, args.hue, args.facet
    ):
        print(path)
    return EXIT_OK


def write_report(run_dir: Path, out: Path) -> list[Path]:
    from iommubench import report

    return list(report.write_report(run_dir, out))


def cmd_report(args: argparse.Namespace) -> int:
    _require_run_dir(args.run_dir)
    for path in write_report(args.run_dir, _reports_dir(args.run_dir, args.out)):
        print(path)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from iommubench import compare

    for run_dir in (args.base, args.new):
        _require_run_dir(run_dir)
    text, code = compare.compare(args.base, args.new, _parse_threshold(args.threshold))
    print(text)
    return code


def _open_store(args: argparse.Namespace, sweep: Any, argv: Sequence[str]):
    from iommubench import config, machine
    from iommubench.results import RunStore, new_run_id

    if args.resume is not None:
        stored = args.resume / "config.yaml"
        if not stored.is_file():
            raise UsageError(f"--resume {args.resume}: not a run directory (no config.yaml)")
        if config.load_sweep(stored).fingerprint() != sweep.fingerprint():
            raise UsageError(
                f"--resume {args.resume}: the config differs from the one this run used; "
                "start a new run instead"
            )
        return RunStore.reopen(args.resume)
    run_id = new_run_id(sweep.name)
    meta = {
        **machine.collect(),
        "run_id": run_id,
        "command": shlex.join(["iommubench", *argv]),
        "config_path": str(args.config),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fingerprint": sweep.fingerprint(),
    }
    return RunStore.create(args.out / run_id, sweep.resolved(), meta)


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from iommubench import arena, config, interrupt, sweep
    from iommubench.progress import make_reporter

    loaded = config.load_sweep(args.config, args.overrides)
    arena.remove_stale_segments()
    store = _open_store(args, loaded, argv)
    tasks = sweep.plan(loaded.points, loaded.repetitions, store.completed())
    interrupt.install()
    try:
        failures = 0
        while True:
            if tasks:
                failures += sweep.run_sweep(
                    tasks, store, sweep.LocalExecutor(), make_reporter(), loaded.point_timeout_s
                )
            tasks = sweep.adaptive_round(
                loaded.points, store.rows(), loaded.max_repetitions, loaded.target_halfwidth
            )
            if not tasks:
                break
            print(
                f"adaptive: {len(tasks)} point(s) still wider than "
                f"±{loaded.target_halfwidth:.1%}; one more repetition each",
                file=sys.stderr,
            )
    except KeyboardInterrupt:
        done = len(store.completed())
        print(
            f"interrupted: {done} rows kept in {store.dir}; resume with:\n"
            f"  iommubench run {shlex.quote(str(args.config))} --resume {store.dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(store.dir)
    if args.report:
        for path in write_report(store.dir, args.reports_dir / store.run_id):
            print(path)
    if failures:
        print(f"{failures} point(s) failed; see the status and error columns", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_dma_map_benchmark(args: argparse.Namespace) -> int:
    from iommubench import dma
    from iommubench.config import cpus_available, max_workers
    from iommubench.runner import run_point

    opts: dict[str, int] = {}
    for name in ("threads", "seconds", "node", "bits", "dir", "dma_trans_ns", "granule"):
        text = getattr(args, name)
        try:
            opts[name] = int(text)
        except ValueError:
            raise UsageError(f"dma-map-benchmark: {name}: {text!r} is not an integer") from None
    try:
        dma.check_benchmark_args(opts)
    except dma.BenchmarkInputError as exc:
        raise UsageError(f"dma-map-benchmark: {exc}") from None
    if opts["threads"] > max_workers():  # a worker process per thread, as a run allows
        raise UsageError(
            f"dma-map-benchmark: threads must be in 1..{max_workers()} on this machine (64 x "
            f"the {cpus_available()} CPUs this process may use; got {opts['threads']})"
        )
    point = dma.benchmark_point(opts, args.invalidation)
    result = run_point(point, timeout_s=60.0 + 2 * opts["seconds"])
    if result.status != "ok":
        print(f"iommubench: dma-map-benchmark failed: {result.error}", file=sys.stderr)
        return EXIT_FAILED
    for line in dma.benchmark_lines(opts, result.hist_map, result.hist_unmap):
        print(line)
    if not result.measures.get("audit_ok"):
        print("iommubench: dma-map-benchmark: the audit failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.command == "run":
        return cmd_run(args, argv)
    handlers = {
        "list": cmd_list,
        "info": cmd_info,
        "plot": cmd_plot,
        "report": cmd_report,
        "compare": cmd_compare,
        "dma-map-benchmark": cmd_dma_map_benchmark,
    }
    return handlers[args.command](args)


def _fail(message: str, code: int) -> int:
    print(f"iommubench: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error ends as one line on standard error and an exit code.

    Bad input (a config, a usage or native-core error, or an OS error naming a path the user
    gave) exits 2; Ctrl-C exits 130; anything else is a bug: one line naming the exception,
    exit 70, and the traceback only with IOMMUBENCH_DEBUG=1.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from iommubench.config import ConfigError
        from iommubench.native_core import NativeCoreError

        args, extra = _parser().parse_known_args(argv)
        if extra:  # name the command whose --help lists what it takes
            return _fail(
                f"{args.command}: unrecognized arguments: {shlex.join(extra)} "
                f"(see 'iommubench {args.command} --help')",
                EXIT_BAD_INPUT,
            )
        try:
            return _dispatch(args, argv)
        except (ConfigError, UsageError, NativeCoreError) as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
        except OSError as exc:
            if exc.filename is None:
                raise
            return _fail(f"{exc.filename}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:  # e.g. `iommubench list | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        return _fail(
            f"internal error: {type(exc).__name__}: {str(exc)[:300]} (a bug; rerun with "
            f"{DEBUG_ENV}=1 for the traceback and report it)",
            EXIT_INTERNAL,
        )


if __name__ == "__main__":
    sys.exit(main())
