"""Same-state estimates, row flags, starvation, per-lock attribution, winners' significance,
summary.json and the text report, on synthetic runs with known answers."""

import json

import numpy as np
import pandas as pd
import pytest

from iommubench import cli
from iommubench.analysis import placement, point_summary
from iommubench.analysis.decisions import winners, with_scaling
from iommubench.analysis.lock_attribution import lock_table
from iommubench.analysis.point_flags import warnings
from iommubench.analysis.run_reader import load_run
from iommubench.report import build

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run

TWO = {"lockfree": {1: 25e6, 2: 48e6}, "serial-spin": {1: 25e6, 2: 48e6}}


def point(summary, driver, workers):
    r = summary[(summary["driver"] == driver) & (summary["workers"] == workers)]
    assert len(r) == 1
    return r.iloc[0]


def summarize(run_dir):
    return with_scaling(point_summary.summarize(load_run(run_dir)))


# --------------------------------------------------------------------------- placement


def test_two_well_separated_probe_clusters_are_two_states():
    s = placement.classify([35, 41, 58, 60, 212, 221, 230])
    assert s.of(45) == "fast" and s.of(215) == "slow"
    assert s.of_rep(40, 220) == "changed" and s.of_rep(40, None) == "fast"
    # bare metal: stable probes are one state; one CPU: no probes, no state
    stable = placement.classify([40, 41, 43, 44, 46])
    assert stable.threshold is None and stable.of(41) == "stable"
    assert placement.classify([]).of(float("nan")) == ""
    # one probe disturbed by preemption is not a state of its own
    assert placement.classify([400, 900, 1500, 2600, 57000]).threshold is None
    assert placement.classify([40, 45, 220]).threshold is None
    assert placement.classify([40, 45, 220, 230]).of(60) == "fast"
    assert placement.majority(["slow", "fast", "slow", "changed"]) == "slow"
    assert placement.majority(["slow", "fast"]) == "fast"


def test_estimate_uses_the_majority_state_and_says_what_was_set_aside(tmp_path):
    # rep 0 in the slow state at a third of the throughput, rep 3 changed state
    def probes(d, w, r):
        return {0: (215.0, 220.0), 3: (40.0, 220.0)}.get(r, (40.0, 42.0))

    def extra(d, w, r):
        return {"ops_per_s": 30e6 if r == 0 else 90e6 + 1e5 * r}

    run = make_run(
        tmp_path,
        drivers=("lockfree",),
        workers=(4,),
        reps=8,
        probes=probes,
        extra=extra,
        handoff_flip=False,
        failed_rep=False,
    )
    p = point(summarize(run), "lockfree", 4)
    assert p["state"] == "fast" and p["n"] == 6 and p["interval"] == "95% CI"
    assert p["ops_per_s"] == pytest.approx(90.45e6)  # median of reps 1, 2, 4, 5, 6, 7
    assert p["set_aside"] == "other state (slow): 1; placement changed: 1"
    assert "placement-changed" in p["flags"]


def test_points_use_the_runs_common_state_when_they_have_two_repetitions_in_it(tmp_path):
    # lockfree w=4 is mostly slow, but the run is mostly fast: its two fast repetitions
    # feed its estimate, so it is set beside the other points in the same state
    def probes(d, w, r):
        slow = d == "lockfree" and w == 4 and r >= 2
        return (215.0, 220.0) if slow else (40.0, 42.0)

    run = make_run(
        tmp_path, drivers=("lockfree", "serial-spin"), reps=6, probes=probes,
        handoff_flip=False, failed_rep=False,
    )  # fmt: skip
    s = summarize(run)
    p = point(s, "lockfree", 4)
    assert p["state"] == "fast" and p["n"] == 2
    assert p["set_aside"] == "other state (slow): 4"
    assert set(s["state"]) == {"fast"}


