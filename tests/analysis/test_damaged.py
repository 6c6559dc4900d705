"""Damaged or hand-edited results, with a real run directory and the real CLI: a damaged
npz, a bad value and a run still being written are each one line naming the file, never an
exit 70, and the repetition they touch never counts as valid in report, compare or plot."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from iommubench.analysis import compare, run_reader
from iommubench.analysis.point_summary import summarize
from iommubench.spec.columns import POINT_COLUMNS

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from fixtures.harness import config_file, wait_for  # noqa: E402

pytestmark = pytest.mark.slow  # runs the harness and the CLI in processes

DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "garbage": lambda p: p.write_text("not a histogram\n"),
    "empty": lambda p: p.write_bytes(b""),
    "wrong shape": lambda p: np.savez_compressed(p, map=np.zeros(8), unmap=np.zeros(8)),
    "a bare array": lambda p: _bare_array(p),
}


def _bare_array(path: Path) -> None:
    with path.open("wb") as f:
        np.save(f, np.zeros(4))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "IOMMUBENCH_ACTIVE_DIR": str(tmp_path / "active")}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iommubench.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run: 2 points x 2 repetitions."""
    tmp = tmp_path_factory.mktemp("finished")
    config = config_file(tmp, {"driver": ["lockfree", "serial-spin"], "workers": [1]}, 0.05, 2)
    env = {**os.environ, "IOMMUBENCH_ACTIVE_DIR": str(tmp / "active")}
    proc = cli("run", str(config), "--out", str(tmp / "results"), env=env)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[0])


