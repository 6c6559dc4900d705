"""Per-point intervals, scaling, fairness and warnings on synthetic data with known answers."""

import numpy as np
import pandas as pd
import pytest

from iommubench.analysis.decisions import scaling, winners, with_scaling
from iommubench.analysis.estimators import (
    batch_means_cv,
    cv,
    jain_index,
    log_ratio,
    median_ci,
    ratio_ci,
)
from iommubench.analysis.intervals import median_interval, needs_more_reps
from iommubench.analysis.point_flags import audit_notes, warnings
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run, norm_value, param_key

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize("n", [6, 15, 41])
def test_median_ci_covers_the_true_median_at_least_95_percent(n):
    trials = 400
    hits = 0
    for t in range(trials):
        x = np.random.default_rng(10_000 + t).lognormal(4.0, 0.3, size=n)
        iv = median_interval(x)
        assert iv.interval == "95% CI" and iv.n == n
        assert iv.lo <= iv.estimate <= iv.hi
        hits += iv.lo <= np.exp(4.0) <= iv.hi
    # exact binomial coverage is >= 95% (96.9% for n=6, 96.5% for 15, 97.2% for 41)
    assert 0.93 <= hits / trials <= 0.995


@pytest.mark.parametrize("n", [1, 3, 5])
def test_fewer_than_six_values_give_the_range_never_a_ci(n):
    x = np.arange(1.0, n + 1)
    iv = median_interval(x)
    assert iv.interval == "range" and iv.method == f"range (n={n})"
    assert (iv.lo, iv.hi) == (1.0, float(n))


def test_order_statistic_ranks():
    from iommubench.analysis.intervals import order_statistic_rank

    assert order_statistic_rank(6) == (1, pytest.approx(0.96875))
    assert order_statistic_rank(5)[0] == 0
    assert order_statistic_rank(9)[0] == 2
    iv = median_interval(np.arange(1.0, 10.0))
    assert (iv.lo, iv.hi) == (2.0, 8.0) and "coverage 96.1%" in iv.method


def test_constant_and_single_values_are_degenerate():
    assert median_ci([7.0] * 6) == (7.0, 7.0, 7.0)
    assert median_ci([7.0]) == (7.0, 7.0, 7.0)
    assert np.isnan(cv([7.0]))
    assert cv([7.0, 7.0, 7.0]) == 0.0
    assert all(np.isnan(v) for v in median_ci([]))


def test_ratio_ci_known_answer():
    rng = np.random.default_rng(0)
    base = rng.lognormal(np.log(100), 0.01, size=5)
    new = base * 0.5
    r, lo, hi = ratio_ci(base, new)
    assert r == pytest.approx(0.5)
    assert 0.49 < lo < 0.5 < hi < 0.51
    assert ratio_ci([100.0] * 3, [50.0] * 4) == pytest.approx((0.5, 0.5, 0.5))
    new = rng.lognormal(np.log(50), 0.01, size=5)
    r, lo, hi = ratio_ci(base, new)
    assert 0.48 < lo < r < hi < 0.52


def test_welch_log_ratio_covers_the_truth_about_95_percent():
    hits = 0
    trials = 400
    for t in range(trials):
        rng = np.random.default_rng(t)
        b = rng.lognormal(0.0, 0.1, size=3)
        n = rng.lognormal(np.log(0.8), 0.3, size=4)
        r = log_ratio(b, n)
        hits += r.lo <= 0.8 <= r.hi
    assert 0.92 <= hits / trials <= 0.98


def test_one_value_on_a_side_has_no_interval():
    r = log_ratio([100.0], [90.0, 91.0])
    assert r.ratio == pytest.approx(np.sqrt(90 * 91) / 100)
    assert np.isnan(r.lo) and np.isnan(r.min_detectable)