def test_no_probes_and_stable_probes_set_nothing_aside(tmp_path):
    for name, pr in (("none", (np.nan, np.nan)), ("stable", (41.0, 44.0))):
        run = make_run(tmp_path, name=name, probes=lambda d, w, r, pr=pr: pr, handoff_flip=False)
        s = summarize(run)
        assert s["state"].isin(["", "stable"]).all()
        assert "placement-changed" not in ";".join(s["flags"])
        assert point(s, "lockfree", 4)["n"] == 3


# --------------------------------------------------------------------------- row flags


def test_row_flags_make_repetitions_invalid_or_carry_competing_load(tmp_path):
    def flags(d, w, r):
        if w == 1 and r == 0:
            return "no-work"
        if w == 2:
            return "iova-exhausted;competing-load"
        if w == 4:
            return "competing-load"
        return ""

    s = summarize(make_run(tmp_path, drivers=("lockfree",), row_flags=flags, failed_rep=False))
    p1 = point(s, "lockfree", 1)
    assert p1["n"] == 2 and p1["set_aside"] == "no-work: 1"
    p2 = point(s, "lockfree", 2)
    assert not p2["valid"] and p2["set_aside"] == "iova-exhausted: 3"
    p4 = point(s, "lockfree", 4)
    assert p4["valid"] and p4["n"] == 3 and "competing-load" in p4["flags"]


# --------------------------------------------------------------------------- starvation


def test_starvation_only_from_one_repetition_over_2x_quoting_it(tmp_path):
    # medians of min and max taken separately would say 4x; no single repetition exceeds 2x
    def shares(d, w, r):
        return {0: [1.0, 1.0], 1: [1.0, 0.6], 2: [0.25, 0.4]}[r] if w == 2 else [1.0] * w

    run = make_run(tmp_path, drivers=("lockfree",), workers=(1, 2), shares=shares, failed_rep=False)
    p = point(summarize(run), "lockfree", 2)
    assert not p["starved"] and "starved" not in p["flags"]

    def starve(d, w, r):
        return [1.0, 0.25] if (w == 2 and r == 1) else [1.0] * w

    run = make_run(
        tmp_path, name="b", drivers=("lockfree",), workers=(1, 2), shares=starve, failed_rep=False
    )
    r = load_run(run)
    s = point_summary.summarize(r)
    p = point(s, "lockfree", 2)
    assert p["starved"] and "starved" in p["flags"]
    w = r.workers[(r.workers["point"] == p["point"]) & (r.workers["rep"] == 1)]["ops"]
    expect = f"repetition 1: busiest worker {w.max():.0f} ops, least busy {w.min():.0f} (4.0x)"
    assert p["starved_detail"] == expect
    assert any(expect in x for x in warnings(r, s))


# --------------------------------------------------------------------------- noise


def test_level_shift_in_the_series_flags_a_point(tmp_path):
    s = summarize(make_run(tmp_path, drivers=("lockfree",), series=True))
    steady = point(s, "lockfree", 4)
    assert not steady["noisy"] and 0 < steady["batch_cv"] < 0.01  # 1% tick jitter averages out
    run = make_run(
        tmp_path,
        name="shift",
        drivers=("lockfree",),
        series=True,
        extra=lambda d, w, r: {"level_shift": "True", "level_shift_ratio": 0.5} if r else {},
    )
    p = point(summarize(run), "lockfree", 4)
    assert "level-shift" in p["flags"].split(";") and not p["noisy"]
    assert p["level_shifts"] == "rep 1: 2.00x, rep 2: 2.00x"
    assert p["low"] == (1.0, 0.5, 0.5) and p["high"] == (1.0, 2.0, 2.0)
    # the series never narrows the interval across repetitions
    assert p["interval"] == "range" and p["n"] == 3


# --------------------------------------------------------------------------- winners

TWO_BY_WORKERS = {"lockfree": {1: 23e6, 2: 48e6}, "serial-spin": {1: 20e6, 2: 20e6}}


