"""Concurrency and limits, with real processes and files: concurrent reproductions never
share an output directory, a memory limit is one line naming it (never a spin or exit 70), a
report interrupted or killed leaves a whole report or none, the /dev/shm message tells its
two sizes apart, and a killed run's entry leaves the registry of active runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from iommubench.core import arena, memlimit
from iommubench.run.runlock import ActiveRun

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from fixtures.cases import TINY  # noqa: E402
from fixtures.harness import config_file, wait_for  # noqa: E402

pytestmark = pytest.mark.slow  # runs the harness, reproduce and reports in processes

CLI = [sys.executable, "-m", "iommubench.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "IOMMUBENCH_ACTIVE_DIR": str(tmp_path / "active")}


def cli(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 300):
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


def start(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iommubench: "), proc.stderr
    return lines[0]


# ------------------------------------------------------------------ reproduce's output


@pytest.fixture
def tiny_cases(tmp_path: Path) -> Path:
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "tiny.yaml").write_text(TINY)
    return cases


def test_two_reproductions_started_in_the_same_second_write_two_directories(
    tmp_path, env, tiny_cases
) -> None:
    # every name a reproduction starting in the next minute would take is already there, as
    # if another had started that second: each must take a fresh suffixed one of its own
    taken = tmp_path / "results"
    now = datetime.now()
    for s in range(60):
        (taken / f"reproduce-{(now + timedelta(seconds=s)):%Y%m%d-%H%M%S}").mkdir(parents=True)
    before = set(taken.iterdir())
    runs = [start("reproduce", "--cases", str(tiny_cases), env=env, cwd=tmp_path) for _ in "ab"]
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    new = set(taken.iterdir()) - before
    assert len(new) == 2, sorted(p.name for p in new)
    for out in new:
        assert out.name.rsplit("-", 1)[-1] in ("2", "3")  # the stamp's own name was taken
        assert json.loads((out / "reproduce.json").read_text())["rows"]
    assert not any(any(p.iterdir()) for p in before)


def test_a_second_reproduction_into_the_same_out_is_refused_in_one_line(
    tmp_path, env, tiny_cases
) -> None:
    long = TINY.replace("duration_s: 0.2", "duration_s: 10").replace("cycles: 1", "cycles: 0")
    (tiny_cases / "tiny.yaml").write_text(long)
    out = tmp_path / "out"
    first = start("reproduce", "--cases", str(tiny_cases), "--out", str(out), env=env)
    try:
        wait_for(lambda: (out / "runs").exists(), timeout=120, what="the first to start")
        line = one_line(cli("reproduce", "--cases", str(tiny_cases), "--out", str(out), env=env), 2)
        assert line.startswith(f"iommubench: --out {out} is being written by pid {first.pid}")
    finally:
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr


# ------------------------------------------------------------------ a memory limit


def limited(kib: int, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI under `ulimit -v KIB` (the timeout turns a spin into a failure, not a hang)."""
    command = " ".join([f"ulimit -v {kib};", "exec", *CLI, *args])
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.parametrize("kib", [150_000, 250_000, 300_000])
def test_a_tight_memory_limit_is_one_line_naming_it(tmp_path, env, kib) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.05)
    out = tmp_path / "results"
    line = one_line(limited(kib, "run", str(config), "--out", str(out), env=env), 2)
    assert f"the address-space limit (ulimit -v {kib})" in line
    assert not out.exists()


def test_an_arena_beyond_the_memory_limit_is_refused_before_the_run(tmp_path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.05)
    out = tmp_path / "results"
    proc = limited(500_000, "run", str(config), "--out", str(out), "--set", "region_mib=65536",
                   env=env)  # fmt: skip
    line = one_line(proc, 2)
    assert "(ulimit -v 500000)" in line and "cannot hold the largest arena of this run" in line
    assert not out.exists()


def test_a_run_under_a_workable_limit_completes_with_one_blas_thread(tmp_path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1, 2]}, 0.05)
    proc = limited(700_000, "run", str(config), "--out", str(tmp_path / "results"), env=env)
    assert proc.returncode == 0, proc.stderr


