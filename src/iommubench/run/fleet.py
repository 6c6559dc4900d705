"""A sweep on a fleet of machines through Dask distributed.

The client submits one Dask task per (point, repetition), in the sweep's interleaved order
(earlier tasks get higher priority, so every host runs rep 0 of its points before rep 1), and
stores each row as it arrives, in any order. Every task asks for the `machine` resource, which
an `iommubench worker` advertises once, so a worker runs one point at a time; a task also
holds a `distributed.Lock` named after its host while it measures, so two Dask workers started
by mistake on one host still run one point at a time there.

A task first checks that the worker runs the client's build (package version and native core
source hash) and refuses otherwise, naming its host. A worker that dies mid-point has its task
rerun elsewhere by the scheduler, at most `distributed.scheduler.allowed-failures` times (3 by
default); then the row is stored as failed with the reason, as a failure from outside the point
(`lost-host`) that --resume runs again.

Every call to the cluster has a deadline (`deadline_s`: Dask's connect timeout, 30 s unless
configured, and at least 10 s) and a way forward, so no fault of a worker, the scheduler or
the network hangs the client or ends it with a traceback:

- the survey asks each worker on its own; one that dies or does not answer in time is dropped
  with one line (and, when it hangs, removed from the scheduler so no task goes to it), and the
  run goes on with the others;
- while it waits for rows the client checks the cluster whenever none arrived for a while: a
  worker running one of its tasks that does not answer in time is dropped the same way, and
  the scheduler then runs its task elsewhere;
- a scheduler that is lost or does not answer in time ends the run (`SchedulerLostError`):
  every row that arrived is kept, the pairs that did not run are not stored (they never ran),
  and the session prints the resume command.

`IOMMUBENCH_HOST` overrides the host name a worker reports: for labs that give one machine
several names, and for tests that play two hosts on one machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iommubench.run import interrupt, row_flags
from iommubench.run.progress import Reporter
from iommubench.run.runner import PointResult
from iommubench.run.store import RunStore
from iommubench.run.sweep import (
    LocalExecutor,
    Task,
    counts_as_failure,
    make_row,
    summary_text,
    timestamps,
)

HOST_ENV = "IOMMUBENCH_HOST"
RESOURCE = "machine"  # each worker advertises one; each task takes one


class FleetError(Exception):
    """The scheduler is unreachable, has no worker, or a host runs another build: exit 2."""


class BuildMismatchError(Exception):
    """Raised on a worker whose build differs from the client's: one line naming the host."""


class RunCutShortError(Exception):
    """Pairs of the run did not run and cannot on this cluster now: one line; the rows that
    arrived are kept and the session prints the resume command."""


class SchedulerLostError(RunCutShortError):
    """The scheduler went away or stopped answering mid-run."""


DEBUG_ENV = "IOMMUBENCH_DEBUG"
# with no row for this long, the client checks the scheduler and the workers running its tasks
QUIET_S = 5.0
MIN_DEADLINE_S = 10.0


def worker_command(scheduler: str) -> list[str]:
    """The Python arguments of the Dask worker `iommubench worker` becomes: one process of one
    thread with one `machine` resource, restarted by its nanny if it dies."""
    return [
        "-m",
        "distributed.cli.dask_worker",
        scheduler,
        "--nworkers",
        "1",
        "--nthreads",
        "1",
        "--resources",
        f"{RESOURCE}=1",
        "--no-dashboard",
    ]


SEMAPHORE_PREFIX = "sem.mp-"  # Python multiprocessing's named semaphores in /dev/shm


def _mapped_inodes() -> set[int] | None:
    """The inodes of /dev/shm files some process maps now (from /proc/*/maps), or None when
    this process cannot see its own maps (no /proc)."""
    inodes: set[int] = set()
    found_self = False
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # gone, or another user's: their semaphores are not ours to remove
            continue
        found_self = found_self or maps.parent.name == str(os.getpid())
        for line in text.splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/dev/shm/sem."):
                inodes.add(int(fields[4]))
    return inodes if found_self else None


