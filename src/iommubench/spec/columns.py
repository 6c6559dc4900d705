"""The columns of points.csv, in order: the public result schema (DESIGN §3).

One row is one (point, repetition). Columns that a workload or an issue does not fill stay
empty in the CSV (NaN in pandas); they are never dropped, so every run has the same header.
The counter columns are the native core's own (COUNTER_MEASURES, read from its catalogue), so
importing this module loads the core.
"""

import math
from typing import Any

from iommubench.spec import catalogue, parameters
from iommubench.spec.catalogue import LOCK_SUFFIXES, LOCKS

# flags: the row flags (rowflags.py) joined by ";", empty when none; core_hash and version:
# the build that measured the row (a resume may run on another build)
IDENTITY = ["run_id", "point", "rep", "status", "error", "flags", "core_hash", "version"]

# The machine that measured the row (a fleet run has several) and when: wall-clock seconds
# since the epoch at the start and end of the point, to show no two points overlapped on a host.
MACHINE = ["host", "cpu_model", "cpus_allowed", "started_at", "ended_at"]

# Every parameter of a point (parameters.py, in its order), then the two timings every point
# also carries from the top level of its config.
TIMING = ["warmup_s", "duration_s_requested"]
PARAMETERS = [*parameters.NAMES, *TIMING]

# What points are matched and grouped by: the parameters, and the host that measured them (a
# run on one host, or `compare --ignore host`, matches across hosts).
MATCH_COLUMNS = [*PARAMETERS, "host"]

PLACEMENT = ["cpus_available", "oversubscribed", "handoff_ns_before", "handoff_ns_after"]

# Competing load (load.py): averaged over workers, and the allowed CPUs' steal.
LOAD = ["runq_wait_share", "oncpu_share", "steal_share"]

# The throughput series within the window (timeseries.py).
SERIES = ["tick_ns", "series_ticks", "within_cv", "level_shift", "level_shift_ratio"]

# Every lock's counters, one family per lock the core counts (catalogue.lock_families).
LOCK_COLUMNS = [prefix + suffix for prefix in LOCKS for suffix in LOCK_SUFFIXES]

# The counters the native core declares as measures (IB_MEASURE in its counters.def files), in
# declaration order: each is summed over the point's workers, and workers.csv keeps each
# worker's own (run/store.py). A counter declared so needs no edit here.
COUNTER_MEASURES = list(catalogue.counter_measures())

# What the harness derives rather than sums from one counter: the rate, the fairness extremes,
# latency percentiles (from the merged histograms), the busy work and timer cost the point ran
# with, ratios of counters, the walkers' columns and the deferred-free limbo.
DERIVED = [
    "ops_per_s",
    "worker_ops_min",
    "worker_ops_max",
    "map_p50_ns",
    "map_p90_ns",
    "map_p99_ns",
    "map_p999_ns",
    "unmap_p50_ns",
    "unmap_p90_ns",
    "unmap_p99_ns",
    "unmap_p999_ns",
    "timer_ns",
    "cs_map_busy_ns",
    "cs_unmap_busy_ns",
    "bare_map_ns",
    "bare_unmap_ns",
    "rcache_hit_rate",
    "entries_per_flush",
    "walker_passes",
    "walker_reads",
    "walker_uaf_reads",
    "walker_pass_ns",
    "walker_pass_ns_max",
    "walker_uaf_tables",
    "walker_uaf_per_million",
    "walker_corrupt_reads",
    "walker_wait_ns",
    "limbo_pages_max",
    "limbo_pages_end",
    "grace_ns_mean",
    "grace_ns_max",
]

MEASURES = ["duration_s", *COUNTER_MEASURES, *DERIVED]

# The kernel's own code (pgtable kernel-*): which tree each row came from, and what the
# kernel's code itself reported; empty for the model.
KERNEL = [
    "kernel_source",
    "kernel_files_sha256",
    "kernel_variant",
    "kernel_warns",
    "kernel_tlb_flush_walks",
]

AUDIT = [
    "lost_mappings",
    "wrong_translations",
    "stray_mappings",
    "leaked_tables",
    "double_frees",
    "iova_double_allocs",
    "iova_leaks",
    "fq_early_frees",
    "audit_ok",
]

POINT_COLUMNS: list[str] = (
    IDENTITY
    + MACHINE
    + PARAMETERS
    + PLACEMENT
    + LOAD
    + MEASURES
    + SERIES
    + LOCK_COLUMNS
    + KERNEL
    + AUDIT
)

# The type of each column, for the checks --resume makes on stored rows: parameters must equal
# their point's values, these columns hold text or True/False, and every other column is empty
# or a number >= 0 (nan allowed). A new text or boolean column must be listed here.
TEXT_COLUMNS = {
    "run_id", "status", "error", "flags", "core_hash", "version", "host", "cpu_model",
    "cpus_allowed", "kernel_source", "kernel_files_sha256", "kernel_variant",
}  # fmt: skip
BOOLEAN_COLUMNS = {"oversubscribed", "audit_ok", "level_shift"}

# Keys of the JSON outputs that are not points.csv columns but always hold numbers.
NUMERIC_KEYS = {"peak_workers", "max_workers", "min_workers", "repetitions", "reps", "n"}


def typed(key: str, value: Any) -> Any:
    """`value` of column or key `key` with its type back: points.csv and the run reader keep
    parameters as text (so "1" and 1 match), but JSON consumers get numbers as numbers and
    booleans as booleans. Text columns, text parameters and values that are not numbers
    stay as they are."""
    if not isinstance(value, str) or key in TEXT_COLUMNS or key in parameters.TEXT_PARAMETERS:
        return value
    if key in BOOLEAN_COLUMNS and value in ("True", "False", "true", "false"):
        return value in ("True", "true")
    if key not in _NUMERIC_COLUMNS:
        return value
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if kind is int or math.isfinite(number) else None
    return value


def typed_json(obj: Any) -> Any:
    """`obj` (dicts, lists, scalars) with every known column's value typed (`typed`)."""
    if isinstance(obj, dict):
        return {k: typed(k, typed_json(v)) if isinstance(k, str) else v for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [typed_json(v) for v in obj]
    return obj


_NUMERIC_COLUMNS = (set(POINT_COLUMNS) - TEXT_COLUMNS - BOOLEAN_COLUMNS) | NUMERIC_KEYS
