"""Sweeps on a real Dask cluster (distributed.LocalCluster: worker processes of one thread
with the `machine` resource): every row arrives, no two points overlap on a host, a killed
worker's task is retried, an interrupted run resumes, and a host with another build refuses."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dask
import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster

from iommubench.analysis import run_reader
from iommubench.run import fleet, machine
from iommubench.run.sweep import Task
from iommubench.spec import config

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

ENV = {
    **os.environ,
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s",
}


def config_file(tmp: Path, reps: int = 2, duration: float = 0.1, drivers=None) -> Path:
    doc = {
        "name": "fleet",
        "repetitions": reps,
        "warmup_s": 0.0,
        "duration_s": duration,
        "defaults": {"workload": "prefault", "region_mib": 16, "chunk_pages": 1},
        "sweep": {"driver": drivers or ["lockfree", "serial-spin"], "workers": [1, 2]},
    }
    path = tmp / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    # a lock held by a killed worker is released within a second, not after 30 s
    with (
        dask.config.set(
            {
                "distributed.scheduler.locks.lease-timeout": "1s",
                "distributed.scheduler.locks.lease-validation-interval": "200ms",
            }
        ),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            resources={"machine": 1},
            dashboard_address=":0",
        ) as lc,
    ):
        yield lc


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iommubench.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**ENV, "IOMMUBENCH_ACTIVE_DIR": str(Path(args[-1]).parent / "active"), **(env or {})},
    )


def start(*args: str, tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "iommubench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "IOMMUBENCH_ACTIVE_DIR": str(tmp / "active")},
    )


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "points.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def pairs(run_dir: Path) -> list[tuple[int, int]]:
    return sorted((int(r["point"]), int(r["rep"])) for r in rows(run_dir))


def all_pairs(points: int, reps: int) -> list[tuple[int, int]]:
    return sorted((p, r) for p in range(points) for r in range(reps))


def run_dir_of(out: Path) -> Path:
    found = [p for p in out.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def assert_no_overlap_per_host(run_dir: Path) -> None:
    by_host: dict[str, list[tuple[float, float]]] = {}
    for r in rows(run_dir):
        if r["started_at"]:
            by_host.setdefault(r["host"], []).append((float(r["started_at"]), float(r["ended_at"])))
    assert by_host
    for spans in by_host.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, spans


# ------------------------------------------------------------------ a sweep on the cluster


def test_a_cluster_sweep_stores_every_row_with_its_host_and_none_overlap(cluster, tmp_path):
    out = tmp_path / "results"
    proc = cli(
        "run", str(config_file(tmp_path)), "--cluster", cluster.scheduler_address, "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(out)
    assert pairs(run_dir) == all_pairs(4, 2)
    host = fleet.host_name()
    for r in rows(run_dir):
        assert r["host"] == host and r["cpus_allowed"] and r["core_hash"] and r["version"]
    # two Dask workers on one host: the host's lock ran their points one at a time
    assert_no_overlap_per_host(run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert list(meta["hosts"]) == [host]
    assert meta["hosts"][host]["cpus_allowed_count"] == config.cpus_available()


def test_repetitions_are_submitted_interleaved(cluster, tmp_path, monkeypatch) -> None:
    """Earlier tasks get a higher priority: rep 0 of every point before rep 1."""
    submitted: list[tuple[int, int, int]] = []

    class Recorder:
        def submit(self, fn, task, *args, priority, **kwargs):
            submitted.append((priority, task.rep, task.point))

    tasks = [Task(p, r, {"workers": 1}) for r in range(2) for p in range(3)]
    fleet._submit(Recorder(), tasks, 1.0, {}, {"tcp://127.0.0.1:1": 2})
    by_priority = [(rep, point) for _, rep, point in sorted(submitted, reverse=True)]
    assert by_priority == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]


def test_a_killed_worker_has_its_task_retried_and_the_sweep_completes(cluster, tmp_path):
    out = tmp_path / "results"
    conf = config_file(tmp_path, reps=1, duration=0.5)
    run = start(
        "run", str(conf), "--cluster", cluster.scheduler_address, "--out", str(out), tmp=tmp_path
    )
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        busy: list[str] = []

        def one_is_measuring() -> bool:
            busy[:] = [w for w, keys in client.processing().items() if keys]
            return bool(busy) and out.exists() and any(out.iterdir())

        wait_for(one_is_measuring)
        time.sleep(0.2)  # inside the point
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=180)
    assert run.returncode == 0, stderr
    run_dir = Path(stdout.strip().splitlines()[0])
    assert pairs(run_dir) == all_pairs(4, 1)
    assert all(r["status"] == "ok" for r in rows(run_dir))
    assert_no_overlap_per_host(run_dir)


def test_sigint_keeps_rows_prints_the_resume_command_and_the_resume_completes(cluster, tmp_path):
    out = tmp_path / "results"
    conf = config_file(tmp_path, reps=2, duration=0.2)
    run = start(
        "run", str(conf), "--cluster", cluster.scheduler_address, "--out", str(out), tmp=tmp_path
    )
    wait_for(lambda: out.exists() and any(out.iterdir()) and len(rows(run_dir_of(out))) >= 1)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    run_dir = run_dir_of(out)
    kept = pairs(run_dir)
    assert 1 <= len(kept) < 8
    resume = (run_dir / "RESUME").read_text().split()
    assert " ".join(resume) in " ".join(stderr.split())
    assert resume[-2:] == ["--cluster", cluster.scheduler_address]  # resumes on the fleet
    proc = cli(*resume[1:])
    assert proc.returncode == 0, proc.stderr
    assert pairs(run_dir) == all_pairs(4, 2)  # each pair once: kept rows were not rerun
    assert_no_overlap_per_host(run_dir)


# ------------------------------------------------------------------ two hosts, local vs fleet


def test_two_hosts_and_a_local_run_give_the_same_pairs_and_render(tmp_path) -> None:
    """Two `iommubench worker` processes claiming two host names; the same config locally."""
    with LocalCluster(n_workers=0, dashboard_address=":0", processes=True) as lc:
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "iommubench.cli",
                    "worker",
                    lc.scheduler_address,
                    "--name",
                    name,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name in ("lab-a", "lab-b")
        ]
        try:
            with Client(lc.scheduler_address, set_as_default=False) as client:
                client.wait_for_workers(2, timeout=60)
            conf = config_file(tmp_path, reps=2, duration=0.05)
            proc = cli(
                "run",
                str(conf),
                "--cluster",
                lc.scheduler_address,
                "--out",
                str(tmp_path / "fleet"),
            )
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    local = cli("run", str(conf), "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    fleet_dir, local_dir = run_dir_of(tmp_path / "fleet"), run_dir_of(tmp_path / "local")
    assert pairs(fleet_dir) == pairs(local_dir) == all_pairs(4, 2)
    hosts = {r["host"] for r in rows(fleet_dir)}
    assert hosts <= {"lab-a", "lab-b"} and hosts
    assert set(json.loads((fleet_dir / "meta.json").read_text())["hosts"]) == {"lab-a", "lab-b"}
    assert {r["host"] for r in rows(local_dir)} == {fleet.host_name()}
    texts = {}
    for run_dir in (fleet_dir, local_dir):
        report = cli("report", str(run_dir), "--format", "text")
        assert report.returncode == 0, report.stderr
        texts[run_dir] = report.stdout
    if len(hosts) == 2:  # both named; alike (one machine here), so their rows are pooled
        assert "pooled identical hosts lab-a+lab-b" in texts[fleet_dir]
    matched = cli("compare", str(local_dir), str(fleet_dir), "--ignore", "host", "--format", "json")
    assert matched.returncode in (0, 1), matched.stderr
    assert len(json.loads(matched.stdout)) == 4


# ------------------------------------------------------------------ refusals and bad input


def test_an_unreachable_scheduler_exits_2_with_one_line(tmp_path) -> None:
    for address in ("tcp://127.0.0.1:1", "not-an-address"):
        proc = cli(
            "run", str(config_file(tmp_path)), "--cluster", address, "--out", str(tmp_path / "r")
        )
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"iommubench: --cluster {address}: ")
        assert not (tmp_path / "r").exists()


def test_a_worker_with_another_build_refuses_naming_its_host(monkeypatch) -> None:
    monkeypatch.setenv(fleet.HOST_ENV, "lab-z")
    wanted = {**machine.build(), "core_hash": "0000000000000000"}
    with pytest.raises(
        fleet.BuildMismatchError, match=r"^host lab-z refuses the task: .*core_hash"
    ):
        fleet.run_task(Task(0, 0, {"workers": 1}), 1.0, wanted)

    class OneHost:
        status = "running"

        def run_on_scheduler(self, fn, *args, callback_timeout):
            return ["tcp://w:1"]

        def run(self, fn, workers, on_error, callback_timeout):
            return {"tcp://w:1": {**fn(), "build": {**machine.build(), "version": "9.9"}}}

    with pytest.raises(fleet.FleetError, match=r"host lab-z refuses the task: .*version 9\.9"):
        fleet.survey(OneHost(), "tcp://s:1", machine.build(), deadline=5.0)


# ------------------------------------------------------------------ per-host worker counts


def test_workers_auto_expands_to_the_union_of_the_hosts_lists() -> None:
    with config.fleet_cpus([4, 6]):
        assert config.auto_workers() == [1, 2, 4, 6]
        assert config.max_workers() == 64 * 6
    assert config.auto_workers() == config.auto_workers_for(config.cpus_available())


def test_a_point_goes_to_hosts_that_fit_it_or_anywhere() -> None:
    cpus = {"tcp://10.0.0.4:1": 4, "tcp://10.0.0.64:1": 64, "tcp://10.0.0.64:2": 64}
    assert fleet.admitting_workers(cpus, 4) is None
    assert fleet.admitting_workers(cpus, 64) == ["10.0.0.64"]
    assert fleet.admitting_workers(cpus, 128) is None  # fits nowhere: oversubscribed anywhere


def test_a_run_with_several_hosts_is_split_into_one_point_per_host() -> None:
    points = pd.DataFrame(
        {"point": [0, 0, 1, 1], "rep": [0, 1, 0, 1], "host": ["b", "a", "a", "a"]}
    )
    workers = pd.DataFrame({"point": [0, 0, 1], "rep": [0, 1, 1], "ops": [1, 2, 3]})
    split, w, stored = run_reader.split_by_host(points, workers)
    assert list(split["point"]) == [1, 0, 2, 2]  # (0,a)=0, (0,b)=1, (1,a)=2
    assert list(w["point"]) == [1, 0, 2]
    assert stored == {(1, 0): 0, (0, 1): 0, (2, 0): 1, (2, 1): 1}
    one = points.assign(host="a")
    assert run_reader.split_by_host(one, workers)[0] is one


def test_a_task_whose_workers_kept_dying_becomes_a_failed_row_with_the_reason() -> None:
    from distributed import KilledWorker

    class Dead:
        def result(self):
            raise KilledWorker("iommubench-p0-r0", SimpleNamespace(address="tcp://w:1"), 3)

    outcome, refusal = fleet._outcome(Dead())
    assert refusal is None and outcome is not None
    assert outcome.result.status == "failed" and outcome.result.failure == "lost-host"
    assert outcome.result.error.startswith("4 Dask workers died running it (the last: tcp://w:1)")
