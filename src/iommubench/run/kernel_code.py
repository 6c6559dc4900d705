"""The kernel's own code for points on a kernel page table (`pgtable: kernel-arm`, ...) or
the kernel's IOVA allocator (`allocator: kernel-iova`).

The object each such point loads is built here, once per variant and source tree, from the
tree `--kernel-src` names (kept in $IOMMUBENCH_KERNEL_SRC so every process of the run sees it)
or Debian's linux-source package (core/kernel/sources.py); what it was built from goes into
meta.json and every row.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from typing import Any

from iommubench.core import binding
from iommubench.core.errors import UsageError
from iommubench.core.kernel import build as kbuild
from iommubench.core.kernel import sources as ksources
from iommubench.spec import catalogue

SOURCE_ENV = "IOMMUBENCH_KERNEL_SRC"
VARIANTS = {1: "normal", 2: "racy-cmpxchg"}

# The columns a row on the kernel's code fills (empty for the model).
ROW_COLUMNS = ("kernel_source", "kernel_files_sha256", "kernel_variant")


def loaded_axes(point: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(axis, entry, object variant) for each of the point's choices loaded from the kernel's
    code: its page table (`pgtable: kernel-arm`, ...) and, where the workload reads it, its
    IOVA allocator (`allocator: kernel-iova`)."""
    out = []
    name = point.get("pgtable")
    if name is not None and (v := VARIANTS.get(binding.pgtable_object_variant(str(name)))):
        out.append(("pgtable", str(name), v))
    name = point.get("allocator")
    if (
        name is not None
        and catalogue.applies("allocator", point)
        and (v := VARIANTS.get(binding.allocator_object_variant(str(name))))
    ):
        out.append(("allocator", str(name), v))
    return out


def variant_of(point: Mapping[str, Any]) -> str | None:
    """The object variant a point loads (its page table's, else its allocator's), or None when
    it runs on the model only."""
    axes = loaded_axes(point)
    return axes[0][2] if axes else None


def _say(msg: str) -> None:
    print(f"iommubench: {msg}", flush=True)


@functools.lru_cache(maxsize=8)
def _object(tree: str | None, variant: str, what: str) -> kbuild.KernelObject:
    try:
        src = ksources.find(tree, progress=_say)
        return kbuild.build(src, variant, progress=_say)
    except (ksources.KernelSourceUnavailable, kbuild.KernelBuildError) as exc:
        raise UsageError(f"{what} on the kernel's code: {exc}") from None


def _object_for(point: Mapping[str, Any], axis: str) -> kbuild.KernelObject | None:
    for a, name, variant in loaded_axes(point):
        if a == axis:
            return _object(os.environ.get(SOURCE_ENV) or None, variant, f"{a} {name}")
    return None


def object_for(point: Mapping[str, Any]) -> kbuild.KernelObject | None:
    """The built object a point's page table loads (built once per process and variant), or
    None for the model."""
    return _object_for(point, "pgtable")


def allocator_object_for(point: Mapping[str, Any]) -> kbuild.KernelObject | None:
    """The built object a point's IOVA allocator loads, or None for one built into the core."""
    return _object_for(point, "allocator")


def prepare(points: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Build every object the points need, before the first point runs (a missing source or a
    tree the shim does not cover is one line and exit 2); the provenance for meta.json."""
    tree = os.environ.get(SOURCE_ENV) or None
    needed = {(v, f"{a} {n}") for p in points for a, n, v in loaded_axes(p)}
    objs: dict[str, kbuild.KernelObject] = {}
    for variant, what in sorted(needed):
        objs.setdefault(variant, _object(tree, variant, what))
    if not objs:
        return {}
    first = next(iter(objs.values()))
    prov = dict(first.provenance())
    prov.pop("kernel_variant", None)
    prov.pop("kernel_object_key", None)
    prov["kernel_objects"] = {v: {"key": o.key, "path": str(o.path)} for v, o in objs.items()}
    return prov


def row_columns(point: Mapping[str, Any]) -> dict[str, Any]:
    obj = object_for(point) or allocator_object_for(point)
    if obj is None:
        return {}
    prov = obj.provenance()
    return {
        "kernel_source": prov["kernel_source"],
        "kernel_files_sha256": prov["kernel_files_sha256"],
        "kernel_variant": prov["kernel_variant"],
    }