@pytest.mark.parametrize("noise", [0.01, 0.05])
def test_two_drivers_from_one_distribution_are_never_declared_different(tmp_path, noise):
    for seed in range(40):
        run = make_run(
            tmp_path,
            name=f"s{seed}-{noise}",
            drivers=("lockfree", "serial-spin"),
            workers=(1,),
            model=TWO,
            noise=noise,
            seed=seed,
            reps=5,
            failed_rep=False,
            handoff_flip=False,
            write_hist=False,
        )
        w = winners(point_summary.summarize(load_run(run)))
        assert not (w["verdict"] == "winner").any(), f"seed {seed}: {w.to_dict('records')}"


def _frame(samples: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "point": range(len(samples)),
            "driver": list(samples),
            "workers": 1,
            "ops_per_s": [float(np.median(v)) for v in samples.values()],
            "samples": [tuple(v) for v in samples.values()],
            "valid": True,
            "oversubscribed": False,
        }
    )


def test_chance_winners_are_rare_even_at_twenty_percent_noise():
    """The margin's false-winner rate, on many draws straight into the decision."""
    rng = np.random.default_rng(7)
    declared = 0
    for _ in range(400):
        same = {d: list(2e7 * np.exp(rng.normal(0, 0.2, 5))) for d in ("a", "b")}
        declared += winners(_frame(same)).iloc[0]["verdict"] == "winner"
    assert declared / 400 <= 0.03


def test_a_thirty_percent_shift_with_tight_repetitions_is_significant(tmp_path):
    model = {"lockfree": {1: 26e6, 2: 48e6}, "serial-spin": {1: 20e6, 2: 48e6 / 1.3}}
    for seed in range(5):
        run = make_run(
            tmp_path,
            name=f"t{seed}",
            drivers=("lockfree", "serial-spin"),
            workers=(1, 2),
            model=model,
            seed=seed,
            reps=5,
            failed_rep=False,
            write_hist=False,
        )
        w = winners(point_summary.summarize(load_run(run)))
        assert list(w["verdict"]) == ["winner", "winner"] and set(w["winner"]) == {"lockfree"}
        assert (w["lo"] > 1.2).all()


# --------------------------------------------------------------------------- locks


def test_per_lock_table(tmp_path):
    s = summarize(make_run(tmp_path, drivers=("serial-spin",), per_lock=True))
    t = lock_table(s)
    p2 = int(point(s, "serial-spin", 2)["point"])
    rows = t[t["point"] == p2].set_index("lock")
    assert set(rows.index) == {"lock", "iova_lock"}  # idle locks are left out
    assert rows.loc["lock", "contended_share"] == pytest.approx(0.3, rel=1e-3)
    assert rows.loc["lock", "wait_share"] == pytest.approx(0.3, rel=1e-3)
    assert rows.loc["lock", "max_wait_ns"] == 10000
    assert rows.loc["iova_lock", "wait_share"] == pytest.approx(0.1, rel=1e-3)
    assert rows.loc["iova_lock", "name"] == "IOVA tree"
    assert lock_table(summarize(make_run(tmp_path, name="old", drivers=("lockfree",)))).empty


# --------------------------------------------------------------------------- summary.json


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("sum")
    run_dir = make_run(root, per_lock=True, reps=5)
    paths = build.write_report(run_dir, root / "out")
    return run_dir, paths


