"""Adaptive repetitions: more runs only for points whose interval is still too wide."""

from __future__ import annotations

import pytest

from iommubench.analysis.adaptive import adaptive_round
from iommubench.spec.config import ConfigError, parse_sweep

POINTS = [{"driver": d} for d in ("tight", "wide", "capped", "naive")]


def row(point: int, ops: float, audit: bool = True, rep: int = 0) -> dict[str, str]:
    return {
        "point": str(point),
        "rep": str(rep),
        "status": "ok",
        "audit_ok": str(audit),
        "ops_per_s": str(ops),
    }


def reps(point: int, values: tuple[float, ...], audit: bool = True) -> list[dict[str, str]]:
    return [row(point, v, audit, rep) for rep, v in enumerate(values)]


def test_only_wide_uncapped_valid_points_get_another_repetition() -> None:
    rows = (
        reps(0, (100.0, 100.1, 99.9))  # tight
        + reps(1, (50.0, 100.0, 150.0))  # wide
        + reps(2, (50.0, 100.0, 150.0, 60.0, 140.0))  # wide but at the cap
        + reps(3, (10.0, 90.0, 50.0), audit=False)  # no valid repetition
    )
    tasks = adaptive_round(POINTS, rows, max_repetitions=5, target_halfwidth=0.05)
    assert [(t.point, t.rep) for t in tasks] == [(1, 3)]


def test_the_next_repetition_never_reuses_a_stored_rep_number() -> None:
    # rep 1 of point 1 is missing (reps 0, 2, 3 stored): the next is 4, not 3 again
    rows = [row(1, v, rep=r) for r, v in ((0, 50.0), (2, 100.0), (3, 150.0))]
    tasks = adaptive_round(POINTS, rows, max_repetitions=5, target_halfwidth=0.05)
    assert [(t.point, t.rep) for t in tasks] == [(1, 4)]


def test_nothing_more_when_max_equals_repetitions() -> None:
    rows = reps(1, (50.0, 100.0, 150.0))
    assert adaptive_round(POINTS, rows, max_repetitions=3, target_halfwidth=0.05) == []


def test_config_checks_the_adaptive_keys() -> None:
    sweep = parse_sweep({"repetitions": 3, "max_repetitions": 8}, "a.yaml")
    assert (sweep.max_repetitions, sweep.target_halfwidth) == (8, 0.05)
    assert parse_sweep({"repetitions": 3}, "a.yaml").max_repetitions == 3
    with pytest.raises(ConfigError, match="max_repetitions"):
        parse_sweep({"repetitions": 3, "max_repetitions": 2}, "a.yaml")
    with pytest.raises(ConfigError, match="target_halfwidth"):
        parse_sweep({"target_halfwidth": 0}, "a.yaml")
