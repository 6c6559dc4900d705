"""The shared-memory arena of one point: created and unlinked by the parent only.

Workers are forked and inherit the mapping, so no child ever opens the segment by name and no
child-side tracker can unlink it early. Segment names carry the creating harness's pid so a
later run can tell a stale arena (its creator gone) from a live one and remove it.

The segment's pages are reserved with posix_fallocate before anything touches them: a tmpfs
that cannot hold the arena then fails here with a message saying what was needed and what was
free, instead of killing the first process that writes an unbacked page with SIGBUS.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any

from multiprocess import shared_memory

from iommubench.core import binding, memlimit
from iommubench.core.pids import pid_alive

SEGMENT_PREFIX = "iommubench-"
SHM_DIR = Path("/dev/shm")
_counter = itertools.count()


class ArenaSpaceError(OSError):
    """/dev/shm cannot hold an arena."""


def shm_free_bytes(shm_dir: Path = SHM_DIR) -> int | None:
    try:
        st = os.statvfs(shm_dir)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _sizes(needed: int, free: int | None) -> tuple[str, str]:
    """The two sizes in MiB with as many decimals as tell them apart, else in bytes."""
    if free is None:
        return f"{needed / 2**20:.1f} MiB", "an unknown amount"
    for digits in (1, 3):
        a, b = f"{needed / 2**20:.{digits}f} MiB", f"{free / 2**20:.{digits}f} MiB"
        if a != b:
            return a, b
    return f"{needed} bytes", f"{free} bytes"


def space_message(needed: int, free: int | None) -> str:
    need, have = _sizes(needed, free)
    return f"{SHM_DIR} cannot hold the arena: it needs {need}, {have} is free"


def arena_bytes(params: Any) -> int:
    """The size of the arena the native core lays out for these native parameters."""
    ffi, lib = binding.load()
    layout = ffi.new("struct ib_layout *")
    if lib.ib_layout(params, layout) != 0:
        raise ValueError("the native core rejected the point's parameters (layout)")
    return int(layout.total_bytes)


def _reserve(fd: int, size: int) -> None:
    """Back every page of the segment now; ENOSPC becomes an ArenaSpaceError."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        raise ArenaSpaceError(exc.errno, space_message(size, shm_free_bytes())) from None


class Arena:
    """One run's segment, laid out and initialised by the native core."""

    def __init__(self, params: Any) -> None:
        ffi, lib = binding.load()
        self._pid = os.getpid()
        self._initialised = False
        self.size = arena_bytes(params)
        memlimit.check_room(self.size, "the arena")  # under `ulimit -v`: one line, not ENOMEM
        name = f"{SEGMENT_PREFIX}{os.getpid()}-{next(_counter)}"
        try:
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=self.size)
        except OSError as exc:  # ENOSPC/ENOMEM creating or sizing the segment
            raise ArenaSpaceError(exc.errno, space_message(self.size, shm_free_bytes())) from None
        self.name = name
        try:
            _reserve(self._shm._fd, self.size)
        except ArenaSpaceError:
            self.close()
            raise
        self._cbuf = ffi.from_buffer(self._shm.buf)
        self.base = ffi.cast("void *", self._cbuf)
        if lib.ib_arena_init(self.base, self.size, params) != 0:
            self.close()
            raise ValueError("the native core rejected the point's parameters (init)")
        self._initialised = True

    def close(self) -> None:
        """Unmap and unlink; safe to call twice. The creating process first lets whatever was
        attached to the arena go (a kernel allocator's process state, ib_arena_detach)."""
        if self._shm is None:
            return
        if self._initialised and os.getpid() == self._pid:
            self._initialised = False
            binding.lib().ib_arena_detach(self.base)
        self.base = None
        self._cbuf = None
        shm, self._shm = self._shm, None
        # a view still alive makes close() fail; unlinking still removes the segment
        with contextlib.suppress(BufferError):
            shm.close()
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove_stale_segments(shm_dir: Path = Path("/dev/shm")) -> list[str]:
    """Unlink arenas whose creating harness is gone (killed before it could clean up)."""
    removed = []
    for path in shm_dir.glob(f"{SEGMENT_PREFIX}*"):
        pid_text = path.name[len(SEGMENT_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            try:
                path.unlink()
                removed.append(path.name)
            except FileNotFoundError:
                pass
    return removed


def our_segments(pid: int | None = None, shm_dir: Path = Path("/dev/shm")) -> list[str]:
    """Our arenas in /dev/shm: all of them, or those a given harness process created."""
    pattern = f"{SEGMENT_PREFIX}{pid}-*" if pid is not None else f"{SEGMENT_PREFIX}*"
    return sorted(p.name for p in shm_dir.glob(pattern))
