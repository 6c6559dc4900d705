"""Each lock of the `lock` axis on its own, under ThreadSanitizer (tests/native/lock_order.c).

The drivers' stress (test_native_tsan.py) shows every lock keeps the page table consistent;
this checks the properties of the algorithms themselves, with a plain counter as the
critical section:

- exclusion: 2 threads hammering a plain counter lose no increment and draw no TSan report;
- FIFO, for the locks whose catalogue entry promises it (IB_FIFO: ticket, mcs, qspinlock):
  four waiters that arrive one after another, each seen queued (the lock's NAME_queued hook)
  before the next starts, get the lock in arrival order;
- abort: a waiter behind a holder that never releases leaves when the point is aborted (the
  contract that keeps a dead holder from hanging the others), for every lock but those whose
  entry says IB_WAIT_OUTLIVES_ABORT (pthread-mutex: it can only leave a wait whose holder
  died, EOWNERDEAD, not one whose holder is alive).

The core is compiled once into objects; each lock's program links them without that lock's
own object (it #includes the lock file itself).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from iommubench.spec import catalogue

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "src" / "iommubench" / "core" / "native"
PROGRAM = Path(__file__).resolve().parents[1] / "native" / "lock_order.c"
CFLAGS = ["-O1", "-g", "-fsanitize=thread", "-std=gnu11", "-pthread"]
ABORTED_EXIT = 103  # ib_exit_aborted: 100 + IB_ERR_ABORTED
TIMEOUT_S = 60


def _lock_files() -> dict[str, tuple[str, str]]:
    """Each lock of locks.def by its C prefix: its file (relative to the native root) and the
    YAML name its IB_DEFINE_LOCK registers, which the catalogue knows it by."""
    text = (NATIVE / "locks" / "locks.def").read_text()
    prefixes = re.findall(r"^IB_LOCK_ENTRY\((\w+)\)", text, flags=re.M)
    out: dict[str, tuple[str, str]] = {}
    for path in sorted((NATIVE / "locks").glob("*.c")):
        source = path.read_text()
        prefix = re.search(r"^#define IB_LOCK_NAME (\w+)\s*$", source, flags=re.M)
        yaml_name = re.search(r'IB_DEFINE_LOCK\(\s*"([^"]*)"', source)
        if prefix and yaml_name and prefix.group(1) in prefixes:
            out[prefix.group(1)] = (path.relative_to(NATIVE).as_posix(), yaml_name.group(1))
    assert sorted(out) == sorted(prefixes), (out, prefixes)
    return out


LOCKS = _lock_files()


def _promising(flag: str) -> list[str]:
    """The prefixes of the locks whose catalogue entry sets `flag`."""
    entries = catalogue.axis("lock")
    return [prefix for prefix, (_, name) in LOCKS.items() if getattr(entries[name], flag)]


def _tsan_env() -> dict[str, str]:
    return {**os.environ, "TSAN_OPTIONS": "halt_on_error=0 exitcode=66"}


def _compile(src: Path, obj: Path) -> str:
    """Compiles one source under TSan; the compiler's complaint, or '' when it built."""
    cmd = ["gcc", *CFLAGS, f"-I{NATIVE}", "-c", str(src), "-o", str(obj)]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return build.stderr.strip()[-300:] if build.returncode != 0 else ""


@pytest.fixture(scope="module")
def core_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every core source compiled once under TSan (on every CPU), by path relative to the
    native root."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found")
    out = tmp_path_factory.mktemp("lock_order_objs")
    sources = sorted(NATIVE.rglob("*.c"))
    objects = {
        s.relative_to(NATIVE).as_posix(): out / f"{i}_{s.stem}.o" for i, s in enumerate(sources)
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        errors = list(pool.map(_compile, sources, objects.values()))
    failed = [e for e in errors if e]
    if failed:
        pytest.skip(f"TSan build unavailable: {failed[0]}")
    return objects


@pytest.fixture(scope="module")
def programs(core_objects: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("lock_order_bin")
    built: dict[str, Path] = {}

    def build(prefix: str) -> Path:
        if prefix not in built:
            exe = out / f"lock_order_{prefix}"
            own = LOCKS[prefix][0]
            others = [str(o) for rel, o in core_objects.items() if rel != own]
            defines = [f"-DLOCK={prefix}", f"-DLOCK_FILE={own}"]
            defines += ["-DLOCK_FIFO"] if prefix in _promising("fifo") else []
            cmd = ["gcc", *CFLAGS, f"-I{NATIVE}", *defines, str(PROGRAM), *others]
            subprocess.run([*cmd, "-o", str(exe)], check=True, timeout=120)
            built[prefix] = exe
        return built[prefix]

    return build


def _run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=_tsan_env()
    )


@pytest.mark.parametrize("prefix", LOCKS)
def test_lock_excludes(programs, prefix: str) -> None:
    run = _run(programs(prefix), "exclusion", "2", "5000")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ThreadSanitizer" not in run.stderr


@pytest.mark.parametrize("prefix", _promising("fifo"))
def test_queue_locks_serve_in_arrival_order(programs, prefix: str) -> None:
    run = _run(programs(prefix), "fifo", "10")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ThreadSanitizer" not in run.stderr


@pytest.mark.parametrize("prefix", [p for p in LOCKS if p not in _promising("wait_outlives_abort")])
def test_waiter_leaves_an_aborted_point(programs, prefix: str) -> None:
    run = _run(programs(prefix), "abort")
    assert run.returncode == ABORTED_EXIT, run.stdout + run.stderr
