"""One `iommubench run` session: open a new run directory or reopen one to resume, run the
planned repetitions and the adaptive rounds here or on a fleet, warn of other runs on the
machine, and close the session in meta.json with its outcome (or a resume command).

The CLI parses the command and hands in what lies above this layer: `more_tasks` (the
adaptive-repetition decision, analysis/adaptive.py) and `after` (what to do with the finished
run directory, e.g. write its report).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from iommubench.core.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

# (points, stored rows, the most repetitions, the target half-width) -> one more round
MoreTasks = Callable[[list[dict[str, Any]], list[dict[str, str]], int, float], list[Any]]


def say(text: str) -> None:
    """A line on stderr, which may be a terminal that has hung up (SIGHUP): never raises."""
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr, flush=True)


def writable_dir(path: Path, option: str) -> Path:
    """`path` as a directory we can create files in (made if missing), or a UsageError naming
    `option`: a file, a read-only or full filesystem, a name too long."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".iommubench-probe-")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise UsageError(f"{option} {path}: exists and is not a directory") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    return path


def resume_command(run_dir: Path, cluster: str | None = None) -> str:
    """The command that resumes a run: it reads the run's own resolved config, so it needs
    neither the original config file nor its --set overrides, and works from any directory.
    A fleet run resumes on the same scheduler (`cluster`)."""
    run_dir = run_dir.resolve()
    fleet = ["--cluster", cluster] if cluster else []
    return shlex.join(
        ["iommubench", "run", str(run_dir / "config.yaml"), "--resume", str(run_dir), *fleet]
    )


def _session(command: str, build: dict[str, Any], allowed: bool) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "build": build,
        "allow_different_build": allowed,
        "overlapping_runs": [],
    }


def _create_store(
    args: argparse.Namespace,
    sweep: Any,
    command: str,
    build: dict[str, Any],
    hosts: dict[str, Any],
):
    from iommubench.run import kernel_code, machine
    from iommubench.run.runlock import RunDirLock
    from iommubench.run.store import RunStore, new_run_id

    out = writable_dir(args.out, "--out")
    # the kernel's code, built before the first point (a missing tree is one line, exit 2)
    kernel = kernel_code.prepare(sweep.points)
    run_id = new_run_id(sweep.name)
    meta = {
        **machine.collect(),
        "run_id": run_id,
        "command": command,
        "config_path": str(args.config),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fingerprint": sweep.fingerprint(),
        "build": build,
        "hosts": hosts,
        "sessions": [_session(command, build, False)],
        **({"kernel_code": kernel} if kernel else {}),
    }
    locks: list[RunDirLock] = []

    def lock_and_say_how_to_resume(run_dir: Path) -> None:
        locks.append(RunDirLock(run_dir, command))
        RunStore(run_dir).write_resume_command(resume_command(run_dir, args.cluster))

    try:
        store = RunStore.create(out / run_id, sweep.resolved(), meta, lock_and_say_how_to_resume)
    except OSError as exc:
        for lock in locks:
            lock.release()
        detail = exc.strerror or str(exc)
        raise UsageError(f"--out {args.out}: cannot create the run directory: {detail}") from None
    store.writer_lock = locks[0]
    return store