def test_out_of_memory_under_a_limit_is_named_and_without_one_is_not(monkeypatch) -> None:
    from iommubench import cli as cli_module

    monkeypatch.setattr(memlimit, "limit_bytes", lambda: 250_000 * 1024)
    mapped = ImportError("libscipy_openblas.so: failed to map segment from shared object")
    line = cli_module._out_of_memory(mapped)
    assert line and line.startswith("out of memory under the address-space limit (ulimit -v")
    assert cli_module._out_of_memory(ImportError("No module named 'x'")) is None
    monkeypatch.setattr(memlimit, "limit_bytes", lambda: None)
    assert cli_module._out_of_memory(MemoryError()) is None


# ------------------------------------------------------------------ a report is whole or absent


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("finished")
    config = config_file(tmp, {"driver": ["lockfree", "serial-spin"], "workers": [1, 2]}, 0.05, 2)
    env = {**os.environ, "IOMMUBENCH_ACTIVE_DIR": str(tmp / "active")}
    proc = cli("run", str(config), "--out", str(tmp / "results"), env=env)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[0])


def staging(reports: Path) -> list[Path]:
    return sorted(reports.glob(".*partial*")) if reports.exists() else []


def report_midway(finished: Path, dest: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """A report started and caught while it writes its files (its staging directory has
    its first figure)."""
    proc = start("report", str(finished), "--out", str(dest), env=env)
    wait_for(lambda: any(any(s.glob("*.png")) for s in staging(dest.parent)),
             timeout=120, what="the report to be writing")  # fmt: skip
    return proc


def test_sigterm_during_a_report_leaves_no_report_and_says_so(finished, tmp_path, env) -> None:
    dest = tmp_path / "reports" / "r"
    proc = report_midway(finished, dest, env)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == "iommubench: interrupted by SIGTERM"
    assert not dest.exists() and staging(dest.parent) == []


def test_an_interrupted_report_leaves_the_previous_one_whole(finished, tmp_path, env) -> None:
    dest = tmp_path / "reports" / "r"
    assert cli("report", str(finished), "--out", str(dest), env=env).returncode == 0
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    proc = report_midway(finished, dest, env)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before


def test_a_killed_report_leaves_nothing_under_its_name_and_the_next_cleans_up(
    finished, tmp_path, env
) -> None:
    dest = tmp_path / "reports" / "r"
    proc = report_midway(finished, dest, env)
    proc.kill()
    proc.communicate(timeout=60)
    assert not dest.exists() and len(staging(dest.parent)) == 1
    again = cli("report", str(finished), "--out", str(dest), env=env)
    assert again.returncode == 0, again.stderr
    assert (dest / "summary.json").is_file() and (dest / "report.html").is_file()
    assert staging(dest.parent) == []


# ------------------------------------------------------------------ smaller


def test_the_dev_shm_message_never_reads_two_equal_sizes() -> None:
    for needed, free in ((2**20 + 4096, 2**20), (2**20 + 40, 2**20), (5 * 2**20, 2**20)):
        message = arena.space_message(needed, free)
        need = message.split("needs ", 1)[1].split(", ", 1)[0]
        have = message.split(", ", 1)[1].removesuffix(" is free")
        assert need != have, message


def test_a_killed_runs_entry_leaves_the_registry_of_active_runs(tmp_path, env) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 5.0)
    active = Path(env["IOMMUBENCH_ACTIVE_DIR"])
    run = start("run", str(config), "--out", str(tmp_path / "r1"), env=env)
    entry = active / f"{run.pid}.lock"
    wait_for(entry.exists, timeout=60, what="the run's entry")
    run.kill()
    run.communicate(timeout=30)
    assert entry.exists()  # SIGKILL: nobody removed it
    mine = ActiveRun("test", tmp_path, where=active)
    try:
        assert mine.others() == []
    finally:
        mine.release()
    assert not entry.exists()
