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


def verdicts(a, b, **kw):
    c = compare.compare_runs(compare.load_run(a), compare.load_run(b), **kw)
    return {p.label: p for p in c.points}, c


def test_run_against_itself_claims_no_change(tmp_path):
    a = make_run(tmp_path, "a")
    text, code = compare.compare(a, a)
    assert code == 0
    pts, _ = verdicts(a, a)
    assert pts["lockfree w=4"].verdict == "no significant change"
    assert pts["domain-lock/ttas w=4"].verdict == "not comparable"  # its probes changed state
    assert "naive w=2" in pts and pts["naive w=2"].verdict == "not comparable"
    assert "12 matched" in text and "regression 0" in text


def test_same_distribution_twice_is_never_a_regression(tmp_path):
    for seed in range(10):
        a = make_run(tmp_path, f"a{seed}", seed=seed, handoff_flip=False)
        b = make_run(tmp_path, f"b{seed}", seed=100 + seed, handoff_flip=False)
        pts, c = verdicts(a, b)
        assert c.exit_code() == 0
        seen = [p.verdict for p in pts.values()]
        assert "regression" not in seen and "improvement" not in seen
        assert seen.count("no significant change") >= 6


def test_twenty_percent_regression_on_a_tight_point(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",), model=LOCKFREE, failed_rep=False)
    b = make_run(tmp_path, "b", drivers=("lockfree",), model=LOCKFREE, scale=0.8, seed=1)
    pts, _ = verdicts(a, b)
    p = pts["w=4"]
    assert p.verdict == "regression"
    assert p.ratio == pytest.approx(0.8, rel=0.03) and p.hi < 0.95
    assert 0 < p.min_detectable < 0.05
    assert compare.compare(a, b)[1] == 1


def test_a_halved_but_noisy_point_is_never_no_change(tmp_path):
    for seed in range(10):
        a = make_run(tmp_path, f"a{seed}", drivers=("lockfree",), noise=0.5, seed=seed)
        b = make_run(
            tmp_path, f"b{seed}", drivers=("lockfree",), noise=0.5, scale=0.5, seed=50 + seed
        )
        pts, _ = verdicts(a, b)
        for p in pts.values():
            assert p.verdict in ("regression", "inconclusive", "not comparable")
            if p.verdict == "inconclusive":  # too wide to see 5%, or no interval at all
                assert not p.min_detectable <= 0.05
                assert p.notes[0].startswith(("too wide", "no interval", "a significant"))


def test_strict_exits_3_when_inconclusive_and_1_wins(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",), noise=0.3, failed_rep=False)
    b = make_run(tmp_path, "b", drivers=("lockfree",), noise=0.3, seed=7, failed_rep=False)
    pts, c = verdicts(a, b)
    assert any(p.verdict == "inconclusive" for p in pts.values())
    assert c.exit_code() == 0 and c.exit_code(strict=True) == 3
    d = make_run(tmp_path, "d", drivers=("lockfree",), scale=0.5, seed=3)
    e = make_run(tmp_path, "e", drivers=("lockfree",), noise=0.3, seed=8)
    c = verdicts(a, e)[1]
    c.points[0].verdict = "regression"  # one regression among inconclusive points
    assert c.exit_code(strict=True) == 1
    assert compare.compare(a, d, strict=True)[1] == 1


def test_improvement(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",))
    b = make_run(tmp_path, "b", drivers=("lockfree",), scale=1.3, seed=4)
    pts, c = verdicts(a, b)
    assert pts["w=1"].verdict == "improvement" and c.exit_code() == 0


def test_points_matched_by_parameters_not_index(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", drivers=("lockfree", "serial-spin", "serial-mutex"))
    text, code = compare.compare(a, b)
    assert code == 0
    assert "only in base" in text and "naive w=4" in text.split("only in base")[1]
    assert "only in new" in text and "domain-lock/pthread-mutex w=2" in text.split("only in new")[1]
    assert "8 matched" in text


def test_a_new_audit_failure_is_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
    df = pd.read_csv(b / "points.csv", dtype=str, keep_default_na=False)
    m = (df["driver"] == "lockfree") & (df["workers"] == "4")
    df.loc[m, "audit_ok"] = "False"
    df.to_csv(b / "points.csv", index=False)
    pts, c = verdicts(a, b)
    assert pts["lockfree w=4"].verdict == "regression"
    assert "no valid result" in pts["lockfree w=4"].notes[0]
    assert c.exit_code() == 1


def test_one_new_audit_failure_among_valid_repetitions_is_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
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


def test_placement_state_and_competing_load_make_points_not_comparable(tmp_path):
    fast = make_run(tmp_path, "fast", handoff_flip=False, probes=lambda d, w, r: (40.0, 42.0))
    slow = make_run(
        tmp_path, "slow", handoff_flip=False, seed=1, probes=lambda d, w, r: (220.0, 215.0)
    )
    pts, _ = verdicts(fast, slow)
    assert {p.verdict for p in pts.values()} == {"not comparable"}
    assert "placement state differs (fast vs slow)" in pts["lockfree w=4"].notes
    loaded = make_run(
        tmp_path, "loaded", handoff_flip=False, seed=2, row_flags=lambda d, w, r: "competing-load"
    )
    pts, _ = verdicts(make_run(tmp_path, "quiet", handoff_flip=False), loaded)
    assert pts["lockfree w=4"].verdict == "not comparable"
    assert "competing load in the new run only" in pts["lockfree w=4"].notes


def test_stable_probes_on_bare_metal_and_no_probes_compare_normally(tmp_path):
    a = make_run(tmp_path, "a", handoff_flip=False, probes=lambda d, w, r: (41.0 + r, 43.0))
    b = make_run(tmp_path, "b", handoff_flip=False, seed=1, probes=lambda d, w, r: (np.nan, np.nan))
    pts, _ = verdicts(a, b)
    assert pts["lockfree w=4"].verdict == "no significant change"


def test_ignore_matches_points_that_differ_only_there(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",), extra=lambda d, w, r: {"cs_ns": 0})
    b = make_run(
        tmp_path, "b", drivers=("lockfree",), scale=0.7, seed=1, extra=lambda d, w, r: {"cs_ns": 30}
    )
    with pytest.raises(compare.CompareError, match="no point matched"):
        compare.compare(a, b)
    text, code = compare.compare(a, b, ignore=["cs_ns"])
    assert code == 1 and "ignored parameters: cs_ns" in text
    pts, _ = verdicts(a, b, ignore=["cs_ns"])
    assert pts["w=1"].verdict == "regression"
    with pytest.raises(compare.CompareError, match="allowed: workload"):
        compare.compare(a, b, ignore=["bogus"])


def test_p99_latency_is_a_secondary_note(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",), failed_rep=False)
    e = make_run(tmp_path, "e", drivers=("lockfree",), latency_scale=1.5, failed_rep=False)
    pts, _ = verdicts(a, e)
    assert any(n.startswith("map_p99_ns +50%") and "(worse)" in n for n in pts["w=4"].notes)


def test_json_format(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",))
    b = make_run(tmp_path, "b", drivers=("lockfree",), scale=0.8, seed=1)
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
    a = make_run(tmp_path, "a", drivers=("lockfree",))
    code, out, _ = run_cli(capsys, "compare", str(a), str(a), "--threshold", "5")
    assert code == 0 and "threshold: ±5.0%" in out
    for bad in ("abc", "0", "100", "-3%"):
        code, _, err = run_cli(capsys, "compare", str(a), str(a), f"--threshold={bad}")
        assert code == 2 and err.count("\n") == 1 and err.startswith("iommubench: --threshold")


def test_cli_bad_ignore_and_nothing_matched_exit_2(tmp_path, capsys):
    a = make_run(tmp_path, "a", drivers=("lockfree",))
    b = make_run(tmp_path, "b", drivers=("serial-spin",))
    code, _, err = run_cli(capsys, "compare", str(a), str(a), "--ignore", "bogus")
    assert code == 2 and "allowed:" in err and "cs_ns" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "compare", str(a), str(b))
    assert code == 2 and "no point matched" in err and err.count("\n") == 1 and out == ""


def test_cli_json_and_strict(tmp_path, capsys):
    a = make_run(tmp_path, "a", drivers=("lockfree",), noise=0.3, failed_rep=False)
    b = make_run(tmp_path, "b", drivers=("lockfree",), noise=0.3, seed=7, failed_rep=False)
    code, out, _ = run_cli(capsys, "compare", str(a), str(b), "--format", "json", "--strict")
    assert code == 3 and any(p["verdict"] == "inconclusive" for p in json.loads(out))
