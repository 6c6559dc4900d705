"""compare: one verdict per matched point, exit codes, matching by parameters, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from iommubench import cli
from iommubench.analysis import compare

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run

LOCKFREE = {"lockfree": {1: 25e6, 2: 48e6, 4: 90e6, 8: 88e6}}
MODEL = {"lockfree": LOCKFREE["lockfree"], "serial-spin": {1: 20e6, 2: 14e6, 4: 9e6, 8: 4e6}}


def run(tmp_path, name, **kw):
    """A synthetic run with 5 repetitions a point (3 against 3 has no 95% interval)."""
    kw.setdefault("reps", 5)
    return make_run(tmp_path, name, **kw)


def loaded(share, seed=0, cost=1.0, scale=1.0):
    """`extra` for make_run: each repetition waited for a CPU for `share(rep)` of its window
    (+- 0.05) and lost `cost` x that share of its throughput (`scale`: a real change)."""
    rng = np.random.default_rng(seed)

    def extra(driver, w, rep):
        model = MODEL.get(driver, LOCKFREE["lockfree"])
        lost = min(0.95, max(0.0, share(rep) + 0.05 * rng.standard_normal()))
        tput = model[w] * scale * (1 + 0.01 * rng.standard_normal()) * (1 - cost * lost)
        flags = "competing-load" if lost > 0.05 else ""
        return {"ops_per_s": f"{tput:.3f}", "runq_wait_share": lost, "flags": flags}

    return extra


def verdicts(a, b, **kw):
    c = compare.compare_runs(compare.load_run(a), compare.load_run(b), **kw)
    return {p.label: p for p in c.points}, c


def test_run_against_itself_claims_no_change(tmp_path):
    a = run(tmp_path, "a")
    text, code = compare.compare(a, a)
    assert code == 0
    pts, _ = verdicts(a, a)
    assert pts["lockfree w=4"].verdict == "no significant change"
    assert pts["domain-lock/ttas w=4"].verdict == "not comparable"  # its probes changed state
    assert "naive w=2" in pts and pts["naive w=2"].verdict == "not comparable"
    assert "12 matched" in text and "regression 0" in text


def test_same_distribution_twice_is_never_a_regression(tmp_path):
    for seed in range(10):
        a = run(tmp_path, f"a{seed}", seed=seed, handoff_flip=False)
        b = run(tmp_path, f"b{seed}", seed=100 + seed, handoff_flip=False)
        pts, c = verdicts(a, b)
        assert c.exit_code() == 0
        seen = [p.verdict for p in pts.values()]
        assert "regression" not in seen and "improvement" not in seen
        assert seen.count("no significant change") >= 6


def test_twenty_percent_regression_on_a_tight_point(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",), model=LOCKFREE, failed_rep=False)
    b = run(tmp_path, "b", drivers=("lockfree",), model=LOCKFREE, scale=0.8, seed=1)
    pts, _ = verdicts(a, b)
    p = pts["w=4"]
    assert p.verdict == "regression"
    assert p.ratio == pytest.approx(0.8, rel=0.03) and p.hi < 0.95
    assert 0 < p.min_detectable < 0.05
    assert compare.compare(a, b)[1] == 1


# 50% normal noise draws a few negative throughputs, which the reader sets aside (and says so)
@pytest.mark.filterwarnings("ignore:.*is out of range::iommubench.analysis.run_reader")
def test_a_halved_but_noisy_point_is_never_no_change(tmp_path):
    for seed in range(10):
        a = run(tmp_path, f"a{seed}", drivers=("lockfree",), noise=0.5, seed=seed)
        b = run(tmp_path, f"b{seed}", drivers=("lockfree",), noise=0.5, scale=0.5, seed=50 + seed)
        pts, _ = verdicts(a, b)
        for p in pts.values():
            assert p.verdict in ("regression", "inconclusive", "not comparable")
            if p.verdict == "inconclusive":  # too wide to see 5%, or no interval at all
                assert not p.min_detectable <= 0.05
                note = p.notes[0]
                assert note.startswith(("too wide", "a significant")) or "no 95% interval" in note


def test_strict_exits_3_when_inconclusive_and_1_wins(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",), noise=0.3, failed_rep=False)
    b = run(tmp_path, "b", drivers=("lockfree",), noise=0.3, seed=7, failed_rep=False)
    pts, c = verdicts(a, b)
    assert any(p.verdict == "inconclusive" for p in pts.values())
    assert c.exit_code() == 0 and c.exit_code(strict=True) == 3
    d = run(tmp_path, "d", drivers=("lockfree",), scale=0.5, seed=3)
    e = run(tmp_path, "e", drivers=("lockfree",), noise=0.3, seed=8)
    c = verdicts(a, e)[1]
    c.points[0].verdict = "regression"  # one regression among inconclusive points
    assert c.exit_code(strict=True) == 1
    assert compare.compare(a, d, strict=True)[1] == 1


def test_improvement(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",))
    b = run(tmp_path, "b", drivers=("lockfree",), scale=1.3, seed=4)
    pts, c = verdicts(a, b)
    assert pts["w=1"].verdict == "improvement" and c.exit_code() == 0


def test_points_matched_by_parameters_not_index(tmp_path):
    a = run(tmp_path, "a")
    b = run(tmp_path, "b", drivers=("lockfree", "serial-spin", "serial-mutex"))
    text, code = compare.compare(a, b)
    assert code == 0
    assert "only in base" in text and "naive w=4" in text.split("only in base")[1]
    assert "only in new" in text and "domain-lock/pthread-mutex w=2" in text.split("only in new")[1]
    assert "8 matched" in text


def test_a_new_audit_failure_is_a_regression(tmp_path):
    a = run(tmp_path, "a")
    b = run(tmp_path, "b")
    df = pd.read_csv(b / "points.csv", dtype=str, keep_default_na=False)
    m = (df["driver"] == "lockfree") & (df["workers"] == "4")
    df.loc[m, "audit_ok"] = "False"
    df.to_csv(b / "points.csv", index=False)
    pts, c = verdicts(a, b)
    assert pts["lockfree w=4"].verdict == "regression"
    assert "no valid result" in pts["lockfree w=4"].notes[0]
    assert c.exit_code() == 1


def test_one_new_audit_failure_among_valid_repetitions_is_a_regression(tmp_path):
    a = run(tmp_path, "a")
    b = run(tmp_path, "b")
    df = pd.read_csv(b / "points.csv", dtype=str, keep_default_na=False)
    m = (df["driver"] == "lockfree") & (df["workers"] == "4") & (df["rep"] == "1")
    df.loc[m, ["audit_ok", "lost_mappings"]] = ["False", "2"]
    df.to_csv(b / "points.csv", index=False)
    pts, c = verdicts(a, b)
    assert pts["lockfree w=4"].verdict == "regression"
    assert pts["lockfree w=4"].notes == ["new audit failure: lost_mappings=2"]
    assert c.exit_code() == 1
    # the other way round (the base failed, the new run did not) is not comparable
    pts, c = verdicts(b, a)
    assert pts["lockfree w=4"].verdict == "not comparable" and c.exit_code() == 0


def test_placement_states_that_differ_make_points_not_comparable(tmp_path):
    fast = run(tmp_path, "fast", handoff_flip=False, probes=lambda d, w, r: (40.0, 42.0))
    slow = run(tmp_path, "slow", handoff_flip=False, seed=1, probes=lambda d, w, r: (220.0, 215.0))
    pts, _ = verdicts(fast, slow)
    assert {p.verdict for p in pts.values()} == {"not comparable"}
    assert "placement state differs (fast vs slow)" in pts["lockfree w=4"].notes


def test_load_in_one_run_only_is_decided_by_what_it_could_explain(tmp_path):
    """Competing load on one side no longer makes a pair not comparable: a 5x slowdown
    that a 30% run-queue wait cannot explain is a regression (issue 18, item 5), a 0.8x
    one under 30% load is inconclusive (load)."""
    kw = dict(drivers=("lockfree",), handoff_flip=False, failed_rep=False, workers=(1, 2, 4))
    quiet = run(tmp_path, "quiet", **kw)
    slow = run(tmp_path, "slow", extra=loaded(lambda r: 0.3, seed=1, cost=0.0, scale=0.2), **kw)
    pts, c = verdicts(quiet, slow)
    p = pts["w=1"]
    assert p.verdict == "regression" and p.flags == ["competing-load"]
    assert c.exit_code() == 1
    mild = run(tmp_path, "mild", extra=loaded(lambda r: 0.3, seed=2, cost=0.7), **kw)
    pts, c = verdicts(quiet, mild)
    p = pts["w=1"]
    assert 0.7 < p.ratio < 0.85 and p.hi < 1  # a regression as measured ...
    assert p.verdict == "inconclusive (load)"  # ... that the measured load explains
    assert "regression as measured" in p.notes[0] and "could explain" in p.notes[0]
    assert c.exit_code() == 0 and c.exit_code(strict=True) == 3


def test_identical_runs_under_different_load_exit_0(tmp_path):
    """The A/A case of issue 18 (item 1): one config twice, the second under more load."""
    kw = dict(handoff_flip=False, failed_rep=False, workers=(1, 2, 4))
    a = run(tmp_path, "a", extra=loaded(lambda r: 0.1, seed=3), **kw)
    b = run(tmp_path, "b", extra=loaded(lambda r: 0.35, seed=4), **kw)
    text, code = compare.compare(a, b)
    pts, _ = verdicts(a, b)
    assert code == 0, text
    assert not [p for p in pts.values() if p.verdict in ("regression", "improvement")]
    assert any(p.verdict == "inconclusive (load)" for p in pts.values())
    assert "under competing load" in text.splitlines()[1]


def test_a_point_set_aside_in_every_repetition_is_no_regression(tmp_path):
    """Every repetition of the new run's w=1 point window-stretched (set aside): it ran and
    passed its audit, so it is no missing result and no regression, only undecided."""
    kw = dict(drivers=("lockfree",), handoff_flip=False, failed_rep=False, noise=0.02)
    base = run(tmp_path, "base", **kw)

    def new_extra(d, w, r):
        return {"flags": "window-stretched"} if w == 1 else {}

    new = run(tmp_path, "new", seed=9, extra=new_extra, **kw)
    pts, c = verdicts(base, new)
    p = pts["w=1"]
    assert p.verdict == "inconclusive (set aside)", (p.verdict, p.notes)
    assert "every repetition of the new run set aside (window-stretched" in p.notes[0]
    assert pts["w=2"].verdict != "regression"
    assert c.exit_code() == 0


def test_setting_aside_cannot_create_a_verdict(tmp_path):
    """Issue 18, item 3: the fastest repetition of the new run set aside as 'placement
    changed' would turn an inconclusive pair into a regression."""
    kw = dict(drivers=("lockfree",), handoff_flip=False, failed_rep=False, noise=0.02)
    base = run(tmp_path, "base", **kw)
    fast_rep = {"ops_per_s": f"{1.3 * 25e6:.3f}", "flags": "window-stretched"}

    def new_extra(d, w, r):
        return fast_rep if (w, r) == (1, 4) else {}

    new = run(tmp_path, "new", scale=0.85, seed=9, extra=new_extra, **kw)
    pts, c = verdicts(base, new)
    p = pts["w=1"]
    assert p.n_new == 4 and p.n_set_aside == 1
    assert p.hi < 1  # without the set-aside repetition, a regression
    assert p.verdict == "inconclusive (set aside)" and "with them" in p.notes[0]
    assert pts["w=2"].verdict == "regression"  # no repetition set aside there
    assert c.exit_code() == 1


