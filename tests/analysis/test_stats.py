"""Per-point intervals, scaling, fairness and warnings on synthetic data with known answers."""

import numpy as np
import pandas as pd
import pytest

from iommubench.analysis.decisions import scaling, winners, with_scaling
from iommubench.analysis.estimators import (
    batch_means_cv,
    cv,
    hl_ratio,
    jain_index,
    median_ci,
    rank_for,
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


def test_hl_ratio_known_answer():
    rng = np.random.default_rng(0)
    base = rng.lognormal(np.log(100), 0.01, size=5)
    r = hl_ratio(base, base * 0.5)  # an exact shift: the pairwise ratios are symmetric about it
    assert r.ratio == pytest.approx(0.5) and 0.49 < r.lo < 0.5 < r.hi < 0.51
    same = hl_ratio([100.0] * 4, [50.0] * 4)
    assert (same.ratio, same.lo, same.hi) == pytest.approx((0.5, 0.5, 0.5))
    new = rng.lognormal(np.log(50), 0.01, size=5)
    r = hl_ratio(base, new)
    assert 0.48 < r.lo < r.ratio < r.hi < 0.52
    assert r.coverage == pytest.approx(1 - 2 * 4 / 252)  # 5 against 5: [D(3), D(23)]
    # the ratio is the median of the pairwise ratios, the interval two of their order statistics
    d = np.sort((new[None, :] / base[:, None]).ravel())
    assert r.ratio == pytest.approx(np.median(d)) and (r.lo, r.hi) == (d[2], d[22])


def test_exact_ranks_match_the_mann_whitney_tables():
    # two-sided 5% critical values of U (k - 1) from the published tables
    assert rank_for(5, 5) == (3, pytest.approx(0.9683, abs=1e-4))
    assert rank_for(4, 4) == (1, pytest.approx(0.9714, abs=1e-4))
    assert rank_for(6, 6)[0] == 6 and rank_for(8, 8)[0] == 14 and rank_for(10, 10)[0] == 24
    assert rank_for(3, 5)[0] == 1 and rank_for(4, 6)[0] == 3
    assert rank_for(3, 3)[0] == 0 and rank_for(3, 4)[0] == 0 and rank_for(1, 9)[0] == 0
    k, cov = rank_for(30, 30)  # normal approximation beyond 50 repetitions in all
    assert 300 <= k <= 330 and 0.945 <= cov <= 0.96


@pytest.mark.parametrize("tail", ["lognormal", "heavy"])
def test_hl_interval_covers_the_truth_at_least_95_percent(tail):
    hits = 0
    trials = 400
    for t in range(trials):
        rng = np.random.default_rng(t)
        if tail == "heavy":  # Student t with 2 degrees of freedom on the log scale
            b, n = np.exp(0.1 * rng.standard_t(2, 5)), 0.8 * np.exp(0.1 * rng.standard_t(2, 6))
        else:
            b, n = rng.lognormal(0.0, 0.2, size=5), rng.lognormal(np.log(0.8), 0.2, size=6)
        r = hl_ratio(b, n)
        hits += r.lo <= 0.8 <= r.hi
    assert 0.94 <= hits / trials <= 0.995


def test_too_few_repetitions_have_no_interval():
    r = hl_ratio([100.0], [90.0, 91.0])
    assert r.ratio == pytest.approx(np.sqrt(90 * 91) / 100)  # the median of 0.90 and 0.91
    assert np.isnan(r.lo) and np.isnan(r.min_detectable) and not r.has_interval
    r = hl_ratio([100.0, 101.0, 99.0], [50.0, 51.0, 49.0])
    assert not r.has_interval and "needs 4 against 4" in r.method


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
    """Candidates of one context; every repetition measured without load."""
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


CLEAR = {
    "a": [100.0, 101.0, 99.0, 100.5, 99.5],
    "b": [80.0, 81.0, 79.0, 80.5, 79.5],
    "naive": [500.0, 501, 499, 502, 498],
}


def test_winner_only_when_separated_from_every_rival():
    w = winners(_frame(CLEAR)).iloc[0]
    assert (w["verdict"], w["winner"], w["leader"], w["runner_up"]) == ("winner", "a", "a", "b")
    assert 1 < w["lo"] < w["ratio"] < w["hi"]
    assert w["flags"] == []
    tied = {
        "a": [100.0, 130.0, 70.0, 120.0, 75.0],
        "b": [96.0, 97.0, 95.0, 96.5, 95.5],
        "c": [30.0, 31.0, 29.0, 30.5, 29.5],
    }
    w = winners(_frame(tied)).iloc[0]
    assert w["verdict"] == "no significant difference" and w["winner"] == ""
    assert w["tied"] == ["a", "b"]  # the best, and b it does not separate from; not c
    assert w["ratio"] >= 1  # the leader is the one the ratio puts ahead
    assert winners(_frame(CLEAR, over=True)).empty  # oversubscribed: no candidates


def test_three_repetitions_a_side_decide_no_winner():
    three = {k: v[:3] for k, v in CLEAR.items()}
    w = winners(_frame(three)).iloc[0]
    assert w["verdict"] == "inconclusive" and w["winner"] == ""


def test_a_winner_under_load_must_stand_beyond_what_the_load_explains():
    frame = _frame(CLEAR)
    # a's lead is 1.25x; its rival lost up to 30% of its window to another process
    frame["low"] = [(1.0,) * 5, (0.7,) * 5, (1.0,) * 5]
    frame["high"] = [(1.0,) * 5] * 3
    frame["flags"] = ["", "competing-load", ""]
    w = winners(frame).iloc[0]
    assert w["verdict"] == "inconclusive (load)" and w["winner"] == ""
    assert w["flags"] == ["competing-load"] and "load" in w["note"]
    frame["low"] = [(1.0,) * 5, (0.9,) * 5, (1.0,) * 5]  # 10%: the 1.25x lead stands
    w = winners(frame).iloc[0]
    assert (w["verdict"], w["winner"], w["flags"]) == ("winner", "a", ["competing-load"])


def test_a_winner_must_hold_with_its_set_aside_repetitions():
    frame = _frame(CLEAR)
    # two of b's repetitions were set aside (placement changed), and they were fast
    frame["aside_samples"] = [(), (130.0, 131.0), ()]
    w = winners(frame).iloc[0]
    assert w["verdict"] == "inconclusive (set aside)" and w["winner"] == ""
    frame["aside_samples"] = [(), (79.0, 81.0), ()]
    assert winners(frame).iloc[0]["verdict"] == "winner"


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
    clear = {"a": [100.0, 101.0, 99.0, 100.5, 99.5], "b": [50.0, 51.0, 49.0, 50.5, 49.5]}
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


def test_peak_and_collapse_are_decided_with_their_flags(tmp_path):
    s = summarize(load_run(make_run(tmp_path, reps=5, handoff_flip=False, failed_rep=False)))
    sc = scaling(s).set_index("point")
    lf = sc.loc[row(s, "lockfree", 4)["point"]]
    assert (lf["peak_workers"], lf["peak_verdict"], lf["peak_over"]) == (4, "peak", 2)
    assert 90 / 48 * 0.95 < lf["peak_ratio"] < 90 / 48 * 1.05 and lf["peak_lo"] > 1.05
    assert lf["collapse_verdict"] == "peak at the largest"
    sp = sc.loc[row(s, "serial-spin", 1)["point"]]
    assert (sp["peak_workers"], sp["peak_verdict"], sp["collapse_verdict"]) == (
        1,
        "peak",
        "collapse",
    )
    assert sp["collapse_lo"] > 1.05 and sp["claim_flags"] == []
    # the same run with every repetition waiting 40% of its window for a CPU
    loaded = s.assign(low=[(0.6,) * len(x) for x in s["samples"]], flags="competing-load")
    sp = scaling(loaded).set_index("point").loc[row(s, "serial-spin", 1)["point"]]
    assert sp["peak_verdict"] == "inconclusive (load)"  # 20 / 14 M: within what 40% explains
    assert sp["collapse_verdict"] == "collapse"  # 20 / 9 M at 4 workers: beyond it
    assert sp["claim_flags"] == ["competing-load"]
