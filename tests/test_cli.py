"""The command line end to end, in subprocesses as a user runs it."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iommubench.spec.columns import POINT_COLUMNS

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

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

    kw = dict(handoff_flip=False, failed_rep=False, reps=5)  # 3 against 3: no 95% interval
    base = make_run(tmp_path, "base", **kw)
    same = make_run(tmp_path, "same", **kw)
    half = make_run(tmp_path, "half", scale=0.5, **kw)
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


def one_line_refusal(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a bad-input exit (2), checked for the common rules."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("iommubench: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("seed=18446744073709551616", "--set seed: must be an integer in 0..18446744073709551615"),
        ("cycles=18446744073709551616", "--set cycles: must be an integer in 0..4294967295"),
        ("sample_every=4294967296", "--set sample_every: must be an integer in 0..4294967295"),
        ("unmap_pages=18446744073709551615", "--set unmap_pages: must be an integer in 1.."),
        ("unmap_pages=4097", "--set unmap_pages: unmap_pages 4097 (--set unmap_pages) exceeds"),
    ],
)
def test_values_that_overflow_the_native_types_exit_2(
    tmp_path: Path, override: str, needle: str
) -> None:
    config = write_config(tmp_path, SMALL)
    out = tmp_path / "results"
    proc = iommubench("run", str(config), "--out", str(out), "--set", override)
    line = one_line_refusal(proc)
    assert line.startswith(f"iommubench: {config}: ") and needle in line, line
    assert not out.exists()


def test_special_config_files_are_refused_at_once(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # with no writer, opening it would block forever
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(64 * 2**20)  # sparse: 64 MiB of zero bytes
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    cases = {
        fifo: "is a FIFO (named pipe), not a regular file",
        Path("/dev/zero"): "is a character device, not a regular file",
        tmp_path: "is a directory, not a regular file",
        huge: "is 67108864 bytes; a config file may be at most 1048576 bytes (1 MiB)",
        latin: "not UTF-8 text (byte 9)",
    }
    out = tmp_path / "results"
    for path, expected in cases.items():
        # the timeout only guards against a hang: a refusal takes well under a second
        proc = subprocess.run(
            [sys.executable, "-m", "iommubench.cli", "run", str(path), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert one_line_refusal(proc) == f"iommubench: {path}: {expected}" + (
            "; give a YAML config file" if "regular file" in expected else ""
        )
    assert not out.exists()


def test_a_60000_value_axis_is_refused_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "long.yaml"
    config.write_text("sweep:\n  seed: [" + ", ".join(map(str, range(60_000))) + "]\n")
    out = tmp_path / "results"
    line = one_line_refusal(iommubench("run", str(config), "--out", str(out)))
    assert line.startswith(
        f"iommubench: {config}: sweep: at least 60000 points (2 days at 3 repetitions of 1.2 s); "
        "at most 10000 per sweep"
    )
    assert not out.exists()


def test_workers_auto_is_recorded_in_the_run_directory(tmp_path: Path) -> None:
    from iommubench.spec.config import auto_workers

    doc = {**SMALL, "repetitions": 1, "sweep": {"workers": "auto"}}
    proc = iommubench("run", str(write_config(tmp_path, doc)), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["sweep"]["workers"] == auto_workers()
    assert [int(r["workers"]) for r in read_rows(run_dir)] == auto_workers()


def test_version_names_the_package_and_the_core() -> None:
    import re

    from iommubench import __version__
    from iommubench.core import binding

    proc = iommubench("--version")
    assert proc.returncode == 0, proc.stderr
    core = binding.lib().ib_core_version()
    pattern = rf"iommubench {re.escape(__version__)} \(native core {core}, "
    assert re.fullmatch(pattern + r"sources [0-9a-f]{16}\)\n", proc.stdout), proc.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "iommubench: the following arguments are required: COMMAND (see 'iommubench --help')"),
        (("frob",), "iommubench: argument COMMAND: invalid choice: 'frob'"),
        (("run",), "iommubench: run: the following arguments are required: config (see "),
        (("run", "x.yaml", "--bogus"), "iommubench: run: unrecognized arguments: --bogus (see "),
        (("list", "extra"), "iommubench: list: unrecognized arguments: extra"),
        (("dma-map-benchmark", "--invalidation", "x"), "iommubench: dma-map-benchmark: argument"),
        (("dma-map-benchmark", "-t", "x"), "iommubench: dma-map-benchmark: threads: 'x' is not"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], expected: str) -> None:
    line = one_line_refusal(iommubench(*args))
    assert line.startswith(expected), line


def test_every_owned_option_says_its_default_and_allowed_values() -> None:
    import argparse

    from iommubench.cli import _parser

    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    others = {"--out", "--resume", "--allow-different-build"}  # run's results-store options
    checked = 0
    for command in ("run", "list", "info", "dma-map-benchmark"):
        parser = sub.choices[command]
        assert parser.description, command
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or others & set(action.option_strings):
                continue
            assert action.help, (command, action.dest)
            if action.option_strings:  # an option: its default, and its values where limited
                assert "(default: " in action.help, (command, action.dest, action.help)
                checked += 1
    assert checked >= 11


def test_ctrl_c_while_the_config_loads_exits_130(tmp_path: Path) -> None:
    # A real SIGINT, delivered while the config is being parsed (the parser is slowed down so
    # the signal cannot land anywhere else).
    config = write_config(tmp_path, SMALL)
    out = tmp_path / "results"
    script = (
        "import os, signal, sys, time\n"
        # a shell's background job starts with SIGINT ignored; a terminal's Ctrl-C does not
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from iommubench import cli\nfrom iommubench.spec import config\n"
        "def slow(source, text):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(30)\n"
        "config.parse_yaml = slow\n"
        f"sys.exit(cli.main(['run', {str(config)!r}, '--out', {str(out)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "iommubench: interrupted\n"
    assert not out.exists()


def test_unexpected_errors_are_one_line_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from iommubench import cli

    def broken(_: object) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_list", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["list"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err == (
        "iommubench: internal error: ZeroDivisionError: division by zero (a bug; rerun with "
        "IOMMUBENCH_DEBUG=1 for the traceback and report it)\n"
    )
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["list"])

    def missing(_: object) -> int:
        raise FileNotFoundError(2, "No such file or directory", "/nonexistent/x")

    monkeypatch.setattr(cli, "cmd_info", missing)
    assert cli.main(["info"]) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err == "iommubench: /nonexistent/x: No such file or directory\n"
