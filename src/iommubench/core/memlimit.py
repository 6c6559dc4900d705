"""The address-space limit (`ulimit -v`, RLIMIT_AS): fail in one line naming it, never spin.

Under a limit OpenBLAS (numpy's and scipy's own copies) reserves about 32 MiB per thread
while the library loads and, when that fails, retries forever inside the dynamic loader, deaf
to SIGINT. So under a limit the CLI asks every BLAS for one thread before anything imports
numpy (`prepare`), refuses a limit below what the numerical libraries need to load at all
(`FLOOR`), and a mapping that would not fit (an arena) is refused before it is tried
(`check_room`): a failed shared-memory mapping also leaves the stdlib's resource tracker
printing tracebacks.

Nothing here imports numpy: the CLI calls it first.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

# Measured on the development VM (Python 3.11, numpy 2, scipy 1.16, pandas 2, one BLAS
# thread): `iommubench run` of a small prefault point needs 280 MiB of address space and
# fails to load scipy at 250 MiB; the floor leaves room for a larger stack of imports.
FLOOR = 320 * 2**20
# a point's processes add thread stacks (the handoff probe's) and the core's own allocations
MARGIN = 64 * 2**20
BLAS_THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
)


class MemoryLimitError(Exception):
    """The address-space limit is too low for what is asked: one line naming it."""


def limit_bytes() -> int | None:
    """The soft address-space limit of this process, or None when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def describe(limit: int) -> str:
    return f"the address-space limit (ulimit -v {limit // 1024}) of {_mib(limit)}"


def prepare() -> None:
    """Under a limit: one BLAS thread (unless the user chose), and refuse a limit below
    FLOOR. Call before numpy is imported."""
    limit = limit_bytes()
    if limit is None:
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    if limit < FLOOR:
        raise MemoryLimitError(
            f"{describe(limit)} is below the {_mib(FLOOR)} iommubench needs to load its "
            "numerical libraries; raise it (ulimit -v) or lift it (ulimit -v unlimited)"
        )


def address_space_used() -> int | None:
    """This process's mapped address space now (VmSize), or None when /proc cannot say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_room(size: int, what: str) -> None:
    """MemoryLimitError unless `size` more bytes (and MARGIN) fit under the limit now."""
    limit = limit_bytes()
    used = address_space_used()
    if limit is None or used is None:
        return
    if used + size + MARGIN > limit:
        raise MemoryLimitError(
            f"{describe(limit)} cannot hold {what} of {_mib(size)} beside the {_mib(used)} "
            f"in use; raise it (ulimit -v) or lift it (ulimit -v unlimited)"
        )


def out_of_memory(detail: str) -> str | None:
    """The one line for a MemoryError (or a library that could not be mapped) under a
    limit, or None when there is no limit (then it is not the limit's doing)."""
    limit = limit_bytes()
    if limit is None:
        return None
    return (
        f"out of memory under {describe(limit)} ({detail}); raise it (ulimit -v) or lift it "
        "(ulimit -v unlimited)"
    )