def test_summary_json_fields(written):
    _, (js, md, _) = written
    assert js.name == "summary.json" and js.parent == md.parent
    s = json.loads(js.read_text())
    assert s["unit"] == "I/O/s" and s["workload"] == "dma"
    p = next(
        x
        for x in s["points"]
        if x["params"]["driver"] == "lockfree" and x["params"]["workers"] == 4
    )
    for key in ("params", "estimate", "lo", "hi", "interval", "method", "n", "flags"):
        assert key in p
    assert p["interval"] == "range" and p["method"] == "range (n=5)" and p["n"] == 5
    assert p["lo"] <= p["estimate"] <= p["hi"]
    over = next(x for x in s["points"] if x["params"]["workers"] == 8)
    assert "oversubscribed" in over["flags"]
    assert {w["workers"] for w in s["winners"]} == {1, 2, 4}
    assert all({"verdict", "ratio", "lo", "hi", "tied", "winner"} <= set(w) for w in s["winners"])
    assert {r["group"]: r["peak_workers"] for r in s["scaling"]} == {
        "domain-lock/ttas": 1,  # serial-spin's strategy
        "lockfree": 4,
    }
    assert any(r["name"] == "IOVA tree" for r in s["locks"])
    # typed: numbers as numbers, booleans as booleans, names as text
    assert all(type(x["params"]["workers"]) is int for x in s["points"])
    assert all(isinstance(x["params"]["driver"], str) for x in s["points"])
    assert all(type(x["n"]) is int for x in s["points"])
    assert s["warnings"] and s["overview"]["set_aside"] == {"failed": 1, "audit failed": 15}
    assert s["overview"]["conditions"] == (
        "no competing load in 59 repetitions (run-queue wait not measured); no other "
        "iommubench run overlapped it; 16 repetition(s) set aside (failed 1, audit failed 15)"
    )  # one host: no "pooled", no host named when the rows name none


def test_markdown_renders_the_json(written):
    _, (js, md, html) = written
    s = json.loads(js.read_text())
    text = md.read_text()
    for w in s["warnings"]:
        assert w in text
    for pw in s["point_warnings"]:
        assert f"| {pw['point']} | {pw['label']} |" in text
    p = s["points"][0]
    assert f"({'range'}, n={p['n']})" in text
    assert "IOVA tree" in html.read_text()


def test_text_report_lines_fit_72_columns(written, capsys):
    run_dir, _ = written
    text = build.text_report(run_dir)
    lines = text.splitlines()
    assert max(len(x) for x in lines) <= 72
    assert lines[1].startswith("conditions: no competing load in 59 repetitions")
    first = next(i for i, x in enumerate(lines) if x.startswith("Decided comparisons"))
    assert first <= 6 and first < lines.index("Warnings:")
    assert "winner lockfree" in text and "lockfree / domain-lock/ttas = " in text
    assert cli.main(["report", str(run_dir), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == text.strip()


def test_a_run_without_rows_is_refused_in_one_line(tmp_path, capsys):
    d = make_run(tmp_path, drivers=("lockfree",))
    header = (d / "points.csv").read_text().splitlines()[0]
    (d / "points.csv").write_text(header + "\n")
    for argv in (
        ["report", str(d)],
        ["report", str(d), "--format", "text"],
        ["compare", str(d), str(d)],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no rows yet" in err


def test_a_loaded_run_names_no_unflagged_winner(tmp_path):
    """Issue 18, item 2: every repetition under competing load, some heavily: the text
    report's decided comparisons carry their flags, and a lead the load could explain is
    not a winner."""
    rng = np.random.default_rng(3)

    def loaded(d, w, r):
        share = float(rng.uniform(0.1, 0.2))
        tput = TWO_BY_WORKERS[d][w] * (1 - share * rng.uniform(0.9, 1.0))
        return {"ops_per_s": f"{tput:.3f}", "runq_wait_share": share, "flags": "competing-load"}

    run = make_run(
        tmp_path, drivers=("lockfree", "serial-spin"), workers=(1, 2), model=TWO_BY_WORKERS,
        reps=5, cpus=2, failed_rep=False, handoff_flip=False, extra=loaded,
    )  # fmt: skip
    text = build.text_report(run)
    decided = text.split("Decided comparisons")[1].split("Strategies side by side")[0]
    claims: list[str] = []  # one per claim, its wrapped lines joined
    for ln in decided.splitlines()[1:]:
        if ln.startswith("  ") and not ln.startswith("   "):
            claims.append(ln)
        elif claims and ln.strip() and "=" not in ln:
            claims[-1] += " " + ln.strip()
    assert len(claims) == 4 and all("competing-load" in c for c in claims), decided
    assert "w=2: winner lockfree [" in decided  # 2.4x at two workers: beyond the load
    assert "w=1: inconclusive (load)" in decided  # 1.15x: within what the load explains
    assert text.splitlines()[1].startswith("conditions: competing load in 20 of 20 repetitions")
