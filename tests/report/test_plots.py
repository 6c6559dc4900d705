"""Figures: files in PNG and SVG, invalid points never joined, empty figures skipped."""

import numpy as np
import pandas as pd
import pytest

from iommubench.analysis.decisions import with_scaling
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import load_run
from iommubench.report import plots

pytestmark = pytest.mark.slow  # renders every figure (matplotlib)

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def summary(run_dir):
    return with_scaling(summarize(load_run(run_dir)))


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_make_figures_writes_png_and_svg(run_dir, tmp_path):
    paths = plots.make_figures(run_dir, tmp_path / "figs")
    names = {p.name for p in paths}
    for fig in ("throughput", "scaling", "contention", "locks", "latency", "latency-survival"):
        assert f"{fig}.png" in names and f"{fig}.svg" in names
    for p in paths:
        assert p.exists() and p.stat().st_size > 1000
        if p.suffix == ".png":
            assert _is_png(p)
        else:
            assert p.read_text().lstrip().startswith("<?xml")


def _line_points(fig):
    """(x, y) of every point on a drawn line (not crosses, not ideal lines)."""
    pts = set()
    for ax in fig.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if not gid.startswith("series:"):
                continue
            xs, ys = line.get_data()
            pts |= {(float(a), float(b)) for a, b in zip(xs, ys, strict=True)}
    return pts


def _cross_points(fig, gid="audit-failed"):
    pts = set()
    for ax in fig.axes:
        for c in ax.collections:
            if c.get_gid() == gid:
                pts |= {(float(a), float(b)) for a, b in c.get_offsets()}
    return pts


def _hollow_points(fig):
    """(x, y) of every flagged point: hollow markers, not on any solid line."""
    pts = set()
    for ax in fig.axes:
        for line in ax.get_lines():
            if (line.get_gid() or "").startswith("flagged:"):
                assert line.get_markerfacecolor() == "white" and line.get_linestyle() == "None"
                xs, ys = line.get_data()
                pts |= {(float(a), float(b)) for a, b in zip(xs, ys, strict=True)}
    return pts


def test_failed_points_are_crosses_not_lines(summary):
    fig = plots.throughput_figure(summary)
    on_lines = _line_points(fig)
    crosses = _cross_points(fig)
    naive = summary[(summary["driver"] == "naive") & ~summary["valid"]]
    assert len(naive) == 3
    for _, r in naive.iterrows():
        pt = (float(r["workers"]), float(r["ops_per_s"]))
        assert pt not in on_lines
        assert pt in crosses
    # valid points are on lines, but a flagged one (8 workers: oversubscribed) only hollow
    lf = summary[summary["driver"] == "lockfree"]
    hollow = _hollow_points(fig)
    for _, r in lf.iterrows():
        pt = (float(r["workers"]), float(r["ops_per_s"]))
        assert (pt in hollow) == (r["workers"] == 8) and (pt in on_lines) == (r["workers"] < 8)
    # the naive 1-worker point is valid but alone: its line holds only that point
    naive_lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "series:naive"]
    assert all(len(ln.get_xdata()) == 1 for ln in naive_lines)
    plots.plt.close(fig)


def test_a_line_breaks_at_an_invalid_point(summary):
    s = summary.copy()
    mid = s[(s["driver"] == "lockfree") & (s["workers"] == 2)].index
    s.loc[mid, "valid"] = False
    fig = plots.throughput_figure(s)
    segs = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "series:lockfree"]
    assert sorted(len(ln.get_xdata()) for ln in segs) == [1, 1]  # w=1 | w=4, then 8 flagged
    dashed = [
        ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "flagged-segment:lockfree"
    ]
    assert [list(ln.get_xdata()) for ln in dashed] == [[4.0, 8.0]]  # joined, but dashed
    plots.plt.close(fig)


def test_a_point_without_a_valid_repetition_is_no_audit_failure(summary):
    s = summary.copy()
    mid = s[(s["driver"] == "lockfree") & (s["workers"] == 2)].index
    s.loc[mid, ["valid", "verdict"]] = [False, "error"]
    fig = plots.throughput_figure(s)
    pt = (2.0, float(s.loc[mid, "ops_per_s"].iloc[0]))
    assert pt in _cross_points(fig, "no-valid") and pt not in _cross_points(fig)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "audit failed" in legend  # the naive control's crosses
    assert "no valid repetition (not an audit failure)" in legend
    plots.plt.close(fig)


