"""The analysis layer's public names in one place.

The work is split by job: `rundata` reads a run directory, `intervals` and `estimators`
compute intervals and ratios, `placement` classifies placement states, `pointsummary`
summarises each point, `decisions` derives scaling, winners and change verdicts, `locks`
attributes waiting to locks, and `flags` lists what qualifies the numbers.
"""

from __future__ import annotations

from iommubench.decisions import (
    decide,
    group_columns,
    headline,
    scaling,
    winners,
    with_scaling,
)
from iommubench.estimators import (
    Ratio,
    batch_means_cv,
    cv,
    jain_index,
    log_ratio,
    median_ci,
    ratio_ci,
)
from iommubench.flags import (
    CV_WARN,
    HANDOFF_RATIO,
    STARVATION_RATIO,
    audit_notes,
    warnings,
)
from iommubench.intervals import CONFIDENCE, Interval, median_interval, needs_more_reps
from iommubench.locks import lock_table
from iommubench.placement import States, classify
from iommubench.pointsummary import MEDIAN_COLUMNS, summarize
from iommubench.registry import NEGATIVE_CONTROLS
from iommubench.rundata import (
    AUDIT_COUNTERS,
    BOOL_COLUMNS,
    LATENCY_COLUMNS,
    STRATEGY,
    STRATEGY_PARTS,
    STRING_COLUMNS,
    WAIT_COLUMNS,
    Run,
    add_strategy,
    label,
    load_run,
    norm_value,
    param_columns,
    param_key,
    valid_mask,
    varying_params,
)

__all__ = [
    "AUDIT_COUNTERS",
    "BOOL_COLUMNS",
    "CONFIDENCE",
    "CV_WARN",
    "HANDOFF_RATIO",
    "LATENCY_COLUMNS",
    "MEDIAN_COLUMNS",
    "NEGATIVE_CONTROLS",
    "STARVATION_RATIO",
    "STRATEGY",
    "STRATEGY_PARTS",
    "STRING_COLUMNS",
    "WAIT_COLUMNS",
    "Interval",
    "Ratio",
    "Run",
    "States",
    "add_strategy",
    "audit_notes",
    "batch_means_cv",
    "classify",
    "cv",
    "decide",
    "group_columns",
    "headline",
    "jain_index",
    "label",
    "load_run",
    "lock_table",
    "log_ratio",
    "median_ci",
    "median_interval",
    "needs_more_reps",
    "norm_value",
    "param_columns",
    "param_key",
    "ratio_ci",
    "scaling",
    "summarize",
    "valid_mask",
    "varying_params",
    "warnings",
    "winners",
    "with_scaling",
]
