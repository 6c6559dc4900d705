"""Nothing lost, nothing false, with real processes and files: whole-or-absent rows, a resume
that checks every stored row and the build, one writer per run directory, a resume command
that works as printed, SIGHUP, a full /dev/shm and a bad --out."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iommubench.core import binding
from iommubench.core.arena import our_segments
from iommubench.run import store
from iommubench.run.runlock import RunDirLock
from iommubench.spec.columns import POINT_COLUMNS

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from fixtures.harness import config_file, run_dir_in, wait_for, workers_of  # noqa: E402

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

QUICK = ("--set", "duration_s=0.02")


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


NEEDS_MOUNT = pytest.mark.skipif(
    not can_unshare(), reason="needs `unshare -m` and tmpfs mounts (root) to make a small disk"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private registry of active runs, so other test runs on this machine are not seen."""
    return {**os.environ, "IOMMUBENCH_ACTIVE_DIR": str(tmp_path / "active")}


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "iommubench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "iommubench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def one_line_refusal(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iommubench: "), proc.stderr
    return lines[0]


def point_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "points.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def pairs(run_dir: Path) -> list[tuple[int, int]]:
    return sorted((int(r["point"]), int(r["rep"])) for r in point_rows(run_dir))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run: 2 points x 2 repetitions."""
    tmp = tmp_path_factory.mktemp("finished")
    config = config_file(tmp, {"driver": ["lockfree", "serial-spin"], "workers": [1]}, 0.02, 2)
    proc = cli("run", str(config), "--out", str(tmp / "results"))
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[0])


def copy_run(finished: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "copy"
    shutil.copytree(finished, run_dir)
    return run_dir


def resume(run_dir: Path, *extra: str, env: dict[str, str] | None = None):
    return cli("run", str(run_dir / "config.yaml"), "--resume", str(run_dir), *extra, env=env)


# ------------------------------------------------------------------ a row is whole or absent


def test_a_short_write_is_continued_until_the_row_is_whole(tmp_path, monkeypatch) -> None:
    real_write = os.write
    calls = []

    def short_write(fd: int, data) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data)[:7])  # the kernel may write less than asked

    path = tmp_path / "points.csv"
    line = b"0,1,ok," + b"x" * 100 + b"\n"
    monkeypatch.setattr(store.os, "write", short_write)
    store._append_durably(path, line)
    assert path.read_bytes() == line and len(calls) > 1


def test_a_failed_write_cuts_the_file_back_to_its_last_whole_row(tmp_path, monkeypatch) -> None:
    real_write = os.write
    path = tmp_path / "points.csv"
    path.write_bytes(b"header\nrow 1\n")

    def fill_up(fd: int, data) -> int:
        if len(data) > 5:
            return real_write(fd, bytes(data)[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "write", fill_up)
    with pytest.raises(store.StoreWriteError, match="No space left"):
        store._append_durably(path, b"row 2 that does not fit\n")
    assert path.read_bytes() == b"header\nrow 1\n"


def test_the_store_refuses_a_pair_it_already_holds(tmp_path: Path) -> None:
    run = store.RunStore.create(tmp_path / "run", {"name": "x"}, {})
    row = {"run_id": run.run_id, "point": 0, "rep": 0, "status": "ok"}
    hist = np.zeros(4, dtype=np.uint64)
    run.append(row, [{"worker": 0}], hist, hist)
    with pytest.raises(ValueError, match="already"):
        run.append(row, [{"worker": 0}], hist, hist)
    assert run.completed() == {(0, 0)}


FILL_AND_RESUME = r"""
import os, subprocess, sys, time, pathlib
out, config, venv_bin = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(out)], check=True)
run = subprocess.Popen([sys.executable, "-m", "iommubench.cli", "run", config, "--out",
                        str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline and run.poll() is None:
    found = list(out.glob("*-faults/points.csv"))
    if found and found[0].read_text().count("\n") >= 2:
        break
    time.sleep(0.01)
# fill the disk, leaving a few hundred bytes: the next row is written short, then fails
try:
    with open(out / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
except OSError:
    pass
_, err = run.communicate(timeout=120)
print("RC", run.returncode)
print("ERR", err.strip().splitlines()[-1])
print("CSV", found[0].read_text().replace("\n", "\\n"))
(out / "filler").unlink()
cmd = err.strip().split("resume with: ")[-1]
env = {**os.environ, "PATH": venv_bin + ":" + os.environ["PATH"]}
res = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=120)
print("RESUMED", res.returncode, res.stderr.strip().replace("\n", " | "))
"""


@NEEDS_MOUNT
def test_a_disk_that_fills_mid_run_keeps_whole_rows_and_the_printed_resume_finishes(
    tmp_path: Path, env: dict[str, str]
) -> None:
    sweep = {"driver": ["lockfree", "serial-spin", "serial-mutex"], "workers": [1, 2],
             "chunk_pages": [1, 2]}  # fmt: skip
    config = config_file(tmp_path, sweep, 0.05)  # 12 points
    out = tmp_path / "small"
    out.mkdir()
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", FILL_AND_RESUME, str(out), str(config),
         str(Path(sys.executable).parent)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    report = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert report.get("RC") == "1", proc.stdout + proc.stderr
    assert "No space left on device" in report["ERR"] and "resume with" in report["ERR"]
    assert "Traceback" not in proc.stdout
    kept = report["CSV"].split("\\n")
    assert kept[-1] == ""  # ends with a whole line
    assert all(len(next(csv.reader([line]))) == len(POINT_COLUMNS) for line in kept[:-1])
    assert 2 <= len(kept) - 1 < 13  # the header, then the rows that fitted
    assert report.get("RESUMED", "").startswith("0"), proc.stdout


# ------------------------------------------------------------------ resume checks every row


def _edit_line(path: Path, number: int, change) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1 : number] = change(lines[number - 1])
    path.write_text("".join(lines))


def _field(line: str, column: str, value: str) -> list[str]:
    fields = next(csv.reader([line]))
    fields[POINT_COLUMNS.index(column)] = value
    return [",".join(fields) + "\n"]


CORRUPTIONS = {
    "torn row glued to the next": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: [s[: len(s) // 2]]), "line 2"),
    "edited parameter": (
        "points.csv", lambda p: _edit_line(p, 3, lambda s: _field(s, "driver", "tas")), "line 3"),
    "duplicated row": (
        "points.csv", lambda p: _edit_line(p, 4, lambda s: [s, s]), "line 5"),
    "point out of range": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: _field(s, "point", "7")), "line 2"),
    "rep out of range": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: _field(s, "rep", "2")), "line 2"),
    "non-integer point": (
        "points.csv", lambda p: _edit_line(p, 3, lambda s: _field(s, "point", "x")), "line 3"),
    "negative count": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: _field(s, "ops", "-5")), "line 2"),
    "NaN throughput": (
        "points.csv", lambda p: _edit_line(p, 3, lambda s: _field(s, "ops_per_s", "nan")),
        "line 3: ops_per_s 'nan' is not a number (NaN)"),
    "an overflowing value": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: _field(s, "ops_per_s", "1e300")),
        "line 2: ops_per_s '1e300' is out of range"),
    "truncated npz": (
        "hist/p0001-r000.npz", lambda p: p.write_bytes(p.read_bytes()[:100]), "unreadable"),
    "garbage npz": ("hist/p0000-r001.npz", lambda p: p.write_text("garbage\n"), "not an npz"),
    "not a boolean": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: _field(s, "audit_ok", "yes")), "line 2"),
    "unknown status": (
        "points.csv", lambda p: _edit_line(p, 2, lambda s: _field(s, "status", "done")), "line 2"),
    "no header": ("points.csv", lambda p: _edit_line(p, 1, lambda s: []), "line 1"),
    "an older header": (
        "points.csv", lambda p: _edit_line(p, 1, lambda s: [s.replace(",version", "")]),
        "line 1"),
    "empty file": ("points.csv", lambda p: p.write_text(""), "empty"),
    "duplicated worker row": (
        "workers.csv", lambda p: _edit_line(p, 2, lambda s: [s, s]), "line 3"),
}  # fmt: skip


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_resume_refuses_a_bad_row_naming_its_line(finished, tmp_path, env, name) -> None:
    run_dir = copy_run(finished, tmp_path)
    file, corrupt, where = CORRUPTIONS[name]
    corrupt(run_dir / file)
    before = (run_dir / "points.csv").read_bytes()
    line = one_line_refusal(resume(run_dir, env=env))
    assert f"{run_dir / file}" in line and where in line, line
    assert (run_dir / "points.csv").read_bytes() == before  # nothing ran, nothing appended


def test_resume_of_a_complete_run_adds_nothing(finished, tmp_path, env) -> None:
    run_dir = copy_run(finished, tmp_path)
    before = (run_dir / "points.csv").read_bytes()
    proc = resume(run_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "points.csv").read_bytes() == before


def test_resume_reruns_a_missing_pair_without_duplicating_its_worker_rows(
    finished, tmp_path, env
) -> None:
    run_dir = copy_run(finished, tmp_path)
    # a crash between the two appends: point 1 rep 1 is in workers.csv but not in points.csv
    _edit_line(run_dir / "points.csv", 5, lambda s: [])
    proc = resume(run_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    assert pairs(run_dir) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    with (run_dir / "workers.csv").open(newline="") as f:
        keys = [(r["point"], r["rep"], r["worker"]) for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys)) == 4


# ------------------------------------------------------------------ provenance


def test_meta_and_every_row_name_the_build(finished) -> None:
    meta = json.loads((finished / "meta.json").read_text())
    core_hash = binding.built_source_hash()
    assert meta["build"]["core_hash"] == core_hash and meta["build"]["version"]
    assert meta["sessions"][0]["outcome"] == "completed"
    assert {(r["core_hash"], r["version"]) for r in point_rows(finished)} == {
        (core_hash, meta["build"]["version"])
    }


def test_resume_refuses_another_build_unless_allowed_and_records_it(finished, tmp_path, env):
    run_dir = copy_run(finished, tmp_path)
    _edit_line(run_dir / "points.csv", 5, lambda s: [])  # one pair left to run
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["build"]["core_hash"] = "0123456789abcdef"  # the run began on another native core
    (run_dir / "meta.json").write_text(json.dumps(meta))
    line = one_line_refusal(resume(run_dir, env=env))
    assert "core_hash 0123456789abcdef" in line and "--allow-different-build" in line
    proc = resume(run_dir, "--allow-different-build", env=env)
    assert proc.returncode == 0, proc.stderr
    sessions = json.loads((run_dir / "meta.json").read_text())["sessions"]
    assert sessions[-1]["allow_different_build"] is True
    assert sessions[-1]["build"]["core_hash"] == binding.built_source_hash()
    assert pairs(run_dir) == [(0, 0), (0, 1), (1, 0), (1, 1)]


# ------------------------------------------------------------------ one writer per directory


def test_a_second_writer_is_refused_naming_the_holder(finished, tmp_path, env) -> None:
    run_dir = copy_run(finished, tmp_path)
    lock = RunDirLock(run_dir, "iommubench run held-by-test")
    try:
        line = one_line_refusal(resume(run_dir, env=env))
    finally:
        lock.release()
    assert f"pid {os.getpid()}" in line and "held-by-test" in line
    assert resume(run_dir, env=env).returncode == 0  # released: the next writer gets it


def test_a_resume_while_the_run_writes_is_refused_and_runs_see_each_other(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # long enough to outlast the refused resume and the second run on a loaded machine (it
    # ends with SIGINT below, so its length costs nothing)
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, duration=60.0)
    first = start("run", str(config), "--out", str(tmp_path / "a"), env=env)
    run_dir = run_dir_in(tmp_path / "a")
    wait_for(lambda: workers_of(first), what="the first run's workers")
    line = one_line_refusal(resume(run_dir, env=env))
    assert f"pid {first.pid}" in line
    (tmp_path / "b").mkdir()
    quick = config_file(tmp_path / "b", {"driver": ["lockfree"], "workers": [1]}, 0.02)
    second = cli("run", str(quick), "--out", str(tmp_path / "b"), env=env)
    assert second.returncode == 0, second.stderr
    assert f"pid {first.pid}" in second.stderr and "warning" in second.stderr
    other = Path(second.stdout.strip())
    seen = json.loads((other / "meta.json").read_text())["sessions"][0]["overlapping_runs"]
    assert [o.get("pid") for o in seen] == [first.pid], seen
    first.send_signal(signal.SIGINT)  # the first run has seen the second: stop it
    assert first.wait(timeout=60) == 130
    told = json.loads((run_dir / "meta.json").read_text())["sessions"][0]["overlapping_runs"]
    assert [o["run_dir"] for o in told] == [str(other.resolve())]


# ------------------------------------------------------------------ interrupts and resume


def test_the_printed_resume_command_works_as_printed(tmp_path: Path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree", "serial-spin"], "workers": [1]})
    harness = start(
        "run", str(config), "--out", str(tmp_path / "r"), "--set", "duration_s=0.3",
        "--set", "sweep.workers=[1,2]", env=env,
    )  # fmt: skip
    run_dir = run_dir_in(tmp_path / "r")
    csv_there = (run_dir / "points.csv").is_file
    wait_for(lambda: csv_there() and len(point_rows(run_dir)) >= 1, what="the first row")
    harness.send_signal(signal.SIGINT)
    _, stderr = harness.communicate(timeout=30)
    assert harness.returncode == 130, stderr
    printed = stderr.strip().splitlines()[-1].strip()
    assert printed == (run_dir / "RESUME").read_text().strip()
    kept = point_rows(run_dir)
    bin_dir = str(Path(sys.executable).parent)
    proc = subprocess.run(
        printed, shell=True, capture_output=True, text=True, timeout=120, cwd="/",
        env={**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert pairs(run_dir) == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert point_rows(run_dir)[: len(kept)] == kept


def test_sighup_stops_cleanly_and_leaves_the_resume_command_in_the_run_dir(tmp_path, env):
    config = config_file(tmp_path, {"driver": ["serial-spin"], "workers": [2]})
    harness = start("run", str(config), "--out", str(tmp_path / "r"), env=env)
    run_dir = run_dir_in(tmp_path / "r")
    workers = wait_for(lambda: len(workers_of(harness)) == 2 and workers_of(harness))
    assert our_segments(harness.pid)  # the arena exists while the point runs
    harness.send_signal(signal.SIGHUP)
    _, stderr = harness.communicate(timeout=30)
    assert harness.returncode == 130 and "Traceback" not in stderr, stderr
    assert not our_segments(harness.pid)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert (run_dir / "RESUME").read_text().startswith("iommubench run ")
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["sessions"][-1]["outcome"] == "interrupted by SIGHUP"


# ------------------------------------------------------------------ /dev/shm and --out


SHM = r"""
import subprocess, sys
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", "/dev/shm"], check=True)
if sys.argv[1] == "arena":
    from iommubench.core.arena import Arena, ArenaSpaceError, our_segments
    from iommubench.spec.parameters import native_params
    from iommubench.spec.config import parse_sweep
    defaults = {"workload": "prefault", "region_mib": 1024, "chunk_pages": 1}  # a 4.5 MiB arena
    point = parse_sweep({"defaults": defaults}, "x").points[0]
    try:
        Arena(native_params(point))
    except ArenaSpaceError as exc:
        print("REFUSED", exc.strerror, "LEFT", our_segments())
else:
    proc = subprocess.run([sys.executable, "-m", "iommubench.cli", "run", *sys.argv[2:]],
                          capture_output=True, text=True)
    print("RC", proc.returncode, proc.stderr.strip().replace("\n", " | "))
"""


@NEEDS_MOUNT
def test_a_full_dev_shm_refuses_the_run_with_what_it_needs(tmp_path: Path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.02)
    out = tmp_path / "results"
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", SHM, "run", str(config), "--out", str(out),
         "--set", "region_mib=1024"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.stdout.startswith("RC 2 iommubench: /dev/shm cannot hold the arena"), proc
    assert "MiB is free" in proc.stdout and "|" not in proc.stdout
    assert not out.exists() or not any(out.iterdir())


@NEEDS_MOUNT
def test_an_arena_that_does_not_fit_fails_at_creation_not_with_sigbus() -> None:
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", SHM, "arena"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("REFUSED /dev/shm cannot hold the arena: it needs"), proc
    assert proc.stdout.strip().endswith("LEFT []")


def test_out_that_is_a_file_or_too_long_is_refused(finished, tmp_path: Path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.02)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    line = one_line_refusal(cli("run", str(config), "--out", str(a_file), env=env))
    assert "--out" in line and "not a directory" in line
    line = one_line_refusal(cli("run", str(config), "--out", str(a_file / "sub"), env=env))
    assert "Not a directory" in line
    too_long = tmp_path / ("x" * 300)
    line = one_line_refusal(cli("run", str(config), "--out", str(too_long), env=env))
    assert "too long" in line
    line = one_line_refusal(cli("report", str(finished), "--out", str(a_file), env=env))
    assert "--out" in line and "not a directory" in line


OUT_MOUNT = r"""
import subprocess, sys
out, opts = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", out], check=True)
if "size" in opts:  # fill it up
    try:
        with open(out + "/filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
proc = subprocess.run([sys.executable, "-m", "iommubench.cli", "run", *sys.argv[3:], "--out",
                       out], capture_output=True, text=True)
import os
print("RC", proc.returncode, proc.stderr.strip().replace("\n", " | "))
print("LEFT", sorted(set(os.listdir(out)) - {"filler"}))
"""


@NEEDS_MOUNT
@pytest.mark.parametrize("opts, says", [("ro", "Read-only"), ("size=8k", "No space left")])
def test_out_on_a_read_only_or_full_filesystem_is_refused(tmp_path, env, opts, says) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.02)
    out = tmp_path / "mnt"
    out.mkdir()
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", OUT_MOUNT, str(out), opts, str(config)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    first, left = proc.stdout.splitlines()
    assert first.startswith("RC 2 iommubench: --out") and says in first, proc
    assert "|" not in first and "Traceback" not in first
    assert left == "LEFT []"  # no run directory left behind


def test_a_run_outlives_no_lock_files_of_its_own(tmp_path: Path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.02)
    proc = cli("run", str(config), "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert list(Path(env["IOMMUBENCH_ACTIVE_DIR"]).iterdir()) == []
