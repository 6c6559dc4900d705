"""Locking strategies (driver x lock) as the compared axis: labels, winners, the side-by-side
table with fairness, summary.json, the report, and compare across the old driver names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fixtures.synthetic_run import make_run
from iommubench.analysis import compare, run_reader, strategies
from iommubench.analysis.decisions import winners, with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run
from iommubench.report import build
from iommubench.spec import catalogue

# ops/s per strategy and worker count: ticket collapses harder than ttas at 2 workers
MODEL = {
    "domain-lock/ttas": {1: 30e6, 2: 20e6},
    "domain-lock/ticket": {1: 30e6, 2: 6e6},
    "lockfree": {1: 32e6, 2: 60e6},
}
# per-worker shares at 2 workers: ttas lets one worker take 80% of the work, ticket is FIFO
SHARES = {"domain-lock/ttas": [0.8, 0.2], "domain-lock/ticket": [0.5, 0.5], "lockfree": [1, 1]}


def _split(name: str, w: int, rep: int) -> dict[str, Any]:
    """The driver and lock columns of a strategy, and its lock's counters (30% contended at
    2 workers, 1000 ns of waiting per contended acquisition)."""
    driver, _, lock = name.partition("/")
    cols: dict[str, Any] = {"driver": driver, "lock": lock or "-"}
    if lock:
        acq = 1_000_000
        contended = 300_000 if w > 1 else 0
        cols.update(lock_acquisitions=acq, lock_contended=contended, lock_wait_ns=contended * 1000)
    return cols


def _run(root: Path, name: str = "locks") -> Path:
    return make_run(
        root,
        name,
        drivers=tuple(MODEL),
        workers=(1, 2),
        cpus=2,
        reps=5,
        noise=0.002,
        model=MODEL,
        failed_rep=False,
        handoff_flip=False,
        shares=lambda s, w, r: SHARES[s] if w == 2 else [1] * w,
        extra=_split,
    )


def test_strategy_names_driver_and_lock() -> None:
    assert catalogue.strategy("domain-lock", "ticket") == "domain-lock/ticket"
    assert catalogue.strategy("table-lock", "mcs") == "table-lock/mcs"
    assert catalogue.strategy("lockfree", "ticket") == "lockfree"  # takes no lock
    assert catalogue.strategy("lockfree", "-") == "lockfree"
    assert catalogue.strategy("serial-spin") == "domain-lock/ttas"  # the old names
    assert catalogue.strategy("serial-mutex", None) == "domain-lock/pthread-mutex"
    assert catalogue.strategy("domain-lock", None) == "domain-lock"
    assert catalogue.strategy(None) == ""


def test_strategy_stands_in_for_driver_and_lock() -> None:
    df = pd.DataFrame(
        {"workload": ["dma"] * 2, "driver": ["domain-lock"] * 2, "lock": ["ttas", "mcs"]}
    )
    df["workers"] = [1, 1]
    run_reader.add_strategy(df)
    assert list(df["strategy"]) == ["domain-lock/ttas", "domain-lock/mcs"]
    assert run_reader.param_columns(df) == ["workload", "strategy", "workers"]
    assert run_reader.param_columns(df, ignore=["lock"]) == ["workload", "driver", "workers"]
    assert run_reader.param_columns(df, ignore=["strategy"]) == ["workload", "workers"]
    assert run_reader.varying_params(df) == ["strategy"]
    assert run_reader.label(df.iloc[1], ["strategy", "workers"]) == "domain-lock/mcs w=1"


def test_winners_and_table_compare_strategies(tmp_path: Path) -> None:
    frame = with_scaling(summarize(load_run(_run(tmp_path))))
    assert set(frame["strategy"]) == set(MODEL)
    win = winners(frame)
    two = win[win["workers"] == 2].iloc[0]
    assert two["verdict"] == "winner" and two["winner"] == "lockfree"
    assert two["candidates"] == 3

    t = strategies.strategy_table(frame)
    at2 = t[t["workers"] == 2].set_index("strategy")
    assert list(at2.index) == ["lockfree", "domain-lock/ttas", "domain-lock/ticket"]
    assert at2.loc["domain-lock/ticket", "of_best"] == pytest.approx(6 / 60, rel=0.02)
    assert at2.loc["domain-lock/ttas", "of_best"] == pytest.approx(20 / 60, rel=0.02)
    # Jain's index of shares (0.8, 0.2) is 1 / (2 x 0.68); of (0.5, 0.5) it is 1
    assert at2.loc["domain-lock/ttas", "jain"] == pytest.approx(1 / 1.36, abs=1e-3)
    assert at2.loc["domain-lock/ticket", "jain"] == pytest.approx(1.0)
    assert at2.loc["domain-lock/ttas", "ops_spread"] == pytest.approx(4.0, rel=1e-3)
    assert at2.loc["domain-lock/ticket", "lock_contended_share"] == pytest.approx(0.3)
    assert at2.loc["domain-lock/ticket", "lock_mean_wait_ns"] == pytest.approx(1000)
    assert pd.isna(at2.loc["lockfree", "lock_contended_share"])  # takes no lock


def test_no_table_without_two_strategies(tmp_path: Path) -> None:
    frame = summarize(load_run(make_run(tmp_path, drivers=("lockfree",), failed_rep=False)))
    assert strategies.strategy_table(frame).empty


def test_report_and_summary_json_compare_strategies(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _, md, _ = build.write_report(run, tmp_path / "report")
    s = build.summary_of(run)
    rows = [r for r in s["strategies"] if r["workers"] == "2"]
    assert [r["strategy"] for r in rows] == ["lockfree", "domain-lock/ttas", "domain-lock/ticket"]
    assert {p["params"]["strategy"] for p in s["points"]} == set(MODEL)
    assert all({"driver", "lock"} <= set(p["params"]) for p in s["points"])
    text = md.read_text()
    assert "## Locking strategies compared" in text
    assert "| all | 2 | domain-lock/ticket |" in text and "(range, n=5)" in text
    plain = build.text_report(run)
    assert "domain-lock/ticket" in plain and "Jain 1.000" in plain
    assert max(len(line) for line in plain.splitlines()) <= 72


def test_old_driver_names_compare_with_driver_and_lock(tmp_path: Path) -> None:
    """A run that named `serial-spin` (no lock column) matches one with domain-lock + ttas."""
    model = {"serial-spin": {1: 30e6, 2: 20e6}, "lockfree": {1: 32e6, 2: 60e6}}
    old = make_run(tmp_path, "old", drivers=tuple(model), workers=(1, 2), cpus=2, model=model,
                   failed_rep=False, handoff_flip=False, noise=0.002)  # fmt: skip
    new = _run(tmp_path, "new")
    result = compare.compare_runs(load_run(old), load_run(new))
    matched = {p.label: p for p in result.points}
    assert "domain-lock/ttas w=2" in matched and "lockfree w=2" in matched
    assert matched["domain-lock/ttas w=2"].params["strategy"] == "domain-lock/ttas"
    assert [u for u in result.new_only if "ttas" in u] == []