def remove_stale_semaphores(shm_dir: Path = Path("/dev/shm")) -> list[str]:
    """Remove this user's multiprocessing semaphores that no process maps.

    A Dask nanny (what `iommubench worker` runs) passes two spawn-context queues to its worker
    process, six named POSIX semaphores; the stdlib's resource tracker unlinks them when the
    nanny exits, but a SIGKILL of the whole process group (the tracker too) leaves them in
    /dev/shm. A live one is always mapped by its creator (sem_open maps the file before it
    gives it its name), so one mapped by nobody is garbage. The harness's own worker processes
    are forked and make no named semaphore."""
    try:
        candidates = [
            p for p in shm_dir.glob(f"{SEMAPHORE_PREFIX}*") if p.stat().st_uid == os.getuid()
        ]
    except OSError:
        return []
    if not candidates:
        return []
    mapped = _mapped_inodes()  # read after listing: a file named later is not a candidate
    if mapped is None:
        return []
    removed = []
    for path in candidates:
        with contextlib.suppress(OSError):
            if path.stat().st_ino not in mapped:
                path.unlink()
                removed.append(path.name)
    return removed


def host_name() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def host_info() -> dict[str, Any]:
    """What the client needs to know about the host a worker runs on (its machine block)."""
    from iommubench.run import machine

    return {**machine.collect(), "host": host_name(), "build": machine.build()}


def host_columns(info: dict[str, Any]) -> dict[str, Any]:
    """The columns every row carries about the host that measured it."""
    return {
        "host": info.get("host"),
        "cpu_model": info.get("cpu_model"),
        "cpus_allowed": info.get("cpus_allowed"),
    }


def build_refusal(host: str, mine: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """The line a host gives when its build is not the client's, or None when it is."""
    differs = [
        f"{key} {mine.get(key)} (client: {wanted.get(key)})"
        for key in ("version", "core_hash")
        if mine.get(key) != wanted.get(key)
    ]
    if not differs:
        return None
    return f"host {host} refuses the task: its build differs: {'; '.join(differs)}"


@dataclass
class TaskOutcome:
    result: PointResult
    host: dict[str, Any]
    started_at: float
    ended_at: float


def run_task(task: Task, timeout_s: float, wanted: dict[str, Any]) -> TaskOutcome:
    """Runs on a Dask worker: check the build, take the host's lock, measure the point."""
    import distributed

    from iommubench.core import arena
    from iommubench.run import machine

    host = host_name()
    refusal = build_refusal(host, machine.build(), wanted)
    if refusal:
        raise BuildMismatchError(refusal)
    info = {"host": host, **_cpu_block()}
    # settles the race of two Dask workers on one host measuring at once: one holds the lock
    with distributed.Lock(f"iommubench-host-{host}"):
        arena.remove_stale_segments()  # a killed worker's arena, on this host
        started = time.time()
        result = LocalExecutor().run(task, timeout_s)
        ended = time.time()
    return TaskOutcome(result, info, started, ended)


def _cpu_block() -> dict[str, Any]:
    from iommubench.run import machine

    return {"cpu_model": machine.cpu_model(), "cpus_allowed": machine.allowed_cpus()}


def check_address(address: str) -> None:
    """FleetError unless `address` reads as PROTOCOL://HOST:PORT (tcp or tls)."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address, strict=True)
        _, port = parse_host_port(location)
    except ValueError:
        scheme, port = "", None
    if scheme not in ("tcp", "tls") or not port:
        raise FleetError(
            f"--cluster {address}: not a scheduler address; expected tcp://HOST:PORT "
            "(or tls://HOST:PORT), e.g. tcp://10.0.0.5:8786"
        )


def connect(address: str) -> Any:
    """A Client of the scheduler at `address`, or FleetError with one line. It waits as long
    as Dask's `distributed.comm.timeouts.connect` (30 s unless configured, e.g. by the
    environment variable DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s)."""
    import dask.config
    import distributed

    check_address(address)
    if not os.environ.get(DEBUG_ENV):  # the client says what happened in its own lines
        _quiet_dask_logs()
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise FleetError(f"--cluster {address}: cannot reach the scheduler ({exc})") from None


def _quiet_dask_logs() -> None:
    """No Dask log line on the client's stderr (the loggers Dask configured keep their own
    levels and handlers, so each is set; later ones inherit from `distributed`)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def deadline_s() -> float:
    """How long any one call to the cluster may take: Dask's connect timeout (30 s unless
    configured, e.g. DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=60s), and at least
    MIN_DEADLINE_S: a worker's first call imports the harness, seconds on a loaded host."""
    import dask.config
    from dask.utils import parse_timedelta

    connect = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    return max(MIN_DEADLINE_S, float(connect))


def _scheduler_view(prefix: str, dask_scheduler: Any = None) -> dict[str, list[str]]:
    """Runs on the scheduler: worker address -> the keys starting with `prefix` it runs."""
    return {
        address: [str(ts.key) for ts in ws.processing if str(ts.key).startswith(prefix)]
        for address, ws in dask_scheduler.workers.items()
    }


