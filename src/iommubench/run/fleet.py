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
default); then the row is stored as failed with the reason.

`IOMMUBENCH_HOST` overrides the host name a worker reports: for labs that give one machine
several names, and for tests that play two hosts on one machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from iommubench.run import interrupt
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

    from iommubench.run import machine

    host = host_name()
    refusal = build_refusal(host, machine.build(), wanted)
    if refusal:
        raise BuildMismatchError(refusal)
    info = {"host": host, **_cpu_block()}
    # settles the race of two Dask workers on one host measuring at once: one holds the lock
    with distributed.Lock(f"iommubench-host-{host}"):
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
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        return distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise FleetError(f"--cluster {address}: cannot reach the scheduler ({exc})") from None


def survey(client: Any, address: str, wanted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """host -> machine block of every worker's host; FleetError when there is none, or a host
    runs another build (named)."""
    infos = client.run(host_info)
    if not infos:
        raise FleetError(f"--cluster {address}: the scheduler has no worker")
    hosts: dict[str, dict[str, Any]] = {}
    for info in infos.values():
        refusal = build_refusal(info["host"], info["build"], wanted)
        if refusal:
            raise FleetError(f"--cluster {address}: {refusal}")
        hosts[info["host"]] = info
    return hosts


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


def _allowed_cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def _failed(reason: str) -> PointResult:
    return PointResult("failed", reason, measures={})


def _outcome(future: Any) -> tuple[TaskOutcome | None, str | None]:
    """The task's outcome, or None and the refusal line of a host with another build."""
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
        return TaskOutcome(_failed(reason), {}, 0.0, 0.0), None
    except Exception as exc:  # the task's own error, e.g. the worker could not start it
        return TaskOutcome(_failed(f"{type(exc).__name__}: {exc}"), {}, 0.0, 0.0), None


@dataclass
class FleetRun:
    failures: int = 0
    refusals: list[str] = field(default_factory=list)


def _submit(client: Any, tasks: list[Task], timeout_s: float, build: dict[str, Any]) -> dict:
    futures = {}
    cpus = client.run(_allowed_cpu_count)  # worker address -> its allowed CPUs
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
            key=f"iommubench-p{task.point}-r{task.rep}-{os.urandom(4).hex()}",
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


def run_cluster_sweep(
    tasks: list[Task],
    store: RunStore,
    client: Any,
    reporter: Reporter,
    timeout_s: float,
    build: dict[str, Any],
    timer_ns: float,
) -> FleetRun:
    """Submit every task, store each row as it arrives; on an interrupt cancel the rest."""
    import distributed

    run = FleetRun()
    reporter.start(len(tasks))
    futures = _submit(client, tasks, timeout_s, build)
    try:
        for future in distributed.as_completed(list(futures), loop=client.loop):
            interrupt.raise_if_requested()
            task = futures.pop(future)
            outcome, refusal = _outcome(future)
            if outcome is None:
                run.refusals.append(f"{task.label}: {refusal}")
                reporter.point_finished(task.label, f"REFUSED: {refusal}")
                continue
            row = _store(store, task, outcome, timer_ns, build)
            run.failures += counts_as_failure(row)
            reporter.point_finished(f"{task.label} on {row['host']}", summary_text(row))
    finally:
        with contextlib.suppress(Exception):  # a scheduler gone already has nothing to cancel
            client.cancel(list(futures))
        reporter.close()
    return run
