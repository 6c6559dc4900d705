"""Who writes what: one writer per run directory, and which runs are active on this machine.

A run directory holds a `lock` file that its writer (a run or a resume) keeps locked with
`flock` for as long as it runs, holding the writer's pid, host and command. A second writer
fails to take it and is refused, naming the holder. The kernel drops the lock when the
writer dies however it dies, so a stale lock file never blocks anyone.

Every run also holds a lock file of its own in a machine-wide directory (IOMMUBENCH_ACTIVE_DIR,
else iommubench-active in the temp directory). A run finds the others active beside it by
trying each file: one it cannot lock belongs to a live run. Two runs at once halve each
other's throughput, so a run warns of the others and records them in meta.json; it also
appends a line naming itself to each other run's file, so a run that started first learns of
one that came and went while it ran, and records that too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from iommubench.core.pids import pid_alive

LOCK_NAME = "lock"
ACTIVE_ENV = "IOMMUBENCH_ACTIVE_DIR"


class RunLockedError(Exception):
    """Another process writes this run directory."""


def _holder(command: str, run_dir: Path | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "host": platform.node(),
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if run_dir is not None:
        info["run_dir"] = str(run_dir.resolve())
    return info


def _lock_file(path: Path, holder: dict[str, Any]) -> int | None:
    """The fd of `path` locked exclusively with `holder` written in it; None if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    return fd


def _read_holder(path: Path) -> dict[str, Any]:
    """The holder line (the first) of a lock file; {} while it is being written."""
    try:
        return json.loads(path.read_text().partition("\n")[0] or "{}")
    except (OSError, ValueError):
        return {}


class RunDirLock:
    """The exclusive lock on one run directory, held until release() or process exit."""

    def __init__(self, run_dir: Path, command: str) -> None:
        path = run_dir / LOCK_NAME
        fd = _lock_file(path, _holder(command))
        if fd is None:
            who = _read_holder(path)
            raise RunLockedError(
                f"{run_dir} is being written by pid {who.get('pid', '?')} on "
                f"{who.get('host', '?')} ({who.get('command', 'unknown command')}); "
                "wait for it to finish or stop it first"
            )
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last fd drops the flock
            self._fd = None


def _flock_holders(path: Path) -> set[int] | None:
    """The pids holding a flock on `path` (from /proc/locks), or None when it cannot tell."""
    try:
        st = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == want:
            with contextlib.suppress(ValueError):
                holders.add(int(fields[4]))
    return holders


def writer_of(run_dir: Path) -> dict[str, Any] | None:
    """The holder (pid, host, command) of a run directory's lock while a run or resume
    writes it; None when nobody does. It only looks: taking the lock, even for a moment,
    could refuse a resume starting at that instant."""
    path = run_dir / LOCK_NAME
    holder = _read_holder(path)
    if not holder:
        return None
    holders = _flock_holders(path)
    if holders is None:  # no /proc/locks: a live pid of this host is the best evidence
        same_host = holder.get("host") == platform.node()
        return holder if same_host and pid_alive(holder.get("pid")) else None
    return holder if holders else None


def active_dir() -> Path:
    env = os.environ.get(ACTIVE_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / "iommubench-active"


def _prune(path: Path) -> None:
    """Remove the entry of a run that ended without removing it (SIGKILL, a crash). Only
    when the pid it is named after is gone: a live process of that pid may be between
    creating the file and locking it."""
    pid = path.stem
    if pid.isdigit() and not pid_alive(int(pid)):
        with contextlib.suppress(OSError):  # another user's entry, or pruned already
            path.unlink()


class ActiveRun:
    """This run's entry among the runs active on this machine."""

    def __init__(self, command: str, run_dir: Path, where: Path | None = None) -> None:
        self.dir = where or active_dir()
        self._fd: int | None = None
        self.path = self.dir / f"{os.getpid()}.lock"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                self.dir.chmod(0o1777)  # every user's runs compete for the same CPUs
            self._fd = _lock_file(self.path, _holder(command, run_dir))
        except OSError:
            self._fd = None  # no registry (read-only temp dir): the run goes on unregistered

    def others(self) -> list[dict[str, Any]]:
        """The other runs active now: pid, host, command, run_dir, started."""
        found = []
        try:
            paths = sorted(self.dir.glob("*.lock"))
        except OSError:
            return []
        for path in paths:
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(path)
                if holder:  # else it has just been locked: the next check reads it
                    found.append({**holder, "lock_file": str(path)})
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it: that run has ended
                _prune(path)
            finally:
                os.close(fd)
        return found

    def tell(self, other: dict[str, Any]) -> None:
        """Append this run's holder line to another active run's file."""
        if self._fd is None or "lock_file" not in other:
            return
        line = json.dumps(_read_holder(self.path)) + "\n"
        with contextlib.suppress(OSError), open(other["lock_file"], "a") as f:
            f.write(line)  # one short O_APPEND write: lines of several runs never interleave

    def told(self) -> list[dict[str, Any]]:
        """The runs that found this one active and said so in its file."""
        try:
            lines = self.path.read_text().splitlines()[1:]
        except OSError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None
