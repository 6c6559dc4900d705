"""`iommubench reproduce`: case files are validated up front (exit 2, one line), each row's
verdict follows its kind (calibration, prediction, shape), a case that needs more CPUs than
the machine has is not run and says so, values are read only from valid non-oversubscribed
points, and a small case runs end to end into reproduce.md and reproduce.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iommubench import cli
from iommubench.kernelparity import reproduce
from iommubench.kernelparity.cases import Case, Measure, load_case, load_cases
from iommubench.spec.config import ConfigError, cpus_available

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run

from fixtures.cases import TINY  # noqa: E402

CASES = Path(__file__).resolve().parents[2] / "bench" / "reproduce"


def _write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return d


def test_every_shipped_case_is_valid_and_names_its_source():
    cases = load_cases(CASES)
    names = [c.case for c in cases]
    assert len(names) == len(set(names)) >= 6
    for c in cases:
        assert c.source and c.title
        assert c.kind in ("prediction", "kernel-code") or c.calibration
        assert c.kind != "kernel-code" or c.leaves_out
        assert all(m.published is not None or m.note for m in c.measures)


@pytest.mark.parametrize(
    "change, where",
    [
        (("kind: prediction", "kind: guess"), "kind"),
        (("stat: time_s, workers: 1, published: 1000.0", "stat: tim_s, published: 1"), "stat"),
        (("published: 1.0, unit: s,", "published: 1.0, pass_if: about 1,"), "pass_if"),
        (("driver: lockfree", "driver: lockfre"), "config: defaults.driver"),
        (("kind: prediction", "kind: calibration"), "calibration"),
    ],
)
def test_a_bad_case_is_refused_with_one_line_naming_file_and_key(tmp_path, change, where):
    d = _write(tmp_path / "cases", "bad.yaml", TINY.replace(*change))
    with pytest.raises(ConfigError) as exc:
        load_cases(d)
    text = str(exc.value)
    assert str(d / "bad.yaml") in text and "\n" not in text
    assert where.split(":")[0] in text


def test_the_cli_exits_2_on_a_bad_case_and_an_unknown_only(tmp_path, capsys):
    d = _write(tmp_path / "cases", "bad.yaml", TINY.replace("kind: prediction", "kind: guess"))
    assert cli.main(["reproduce", "--cases", str(d), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iommubench: ") and "bad.yaml: kind" in err and "\n" not in err
    d2 = _write(tmp_path / "cases2", "tiny.yaml", TINY)
    assert cli.main(["reproduce", "--cases", str(d2), "--only", "nope"]) == 2
    assert "unknown case 'nope'; allowed: tiny-prefault" in capsys.readouterr().err


def _case(**kw) -> Case:
    base = dict(
        case="c",
        title="t",
        source="s",
        kind="prediction",
        leaves_out="the device",
        dma_map_benchmark={"threads": 1},
        measures=[dict(name="m", stat="dma_map_benchmark", field="map", published=2.0)],
    )
    return Case.model_validate({**base, **kw})


def test_verdicts_follow_the_kind_and_the_tolerance():
    c = _case()
    m = c.measures[0]
    assert reproduce._row(c, m, "m", 2.4, "").verdict == "within 1.5x"
    miss = reproduce._row(c, m, "m", 0.5, "")
    assert miss.verdict == "misses" and miss.ratio == pytest.approx(0.25)
    assert miss.leaves_out == "the device" and "leaves out" in miss.note
    cal = _case(kind="calibration", calibration="cs_map_ns was set from it")
    row = reproduce._row(cal, cal.measures[0], "m", 2.1, "")
    assert row.verdict == "matches by construction" and "cs_map_ns" in row.note
    off = reproduce._row(cal, cal.measures[0], "m", 3.0, "")
    assert off.verdict == "calibration off" and "did not hold" in off.note
    shape = Measure(name="s", stat="speedup", published="collapses", pass_if="< 1")
    assert reproduce._row(c, shape, "s", 0.4, "").verdict == "passes"
    assert reproduce._row(c, shape, "s", 1.3, "").verdict == "FAILS"
    assert reproduce._row(c, m, "m", None, "").verdict == "not run"


def test_the_tools_lines_are_read_in_us_or_ns():
    us = "average map latency(us):0.1 standard deviation:0.2\naverage unmap latency(us):0.6 x"
    assert reproduce.parse_tool_output(us) == {"map": 0.1, "unmap": 0.6}
    ns = "average map latency(ns):123.4 sd\naverage unmap latency(ns):600.0 sd"
    assert reproduce.parse_tool_output(ns) == pytest.approx({"map": 0.1234, "unmap": 0.6})
    with pytest.raises(reproduce.CaseFailed):
        reproduce.parse_tool_output("dma mapping benchmark: threads:1")


def test_values_come_from_valid_points_within_the_cpu_count(tmp_path):
    run_dir = make_run(tmp_path, drivers=("lockfree", "serial-spin"), cpus=4, failed_rep=False)
    data = reproduce.RunData.load(run_dir)
    each = Measure(name="s", stat="speedup", where={"driver": "lockfree"}, workers="each")
    assert reproduce._worker_counts(each, data) == [2, 4]  # 8 workers on 4 CPUs left out
    top = Measure(name="s", stat="speedup", where={"driver": "lockfree"})
    assert reproduce._worker_counts(top, data) == [4]
    assert reproduce._value(top, data, 4) == pytest.approx(90 / 25, rel=0.05)
    ratio = Measure(
        name="r",
        stat="ratio",
        where={"driver": "lockfree"},
        over={"driver": "serial-spin"},
    )
    assert reproduce._value(ratio, data, 4) == pytest.approx(90 / 9, rel=0.05)
    c = _case()
    rows = reproduce._measure_rows(c, Measure(name="x", stat="ops_per_s", workers=8), data, "")
    assert rows[0].verdict == "not run" and "needs 8 CPUs, this machine has 4" in rows[0].note


def test_a_small_case_runs_end_to_end(tmp_path, capsys):
    d = _write(tmp_path / "cases", "tiny.yaml", TINY)
    out = tmp_path / "out"
    assert cli.main(["reproduce", "--cases", str(d), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "tiny-prefault" in printed.out and "[1/1] tiny-prefault" in printed.err
    rows = json.loads((out / "reproduce.json").read_text())["rows"]
    measured, skipped = rows
    assert {r["verdict"] for r in rows} <= set(reproduce.VERDICTS)
    assert measured["measured"] > 0 and measured["verdict"] == "misses"
    assert isinstance(measured["measured"], (int, float)) and not isinstance(
        measured["measured"], bool
    )
    assert measured["run"] and Path(measured["run"]).is_dir()
    assert skipped["measured"] is None
    assert skipped["note"] == f"needs 4096 CPUs, this machine has {cpus_available()}"
    md = (out / "reproduce.md").read_text()
    assert "| tiny-prefault | time |" in md and "what the model leaves out" in md


def test_a_case_file_with_two_runners_is_refused(tmp_path):
    text = TINY.replace("kind: prediction", "kind: prediction\ndma_map_benchmark: {threads: 1}")
    with pytest.raises(ConfigError, match="exactly one of config"):
        load_case(_write(tmp_path, "two.yaml", text) / "two.yaml")


def test_a_row_names_the_flags_of_the_points_it_read(tmp_path):
    run_dir = make_run(
        tmp_path,
        drivers=("lockfree",),
        cpus=4,
        failed_rep=False,
        row_flags=lambda d, w, r: "competing-load" if w == 4 else "",
    )
    data = reproduce.RunData.load(run_dir)
    m = Measure(name="s", stat="speedup", published="scales", pass_if="> 1")
    (row,) = reproduce._measure_rows(_case(), m, data, "")
    assert row.verdict == "inconclusive" and row.note.startswith("passes under competing load")
    assert "points flagged competing-load" in row.note
    m2 = Measure(name="s", stat="speedup", published="scales", pass_if="> 1", workers=2)
    assert reproduce._measure_rows(_case(), m2, data, "")[0].verdict == "passes"  # unflagged
    one = Measure(name="s", stat="speedup", workers=1, pass_if="< 1")
    assert reproduce._measure_rows(_case(), one, data, "")[0].verdict == "not run"


def test_a_tool_case_with_an_unknown_option_is_refused(tmp_path):
    text = """\