def test_oversubscribed_region_is_shaded_and_labelled(summary):
    fig = plots.throughput_figure(summary)
    ax = fig.axes[0]
    legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "oversubscribed (> 4 CPUs available)" in legend_texts
    spans = [p for p in ax.patches if p.get_gid() == "oversubscribed"]
    assert spans, "a shaded span"
    x0 = spans[0].get_x() if hasattr(spans[0], "get_x") else spans[0].get_xy()[0][0]
    assert 4 < x0 < 8
    plots.plt.close(fig)


def test_linear_ideal_drawn_per_series(summary):
    fig = plots.throughput_figure(summary)
    ideals = [
        ln for ax in fig.axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("ideal:")
    ]
    assert {ln.get_gid() for ln in ideals} == {"ideal:lockfree", "ideal:naive", "ideal:serial-spin"}
    lf = next(ln for ln in ideals if ln.get_gid() == "ideal:lockfree")
    xs, ys = lf.get_data()
    t1 = float(
        summary[(summary["driver"] == "lockfree") & (summary["workers"] == 1)]["ops_per_s"].iloc[0]
    )
    assert np.allclose(ys, t1 * np.asarray(xs))
    plots.plt.close(fig)


def test_styles_distinct_for_grayscale(summary):
    """A series is its colour and marker; the line style is the same for every clean line."""
    fig = plots.throughput_figure(summary)
    styles, dashes = {}, set()
    for ln in fig.axes[0].get_lines():
        gid = ln.get_gid() or ""
        if gid.startswith("series:"):
            styles[gid] = (ln.get_marker(), ln.get_color())
            dashes.add(ln.get_linestyle())
    assert len(set(styles.values())) == len(styles) == 3
    assert len({m for m, _ in styles.values()}) == 3 and dashes == {"-"}
    plots.plt.close(fig)


def test_empty_latency_columns_skip_the_figure(run_dir, tmp_path):
    df = pd.read_csv(run_dir / "points.csv", dtype=str, keep_default_na=False)
    for c in ["map_p50_ns", "map_p99_ns", "unmap_p50_ns", "unmap_p99_ns"]:
        df[c] = ""
    d = tmp_path / "nolat"
    d.mkdir()
    df.to_csv(d / "points.csv", index=False)
    summary = with_scaling(summarize(load_run(d)))
    notes: list[str] = []
    assert plots.latency_figure(summary, notes=notes) is None
    assert any(n.startswith("latency percentiles") for n in notes)
    # no workers.csv and no worker_ops columns -> no fairness figure either
    df[["worker_ops_min", "worker_ops_max"]] = ""
    df.to_csv(d / "points.csv", index=False)
    summary = with_scaling(summarize(load_run(d)))
    assert plots.fairness_figure(summary) is None


def test_any_parameter_as_x_hue_facet(tmp_path):
    a = make_run(tmp_path, name="a")
    b = make_run(tmp_path, name="b", scale=0.7)
    # a run with two allocators: stack b's rows as allocator=global
    pa = pd.read_csv(a / "points.csv", dtype=str, keep_default_na=False)
    pb = pd.read_csv(b / "points.csv", dtype=str, keep_default_na=False)
    pb["allocator"] = "global"
    pb["point"] = (pb["point"].astype(int) + 100).astype(str)
    pd.concat([pa, pb]).to_csv(a / "points.csv", index=False)
    (a / "workers.csv").unlink()
    paths = plots.make_figures(a, tmp_path / "f1", x="workers", hue="driver", facet="allocator")
    assert {p.stem for p in paths} >= {"throughput", "scaling", "contention", "latency"}
    summary = with_scaling(summarize(load_run(a)))
    for x, hue, facet in (("driver", "workers", None), ("workers", "allocator", None)):
        fig = plots.throughput_figure(summary, x=x, hue=hue, facet=facet)
        assert any(ln.get_gid() for ax in fig.axes for ln in ax.get_lines())
        plots.plt.close(fig)
    fig = plots.throughput_figure(summary, hue="driver", facet="allocator")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    plots.plt.close(fig)
    with pytest.raises(ValueError):
        plots.make_figures(a, tmp_path / "f4", x="nonsense")
    with pytest.raises(ValueError):
        plots.make_figures(a, tmp_path / "f4", x="driver", hue="driver")
