"""Walkers' side of the harness: their counters and their row measures.

Walkers are extra processes that dump the whole IO page table pass after pass while the
workers run (the debugfs race); `walker_safety` says how they are kept from reading tables
that unmap frees. The runner calls `collect` and `measures` (their parameters reach the
native core through parameters.py).
"""

from __future__ import annotations

from typing import Any

from iommubench.core import binding
from iommubench.spec import catalogue

# Without a safety mode that excludes it, a walker reading a freed table is the phenomenon
# being measured, not a failure of the page table. With one, it is a failure of the mode.
# Any of these in a mode that must prevent them fails the audit: an entry read from a freed
# table, a table read that overlapped a free or reuse (even one with no entry left, e.g. an
# emptied table freed by unmap), or an entry pointing outside the pool (garbage from reuse).
UAF_COLUMNS = ("walker_uaf_reads", "walker_uaf_tables", "walker_corrupt_reads")


def collect(arena_base: Any, count: int) -> list[dict[str, int]]:
    ffi, lib = binding.load()
    out = ffi.new("struct ib_walker_counters *")
    fields = binding.struct_fields("struct ib_walker_counters")
    rows = []
    for w in range(count):
        lib.ib_read_walker_counters(arena_base, w, out)
        rows.append({name: int(getattr(out, name)) for name in fields})
    return rows


def measures(
    point: dict[str, Any], walkers: list[dict[str, int]], workers: list[dict[str, int]]
) -> dict[str, Any]:
    """Walker and limbo columns of a row (empty when the point has no walkers)."""
    grace = sum(w["grace_periods"] for w in workers)
    cols: dict[str, Any] = {
        "limbo_pages_max": max(w["limbo_pages_max"] for w in workers),
        "grace_ns_mean": sum(w["grace_ns_total"] for w in workers) / grace if grace else None,
        "grace_ns_max": max(w["grace_ns_max"] for w in workers) if grace else None,
    }
    if not walkers:
        return cols
    passes = sum(w["passes"] for w in walkers)
    reads = sum(w["entries_read"] for w in walkers)
    uaf = sum(w["uaf_reads"] for w in walkers)
    cols.update(
        walker_passes=passes,
        walker_reads=reads,
        walker_uaf_reads=uaf,
        walker_uaf_tables=sum(w["uaf_tables"] for w in walkers),
        walker_uaf_per_million=uaf / reads * 1e6 if reads else None,
        walker_corrupt_reads=sum(w["corrupt_reads"] for w in walkers),
        walker_pass_ns=sum(w["pass_ns_total"] for w in walkers) / passes if passes else None,
        walker_pass_ns_max=max(w["pass_ns_max"] for w in walkers),
        walker_wait_ns=sum(w["wait_ns"] for w in walkers),
    )
    return cols


def audit_ok(point: dict[str, Any], cols: dict[str, Any], audit: dict[str, int]) -> bool:
    """Limbo fully reclaimed; and no freed-table read where the mode promises none."""
    if audit["limbo_pages"]:
        return False
    prevents = point.get("walker_safety") in catalogue.uaf_preventing_modes()
    return not (prevents and any(cols.get(name) for name in UAF_COLUMNS))