case: t
title: t
source: s
kind: prediction
dma_map_benchmark: {threads: 1, thread: 2}
measures:
  - {name: m, stat: dma_map_benchmark, field: map, published: 0.1}
"""
    with pytest.raises(ConfigError, match="unknown option 'thread'; allowed: threads"):
        load_case(_write(tmp_path, "t.yaml", text) / "t.yaml")


def test_a_failed_command_fails_its_rows_and_the_exit_status(tmp_path, capsys):
    text = TINY.replace("tiny-prefault", "broken").replace("config:", "dma_map_benchmark:")
    text = text.split("dma_map_benchmark:")[0] + (
        "dma_map_benchmark: {threads: 1, seconds: 1, bits: 19}\nmeasures:\n"
        "  - {name: m, stat: dma_map_benchmark, field: map, published: 0.1}\n"
    )
    d = _write(tmp_path / "cases", "broken.yaml", text)
    out = tmp_path / "out"
    assert cli.main(["reproduce", "--cases", str(d), "--out", str(out)]) == 1
    (row,) = json.loads((out / "reproduce.json").read_text())["rows"]
    assert row["failed"] and row["measured"] is None
    assert row["note"].startswith("the case failed: iommubench dma-map-benchmark")


def test_a_tool_case_reads_the_kernels_lines_and_the_untruncated_means(tmp_path):
    text = """\