def test_fewer_than_three_repetitions_decide_nothing(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",), reps=2, failed_rep=False)
    b = run(tmp_path, "b", drivers=("lockfree",), reps=2, scale=0.5, seed=1, failed_rep=False)
    pts, c = verdicts(a, b)
    assert {p.verdict for p in pts.values()} == {"inconclusive"}
    assert "fewer than 3 repetitions" in pts["w=1"].notes[0]
    assert c.exit_code() == 0


def test_one_estimator_end_to_end(tmp_path):
    """The columns are medians, the ratio the median of the pairwise ratios, its interval
    theirs; the header names the estimator once."""
    a = run(tmp_path, "a", drivers=("lockfree",), noise=0.2, failed_rep=False)
    b = run(tmp_path, "b", drivers=("lockfree",), noise=0.2, seed=5, failed_rep=False)
    c = compare.compare_runs(compare.load_run(a), compare.load_run(b))
    p = c.points[0]
    bs = compare.summarize(c.base).iloc[0]
    ns = compare.summarize(c.new).iloc[0]
    assert p.base_estimate == np.median(bs["samples"]) and p.new_estimate == np.median(
        ns["samples"]
    )
    pairwise = np.asarray(ns["samples"])[None, :] / np.asarray(bs["samples"])[:, None]
    assert p.ratio == pytest.approx(np.median(pairwise))
    assert pairwise.min() <= p.lo <= p.ratio <= p.hi <= pairwise.max()
    text = compare.format_text(c)
    assert text.count("Hodges-Lehmann") == 1 and "Welch" not in text


def test_runs_measured_at_different_times_say_so(tmp_path):
    def at(t0):
        return lambda d, w, r: {"started_at": t0 + r, "ended_at": t0 + r + 0.5}

    a = run(tmp_path, "a", drivers=("lockfree",), extra=at(1.7e9))
    b = run(tmp_path, "b", drivers=("lockfree",), extra=at(1.7e9 + 60))
    text, _ = compare.compare(a, b)
    assert "when: measured at different times (base 2023-11-14 22:13:20–22:13:24" in text
    assert "not randomised" in text
    c = run(tmp_path, "c", drivers=("lockfree",), extra=at(1.7e9 + 2))
    assert "interleaved" in compare.compare(a, c)[0]
    assert "when: the same run on both sides" in compare.compare(a, a)[0]


def test_stable_probes_on_bare_metal_and_no_probes_compare_normally(tmp_path):
    a = run(tmp_path, "a", handoff_flip=False, probes=lambda d, w, r: (41.0 + r, 43.0))
    b = run(tmp_path, "b", handoff_flip=False, seed=1, probes=lambda d, w, r: (np.nan, np.nan))
    pts, _ = verdicts(a, b)
    assert pts["lockfree w=4"].verdict == "no significant change"


def test_ignore_matches_points_that_differ_only_there(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",), extra=lambda d, w, r: {"cs_ns": 0})
    b = run(
        tmp_path, "b", drivers=("lockfree",), scale=0.7, seed=1, extra=lambda d, w, r: {"cs_ns": 30}
    )
    with pytest.raises(compare.CompareError, match=r"they differ in cs_ns \(base 0; new 30\)"):
        compare.compare(a, b)
    text, code = compare.compare(a, b, ignore=["cs_ns"])
    assert code == 1 and "ignored parameters: cs_ns" in text
    pts, _ = verdicts(a, b, ignore=["cs_ns"])
    assert pts["w=1"].verdict == "regression"
    with pytest.raises(compare.CompareError, match="allowed: workload"):
        compare.compare(a, b, ignore=["bogus"])


def test_ignore_of_a_parameter_swept_within_a_run_is_refused(tmp_path, capsys):
    """Issue 18, item 6: ignoring cs_ns where one run holds cs_ns 0 and 30 would silently
    compare half of its points."""

    def two_cs(d, w, r):  # the serial-spin rows become lockfree with cs_ns 30
        return {"driver": "lockfree", "cs_ns": 30 if d == "serial-spin" else 0}

    kw = dict(drivers=("lockfree", "serial-spin"), workers=(1, 2), extra=two_cs)
    a = run(tmp_path, "a", **kw)
    with pytest.raises(compare.CompareError) as err:
        compare.compare(a, a, ignore=["cs_ns"])
    msg = str(err.value)
    assert msg.startswith("--ignore cs_ns: points 0 and 2 of ") and "\n" not in msg
    assert "differ only in cs_ns (0, 30)" in msg
    code, out, err_text = run_cli(capsys, "compare", str(a), str(a), "--ignore", "cs_ns")
    assert code == 2 and out == "" and err_text.count("\n") == 1


def test_p99_latency_is_a_secondary_note(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",), failed_rep=False)
    e = run(tmp_path, "e", drivers=("lockfree",), latency_scale=1.5, failed_rep=False)
    pts, _ = verdicts(a, e)
    assert any(n.startswith("map_p99_ns +50%") and "(worse)" in n for n in pts["w=4"].notes)


def test_json_format(tmp_path):
    a = run(tmp_path, "a", drivers=("lockfree",))
    b = run(tmp_path, "b", drivers=("lockfree",), scale=0.8, seed=1)
    text, code = compare.compare(a, b, fmt="json")
    data = json.loads(text)
    assert code == 1 and len(data) == 4
    assert all(type(d["params"]["workers"]) is int for d in data)
    assert all(isinstance(d["params"]["driver"], str) for d in data)
    assert all(d["ratio"] is None or isinstance(d["ratio"], float) for d in data)
    keys = {
        "params",
        "ratio",
        "lo",
        "hi",
        "verdict",
        "min_detectable",
        "method",
        "n_base",
        "n_new",
        "notes",
    }
    assert keys <= set(data[0])
    assert data[0]["params"]["driver"] == "lockfree" and data[0]["verdict"] == "regression"


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_threshold_is_percent(tmp_path, capsys):
    assert cli._parse_threshold("5") == pytest.approx(0.05)
    assert cli._parse_threshold("5%") == pytest.approx(0.05)
    assert cli._parse_threshold("0.5") == pytest.approx(0.005)
    a = run(tmp_path, "a", drivers=("lockfree",))
    code, out, _ = run_cli(capsys, "compare", str(a), str(a), "--threshold", "5")
    assert code == 0 and "threshold: ±5%;" in out
    b = run(tmp_path, "b", drivers=("lockfree",), noise=0.05, seed=3)
    code, out, _ = run_cli(capsys, "compare", str(a), str(b), "--threshold", "0.5")
    # one spelling of the threshold everywhere: never 0.005, ±0.1% or ±0%
    assert "threshold: ±0.5%;" in out and "at ±0.5%" in out
    assert "±0%" not in out and "±0.1%" not in out and "0.005" not in out
    for bad in ("abc", "0", "100", "-3%"):
        code, _, err = run_cli(capsys, "compare", str(a), str(a), f"--threshold={bad}")
        assert code == 2 and err.count("\n") == 1 and err.startswith("iommubench: --threshold")


def test_cli_bad_ignore_and_nothing_matched_exit_2(tmp_path, capsys):
    a = run(tmp_path, "a", drivers=("lockfree",))
    b = run(tmp_path, "b", drivers=("serial-spin",))
    code, _, err = run_cli(capsys, "compare", str(a), str(a), "--ignore", "bogus")
    assert code == 2 and "allowed:" in err and "cs_ns" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "compare", str(a), str(b))
    assert code == 2 and "no point matched" in err and err.count("\n") == 1 and out == ""


def test_cli_json_and_strict(tmp_path, capsys):
    a = run(tmp_path, "a", drivers=("lockfree",), noise=0.3, failed_rep=False)
    b = run(tmp_path, "b", drivers=("lockfree",), noise=0.3, seed=7, failed_rep=False)
    code, out, _ = run_cli(capsys, "compare", str(a), str(b), "--format", "json", "--strict")
    assert code == 3 and any(p["verdict"] == "inconclusive" for p in json.loads(out))
