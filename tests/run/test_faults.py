"""Faults and interruption with real processes: a worker killed mid-point, the harness
interrupted or killed. Nothing may hang, no finished row may be lost, and no shared-memory
segment or worker process may be left behind."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.harness import alive, config_file, rows, run_dir_in, start, wait_for, workers_of
from iommubench.core.arena import SEGMENT_PREFIX, our_segments

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles


@pytest.mark.parametrize("driver", ["serial-spin", "serial-mutex", "lockfree"])
def test_killed_worker_fails_its_point_and_the_sweep_goes_on(tmp_path: Path, driver: str):
    # the point we break, then a second one that must still run
    config = config_file(tmp_path, {"driver": [driver], "workers": [2, 1]})
    out = tmp_path / "results"
    harness = start(config, "--out", str(out), "--set", "duration_s=1.5")
    victims = wait_for(lambda: len(workers_of(harness)) == 2 and workers_of(harness))
    time.sleep(0.3)  # well inside the measured window
    os.kill(victims[0], signal.SIGKILL)
    _, stderr = harness.communicate(timeout=60)
    assert harness.returncode == 1, stderr
    got = rows(run_dir_in(out))
    assert [r["status"] for r in got] == ["failed", "ok"]
    assert "SIGKILL" in got[0]["error"] and got[0]["flags"] == "worker-killed"
    assert not any(alive(pid) for pid in victims)
    assert not our_segments(harness.pid)


def test_sigint_keeps_finished_rows_and_resume_completes_the_sweep(tmp_path: Path) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree", "serial-spin"], "workers": [1, 2]})
    out = tmp_path / "results"
    harness = start(config, "--out", str(out), "--set", "duration_s=0.4")
    run_dir = run_dir_in(out)
    wait_for(lambda: (run_dir / "points.csv").is_file() and len(rows(run_dir)) >= 1,
             what="the first row")  # fmt: skip
    workers = wait_for(lambda: workers_of(harness), what="the next point's workers")
    harness.send_signal(signal.SIGINT)
    _, stderr = harness.communicate(timeout=30)
    assert harness.returncode == 130
    assert "--resume" in stderr and "Traceback" not in stderr
    kept = rows(run_dir)
    assert 1 <= len(kept) < 4 and all(r["status"] == "ok" for r in kept)
    assert not any(alive(pid) for pid in workers)
    assert not our_segments(harness.pid)

    resumed = subprocess.run(
        [sys.executable, "-m", "iommubench.cli", "run", str(config), "--resume", str(run_dir),
         "--set", "duration_s=0.4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    final = rows(run_dir)
    assert sorted(int(r["point"]) for r in final) == [0, 1, 2, 3]
    assert final[: len(kept)] == kept  # the rows kept before are untouched


def test_sigterm_is_handled_like_sigint(tmp_path: Path) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [2]})
    out = tmp_path / "results"
    harness = start(config, "--out", str(out))
    wait_for(lambda: len(workers_of(harness)) == 2)
    harness.send_signal(signal.SIGTERM)
    _, stderr = harness.communicate(timeout=30)
    assert harness.returncode == 130 and "--resume" in stderr, stderr
    assert not our_segments(harness.pid)


def test_a_killed_harness_takes_its_workers_and_the_next_run_removes_its_arena(tmp_path):
    config = config_file(tmp_path, {"driver": ["serial-spin"], "workers": [2]})
    harness = start(config, "--out", str(tmp_path / "results"))
    workers = wait_for(lambda: len(workers_of(harness)) == 2 and workers_of(harness))
    harness.kill()
    harness.communicate(timeout=30)
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10, what="workers to die")
    # whatever the killed harness left (if its tracker did not already remove it), plus a
    # planted segment of a creator that no longer exists, goes at the next start
    dead_pid = harness.pid
    planted = Path("/dev/shm") / f"{SEGMENT_PREFIX}{dead_pid}-999"
    planted.write_bytes(b"\0" * 4096)
    quick = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, duration=0.05)
    proc = subprocess.run(
        [sys.executable, "-m", "iommubench.cli", "run", str(quick), "--out",
         str(tmp_path / "r2")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert not our_segments(dead_pid)


def test_point_timeout_fails_the_point_without_hanging(tmp_path: Path) -> None:
    config = config_file(tmp_path, {"driver": ["serial-mutex"], "workers": [2]}, duration=2.0)
    out = tmp_path / "results"
    harness = start(config, "--out", str(out), "--set", "point_timeout_s=2.5")
    # a stopped worker (SIGSTOP) never finishes: only the timeout can end the point
    victims = wait_for(lambda: len(workers_of(harness)) == 2 and workers_of(harness))
    os.kill(victims[0], signal.SIGSTOP)
    _, stderr = harness.communicate(timeout=60)
    assert harness.returncode == 1, stderr
    got = rows(run_dir_in(out))
    assert got[0]["status"] == "failed" and "timed out" in got[0]["error"]
    assert got[0]["flags"] == "timed-out"  # a failure from outside the point: resume redoes it
    assert not any(alive(pid) for pid in victims)
    assert not our_segments(harness.pid)


def resume_run(run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iommubench.cli", "run", str(run_dir / "config.yaml"),
         "--resume", str(run_dir), *extra],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_resume_runs_again_failures_from_outside_the_point_and_keeps_the_points_own(
    tmp_path: Path,
) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree", "serial-spin", "serial-mutex"],
                                    "workers": [2]}, duration=1.5)  # fmt: skip
    out = tmp_path / "results"
    harness = start(config, "--out", str(out))
    first = wait_for(lambda: len(workers_of(harness)) == 2 and workers_of(harness))
    time.sleep(0.3)
    os.kill(first[0], signal.SIGKILL)  # from outside: the OOM killer, a user
    second = wait_for(lambda: (w := workers_of(harness)) and not set(w) & set(first) and w,
                      what="the second point's workers")  # fmt: skip
    time.sleep(0.3)
    os.kill(second[0], signal.SIGSEGV)  # a crash of the core: the point's own failure
    _, stderr = harness.communicate(timeout=60)
    assert harness.returncode == 1, stderr
    run_dir = run_dir_in(out)
    got = rows(run_dir)
    assert [(r["status"], r["flags"]) for r in got][:2] == [
        ("failed", "worker-killed"), ("failed", "")]  # fmt: skip
    assert "SIGSEGV" in got[1]["error"]

    proc = resume_run(run_dir)
    assert proc.returncode == 1, proc.stderr  # point 1's own failure is kept
    assert "resume: running again 1 (point, rep) pair(s) that failed before (worker-killed 1)" \
        in proc.stderr  # fmt: skip
    after = {int(r["point"]): r for r in rows(run_dir)}
    assert len(rows(run_dir)) == 3
    assert after[0]["status"] == "ok" and after[1]["status"] == "failed"
    meta = json.loads((run_dir / "meta.json").read_text())
    redone = meta["sessions"][-1]["redone"]
    assert [(r["point"], r["rep"], r["flags"]) for r in redone] == [(0, 0, "worker-killed")]
    assert "SIGKILL" in redone[0]["error"]

    proc = resume_run(run_dir, "--redo-failed")
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in rows(run_dir)] == ["ok"] * 3
    with (run_dir / "workers.csv").open(newline="") as f:
        keys = [(r["point"], r["rep"], r["worker"]) for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys)) == 6


def test_a_full_dev_shm_mid_run_is_a_failure_from_outside_the_point(monkeypatch) -> None:
    """/dev/shm filling between points fails the point as shm-full, which --resume redoes."""
    import errno

    from iommubench.core.arena import ArenaSpaceError, space_message
    from iommubench.run import resume, sweep

    def full(params, timeout_s):
        raise ArenaSpaceError(errno.ENOSPC, space_message(2**20 + 4096, 2**20))

    monkeypatch.setattr(sweep, "run_point", full)
    task = sweep.Task(0, 0, {"workload": "prefault", "driver": "lockfree", "workers": 1})
    result = sweep.LocalExecutor().run(task, 1.0)
    row = sweep.make_row("r", task, result, 0.0)
    assert (row["status"], row["flags"]) == ("failed", "shm-full")
    stored = {(0, 0): {**{k: str(v) for k, v in row.items()}, "audit_ok": "", "host": ""}}
    assert list(resume.to_redo(stored, redo_failed=False)) == [(0, 0)]