def _worker_addresses(dask_scheduler: Any = None) -> list[str]:
    """Runs on the scheduler: the address of every worker it knows."""
    return sorted(dask_scheduler.workers)


async def _remove_worker(address: str, dask_scheduler: Any = None) -> None:
    """Runs on the scheduler: forget a worker that stopped answering, so its tasks go
    elsewhere. Not closed: if it thaws, the scheduler no longer knows it, it shuts down and
    its nanny starts a fresh one that joins again."""
    await dask_scheduler.remove_worker(
        address=address, stimulus_id=f"iommubench-drop-{time.time()}", close=False
    )


def ask_scheduler(client: Any, fn: Callable[..., Any], *args: Any, deadline: float) -> Any:
    """fn(*args) run on the scheduler, or SchedulerLostError when it is gone or does not
    answer within `deadline` seconds."""
    if client.status not in ("running", "connecting"):
        raise SchedulerLostError(f"lost the scheduler {client.scheduler.address}")
    try:
        return client.run_on_scheduler(fn, *args, callback_timeout=deadline)
    except (OSError, TimeoutError) as exc:
        what = "did not answer within" if isinstance(exc, TimeoutError) else "was lost after"
        raise SchedulerLostError(
            f"the scheduler {client.scheduler.address} {what} {deadline:.0f} s"
        ) from None