def _reopen_store(
    args: argparse.Namespace,
    sweep: Any,
    command: str,
    build: dict[str, Any],
    hosts: dict[str, Any],
):
    from iommubench.run import machine, resume
    from iommubench.run.runlock import RunDirLock, RunLockedError
    from iommubench.run.store import RunStore
    from iommubench.spec import config

    run_dir: Path = args.resume
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "points.csv").is_file():
        raise UsageError(f"--resume {run_dir}: not a run directory (no config.yaml or points.csv)")
    try:
        lock = RunDirLock(run_dir, command)
    except RunLockedError as exc:
        raise UsageError(f"--resume {exc}") from None
    except OSError as exc:
        raise UsageError(f"--resume {run_dir}: cannot lock it: {exc.strerror or exc}") from None
    if config.load_sweep(run_dir / "config.yaml").fingerprint() != sweep.fingerprint():
        raise UsageError(
            f"--resume {run_dir}: the config differs from the one this run used; resume with "
            f"{resume_command(run_dir)}"
        )
    store = RunStore.reopen(run_dir)
    store.writer_lock = lock
    try:
        meta = store.meta()
    except (OSError, ValueError) as exc:
        raise UsageError(f"--resume {store.meta_json}: unreadable ({exc})") from None
    max_reps = max(sweep.repetitions, sweep.max_repetitions)
    try:
        stored = resume.check_points(
            store.points_csv, sweep.points, max_reps, store.run_id, resume.builds_of(meta)
        )
        resume.check_workers(store.workers_csv, set(stored))
    except resume.ResumeError as exc:
        raise UsageError(f"--resume: {exc}") from None
    redo = resume.to_redo(stored, getattr(args, "redo_failed", False))
    done = set(stored) - set(redo)
    differs = machine.build_differences(meta.get("build") or {}, build)
    if differs and not args.allow_different_build:
        raise UsageError(
            f"--resume {run_dir}: this build differs from the run's ({'; '.join(differs)}); "
            "rerun with --allow-different-build to mix them (recorded in meta.json)"
        )
    session = _session(command, build, bool(differs and args.allow_different_build))
    session["redone"] = list(redo.values())
    try:
        store.update_meta(lambda m: _add_session(m, session, hosts))  # first: what is dropped
        store.forget(set(redo))
        store.keep_worker_rows_of(done)
        store.write_resume_command(resume_command(store.dir, args.cluster))
    except OSError as exc:
        raise UsageError(f"--resume {run_dir}: cannot write: {exc.strerror or exc}") from None
    if redo:
        say(f"resume: running again {resume.describe_redo(redo)}")
    return store


def _add_session(meta: dict[str, Any], session: dict[str, Any], hosts: dict[str, Any]) -> None:
    meta.setdefault("sessions", []).append(session)
    meta.setdefault("hosts", {}).update(hosts)


def open_store(args: argparse.Namespace, sweep: Any, argv: Sequence[str], hosts: dict[str, Any]):
    """The run directory to write, locked against other writers: a new one, or the validated
    one named by --resume with this session recorded in its meta.json. `hosts`: the machine
    block of every host that will measure (meta.json keeps one per host)."""
    from iommubench.run import machine

    command = shlex.join(["iommubench", *argv])
    build = machine.build()
    if args.resume is not None:
        return _reopen_store(args, sweep, command, build, hosts)
    return _create_store(args, sweep, command, build, hosts)


def _largest_arena(loaded: Any) -> int:
    """The bytes of the run's largest arena (a point whose arena cannot be sized fails on its
    own, with its reason, and counts for nothing here)."""
    from iommubench.core import arena
    from iommubench.spec import parameters

    largest = 0
    for point in loaded.points:
        try:
            largest = max(largest, arena.arena_bytes(parameters.native_params(point)))
        except ValueError:
            continue
    return largest


def check_shm_space(loaded: Any) -> None:
    """Refuse a run whose largest arena cannot fit in /dev/shm now."""
    from iommubench.core import arena

    free = arena.shm_free_bytes()
    if free is None:
        return
    needed = _largest_arena(loaded)
    if needed > free:
        raise UsageError(arena.space_message(needed, free))


def check_address_space(loaded: Any) -> None:
    """Under `ulimit -v`, refuse a run whose largest arena cannot be mapped beside what the
    harness has loaded (MemoryLimitError: one line naming the limit, exit 2)."""
    from iommubench.core import memlimit
    from iommubench.run import sweep  # noqa: F401  (loaded now, as the run will: counted)

    if memlimit.limit_bytes() is None:
        return
    memlimit.check_room(_largest_arena(loaded), "the largest arena of this run")


