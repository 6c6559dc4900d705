"""Adaptive repetitions: more runs only for points whose interval is still too wide."""

from __future__ import annotations

import pytest

from iommubench.config import ConfigError, parse_sweep
from iommubench.sweep import adaptive_round

POINTS = [{"driver": d} for d in ("tight", "wide", "capped", "naive")]


def row(point: int, ops: float, audit: bool = True) -> dict[str, str]:
    return {"point": str(point), "status": "ok", "audit_ok": str(audit), "ops_per_s": str(ops)}


def test_only_wide_uncapped_valid_points_get_another_repetition() -> None:
    rows = (
        [row(0, v) for v in (100.0, 100.1, 99.9)]  # tight
        + [row(1, v) for v in (50.0, 100.0, 150.0)]  # wide
        + [row(2, v) for v in (50.0, 100.0, 150.0, 60.0, 140.0)]  # wide but at the cap
        + [row(3, v, audit=False) for v in (10.0, 90.0, 50.0)]  # no valid repetition
    )
    tasks = adaptive_round(POINTS, rows, max_repetitions=5, target_halfwidth=0.05)
    assert [(t.point, t.rep) for t in tasks] == [(1, 3)]


def test_nothing_more_when_max_equals_repetitions() -> None:
    rows = [row(1, v) for v in (50.0, 100.0, 150.0)]
    assert adaptive_round(POINTS, rows, max_repetitions=3, target_halfwidth=0.05) == []


def test_config_checks_the_adaptive_keys() -> None:
    sweep = parse_sweep({"repetitions": 3, "max_repetitions": 8}, "a.yaml")
    assert (sweep.max_repetitions, sweep.target_halfwidth) == (8, 0.05)
    assert parse_sweep({"repetitions": 3}, "a.yaml").max_repetitions == 3
    with pytest.raises(ConfigError, match="max_repetitions"):
        parse_sweep({"repetitions": 3, "max_repetitions": 2}, "a.yaml")
    with pytest.raises(ConfigError, match="target_halfwidth"):
        parse_sweep({"target_halfwidth": 0}, "a.yaml")
