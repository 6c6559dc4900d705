"""Faults of a fleet, with a real scheduler process and real `iommubench worker` processes:
a worker that dies during the survey, one that freezes before or during a point, a scheduler
that is killed, and the semaphores a killed worker leaves. None may end the client with exit
70, a traceback or a hang; every row that arrived is kept, a pair that never ran is not
stored, and the resume command is printed and written."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from distributed import Client

from iommubench.run import fleet

pytestmark = pytest.mark.slow  # a scheduler, workers and runs in processes

CLI = [sys.executable, "-m", "iommubench.cli"]
DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
DEADLINE = fleet.MIN_DEADLINE_S  # the client's deadline for one call (connect timeout below it)


def env_for(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "IOMMUBENCH_ACTIVE_DIR": str(tmp / "active"),
        "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s",
    }


def config_file(tmp: Path, reps: int = 2, duration: float = 0.3) -> Path:
    doc = {
        "name": "fleet",
        "repetitions": reps,
        "warmup_s": 0.0,
        "duration_s": duration,
        "defaults": {"workload": "prefault", "region_mib": 16, "chunk_pages": 1},
        "sweep": {"driver": ["lockfree", "serial-spin"], "workers": [1, 2]},
    }
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_for(check, timeout: float = 90.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    """A `dask scheduler` process and `iommubench worker` processes, each in its own
    process group so that a test can kill one whole, as a machine's crash would."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = env_for(tmp)
        file = tmp / "scheduler.json"
        self.scheduler = subprocess.Popen(
            [*DASK, "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        wait_for(lambda: file.exists() and file.stat().st_size, what="the scheduler")
        self.address = json.loads(file.read_text())["address"]
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [*CLI, "worker", self.address, "--name", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )
        self.workers[name] = proc
        return proc

    def client(self) -> Client:
        return Client(self.address, set_as_default=False, timeout=30)

    def wait_for_workers(self, n: int) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=90)

    def dask_worker_of(self, name: str) -> int:
        """The pid of the Dask worker process a worker's nanny runs."""
        nanny = self.workers[name].pid

        def child() -> int | None:
            for pid in tree(nanny)[1:]:
                with contextlib.suppress(FileNotFoundError):
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return pid
            return None

        return wait_for(child, what=f"{name}'s Dask worker")

    def clients(self) -> int:
        with self.client() as c:
            return c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.clients)) - 1

    def busy_worker(self) -> str | None:
        """The address of a worker running a task of a run, if any."""
        with self.client() as c:
            for worker, keys in c.processing().items():
                if any(str(k).startswith("iommubench-") for k in keys):
                    return worker
        return None

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def start_run(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "run", *args, "--cluster", cluster.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cluster.env,
    )


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "points.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def pairs(run_dir: Path) -> list[tuple[int, int]]:
    return sorted((int(r["point"]), int(r["rep"])) for r in rows(run_dir))


def all_pairs(points: int = 4, reps: int = 2) -> list[tuple[int, int]]:
    return sorted((p, r) for p in range(points) for r in range(reps))


def no_trace(stderr: str) -> None:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert " - distributed." not in stderr, stderr  # no Dask log lines


def finished(run: subprocess.Popen[str], timeout: float = 240) -> tuple[str, str]:
    try:
        return run.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.kill()
        _, err = run.communicate()
        raise AssertionError(f"the client hung: {err}") from None


# ------------------------------------------------------------------ a worker dies or freezes


def test_a_worker_that_dies_during_the_survey_is_dropped_and_the_run_completes(
    cluster, tmp_path
) -> None:
    cluster.add_worker("lab-a"), cluster.add_worker("lab-b")
    cluster.wait_for_workers(2)
    victim = cluster.dask_worker_of("lab-a")
    os.kill(victim, signal.SIGSTOP)  # the survey waits on it ...
    run = start_run(cluster, str(config_file(tmp_path)), "--out", str(tmp_path / "out"))
    wait_for(lambda: cluster.clients() >= 1, what="the run's client")
    time.sleep(DEADLINE / 2)  # the survey has asked it, and waits for less than its deadline
    os.kill(victim, signal.SIGKILL)  # ... and it dies during the broadcast
    stdout, stderr = finished(run)
    assert run.returncode == 0, stderr
    no_trace(stderr)
    said = [ln for ln in stderr.splitlines() if "dropped" in ln]
    assert len(said) == 1 and "died while answering" in said[0], stderr
    run_dir = Path(stdout.strip().splitlines()[0])
    assert pairs(run_dir) == all_pairs() and all(r["status"] == "ok" for r in rows(run_dir))


