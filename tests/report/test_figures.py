"""The figures say what they show: units by workload, the ideal stops at the CPU count, empty
panels are left out, log y past 10x; latency survival, per-lock waiting and the timeline are
drawn from synthetic data with known answers, and skipped cleanly without it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from iommubench.analysis.decisions import with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run, valid_mask
from iommubench.core import hist
from iommubench.report import plots
from iommubench.report.figures import data, locks, survival, timeline
from iommubench.report.figures.labels import rate_unit, title

pytestmark = pytest.mark.slow  # renders every figure (matplotlib)

try:
    from fixtures.figure_run import LOCK_SHARES, TICK_NS, add_lock_columns, add_series
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.figure_run import LOCK_SHARES, TICK_NS, add_lock_columns, add_series
    from tests.fixtures.synthetic_run import make_run

CPUS = 4
SHIFTED = (6, 1)  # lockfree, 4 workers (the headline point of lockfree), repetition 1


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = make_run(tmp_path_factory.mktemp("figs"), cpus=CPUS)
    add_series(d, shifted=SHIFTED)
    add_lock_columns(d)
    return d


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def summary(run):
    return with_scaling(summarize(run))


def _close(fig):
    plots.plt.close(fig)


def _ideal_lines(fig):
    return [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("ideal:")
    ]


# --------------------------------------------------------------------------- labels


def test_unit_follows_the_workload(summary):
    assert rate_unit(["dma"]) == "I/O/s"
    assert rate_unit(["prefault"]) == "ops/s"
    assert "dma: I/O/s" in rate_unit(["dma", "prefault"])
    fig = plots.throughput_figure(summary)
    assert fig.axes[0].get_ylabel().startswith("I/O/s")
    _close(fig)
    pre = summary.assign(workload="prefault")
    fig = plots.throughput_figure(pre)
    assert fig.axes[0].get_ylabel().startswith("ops/s")
    _close(fig)


def test_title_names_workload_and_fixed_parameters(summary):
    t = title("throughput", summary, ["workers", "driver"])
    assert t.startswith("throughput: dma workload")
    assert "allocator=rcache" in t and "queue_depth=32" in t
    assert "driver=" not in t and "workers=" not in t  # encoded, not fixed
    assert "region_mib" not in t  # a dma point does not read it


def test_legend_names_every_encoded_variable(run_dir, summary):
    two = summary.copy()
    two.loc[two["driver"] == "naive", "allocator"] = "global"
    fig = plots.throughput_figure(two, hue="driver")
    assert fig.legends[0].get_title().get_text() == "driver, allocator"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "naive, allocator=global" in labels
    _close(fig)


# --------------------------------------------------------------------------- ideal, axes


def test_ideal_stops_at_the_cpu_count(summary):
    assert summary["workers"].max() > CPUS  # the run has oversubscribed points
    fig = plots.throughput_figure(summary)
    ideals = _ideal_lines(fig)
    assert ideals
    for ln in ideals:
        xs, ys = (np.asarray(a, dtype=float) for a in ln.get_data())
        assert xs.max() == pytest.approx(CPUS)
        assert len(xs) > 2  # sampled along x, not a chord between two points
        assert np.allclose(ys / xs, ys[0] / xs[0])  # y = t1 * x / x1 at every sample
    _close(fig)
    fig = plots.scaling_figure(summary)
    for ln in _ideal_lines(fig):
        assert np.asarray(ln.get_xdata(), dtype=float).max() <= CPUS
    _close(fig)


def test_ideal_starts_at_the_smallest_valid_point_without_one_worker(summary):
    no_one = summary[summary["workers"] > 1]
    fig = plots.throughput_figure(no_one)
    lf = next(ln for ln in _ideal_lines(fig) if ln.get_gid() == "ideal:lockfree")
    xs, ys = (np.asarray(a, dtype=float) for a in lf.get_data())
    t2 = float(
        no_one[(no_one["driver"] == "lockfree") & (no_one["workers"] == 2)]["ops_per_s"].iloc[0]
    )
    assert xs[0] == 2 and ys[0] == pytest.approx(t2)
    _close(fig)


def test_log_y_only_past_ten_times(summary):
    fig = plots.throughput_figure(summary)  # 4 M .. 110 M
    assert fig.axes[0].get_yscale() == "log"
    _close(fig)
    narrow = summary[(summary["driver"] == "lockfree") & (summary["workers"] <= 4)]
    fig = plots.throughput_figure(narrow)  # 25 M .. 90 M
    assert fig.axes[0].get_yscale() == "linear"
    assert fig.axes[0].get_ylim()[0] == 0
    _close(fig)


def test_all_zero_cas_panel_and_flat_jain_are_left_out(summary):
    zero = summary.assign(cas_fail_per_op=0.0)
    notes: list[str] = []
    fig = plots.contention_figure(zero, notes=notes)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert not any("CAS" in t for t in titles)
    assert any("CAS failures" in t.get_text() for t in fig.texts)  # the caption says so
    assert any("CAS failures" in n for n in notes)
    _close(fig)
    fair = summary.assign(jain=1.0)
    notes = []
    fig = plots.fairness_figure(fair, notes=notes)
    assert not any("Jain" in ax.get_title(loc="left") for ax in fig.axes)
    assert any("Jain" in n for n in notes)
    _close(fig)
    flat = fair.assign(worker_ops_min=fair["worker_ops_max"])
    notes = []
    assert plots.fairness_figure(flat, notes=notes) is None
    assert any("figure skipped" in n for n in notes)


def test_facets_share_axes_and_mark_oversubscription(summary):
    two = summary.copy()
    two["allocator"] = np.where(two.index % 2, "global", "rcache")
    fig = plots.throughput_figure(two, facet="allocator")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert visible[0].get_shared_y_axes().joined(visible[0], visible[1])
    for ax in visible:
        assert any(p.get_gid() == "oversubscribed" for p in ax.patches)
    _close(fig)


# --------------------------------------------------------------------------- survival


def test_survival_of_a_known_histogram():
    h = hist.histogram([10] * 990 + [1000] * 9 + [5000])
    xs, ys = survival.survival(h)
    assert ys[0] == 1.0
    # after the 10 ns bucket 1% remain; after the 1000 ns bucket 0.1%; the final 0 is left out
    assert ys[1] == pytest.approx(0.01) and xs[1] == 11
    assert ys[2] == pytest.approx(0.001)
    assert len(ys) == 3
    assert survival.survival(hist.empty()) is None


def test_survival_figure_marks_p99_and_p999(run_dir, run, summary):
    fig = survival.survival_figure(run, summary)
    assert survival.headline_workers(summary) == [1.0, 4.0]
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_ylim()[0] < 1e-3  # p99.9 is inside the axis
    p999 = [ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith("p99.9:")]
    assert p999 and all(ln.get_ydata()[0] == pytest.approx(1e-3) for ln in p999)
    lf = run.points[(run.points["point"] == 4) & valid_mask(run.points)]
    merged = hist.merge(run.hist(4, int(r))["map"] for r in lf["rep"])
    mark = next(ln for ln in p999 if ln.get_gid() == "p99.9:lockfree")
    assert mark.get_xdata()[0] == pytest.approx(hist.percentile(merged, 99.9))
    _close(fig)


def test_survival_says_when_samples_fall_below_the_clocks_resolution():
    class S:
        label = "lockfree"

    fast = hist.histogram([0] * 60 + [5] * 40)
    slow = hist.histogram([40] * 100)
    line = survival._unresolved({("map", 1.0): [(S(), fast)], ("unmap", 1.0): [(S(), slow)]})
    assert line.startswith("up to 60.0% of samples (map, lockfree) read 0 ns")
    assert survival._unresolved({("map", 1.0): [(S(), slow)]}) == ""


def test_survival_and_timeline_skipped_without_data(tmp_path):
    d = make_run(tmp_path, write_hist=False)
    r = load_run(d)
    s = with_scaling(summarize(r))
    notes: list[str] = []
    assert survival.survival_figure(r, s, notes=notes) is None
    assert timeline.timeline_figure(r, s, notes=notes) is None
    assert locks.locks_figure(r.points.assign(lock_wait_ns=0), s, notes=notes) is None
    assert any(n.startswith("latency survival") for n in notes)
    assert any(n.startswith("timeline") for n in notes)
    assert any(n.startswith("locks") for n in notes)


# --------------------------------------------------------------------------- timeline


def test_tick_rates_of_a_known_series():
    # ticks from the first tick end (10 ms) and from the window start (0): same rates
    t = np.arange(1, 5, dtype=np.uint64) * np.uint64(TICK_NS)
    ops = np.array([[100, 200, 300, 500], [100, 200, 300, 300]], dtype=np.uint64)
    ts, rate = data.tick_rates(t, ops)
    assert np.allclose(ts, [0.0, 0.01, 0.02, 0.03, 0.04])  # edges: one more than the rates
    assert np.allclose(rate, [200 / 0.01, 200 / 0.01, 200 / 0.01, 200 / 0.01])
    t0 = np.concatenate([[0], t]).astype(np.uint64)
    ops0 = np.hstack([np.zeros((2, 1), dtype=np.uint64), ops])
    ts0, rate0 = data.tick_rates(t0, ops0)
    assert np.allclose(ts0, ts) and np.allclose(rate0, rate)
    assert data.tick_rates(t, ops[:, :2])[0].size == 0  # shapes that disagree: nothing
    assert data.tick_rates(t[:1] * 0, ops[:, :1])[1].size == 0  # one tick at 0: no interval


def test_timeline_one_line_per_repetition_and_level_shift_marked(run_dir, run, summary):
    points = timeline.headline_points(summary, "driver")
    assert SHIFTED[0] in points
    fig = timeline.timeline_figure(run, summary)
    ax = next(a for a in fig.axes if "lockfree" in a.get_title(loc="left"))
    reps = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid().startswith("rep:")}
    valid = run.points[(run.points["point"] == SHIFTED[0]) & valid_mask(run.points)]
    assert set(reps) == {f"rep:{r}" for r in valid["rep"]}
    shifted = reps[f"rep:{SHIFTED[1]}"]
    assert "level shift" in shifted.get_label() and shifted.get_linestyle() == "--"
    ys = np.asarray(shifted.get_ydata(), dtype=float)
    assert ys[-1] == pytest.approx(ys[0] / 2, rel=1e-3)  # the halved rate is drawn
    assert ax.get_ylabel().startswith("I/O/s")
    assert "level shift: r1" in ax.get_title(loc="left")
    # one legend, outside every panel: a colour per repetition, the same in every panel
    assert len(fig.legends) == 1 and not any(a.get_legend() for a in fig.axes)
    assert fig.legends[0].get_bbox_to_anchor().x0 >= max(a.get_position().x1 for a in fig.axes)
    colors = [
        {ln.get_gid(): ln.get_color() for ln in a.get_lines() if ln.get_gid().startswith("rep:")}
        for a in fig.axes
        if a.get_visible()
    ]
    for c in colors[1:]:
        assert all(c[k] == colors[0][k] for k in c if k in colors[0] and c[k] != "0.65")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "rep 0" in legend and "flagged: load, level shift" in legend
    _close(fig)


def test_timeline_colours_are_distinct_for_ten_repetitions():
    assert len(set(map(str, timeline.rep_colors(10)))) == 10
    assert len(set(map(str, timeline.rep_colors(20)))) == 20
    assert len(set(map(str, timeline.rep_colors(30)))) == 30


def test_timeline_bins_keep_the_ops():
    edges = np.arange(0, 101) * 0.01  # 100 ticks of 10 ms
    rate = np.where(np.arange(100) < 50, 1000.0, 500.0)
    t, r = timeline.binned(edges, rate)
    assert len(t) == 20 and np.allclose(r[:10], 1000) and np.allclose(r[10:], 500)
    assert np.sum(r * 0.05) == pytest.approx(np.sum(rate * 0.01))


# --------------------------------------------------------------------------- locks


def test_lock_shares_known_answer(run):
    shares = locks.lock_shares(run.points).set_index("point")
    for point, driver in ((1, "serial-spin"), (5, "lockfree")):
        for prefix, want in LOCK_SHARES[driver].items():
            assert shares.at[point, f"wait_share:{prefix}"] == pytest.approx(want, rel=1e-3)


def test_locks_figure_stacks_by_lock(run, summary):
    notes: list[str] = []
    fig = locks.locks_figure(run.points, summary, notes=notes)
    ax = next(a for a in fig.axes if a.get_title(loc="left") == "driver=serial-spin")
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("lock:")]
    dom = [b for b in bars if b.get_gid() == "lock:lock"]
    tree = [b for b in bars if b.get_gid() == "lock:iova_lock"]
    assert dom and tree
    for d, t in zip(dom, tree, strict=True):
        assert d.get_height() == pytest.approx(0.20, rel=1e-3)
        assert t.get_y() == pytest.approx(d.get_height())  # stacked on the domain lock
        assert t.get_height() == pytest.approx(0.30, rel=1e-3)
    assert not any(b.get_gid() == "lock:depot_lock" for b in ax.patches)  # never waited on
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "IOVA tree" in legend and "rcache depot" not in legend
    assert any("rcache depot" in t.get_text() for t in fig.texts)
    hatched = [b for b in bars if b.get_hatch()]
    assert hatched  # the 8-worker bars are oversubscribed
    _close(fig)


# --------------------------------------------------------------------------- cli


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "iommubench.cli", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize("option", ["--x", "--hue", "--facet"])
def test_plot_bad_column_exits_2_with_one_line(run_dir, tmp_path, option):
    r = _cli("plot", str(run_dir), "--out", str(tmp_path), option, "bogus")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert option in lines[0] and "'bogus'" in lines[0] and "workers" in lines[0]


def test_plot_without_points_csv_exits_2(tmp_path):
    r = _cli("plot", str(tmp_path))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "points.csv" in r.stderr
    (tmp_path / "points.csv").write_text("")
    r = _cli("plot", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_check_axes_rejects_repeats(summary):
    with pytest.raises(plots.PlotInputError, match="different"):
        plots.check_axes(summary, "workers", "workers", None)
    plots.check_axes(summary, "driver", None, "workers")


def test_make_figures_writes_every_figure(run_dir, tmp_path):
    notes: list[str] = []
    paths = plots.make_figures(run_dir, tmp_path, notes=notes)
    assert {p.stem for p in paths} >= {"throughput", "locks", "latency-survival", "timeline"}
    assert all(p.stat().st_size > 1000 for p in paths)
    assert pd.notna(notes).all()


def test_oversubscription_marked_when_x_is_not_workers(summary):
    fig = plots.throughput_figure(summary, x="driver", hue=None, facet="workers")
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    assert "workers=8 (oversubscribed: > 4 CPUs)" in titles
    assert "workers=4" in titles
    ringed = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "oversubscribed-point"]
    assert ringed and sum(len(c.get_offsets()) for c in ringed) == int(
        (summary["oversubscribed"].astype(bool) & summary["ops_per_s"].notna()).sum()
    )
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("oversubscribed") for t in legend)
    _close(fig)


def test_a_series_that_never_waited_gets_no_lock_panel(run, summary):
    pts = run.points.copy()
    pts.loc[pts["driver"] == "naive", ["lock_wait_ns", "iova_lock_wait_ns"]] = 0
    fig = locks.locks_figure(pts, summary)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible()]
    assert titles == ["driver=lockfree", "driver=serial-spin"]
    assert any("driver=naive" in t.get_text() for t in fig.texts)
    _close(fig)


def test_rep_marks_name_level_shift_state_and_flags():
    rows = pd.DataFrame(
        {
            "point": [3, 3, 3, 3],
            "rep": [0, 1, 2, 3],
            "status": ["ok"] * 4,
            "audit_ok": pd.array([True, True, False, True], dtype="boolean"),
            "level_shift": ["False", "True", "False", ""],
            "state": ["fast", "fast", "slow", "changed"],
            "flags": ["", "competing-load", "", ""],
        }
    )
    marks = timeline.rep_marks(rows)
    assert marks[0] == []
    assert marks[1] == ["level shift", "competing-load"]
    assert marks[2] == ["placement slow", "invalid"]
    assert marks[3] == ["placement changed"]


def test_scaling_of_one_worker_count_is_not_drawn(summary):
    notes: list[str] = []
    assert plots.scaling_figure(summary[summary["workers"] == 1], notes=notes) is None
    assert any("speedup" in n for n in notes) and any("figure skipped" in n for n in notes)


def test_band_label_says_how_the_interval_was_made(summary):
    from iommubench.report.figures.summary import interval_words

    s = summary.assign(interval="range", n=3)
    assert interval_words(s) == "range (n=3)"
    s.loc[s.index[:2], ["interval", "n"]] = ["95% CI", 8]
    assert interval_words(s) == "95% CI (n=8) or range (n=3)"
    fig = plots.throughput_figure(s)
    assert "band: 95% CI (n=8) or range (n=3)" in fig.axes[0].get_ylabel()
    _close(fig)


def test_each_workload_panel_has_its_own_unit(summary):
    mixed = summary.copy()
    mixed.loc[mixed["driver"] == "naive", "workload"] = "prefault"
    fig = plots.throughput_figure(mixed, facet="workload")
    units = {ax.get_title(loc="left"): ax.get_ylabel().split(" ")[0] for ax in fig.axes}
    assert units == {"workload=dma": "I/O/s", "workload=prefault": "ops/s"}
    assert not fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    _close(fig)


def _lines(fig, prefix):
    return [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith(prefix)
    ]


def test_flagged_points_are_hollow_and_never_joined_by_a_solid_line(summary):
    s = summary.copy()
    flagged = (s["driver"] == "lockfree") & (s["workers"] == 2)
    s.loc[flagged, "flags"] = "competing-load"
    s.loc[~flagged & ~s["oversubscribed"].astype(bool), "flags"] = ""
    for fig in (
        plots.throughput_figure(s),
        plots.scaling_figure(s),
        plots.contention_figure(s),
        plots.latency_figure(s),
    ):
        hollow = _lines(fig, "flagged:lockfree")
        assert hollow and all(ln.get_markerfacecolor() == "white" for ln in hollow)
        assert any(2.0 in list(ln.get_xdata()) for ln in hollow)
        for ln in _lines(fig, "series:lockfree"):
            assert 2.0 not in list(ln.get_xdata())  # no solid line reaches it
            assert ln.get_linestyle() == "-"
        dashed = _lines(fig, "flagged-segment:lockfree")
        assert dashed and all(ln.get_linestyle() == "--" for ln in dashed)
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert any(t.startswith("flagged") for t in legend)
        _close(fig)
    s["flags"] = ""
    s["oversubscribed"] = False
    fig = plots.throughput_figure(s)
    assert not _lines(fig, "flagged")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any(t.startswith("flagged") for t in legend)  # the legend lists what is drawn
    _close(fig)


def test_scaling_curves_carry_their_interval(tmp_path):
    # 5 repetitions: 3 against 3 has no 95% interval of a ratio
    summary = with_scaling(summarize(load_run(make_run(tmp_path, cpus=CPUS, reps=5))))
    fig = plots.scaling_figure(summary)
    ax = fig.axes[0]
    bands = [
        c
        for c in ax.collections
        if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")
    ]
    assert bands  # one band per series with two or more points
    lf = summary[(summary["driver"] == "lockfree") & (summary["workers"] == 2)].iloc[0]
    assert lf["speedup_lo"] < lf["speedup"] < lf["speedup_hi"]
    ys = np.concatenate([np.asarray(b.get_paths()[0].vertices)[:, 1] for b in bands])
    assert np.isclose(ys, lf["speedup_hi"]).any() and np.isclose(ys, lf["speedup_lo"]).any()
    _close(fig)


def test_legend_lists_only_what_is_drawn(summary):
    fig = plots.throughput_figure(summary, x="driver", hue=None, facet="workers")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any("ideal" in t for t in legend)  # no ideal without x = workers
    _close(fig)
    one = summary[summary["workers"] == 1]
    fig = plots.throughput_figure(one)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not _ideal_lines(fig) and not any("ideal" in t for t in legend)
    _close(fig)


def test_one_line_style_meaning_across_figures(run, summary):
    """Solid: clean points; dashed: flagged; dotted: ideal or reference; dash-dot: a model.
    The latency figure spends no line style on the percentile: p50 and p99 are panels."""
    s = summary.assign(flags="")
    figs = [
        plots.throughput_figure(s),
        plots.scaling_figure(s),
        plots.contention_figure(s),
        plots.latency_figure(s),
        plots.fairness_figure(s),
    ]
    titles = [ax.get_title(loc="left") for ax in figs[3].axes]
    assert titles == ["map p50", "map p99", "unmap p50", "unmap p99"]
    for fig in figs:
        for ln in [ln for ax in fig.axes for ln in ax.get_lines()]:
            gid = ln.get_gid() or ""
            if gid.startswith(("series:", "legend:")):
                assert ln.get_linestyle() in ("-", "None"), gid
            elif gid.startswith("ideal:"):
                assert ln.get_linestyle() == ":", gid
            elif gid.startswith("usl:"):
                assert ln.get_linestyle() == "-.", gid
        _close(fig)
