"""The kernel's own code for points on a kernel page table (`pgtable: kernel-arm`, ...).

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

SOURCE_ENV = "IOMMUBENCH_KERNEL_SRC"
VARIANTS = {1: "normal", 2: "racy-cmpxchg"}

# The columns a row on the kernel's code fills (empty for the model).
ROW_COLUMNS = ("kernel_source", "kernel_files_sha256", "kernel_variant")


def variant_of(point: Mapping[str, Any]) -> str | None:
    """The object variant a point's page table loads, or None for a built-in table."""
    name = point.get("pgtable")
    if name is None:
        return None
    return VARIANTS.get(binding.pgtable_object_variant(str(name)))


def _say(msg: str) -> None:
    print(f"iommubench: {msg}", flush=True)


@functools.lru_cache(maxsize=8)
def _object(tree: str | None, variant: str) -> kbuild.KernelObject:
    try:
        src = ksources.find(tree, progress=_say)
        return kbuild.build(src, variant, progress=_say)
    except (ksources.KernelSourceUnavailable, kbuild.KernelBuildError) as exc:
        raise UsageError(f"pgtable on the kernel's code: {exc}") from None


def object_for(point: Mapping[str, Any]) -> kbuild.KernelObject | None:
    """The built object a point loads (built once per process and variant), or None."""
    variant = variant_of(point)
    if variant is None:
        return None
    return _object(os.environ.get(SOURCE_ENV) or None, variant)


def prepare(points: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Build every object the points need, before the first point runs (a missing source or a
    tree the shim does not cover is one line and exit 2); the provenance for meta.json."""
    tree = os.environ.get(SOURCE_ENV) or None
    variants = sorted({v for p in points if (v := variant_of(p)) is not None})
    objs = {v: _object(tree, v) for v in variants}
    if not objs:
        return {}
    first = next(iter(objs.values()))
    prov = dict(first.provenance())
    prov.pop("kernel_variant", None)
    prov.pop("kernel_object_key", None)
    prov["kernel_objects"] = {v: {"key": o.key, "path": str(o.path)} for v, o in objs.items()}
    return prov


def row_columns(point: Mapping[str, Any]) -> dict[str, Any]:
    obj = object_for(point)
    if obj is None:
        return {}
    prov = obj.provenance()
    return {
        "kernel_source": prov["kernel_source"],
        "kernel_files_sha256": prov["kernel_files_sha256"],
        "kernel_variant": prov["kernel_variant"],
    }