def ask_workers(
    client: Any, fn: Callable[[], Any], workers: Sequence[str], deadline: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """fn() on each worker on its own, at once: (answers, worker -> why it gave none), a
    worker that died or did not answer within `deadline` seconds among the second."""

    def one(worker: str) -> tuple[str, Any, str | None]:
        try:
            got = client.run(fn, workers=[worker], on_error="return", callback_timeout=deadline)
        except TimeoutError:
            return worker, None, f"did not answer within {deadline:.0f} s"
        except Exception as exc:  # the comm to the scheduler or the worker broke
            return worker, None, f"could not be asked ({type(exc).__name__})"
        value = got.get(worker) if isinstance(got, dict) else None
        if isinstance(value, BaseException) or worker not in got:
            name = type(value).__name__ if value is not None else "no answer"
            return worker, None, f"died while answering ({name})"
        return worker, value, None

    answers: dict[str, Any] = {}
    lost: dict[str, str] = {}
    if not workers:
        return answers, lost
    with ThreadPoolExecutor(max_workers=min(32, len(workers))) as pool:
        for worker, value, why in pool.map(one, workers):
            if why is None:
                answers[worker] = value
            else:
                lost[worker] = why
    return answers, lost


def drop_worker(client: Any, worker: str, deadline: float) -> None:
    """Remove a worker that hangs from the scheduler, so that no task waits on it."""
    with contextlib.suppress(SchedulerLostError):
        ask_scheduler(client, _remove_worker, worker, deadline=deadline)


@dataclass
class Survey:
    """What the client knows of the fleet: each host's machine block, each worker's allowed
    CPU count and host, and one line per worker dropped."""

    hosts: dict[str, dict[str, Any]]
    cpus: dict[str, int]
    host_of: dict[str, str]
    dropped: list[str]


def survey(
    client: Any, address: str, wanted: dict[str, Any], deadline: float | None = None
) -> Survey:
    """Ask every worker for its host's machine block. A worker that dies or does not answer
    within the deadline is dropped (one line each); FleetError when none answers, or a host
    runs another build (named)."""
    deadline = deadline_s() if deadline is None else deadline
    try:
        workers = ask_scheduler(client, _worker_addresses, deadline=deadline)
    except SchedulerLostError as exc:
        raise FleetError(f"--cluster {address}: {exc}") from None
    infos, lost = ask_workers(client, host_info, workers, deadline)
    dropped = []
    for worker, why in lost.items():
        if "did not answer" in why:
            drop_worker(client, worker, deadline)
        dropped.append(f"worker {worker} {why}: dropped")
    if not infos:
        raise FleetError(f"--cluster {address}: the scheduler has no worker that answers")
    hosts: dict[str, dict[str, Any]] = {}
    for info in infos.values():
        refusal = build_refusal(info["host"], info["build"], wanted)
        if refusal:
            raise FleetError(f"--cluster {address}: {refusal}")
        hosts[info["host"]] = info
    cpus = {w: int(i.get("cpus_allowed_count") or 1) for w, i in infos.items()}
    return Survey(hosts, cpus, {w: i["host"] for w, i in infos.items()}, dropped)


def host_cpu_counts(hosts: dict[str, dict[str, Any]]) -> list[int]:
    return sorted({int(info.get("cpus_allowed_count") or 1) for info in hosts.values()})


def admitting_workers(cpus: dict[str, int], workers: int) -> list[str] | None:
    """The machines (worker IP addresses) that may run a point of `workers` workers without
    oversubscribing, or None for any machine (every one may, or none may). An IP, not a
    worker address, so a worker that its nanny restarts on a new port still qualifies.

    On a mixed fleet `workers: auto` expands to the union of every host's own list, so a
    64-CPU host sweeps up to 64 and a 4-CPU host up to 4: its larger counts go elsewhere.
    """
    from distributed.comm.addressing import get_address_host

    machines = {get_address_host(addr) for addr in cpus}
    fits = {get_address_host(addr) for addr, n in cpus.items() if workers <= n}
    if not fits or fits == machines:
        return None
    return sorted(fits)


def _failed(reason: str, kind: str, host: str | None = None) -> TaskOutcome:
    one_line = " ".join(reason.split())
    where = {"host": host} if host else {}
    return TaskOutcome(PointResult("failed", one_line, measures={}, failure=kind), where, 0, 0)


NOT_RUN = "not run"  # a task cancelled on the scheduler: it never ran, nothing is stored


def _outcome(
    future: Any, host_of: dict[str, str] | None = None
) -> tuple[TaskOutcome | None, str | None]:
    """The task's outcome; or None and the refusal line of a host with another build; or
    None and NOT_RUN for a task cancelled before it ran. SchedulerLostError when the
    client lost the scheduler. `host_of`: worker address -> host, to name a lost one."""
    import asyncio
    import concurrent.futures

    import distributed

    try:
        return future.result(), None
    except BuildMismatchError as exc:
        return None, str(exc)
    except distributed.KilledWorker as exc:
        last = getattr(exc.last_worker, "address", exc.last_worker)
        reason = (
            f"{exc.allowed_failures + 1} Dask workers died running it (the last: {last}); "
            "given up (distributed.scheduler.allowed-failures)"
        )
        return _failed(reason, row_flags.LOST_HOST, (host_of or {}).get(str(last))), None
    except (asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
        if getattr(exc, "reason", "") == "scheduler-connection-lost":
            address = future.client.scheduler.address
            raise SchedulerLostError(f"lost the scheduler {address}") from None
        return None, NOT_RUN
    except OSError as exc:  # the result could not be fetched: its worker went away
        return _failed(f"{type(exc).__name__}: {exc}", row_flags.LOST_HOST), None
    except Exception as exc:  # the task failed on its host outside the point
        return _failed(f"{type(exc).__name__}: {exc}", row_flags.HOST_ERROR), None


@dataclass
class FleetRun:
    failures: int = 0
    refusals: list[str] = field(default_factory=list)
    not_run: int = 0  # tasks cancelled on the scheduler: no row, a resume runs them


def _submit(
    client: Any,
    tasks: list[Task],
    timeout_s: float,
    build: dict[str, Any],
    cpus: dict[str, int],
    prefix: str = "iommubench-",
) -> dict:
    """One future per task; `cpus`: worker address -> its allowed CPUs (from the survey)."""
    futures = {}
    for order, task in enumerate(tasks):
        future = client.submit(
            run_task,
            task,
            timeout_s,
            build,
            resources={RESOURCE: 1},
            workers=admitting_workers(cpus, int(task.params["workers"])),
            priority=len(tasks) - order,  # interleaved: rep 0 of every point first
            pure=False,
            key=f"{prefix}p{task.point}-r{task.rep}-{os.urandom(4).hex()}",
        )
        futures[future] = task
    return futures


def _store(
    store: RunStore, task: Task, outcome: TaskOutcome, timer_ns: float, build: dict[str, Any]
) -> dict[str, Any]:
    """The task's row, with its host and times, appended to the run directory."""
    result = outcome.result
    row = make_row(store.run_id, task, result, timer_ns, build)
    row.update(host_columns(outcome.host))
    if outcome.started_at:
        row.update(timestamps(outcome.started_at, outcome.ended_at))
    series = (
        None
        if result.series_t_ns is None or result.series_ops is None
        else (result.series_t_ns, result.series_ops)
    )
    store.append(row, result.workers, result.hist_map, result.hist_unmap, series)
    return row


class Watch:
    """The client's check of the cluster while no row arrives: the scheduler must answer, and
    so must every worker running one of this run's tasks; one that does not is dropped."""

    def __init__(self, client: Any, prefix: str, host_of: dict[str, str], deadline: float):
        self.client, self.prefix, self.host_of, self.deadline = client, prefix, host_of, deadline
        self.no_worker_since: float | None = None

    def check(self, say: Callable[[str], None]) -> None:
        view = ask_scheduler(self.client, _scheduler_view, self.prefix, deadline=self.deadline)
        self._check_workers_left(view)
        busy = [w for w, keys in view.items() if keys]
        _, lost = ask_workers(self.client, _pong, busy, self.deadline)
        for worker, why in lost.items():
            if "did not answer" in why:
                drop_worker(self.client, worker, self.deadline)
            host = self.host_of.get(worker, "?")
            say(
                f"iommubench: host {host} (worker {worker}) {why} while running "
                f"{_labels(view[worker])}: dropped; its point runs on another worker"
            )

    def _check_workers_left(self, view: dict[str, list[str]]) -> None:
        if view:
            self.no_worker_since = None
            return
        now = time.monotonic()
        self.no_worker_since = self.no_worker_since or now
        if now - self.no_worker_since > self.deadline:
            raise SchedulerLostError(
                f"the scheduler {self.client.scheduler.address} has had no worker for "
                f"{self.deadline:.0f} s"
            )


def _pong() -> bool:
    return True


def _labels(keys: list[str]) -> str:
    """'#3 rep 0' for the task keys a worker runs."""
    parts = []
    for key in keys:
        fields = key.rsplit("-", 3)[-3:]  # p3, r0, random
        parts.append(f"#{fields[0][1:]} rep {fields[1][1:]}" if len(fields) == 3 else key)
    return ", ".join(parts) or "a task"


class Arrivals:
    """Wakes the client when a future finishes (its callback runs on the client's loop)."""

    def __init__(self, futures: dict) -> None:
        self.event = threading.Event()
        for future in futures:
            future.add_done_callback(lambda _: self.event.set())

    def wait(self, futures: dict, quiet_s: float) -> list[Any]:
        """The futures that finished, waiting up to quiet_s for one; [] when none did."""
        self.event.wait(quiet_s)
        self.event.clear()  # a callback after this is seen by the scan below or the next wait
        return [future for future in futures if future.done()]


def run_cluster_sweep(
    tasks: list[Task],
    store: RunStore,
    client: Any,
    reporter: Reporter,
    timeout_s: float,
    build: dict[str, Any],
    timer_ns: float,
    fleet: Survey,
    say: Callable[[str], None],
    deadline: float | None = None,
) -> FleetRun:
    """Submit every task, store each row as it arrives; a host that stops answering is
    dropped; a lost scheduler raises SchedulerLostError (rows kept); on an interrupt the
    rest is cancelled."""
    deadline = deadline_s() if deadline is None else deadline
    run = FleetRun()
    reporter.start(len(tasks))
    prefix = f"iommubench-{os.urandom(3).hex()}-"
    futures = _submit(client, tasks, timeout_s, build, fleet.cpus, prefix)
    arrivals = Arrivals(futures)
    watch = Watch(client, prefix, fleet.host_of, deadline)
    try:
        while futures:
            done = arrivals.wait(futures, QUIET_S)
            interrupt.raise_if_requested()
            if not done:
                watch.check(say)
                continue
            for future in done:
                task = futures.pop(future)
                _take(run, task, future, store, reporter, timer_ns, build, fleet.host_of)
    finally:
        _cancel(client, list(futures), deadline)
        reporter.close()
    return run


def _take(
    run: FleetRun,
    task: Task,
    future: Any,
    store: RunStore,
    reporter: Reporter,
    timer_ns: float,
    build: dict[str, Any],
    host_of: dict[str, str],
) -> None:
    """Store one finished task's row, or count its refusal or its cancellation."""
    outcome, refusal = _outcome(future, host_of)
    if outcome is None and refusal == NOT_RUN:
        run.not_run += 1
        return
    if outcome is None:
        run.refusals.append(f"{task.label}: {refusal}")
        reporter.point_finished(task.label, f"REFUSED: {refusal}")
        return
    row = _store(store, task, outcome, timer_ns, build)
    run.failures += counts_as_failure(row)
    reporter.point_finished(f"{task.label} on {row['host'] or '?'}", summary_text(row))


def _cancel(client: Any, futures: list[Any], deadline: float) -> None:
    """Cancel what is left, waiting at most the deadline (a scheduler that hangs would hold
    the cancel forever; one that is gone has nothing to cancel)."""
    if not futures or client.status != "running":
        return

    def cancel() -> None:
        with contextlib.suppress(Exception):
            client.cancel(futures)

    thread = threading.Thread(target=cancel, name="iommubench-cancel", daemon=True)
    thread.start()
    thread.join(deadline)