case: tool
title: t
source: s
kind: prediction
dma_map_benchmark: {threads: 1, seconds: 1, profile: smmuv3-cmdq}
measures:
  - {name: unmap, stat: dma_map_benchmark, field: unmap, published: 0.6, unit: µs}
  - {name: unmap ns, stat: dma_map_benchmark, field: unmap_ns, published: 600, unit: ns}
"""
    d = _write(tmp_path / "cases", "tool.yaml", text)
    out = tmp_path / "out"
    assert cli.main(["reproduce", "--cases", str(d), "--out", str(out)]) == 0
    kernel, exact = json.loads((out / "reproduce.json").read_text())["rows"]
    # the kernel's lines print whole 0.1 µs; the untruncated mean holds a busy-waited
    # invalidation (two runs: no closer comparison between them)
    assert round(kernel["measured"], 1) == kernel["measured"]
    assert exact["measured"] > 50 and exact["unit"] == "ns"
    assert kernel["note"].startswith("untruncated mean ")
    log = (out / "runs" / "tool.txt").read_text()
    assert "--profile smmuv3-cmdq" in log and log.count("$ iommubench dma-map-benchmark") == 2


def test_a_row_on_the_kernels_own_code_says_what_differs_and_never_fails(tmp_path, monkeypatch):
    k = _case(kind="kernel-code", leaves_out="io-pgtable-arm here, generic_pt there")
    m = k.measures[0]
    near = reproduce._row(k, m, "m", 2.4, "")
    assert near.verdict == "within 1.5x" and near.leaves_out  # always says what differs
    far = reproduce._row(k, m, "m", 0.5, "")
    assert far.verdict == "differs" and "what differs" in far.note and not far.failed
    text = reproduce.markdown([near, far], reproduce.meta_for("x"))
    assert "what differs from the published setup" in text
    assert "## Where a prediction misses" not in text
    with pytest.raises(ValueError, match="what differs"):
        _case(kind="kernel-code", leaves_out="")
    # no kernel tree to be had: every row not run, none failed, nothing started
    monkeypatch.setenv("IOMMUBENCH_KERNEL_SRC", str(tmp_path / "no-tree"))
    rows = reproduce.case_rows(k, tmp_path, cpus=2)
    assert [r.verdict for r in rows] == ["not run"] and not rows[0].failed
    assert "no kernel tree" in rows[0].note
