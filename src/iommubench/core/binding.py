"""The compiled native core, checked before use.

A core compiled from older C sources must never run silently: the build embeds a hash of every
native source, and when the sources sit beside the package (a source checkout or editable
install) the hash is recomputed and compared here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

REBUILD_HINT = "rebuild it with `make install` (or `pip install -e .`)"


class NativeCoreError(RuntimeError):
    """The native core is missing, from another version, or older than its sources."""


@lru_cache(maxsize=1)
def load() -> tuple[Any, Any]:
    """(ffi, lib) of the checked native core."""
    try:
        from iommubench import _core
    except ImportError as exc:
        raise NativeCoreError(f"the native core is not built ({exc}); {REBUILD_HINT}") from exc
    ffi, lib = _core.ffi, _core.lib
    built = ffi.string(lib.IB_SOURCE_HASH).decode()
    current = _current_source_hash()
    if current is not None and current != built:
        raise NativeCoreError(
            f"the native core was built from other sources (built {built}, sources {current}); "
            + REBUILD_HINT
        )
    return ffi, lib


def _current_source_hash() -> str | None:
    from iommubench.core.native import build_core

    if not (build_core.NATIVE_DIR / "core.h").exists():
        return None
    return build_core.source_hash()


def built_source_hash() -> str:
    """The hash of the native sources this core was compiled from (its build identity)."""
    f, core = load()
    return f.string(core.IB_SOURCE_HASH).decode()


def ffi() -> Any:
    return load()[0]


def lib() -> Any:
    return load()[1]


def struct_fields(name: str) -> list[str]:
    """Field names of a native struct, so counters are read by name with no list to keep."""
    return [field for field, _ in ffi().typeof(name).fields]


def driver_names() -> list[str]:
    f, core = load()
    return [f.string(core.ib_driver_name(i)).decode() for i in range(core.ib_driver_count())]


def lock_names() -> list[str]:
    f, core = load()
    return [f.string(core.ib_lock_name(i)).decode() for i in range(core.ib_lock_count())]


def lock_descriptions() -> dict[str, str]:
    """Each lock's one-line description, as its native file registers it."""
    f, core = load()
    return {
        f.string(core.ib_lock_name(i)).decode(): f.string(core.ib_lock_description(i)).decode()
        for i in range(core.ib_lock_count())
    }


def workload_names() -> list[str]:
    f, core = load()
    return [f.string(core.ib_workload_name(i)).decode() for i in range(core.ib_workload_count())]


def allocator_names() -> list[str]:
    f, core = load()
    return [f.string(core.ib_allocator_name(i)).decode() for i in range(core.ib_allocator_count())]


def invalidation_names() -> list[str]:
    f, core = load()
    return [
        f.string(core.ib_invalidation_name(i)).decode() for i in range(core.ib_invalidation_count())
    ]


def walker_safety_names() -> list[str]:
    f, core = load()
    return [
        f.string(core.ib_walker_safety_name(i)).decode()
        for i in range(core.ib_walker_safety_count())
    ]


def pgtable_names() -> list[str]:
    f, core = load()
    return [f.string(core.ib_pgtable_name(i)).decode() for i in range(core.ib_pgtable_count())]


def pgtable_object_variant(name: str) -> int:
    """0 for a page table built into the core; else which kernel-code object it loads (1
    normal, 2 racy-cmpxchg)."""
    return int(load()[1].ib_pgtable_object_variant(pgtable_names().index(name)))


def allocator_object_variant(name: str) -> int:
    """0 for an IOVA allocator built into the core; else which kernel-code object it loads."""
    return int(load()[1].ib_allocator_object_variant(allocator_names().index(name)))
