"""Load the kernel-code object with cffi, lay out shared regions, and fork workers around it.

The C API is ``core/native/pgtables/ibk.h`` (the adapter) and ``ibk_drive.h`` (the drivers of
the object's own tests and measurements); both headers are read here as the cdef, so Python
and C cannot drift.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cffi import FFI

from .build import API, HERE, KernelObject

_HEADERS = (API / "ibk.h", HERE / "ibk_drive.h")


def cdef_text() -> str:
    """The headers without preprocessor lines, except integer #defines."""
    out = []
    for path in _HEADERS:
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                if re.match(r"#define\s+\w+\s+\d+\s*$", line):
                    out.append(line)
                continue
            out.append(line)
    return "\n".join(out)


@dataclass
class KernelLib:
    """The loaded object: ``ffi``, ``lib`` (the C functions) and what it was built from."""

    ffi: Any
    lib: Any
    obj: KernelObject


_LOADED: dict[Path, KernelLib] = {}


def load(obj: KernelObject) -> KernelLib:
    """dlopen the object once per path (RTLD_LOCAL: both variants may be loaded together)."""
    if obj.path not in _LOADED:
        ffi = FFI()
        ffi.cdef(cdef_text())
        lib = ffi.dlopen(str(obj.path))
        if lib.ibk_api_version() != lib.IBK_API_VERSION:
            raise RuntimeError(f"{obj.path}: API version {lib.ibk_api_version()}")
        _LOADED[obj.path] = KernelLib(ffi, lib, obj)
    return _LOADED[obj.path]


class SharedRegion:
    """Anonymous shared memory, mapped before fork so every worker sees it at one address."""

    def __init__(self, ffi: Any, nbytes: int) -> None:
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_ANONYMOUS", 0x20)
        if hasattr(mmap, "MAP_NORESERVE"):
            flags |= mmap.MAP_NORESERVE
        self.size = nbytes
        self._map = mmap.mmap(-1, nbytes, flags=flags)
        self.ptr = ffi.from_buffer(self._map)

    def close(self) -> None:
        self.ptr = None
        # a cdata may still point into it: then the process's exit frees it
        with contextlib.suppress(BufferError):
            self._map.close()


@dataclass
class Env:
    """An env region and a page window, both shared, with the C env pointer."""

    kl: KernelLib
    region: SharedRegion
    window: SharedRegion
    env: Any
    keep: list[Any] = field(default_factory=list)

    def stats(self) -> dict[str, int]:
        st = self.kl.ffi.new("struct ibk_stats *")
        self.kl.lib.ibk_env_stats(self.env, st)
        return {name: int(getattr(st, name)) for name, _ in self.kl.ffi.typeof(st[0]).fields}

    def first_warn(self) -> str:
        return self.kl.ffi.string(self.kl.lib.ibk_first_warn(self.env)).decode(errors="replace")

    def new(self, ctype: str) -> Any:
        """A zeroed C struct in the shared heap (visible to forked workers)."""
        raw = self.kl.lib.ibk_shared_alloc(self.env, self.kl.ffi.sizeof(ctype))
        if raw == self.kl.ffi.NULL:
            raise MemoryError(f"shared heap exhausted allocating {ctype}")
        return self.kl.ffi.cast(f"{ctype} *", raw)

    def close(self) -> None:
        self.region.close()
        self.window.close()


def make_env(
    kl: KernelLib, nr_cpus: int, heap_bytes: int = 64 << 20, window_bytes: int = 64 << 20
) -> Env:
    """A fresh env (heap of heap_bytes) and an internal page window; it becomes current."""
    region = SharedRegion(kl.ffi, heap_bytes)
    window = SharedRegion(kl.ffi, window_bytes)
    env = kl.lib.ibk_env_create(region.ptr, heap_bytes, nr_cpus)
    if env == kl.ffi.NULL:
        raise RuntimeError("ibk_env_create failed")
    if kl.lib.ibk_env_window(env, window.ptr, window_bytes, kl.ffi.NULL, kl.ffi.NULL, kl.ffi.NULL):
        raise RuntimeError("ibk_env_window failed")
    return Env(kl, region, window, env)


def log(kl: KernelLib, clear: bool = True) -> str:
    """This process's printk output from the kernel code."""
    buf = kl.ffi.new("char[]", 65536)
    kl.lib.ibk_log_read(buf, 65536, 1 if clear else 0)
    return kl.ffi.string(buf).decode(errors="replace")


def fork_workers(n: int, body: Callable[[int], int], timeout_s: float = 120.0) -> list[int]:
    """Run body(worker) in n forked processes; return their exit codes (-signal if killed).

    A worker that outlives timeout_s is killed (exit code -SIGKILL), so a hang fails a test
    instead of stalling it.
    """
    pids = []
    for w in range(n):
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's stack
            code = 70
            try:
                signal.alarm(int(timeout_s) + 5)
                code = int(body(w)) & 0xFF
            finally:
                os._exit(code)
        pids.append(pid)
    codes: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(codes) < n:
        for pid in pids:
            if pid in codes:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes[pid] = os.waitstatus_to_exitcode(status)
        if len(codes) < n:
            if time.monotonic() > deadline:
                for pid in pids:
                    if pid not in codes:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        codes[pid] = -signal.SIGKILL
                break
            time.sleep(0.002)
    return [codes[p] for p in pids]


def struct_fields(kl: KernelLib, cdata: Any, names: Sequence[str]) -> dict[str, int]:
    return {name: int(getattr(cdata, name)) for name in names}