class Overlap:
    """Other iommubench runs active on this machine while this one runs (they compete for the
    same CPUs): found at the start and before each point, or told to this run by a run that
    started later; each is warned of once and recorded in this session's entry in meta.json."""

    def __init__(self, store: Any, command: str) -> None:
        from iommubench.run.runlock import ActiveRun

        self.store = store
        self.active = ActiveRun(command, store.dir)
        self.seen: set[tuple[Any, Any]] = set()

    def check(self) -> None:
        found = self.active.others()
        for other in found:
            self.active.tell(other)
        new = []
        for other in found + self.active.told():
            key = (other.get("pid"), other.get("started"))
            if key not in self.seen:
                self.seen.add(key)
                other.pop("lock_file", None)
                new.append(other)
                say(
                    f"iommubench: warning: another run shares this machine (pid "
                    f"{other.get('pid')}, {other.get('run_dir')}): each slows the other down"
                )
        if new:
            with contextlib.suppress(OSError, KeyError, IndexError, ValueError):
                self.store.update_meta(lambda m: m["sessions"][-1]["overlapping_runs"].extend(new))

    def release(self) -> None:
        self.check()  # a run that came and went during the last point
        self.active.release()


def end_session(store: Any, outcome: str, complete: bool) -> None:
    """Close this session's entry in meta.json: when it ended, how, and whether every planned
    (point, rep) has its row (the reader says a run is incomplete when not)."""

    def change(meta: dict[str, Any]) -> None:
        if meta.get("sessions"):
            ended = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            meta["sessions"][-1].update(ended=ended, outcome=outcome, complete=complete)

    with contextlib.suppress(OSError, ValueError):  # a full disk: rows and RESUME matter more
        store.update_meta(change)