def test_batch_means_cv():
    t = np.arange(1, 101) * 1e7
    steady = np.cumsum(np.full((2, 100), 1000.0), axis=1)
    assert batch_means_cv(t, steady) == pytest.approx(0.0)
    shifted = np.cumsum(np.hstack([np.full((2, 50), 1000.0), np.full((2, 50), 300.0)]), axis=1)
    assert batch_means_cv(t, shifted) > 0.3
    assert np.isnan(batch_means_cv(t[:5], steady[:, :5]))


def test_needs_more_reps():
    assert needs_more_reps([100.0, 101.0])  # below min_reps
    assert not needs_more_reps([100.0, 100.5, 99.8, 100.2])
    assert needs_more_reps([100.0, 150.0, 60.0])
    assert not needs_more_reps([100.0, 120.0, 80.0], rel_halfwidth=0.5)


def test_jain_index():
    assert jain_index([5, 5, 5, 5]) == pytest.approx(1.0)
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)
    assert np.isnan(jain_index([]))


def test_norm_value_and_keys():
    assert norm_value(4.0) == "4"
    assert norm_value(float("nan")) == ""
    assert norm_value(None) == ""
    assert norm_value("1;8;32") == "1;8;32"
    assert param_key({"workers": 4.0, "driver": "x"}, ["driver", "workers"]) == ("x", "4")


# --------------------------------------------------------------------------- a run


@pytest.fixture
def run(tmp_path):
    return load_run(make_run(tmp_path))


@pytest.fixture
def summary(run):
    return summarize(run)


def row(summary, driver, workers):
    r = summary[(summary["driver"] == driver) & (summary["workers"] == workers)]
    assert len(r) == 1
    return r.iloc[0]


def test_load_run_reads_everything(run):
    assert run.run_id == "run-a"
    assert len(run.points) == 36
    assert run.points["audit_ok"].dtype == "boolean"
    assert run.points["granule_pages"].iloc[0] == "1;8;32"
    assert not run.workers.empty
    assert run.meta["command"].startswith("iommubench run")
    assert run.config["repetitions"] == 3
    h = run.hist(0, 0)
    assert set(h) == {"map", "unmap"}
    assert run.point_hist(0, "map").sum() == 3 * 2000


def test_load_run_without_optional_files(tmp_path):
    d = make_run(tmp_path, write_workers=False, write_hist=False)
    (d / "meta.json").unlink()
    (d / "config.yaml").unlink()
    r = load_run(d)
    assert r.meta == {} and r.config is None and r.workers.empty
    assert r.hist(0, 0) is None
    s = summarize(r)
    # fairness falls back to the worker_ops_min/max columns of points.csv
    assert row(s, "serial-spin", 8)["starved"]
    assert np.isnan(row(s, "lockfree", 4)["jain"])
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "nothing")


def test_summary_one_row_per_point_with_verdicts(summary):
    assert len(summary) == 12
    assert list(summary["point"]) == list(range(12))
    assert row(summary, "lockfree", 4)["verdict"] == "ok"
    assert row(summary, "lockfree", 2)["verdict"] == "partial"
    assert row(summary, "lockfree", 2)["reps_valid"] == 2
    for w in (2, 4, 8):
        r = row(summary, "naive", w)
        assert r["verdict"] == "caught"
        assert not r["valid"]
        assert "lost_mappings" in r["audit_detail"]
    assert row(summary, "naive", 1)["valid"]
    assert row(summary, "lockfree", 8)["oversubscribed"]
    assert not row(summary, "lockfree", 4)["oversubscribed"]


def test_summary_throughput_statistics(summary):
    r = row(summary, "lockfree", 4)
    assert r["ops_per_s"] == pytest.approx(90e6, rel=0.03)
    assert r["ci_lo"] <= r["ops_per_s"] <= r["ci_hi"]
    assert 0 < r["cv"] < 0.05
    assert not r["noisy"]
    assert not r["ci_single"]