def test_a_worker_frozen_before_the_run_is_dropped_within_the_deadline(cluster, tmp_path):
    cluster.add_worker("lab-a"), cluster.add_worker("lab-b")
    cluster.wait_for_workers(2)
    frozen = cluster.dask_worker_of("lab-a")
    os.kill(frozen, signal.SIGSTOP)
    run = start_run(cluster, str(config_file(tmp_path)), "--out", str(tmp_path / "out"))
    stdout, stderr = finished(run)
    assert run.returncode == 0, stderr
    no_trace(stderr)
    said = [ln for ln in stderr.splitlines() if "dropped" in ln]
    assert len(said) == 1 and f"did not answer within {DEADLINE:.0f} s" in said[0], stderr
    run_dir = Path(stdout.strip().splitlines()[0])
    assert pairs(run_dir) == all_pairs()
    assert {r["host"] for r in rows(run_dir)} == {"lab-b"}


def test_a_worker_frozen_during_a_point_is_dropped_and_its_point_runs_elsewhere(
    cluster, tmp_path
) -> None:
    cluster.add_worker("lab-a"), cluster.add_worker("lab-b")
    cluster.wait_for_workers(2)
    pids = {cluster.dask_worker_of(n): n for n in ("lab-a", "lab-b")}
    run = start_run(cluster, str(config_file(tmp_path, duration=1.0)), "--out",
                    str(tmp_path / "out"))  # fmt: skip
    busy = wait_for(cluster.busy_worker, what="a worker running a point")
    with cluster.client() as c:
        pid = c.run(os.getpid, workers=[busy])[busy]
    os.kill(pid, signal.SIGSTOP)  # a freeze, or a partition: it never answers again
    stdout, stderr = finished(run)
    assert run.returncode == 0, stderr
    no_trace(stderr)
    said = [ln for ln in stderr.splitlines() if "dropped" in ln]
    assert len(said) == 1, stderr
    assert said[0].startswith(f"iommubench: host {pids[pid]} (worker {busy}) did not answer")
    assert "its point runs on another worker" in said[0]
    run_dir = Path(stdout.strip().splitlines()[0])
    assert pairs(run_dir) == all_pairs() and all(r["status"] == "ok" for r in rows(run_dir))


# ------------------------------------------------------------------ the scheduler is lost


