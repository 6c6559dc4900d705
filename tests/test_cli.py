"""The command line end to end, in subprocesses as a user runs it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iommubench.columns import POINT_COLUMNS

SMALL = {
    "name": "small",
    "repetitions": 2,
    "warmup_s": 0.01,
    "duration_s": 0.05,
    "defaults": {"workload": "prefault", "region_mib": 16, "chunk_pages": 1},
    "sweep": {"driver": ["lockfree", "naive"], "workers": [1, 2]},
}


def iommubench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iommubench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def write_config(tmp_path: Path, doc: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "points.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_a_complete_run_directory(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL)
    proc = iommubench("run", str(config), "--out", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    assert (run_dir / "config.yaml").is_file() and (run_dir / "meta.json").is_file()
    rows = read_rows(run_dir)
    assert len(rows) == 4 * 2
    assert list(rows[0]) == POINT_COLUMNS
    # interleaved: every point's rep 0 before any rep 1
    assert [r["rep"] for r in rows] == ["0"] * 4 + ["1"] * 4
    assert all(r["status"] == "ok" for r in rows)
    assert all(float(r["ops_per_s"]) > 0 for r in rows)
    assert len(list((run_dir / "hist").glob("*.npz"))) == 8
    with (run_dir / "workers.csv").open() as f:
        assert sum(1 for _ in f) == 1 + 2 * (1 + 2 + 1 + 2)


def test_resume_runs_only_missing_rows_and_refuses_a_changed_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL)
    proc = iommubench("run", str(config), "--out", str(tmp_path / "r"))
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    lines = (run_dir / "points.csv").read_text().splitlines(keepends=True)
    # drop the last three rows and tear the one before them, as a crash mid-write would
    torn = "".join(lines[:-3])[:-10]
    (run_dir / "points.csv").write_text(torn)
    proc = iommubench("run", str(config), "--resume", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(run_dir)
    assert sorted((int(r["point"]), int(r["rep"])) for r in rows) == [
        (p, r) for p in range(4) for r in range(2)
    ]
    changed = write_config(tmp_path, {**SMALL, "repetitions": 3}, "changed.yaml")
    proc = iommubench("run", str(changed), "--resume", str(run_dir))
    assert proc.returncode == 2
    assert "config differs" in proc.stderr


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({**SMALL, "sweep": {"driver": ["lockfre"]}}, "sweep.driver"),
        ({**SMALL, "defaults": {"wrkers": 2}}, "defaults.wrkers"),
        ({**SMALL, "sweep": {"workers": [0]}}, "sweep.workers"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_run_dir(tmp_path, doc, needle) -> None:
    config = write_config(tmp_path, doc)
    out = tmp_path / "results"
    proc = iommubench("run", str(config), "--out", str(out))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and needle in lines[0]
    assert not out.exists()


def test_bad_set_override_and_missing_file_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, SMALL)
    proc = iommubench("run", str(config), "--set", "driver=nope")
    assert proc.returncode == 2 and "allowed" in proc.stderr and "Traceback" not in proc.stderr
    proc = iommubench("run", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr


def test_list_names_every_strategy() -> None:
    proc = iommubench("list")
    assert proc.returncode == 0
    for name in ("serial-spin", "serial-mutex", "lockfree", "naive", "prefault"):
        assert name in proc.stdout


def test_report_on_a_non_run_directory_exits_2(tmp_path: Path) -> None:
    proc = iommubench("report", str(tmp_path))
    assert proc.returncode == 2 and "not a run directory" in proc.stderr


def test_compare_exit_codes_through_the_cli(tmp_path: Path) -> None:
    from fixtures.synthetic_run import make_run

    base = make_run(tmp_path, "base", handoff_flip=False, failed_rep=False)
    same = make_run(tmp_path, "same", handoff_flip=False, failed_rep=False)
    half = make_run(tmp_path, "half", scale=0.5, handoff_flip=False, failed_rep=False)
    assert iommubench("compare", str(base), str(base)).returncode == 0
    assert iommubench("compare", str(base), str(same), "--threshold", "5%").returncode == 0
    proc = iommubench("compare", str(base), str(half))
    assert proc.returncode == 1, proc.stdout
    assert iommubench("compare", str(base), str(half), "--threshold", "x").returncode == 2


def test_report_writes_markdown_html_and_figures(tmp_path: Path) -> None:
    from fixtures.synthetic_run import make_run

    run = make_run(tmp_path, "r")
    out = tmp_path / "rep"
    proc = iommubench("report", str(run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert len(list(out.glob("*.png"))) >= 4 and len(list(out.glob("*.svg"))) >= 4