def test_contention_and_cas(summary):
    # synthetic serial-spin waits 0.6 * (1 - 1/w) of each worker's time
    assert row(summary, "serial-spin", 4)["contention_share"] == pytest.approx(0.45, rel=1e-3)
    assert row(summary, "lockfree", 4)["contention_share"] == 0
    assert row(summary, "lockfree", 4)["cas_fail_per_op"] == pytest.approx(0.02 * 3 / 50, rel=0.01)


def test_fairness_and_handoff(summary):
    r = row(summary, "serial-spin", 8)
    assert r["starved"]
    assert r["jain"] < 0.99
    assert row(summary, "lockfree", 8)["jain"] == pytest.approx(1.0, abs=1e-6)
    assert row(summary, "serial-spin", 4)["handoff_unstable"]
    assert not row(summary, "lockfree", 4)["handoff_unstable"]


def test_noisy_and_single_rep(tmp_path):
    s = summarize(load_run(make_run(tmp_path, noise=0.3, seed=2)))
    assert s["noisy"].any()
    s1 = summarize(load_run(make_run(tmp_path, name="one", reps=1)))
    r = row(s1, "lockfree", 4)
    assert r["ci_single"] and r["ci_lo"] == r["ops_per_s"] == r["ci_hi"]
    assert r["interval"] == "range" and r["n"] == 1
    few = [w for w in warnings(load_run(tmp_path / "one"), s1) if "few rep" in w]
    assert len(few) == 1 and "9 point(s)" in few[0] and "not a 95% CI" in few[0]


def test_scaling_metrics(summary):
    sc = scaling(summary).set_index("point")
    lf = {
        int(w): sc.loc[p]
        for p, w in zip(summary["point"], summary["workers"], strict=True)
        if summary.loc[summary["point"] == p, "driver"].iloc[0] == "lockfree"
    }
    assert lf[1]["speedup"] == pytest.approx(1.0)
    assert lf[4]["speedup"] == pytest.approx(3.6, rel=0.05)
    assert lf[4]["efficiency"] == pytest.approx(0.9, rel=0.05)
    assert lf[4]["peak_workers"] == 4
    # 8 workers on 4 CPUs is oversubscribed: no speedup, never the collapse's end point
    assert np.isnan(lf[8]["speedup"]) and np.isnan(lf[8]["efficiency"])
    assert lf[4]["collapse_factor"] == pytest.approx(1.0) and lf[4]["max_workers"] == 4
    sp = sc.loc[row(summary, "serial-spin", 8)["point"]]
    assert sp["peak_workers"] == 1
    assert sp["collapse_factor"] == pytest.approx(20 / 9, rel=0.05)
    # invalid (caught) points take no part
    assert np.isnan(sc.loc[row(summary, "naive", 4)["point"]]["speedup"])
    merged = with_scaling(summary)
    assert len(merged) == len(summary) and "speedup" in merged


def test_scaling_without_one_worker_point(tmp_path):
    s = summarize(load_run(make_run(tmp_path, workers=(2, 4))))
    sc = scaling(s)
    assert sc["speedup"].isna().all()
    assert sc["peak_ops_per_s"].notna().any()


def _frame(samples: dict[str, list[float]], over: bool = False) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "point": range(len(samples)),
            "driver": list(samples),
            "workers": 4,
            "ops_per_s": [float(np.median(v)) for v in samples.values()],
            "samples": [tuple(v) for v in samples.values()],
            "valid": True,
            "oversubscribed": over,
        }
    )


def test_winner_only_when_separated_from_every_rival():
    clear = {"a": [100.0, 101.0, 99.0], "b": [80.0, 81.0, 79.0], "naive": [500.0, 501, 499]}
    w = winners(_frame(clear)).iloc[0]
    assert (w["verdict"], w["winner"], w["runner_up"]) == ("winner", "a", "b")
    assert 1 < w["lo"] < w["ratio"] < w["hi"]
    tied = {"a": [100.0, 130.0, 70.0], "b": [96.0, 97.0, 95.0], "c": [30.0, 31.0, 29.0]}
    w = winners(_frame(tied)).iloc[0]
    assert w["verdict"] == "no significant difference" and w["winner"] == ""
    assert w["tied"] == ["a", "b"]  # the best, and b it does not separate from; not c
    assert winners(_frame(clear, over=True)).empty  # oversubscribed: no candidates