class Fleet:
    """The Dask cluster a run sweeps on (--cluster), or None for this machine."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.client: Any = None
        self.hosts: dict[str, Any] = {}
        self.survey: Any = None  # fleet.Survey of the cluster's workers

    def connect(self) -> None:
        """Reach the scheduler and survey its hosts (one line and exit 2 on failure; one line
        for each worker dropped because it died or hung)."""
        from iommubench.run import fleet, machine

        if self.address is None:
            self.hosts = {fleet.host_name(): machine.collect()}
            return
        try:
            self.client = fleet.connect(self.address)
            self.survey = fleet.survey(self.client, self.address, machine.build())
        except fleet.FleetError as exc:
            self.close()
            raise UsageError(str(exc)) from None
        for line in self.survey.dropped:
            say(f"iommubench: --cluster {self.address}: {line}")
        self.hosts = self.survey.hosts
        for info in self.hosts.values():
            info.pop("build", None)

    def load(self, args: argparse.Namespace) -> Any:
        """The config, with `workers: auto` expanded per host on a fleet."""
        from iommubench.run import fleet
        from iommubench.spec import config

        if self.client is None:
            return config.load_sweep(args.config, args.overrides)
        with config.fleet_cpus(fleet.host_cpu_counts(self.hosts)):
            return config.load_sweep(args.config, args.overrides)

    def local_host(self) -> dict[str, Any]:
        from iommubench.run import fleet

        name, info = next(iter(self.hosts.items()))
        return fleet.host_columns({**info, "host": name})

    def close(self) -> None:
        from iommubench.run import fleet

        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close(timeout=fleet.deadline_s())
            self.client = None


def _run_tasks(
    tasks: list[Any], store: Any, loaded: Any, overlap: Overlap, build: dict[str, Any], fl: Fleet
) -> int:
    """One round of tasks, here or on the fleet; returns the failures."""
    from iommubench.core import binding
    from iommubench.run import fleet, sweep
    from iommubench.run.progress import make_reporter

    if fl.client is None:
        return sweep.run_sweep(
            tasks,
            store,
            sweep.LocalExecutor(),
            make_reporter(),
            loaded.point_timeout_s,
            build,
            overlap.check,
            fl.local_host(),
        )
    timer_ns = round(binding.lib().ib_timer_cost_ns(), 2)
    run = fleet.run_cluster_sweep(
        tasks,
        store,
        fl.client,
        make_reporter(),
        loaded.point_timeout_s,
        build,
        timer_ns,
        fl.survey,
        say,
    )
    for line in run.refusals:
        say(f"iommubench: {line}")
    if run.not_run:
        raise fleet.RunCutShortError(
            f"{run.not_run} (point, rep) pair(s) were cancelled on the scheduler before they ran"
        )
    return run.failures + len(run.refusals)


def _run_rounds(
    store: Any,
    loaded: Any,
    overlap: Overlap,
    build: dict[str, Any],
    fl: Fleet,
    more_tasks: MoreTasks,
) -> int:
    """The planned tasks, then adaptive rounds until none is needed; returns the failures."""
    from iommubench.run import sweep

    tasks = sweep.plan(loaded.points, loaded.repetitions, store.completed())
    failures = 0
    while True:
        if tasks:
            failures += _run_tasks(tasks, store, loaded, overlap, build, fl)
        tasks = more_tasks(
            loaded.points, store.rows(), loaded.max_repetitions, loaded.target_halfwidth
        )
        if not tasks:
            return failures
        say(
            f"adaptive: {len(tasks)} point(s) still wider than "
            f"±{loaded.target_halfwidth:.1%}; one more repetition each"
        )


def _cut_short(store: Any, why: str, cluster: str | None) -> int:
    """End a session that cannot go on: its outcome, one line with the rows kept and the
    resume command (also in RESUME); exit 1."""
    end_session(store, f"stopped: {why}", complete=False)
    say(
        f"iommubench: {why}: {len(store.completed())} rows kept in {store.dir}; resume "
        f"with (also in {store.resume_file}):\n  {resume_command(store.dir, cluster)}"
    )
    return EXIT_FAILED


def run(
    args: argparse.Namespace,
    argv: Sequence[str],
    fl: Fleet,
    more_tasks: MoreTasks,
    after: Callable[[Path, str], None],
) -> int:
    from iommubench.core import arena, memlimit
    from iommubench.run import fleet, interrupt, sweep
    from iommubench.run.store import StoreWriteError

    loaded = fl.load(args)
    arena.remove_stale_segments()
    if fl.client is None:  # each fleet host checks its own /dev/shm and limit per point
        check_shm_space(loaded)
        check_address_space(loaded)
    interrupt.install()
    try:
        store = open_store(args, loaded, argv, fl.hosts)
    except KeyboardInterrupt:
        say(f"interrupted by {interrupt.received() or 'SIGINT'} before the first point")
        return EXIT_INTERRUPTED
    build = store.meta()["sessions"][-1]["build"]
    overlap = Overlap(store, store.meta()["sessions"][-1]["command"])
    try:
        overlap.check()
        kept = sweep.stored_failures(store.rows())  # a resume keeps the point's own failures
        failures = kept + _run_rounds(store, loaded, overlap, build, fl, more_tasks)
    except KeyboardInterrupt:
        signame = interrupt.received() or "SIGINT"
        end_session(store, f"interrupted by {signame}", complete=False)
        say(
            f"interrupted by {signame}: {len(store.completed())} rows kept in {store.dir}; "
            f"resume with (also in {store.resume_file}):\n  "
            f"{resume_command(store.dir, args.cluster)}"
        )
        return EXIT_INTERRUPTED
    except StoreWriteError as exc:
        end_session(store, f"stopped: {exc}", complete=False)
        say(
            f"iommubench: cannot write {exc.strerror}; {len(store.completed())} rows kept in "
            f"{store.dir}; resume with: {resume_command(store.dir, args.cluster)}"
        )
        return EXIT_FAILED
    except (memlimit.MemoryLimitError, fleet.RunCutShortError) as exc:
        return _cut_short(store, str(exc), args.cluster)
    except OSError as exc:  # a comm to the cluster broke where no deadline caught it
        if fl.client is None:
            raise
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return _cut_short(store, f"lost contact with the cluster ({detail})", args.cluster)
    finally:
        overlap.release()
    end_session(store, "completed" if not failures else f"{failures} point(s) failed", True)
    print(store.dir)
    after(store.dir, store.run_id)
    if failures:
        before = f" ({kept} kept from before; --redo-failed runs them again)" if kept else ""
        say(f"{failures} point(s) failed{before}; see the status and error columns")
        return EXIT_FAILED
    return EXIT_OK