def test_losing_the_scheduler_keeps_the_rows_stores_no_fake_failure_and_says_how_to_resume(
    cluster, tmp_path
) -> None:
    cluster.add_worker("lab-a")
    cluster.wait_for_workers(1)
    conf = config_file(tmp_path, reps=3, duration=0.5)
    out = tmp_path / "out"
    run = start_run(cluster, str(conf), "--out", str(out))
    run_dir = wait_for(lambda: next(iter(out.glob("*-fleet")), None), what="the run dir")
    wait_for(lambda: (run_dir / "points.csv").exists() and len(rows(run_dir)) >= 2,
             what="two rows")  # fmt: skip
    os.killpg(cluster.scheduler.pid, signal.SIGKILL)
    _, stderr = finished(run)
    assert run.returncode == 1, stderr
    no_trace(stderr)
    kept = rows(run_dir)
    assert 2 <= len(kept) < 12 and all(r["status"] == "ok" for r in kept)  # nothing fake
    command = (run_dir / "RESUME").read_text().strip()
    assert f"lost the scheduler {cluster.address}: {len(kept)} rows kept in {run_dir}" in stderr
    assert command in stderr
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["sessions"][-1]["complete"] is False
    # the resume, here without the cluster: every pair once, the kept rows untouched
    local = command.split(" --cluster ")[0].split()
    proc = subprocess.run([*CLI, *local[1:]], capture_output=True, text=True, timeout=300,
                          env=cluster.env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert pairs(run_dir) == all_pairs(4, 3) and rows(run_dir)[: len(kept)] == kept


# ------------------------------------------------------------------ what a killed worker leaves


def semaphores() -> dict[str, int]:
    """name -> inode of every multiprocessing semaphore in /dev/shm now."""
    found = {}
    for path in Path("/dev/shm").glob(f"{fleet.SEMAPHORE_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            found[path.name] = path.stat().st_ino
    return found


def mapped_by(pids: list[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/maps").read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/dev/shm/sem."):
                inodes.add(int(fields[4]))
    return inodes


def tree(pid: int) -> list[int]:
    """A process and its descendants (those alive while it looks)."""
    out = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            out += tree(int(child))
    return out


def test_a_killed_worker_leaves_only_dasks_semaphores_and_the_next_worker_removes_them(
    cluster,
) -> None:
    worker = cluster.add_worker("lab-a")
    cluster.wait_for_workers(1)
    processes = tree(worker.pid)
    ours = wait_for(lambda: mapped_by(processes), what="the nanny's semaphores")
    # the nanny's two spawn-context queues: three semaphores each, made in the nanny process
    assert len(ours) == 6
    left = {name for name, ino in semaphores().items() if ino in ours}
    os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: nanny, tracker, Dask worker
    worker.wait(timeout=30)
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in processes), what="the tree")
    assert left <= set(semaphores())  # nobody unlinked them
    again = cluster.add_worker("lab-a")
    cluster.wait_for_workers(1)
    assert not left & set(semaphores())
    said = again.stderr.readline().decode()  # before the Dask worker's own log
    removed = re.match(
        r"iommubench: worker: removed (\d+) semaphore\(s\) that killed workers", said
    )
    assert removed and int(removed.group(1)) >= len(left), said  # others' garbage goes too


def test_the_harness_makes_no_named_semaphore_even_when_its_worker_is_killed(tmp_path) -> None:
    conf = config_file(tmp_path, reps=1, duration=2.0)
    run = subprocess.Popen(
        [*CLI, "run", str(conf), "--out", str(tmp_path / "out"), "--set", "workers=2",
         "--set", "driver=serial-spin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env_for(tmp_path),
    )  # fmt: skip
    workers = wait_for(lambda: [p for p in tree(run.pid)[1:] if _is_harness(p, run.pid)],
                       what="the point's workers")  # fmt: skip
    assert not mapped_by(tree(run.pid))
    os.kill(workers[0], signal.SIGKILL)
    run.communicate(timeout=120)
    assert run.returncode == 1


def _is_harness(pid: int, parent: int) -> bool:
    """A worker process of the harness: a fork, so the harness's own command line."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes()
            == Path(f"/proc/{parent}/cmdline").read_bytes()
        )
    except FileNotFoundError:
        return False


def test_a_comm_that_breaks_where_no_deadline_caught_it_still_keeps_rows_and_resumes(
    tmp_path, monkeypatch, capsys
) -> None:
    """The safety net: a CommClosedError out of the fleet sweep is a run cut short (exit 1,
    the resume command printed and written), never exit 70."""
    from distributed.comm import CommClosedError

    from iommubench import cli
    from iommubench.run import machine, session

    def connect(self: session.Fleet) -> None:
        self.client = object()  # a client that is never called: the sweep below breaks first
        host = fleet.host_name()
        self.survey = fleet.Survey({host: machine.collect()}, {"tcp://w:1": 2},
                                   {"tcp://w:1": host}, [])  # fmt: skip
        self.hosts = self.survey.hosts

    def broken(*args, **kwargs):
        raise CommClosedError("in <TCP (closed) Scheduler Broadcast>: Stream is closed")

    monkeypatch.setenv("IOMMUBENCH_ACTIVE_DIR", str(tmp_path / "active"))
    monkeypatch.setattr(session.Fleet, "connect", connect)
    monkeypatch.setattr(fleet, "run_cluster_sweep", broken)
    out = tmp_path / "out"
    code = cli.main(["run", str(config_file(tmp_path)), "--cluster", "tcp://127.0.0.1:1",
                     "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    run_dir = next(out.iterdir())
    assert "iommubench: lost contact with the cluster (CommClosedError: in <TCP" in err
    assert (run_dir / "RESUME").read_text().strip() in err
    assert json.loads((run_dir / "meta.json").read_text())["sessions"][-1]["complete"] is False
