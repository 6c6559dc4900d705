"""compare: exit codes on synthetic runs, matching by parameters, unmatched points."""

import pandas as pd

from iommubench import compare

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run


def test_run_against_itself_is_clean(tmp_path):
    a = make_run(tmp_path, "a")
    text, code = compare.compare(a, a)
    assert code == 0
    assert "REGRESSION" not in text
    assert "12 matched, 0 regression(s)" in text


def test_half_the_throughput_is_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", scale=0.5, seed=1)
    text, code = compare.compare(a, b)
    assert code == 1
    assert "REGRESSION" in text
    assert "lockfree w=4" in text
    # the point whose probes disagree is shown but not counted
    assert "not-comparable" in text


def test_one_percent_faster_is_not_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    c = make_run(tmp_path, "c", scale=1.01, seed=2)
    text, code = compare.compare(a, c)
    assert code == 0
    assert "REGRESSION" not in text


def test_small_drop_within_threshold_is_not_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    d = make_run(tmp_path, "d", scale=0.97, seed=3)
    assert compare.compare(a, d)[1] == 0
    # but it is beyond a 1% threshold (and the intervals separate)
    assert compare.compare(a, d, threshold=0.01)[1] == 1


def test_p99_rise_is_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    e = make_run(tmp_path, "e", latency_scale=1.5)
    text, code = compare.compare(a, e)
    assert code == 1
    assert "map_p99_ns" in text


def test_points_matched_by_parameters_not_index(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", drivers=("lockfree", "serial-spin", "serial-mutex"))
    # b's point indices are shuffled relative to a's and one driver is new
    text, code = compare.compare(a, b)
    assert code == 0
    assert "only in base" in text and "naive w=4" in text.split("only in base")[1]
    assert "only in new" in text and "serial-mutex w=2" in text.split("only in new")[1]
    assert "8 matched" in text


def test_a_new_audit_failure_is_a_regression(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
    df = pd.read_csv(b / "points.csv", dtype=str, keep_default_na=False)
    m = (df["driver"] == "lockfree") & (df["workers"] == "4")
    df.loc[m, "audit_ok"] = "False"
    df.to_csv(b / "points.csv", index=False)
    text, code = compare.compare(a, b)
    assert code == 1
    assert "new-failure" in text


def test_no_match_at_all(tmp_path):
    a = make_run(tmp_path, "a", drivers=("lockfree",))
    b = make_run(tmp_path, "b", drivers=("serial-spin",))
    text, code = compare.compare(a, b)
    assert code == 0
    assert "no points matched" in text