def copy_run(finished: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "copy"
    shutil.copytree(finished, run_dir)
    return run_dir


def warning_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [ln for ln in stderr.splitlines() if ln.startswith("iommubench: warning: ")]


def edit_cell(run_dir: Path, line: int, column: str, value: str) -> None:
    path = run_dir / "points.csv"
    lines = path.read_text().splitlines(keepends=True)
    fields = next(csv.reader([lines[line - 1]]))
    fields[POINT_COLUMNS.index(column)] = value
    lines[line - 1] = ",".join(fields) + "\n"
    path.write_text("".join(lines))


# ------------------------------------------------------------------ a damaged npz


@pytest.mark.parametrize("damage", DAMAGE)
def test_the_reader_names_a_damaged_npz_and_sets_its_repetition_aside(
    finished, tmp_path, damage
) -> None:
    run_dir = copy_run(finished, tmp_path)
    npz = run_dir / "hist" / "p0001-r000.npz"
    DAMAGE[damage](npz)
    run, said = _load(run_dir)
    assert (
        len(said) == 1 and said[0].startswith(f"{npz}: ") and "point 1 rep 0 set aside" in said[0]
    )
    assert run.hist(1, 0) is None and run.series(1, 0) is None
    assert run.hist(1, 1) is not None
    row = run.points[(run.points["point"] == 1) & (run.points["rep"] == 0)].iloc[0]
    assert run_reader.invalid_reason(row) == "damaged-file"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_npz_is_one_line_in_report_plot_and_compare_never_exit_70(
    finished, tmp_path, env, damage
) -> None:
    run_dir = copy_run(finished, tmp_path)
    npz = run_dir / "hist" / "p0001-r000.npz"
    DAMAGE[damage](npz)
    commands = {
        "report text": ("report", str(run_dir), "--format", "text"),
        "report": ("report", str(run_dir), "--out", str(tmp_path / "report")),
        "plot": ("plot", str(run_dir), "--out", str(tmp_path / "plot")),
        "compare": ("compare", str(finished), str(run_dir), "--format", "json"),
    }
    for name, args in commands.items():
        proc = cli(*args, env=env)
        assert proc.returncode in (0, 1), (name, proc.stderr)  # never 70
        said = [ln for ln in warning_lines(proc.stderr) if str(npz) in ln]
        assert len(said) == 1 and "point 1 rep 0 set aside" in said[0], (name, proc.stderr)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    point = next(p for p in summary["points"] if p["point"] == 1)
    assert point["n"] == 1 and point["set_aside"] == {"damaged-file": 1}
    verdicts = json.loads(cli(*commands["compare"], env=env).stdout)
    assert len(verdicts) == 2  # the point is still matched, on its one valid repetition


def test_resume_refuses_a_damaged_npz_naming_it(finished, tmp_path, env) -> None:
    run_dir = copy_run(finished, tmp_path)
    npz = run_dir / "hist" / "p0000-r001.npz"
    DAMAGE["truncated"](npz)
    proc = cli("run", str(run_dir / "config.yaml"), "--resume", str(run_dir), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"iommubench: --resume: {npz}: unreadable")


# ------------------------------------------------------------------ values the writer never writes

BAD_VALUES = {
    # line, column, value, what the reader says
    "negative throughput": (2, "ops_per_s", "-5e7", "is out of range"),
    "NaN": (3, "ops_per_s", "nan", "is not a number (NaN)"),
    "infinity": (4, "lock_wait_ns", "inf", "is out of range"),
    "overflow": (5, "ops_per_s", "1e300", "is out of range"),
}


def _load(run_dir: Path) -> tuple[run_reader.Run, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = run_reader.load_run(run_dir)
    said = [str(w.message) for w in caught if w.category is run_reader.RunDataWarning]
    return run, said


def test_the_reader_sets_aside_each_value_the_writer_never_writes(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path)
    for line, column, value, _ in BAD_VALUES.values():
        edit_cell(run_dir, line, column, value)
    run, said = _load(run_dir)
    assert len(said) == len(BAD_VALUES)
    for line, column, value, says in BAD_VALUES.values():
        one = [s for s in said if f"points.csv line {line}:" in s]
        assert len(one) == 1 and f"{column} '{value}' {says}" in one[0], said
    assert run_reader.valid_mask(run.points).sum() == 0  # every row was touched
    assert run.points["flags"].map(lambda f: "bad-value" in str(f)).all()
    # nothing refused reaches a number: no negative, infinite or absurd value anywhere
    numbers = run.points[["ops_per_s", "lock_wait_ns"]].to_numpy(dtype=float)
    assert not np.isinf(numbers).any() and not (numbers < 0).any() and np.nanmax(numbers) < 1e20


def test_an_ok_row_with_no_work_is_set_aside_as_no_work(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path)
    edit_cell(run_dir, 2, "ops", "0")
    run, said = _load(run_dir)
    assert said == [f"{run_dir / 'points.csv'} line 2: point 0 rep 0: status ok but ops 0; "
                    "set aside as no-work"]  # fmt: skip
    row = run.points[(run.points["point"] == 0) & (run.points["rep"] == 0)].iloc[0]
    assert run_reader.invalid_reason(row) == "no-work"
    summary = summarize(run).set_index("point")
    assert summary.loc[0, "n"] == 1 and summary.loc[0, "ops_per_s"] > 0


def test_compare_of_an_overflowing_value_warns_of_nothing_but_the_value(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path)
    edit_cell(run_dir, 2, "ops_per_s", "1e300")
    edit_cell(run_dir, 4, "ops_per_s", "1e300")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text, _ = compare.compare(finished, run_dir, 0.05, [], "json", False)
    others = [w for w in caught if w.category is not run_reader.RunDataWarning]
    assert not others, [str(w.message) for w in others]  # no numpy overflow
    for verdict in json.loads(text):
        assert verdict["new_estimate"] is None or verdict["new_estimate"] < 1e20


def test_cli_names_each_bad_value_once(finished, tmp_path, env) -> None:
    run_dir = copy_run(finished, tmp_path)
    for line, column, value, _ in BAD_VALUES.values():
        edit_cell(run_dir, line, column, value)
    proc = cli("report", str(run_dir), "--format", "text", env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(warning_lines(proc.stderr)) == len(BAD_VALUES)


# ------------------------------------------------------------------ a run not finished


def rows_so_far(run_dir: Path) -> int:
    try:
        return len((run_dir / "points.csv").read_text().splitlines()) - 1
    except FileNotFoundError:
        return 0


def test_report_and_compare_of_a_run_being_written_or_killed_say_it_is_incomplete(
    tmp_path, env
) -> None:
    config = config_file(tmp_path, {"driver": ["lockfree"], "workers": [1]}, 0.5, 60)
    out = tmp_path / "results"
    run = subprocess.Popen(
        [sys.executable, "-m", "iommubench.cli", "run", str(config), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        run_dir = wait_for(lambda: next(iter(out.glob("*-faults")), None), what="the run dir")
        wait_for(lambda: rows_so_far(run_dir) >= 2, timeout=60, what="two rows")
        for args in (("report", str(run_dir), "--format", "text"),
                     ("compare", str(run_dir), str(run_dir))):  # fmt: skip
            proc = cli(*args, env=env)
            said = warning_lines(proc.stderr)
            assert any(f"{run_dir} is still being written (pid {run.pid}" in s for s in said), (
                proc.stderr
            )
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    proc = cli("report", str(run_dir), "--format", "text", env=env)
    said = warning_lines(proc.stderr)
    assert any("its last session never ended (killed?)" in s for s in said), proc.stderr