def test_warnings_cover_each_kind(run, summary):
    text = "\n".join(warnings(run, summary))
    assert "oversubscribed" in text
    assert "starvation" in text
    assert "handoff" in text
    assert "1 of 3 repetitions failed" in text
    assert "caught" not in text  # the negative control is not a warning
    notes = audit_notes(summary)
    assert len(notes) == 3 and all("caught" in n for n in notes)


def test_warnings_for_a_real_audit_failure(tmp_path):
    d = make_run(tmp_path)
    df = pd.read_csv(d / "points.csv", dtype=str, keep_default_na=False)
    df.loc[(df["driver"] == "lockfree") & (df["workers"] == "4"), "audit_ok"] = "False"
    df.loc[(df["driver"] == "lockfree") & (df["workers"] == "4"), "lost_mappings"] = "5"
    df.to_csv(d / "points.csv", index=False)
    r = load_run(d)
    s = summarize(r)
    assert row(s, "lockfree", 4)["verdict"] == "audit-failed"
    assert any("AUDIT FAILED" in w and "lost_mappings=5" in w for w in warnings(r, s))


def test_all_reps_failed_is_an_error(tmp_path):
    d = make_run(tmp_path, drivers=("lockfree",), workers=(1, 2), failed_rep=False)
    df = pd.read_csv(d / "points.csv", dtype=str, keep_default_na=False)
    mask = df["workers"] == "2"
    df.loc[mask, "status"] = "failed"
    df.loc[mask, "error"] = "arena too small"
    df.loc[mask, "ops_per_s"] = ""
    df.to_csv(d / "points.csv", index=False)
    r = load_run(d)
    s = summarize(r)
    assert row(s, "lockfree", 2)["verdict"] == "error"
    assert np.isnan(row(s, "lockfree", 2)["ops_per_s"])
    assert any("arena too small" in w for w in warnings(r, s))


def test_candidates_in_different_placement_states_are_not_ranked():
    clear = {"a": [100.0, 101.0, 99.0], "b": [50.0, 51.0, 49.0]}
    frame = _frame(clear)
    frame["state"] = ["fast", "slow"]
    w = winners(frame).iloc[0]
    assert w["verdict"] == "not comparable" and w["winner"] == ""
    assert "fast: a" in w["method"] and "slow: b" in w["method"]
    frame["state"] = ["fast", "fast"]
    assert winners(frame).iloc[0]["verdict"] == "winner"


def test_identical_hosts_pool_and_different_hosts_stay_apart():
    from iommubench.analysis.run_reader import split_by_host

    rows = pd.DataFrame(
        {
            "point": [0, 0, 1, 1],
            "rep": [0, 1, 0, 1],
            "host": ["lab-a", "lab-b", "lab-b", "lab-a"],
            "cpu_model": ["EPYC"] * 4,
            "cpus_allowed": ["0-63"] * 4,
        }
    )
    pooled, _, stored = split_by_host(rows, pd.DataFrame())
    assert set(pooled["host"]) == {"lab-a+lab-b"} and list(pooled["point"]) == [0, 0, 1, 1]
    assert stored == {}
    rows.loc[rows["host"] == "lab-b", "cpus_allowed"] = "0-3"  # a smaller machine
    split, _, stored = split_by_host(rows, pd.DataFrame())
    assert sorted(set(zip(split["point"], split["host"], strict=True))) == [
        (0, "lab-a"), (1, "lab-b"), (2, "lab-a"), (3, "lab-b"),
    ]  # fmt: skip
    assert stored == {(0, 0): 0, (1, 1): 0, (3, 0): 1, (2, 1): 1}
