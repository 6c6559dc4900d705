"""Progress names every point as the report does and says what qualifies its number."""

from __future__ import annotations

from iommubench.analysis.adaptive import adaptive_round
from iommubench.run import progress, sweep
from iommubench.spec.config import load_sweep


def test_every_point_of_make_bench_has_its_own_name():
    points = load_sweep("bench/default.yaml").points
    tasks = sweep.plan(points, 1)
    labels = [t.label for t in tasks]
    assert len(set(labels)) == len(labels)  # no "dma domain-lock w=1" four times
    assert labels[0] == "#0 rep 0 domain-lock/ttas global w=1"
    assert "#6 rep 0 domain-lock/pthread-mutex rcache w=1" in labels


def test_a_prefault_point_names_no_allocator_and_the_chunk_size():
    points = load_sweep("bench/prefault.yaml").points
    labels = {t.label.split(" ", 3)[3] for t in sweep.plan(points, 1)}
    assert len(labels) == len(points)
    assert all("rcache" not in x and "global" not in x for x in labels)
    assert any("chunk_pages=" in x for x in labels)


def test_varying_puts_the_strategy_in_place_of_driver_and_lock():
    pts = [
        {"workload": "dma", "driver": "domain-lock", "lock": "ttas", "workers": 1},
        {"workload": "dma", "driver": "domain-lock", "lock": "mcs", "workers": 1},
    ]
    assert progress.varying(pts) == ("strategy", "workers")


def test_adaptive_tasks_are_named_like_the_first_round():
    points = load_sweep("bench/default.yaml").points
    rows = [
        {"point": str(i), "rep": "0", "status": "ok", "audit_ok": "True", "ops_per_s": str(v)}
        for i, v in enumerate([1e6, 2e6] * 6)
    ]
    rows += [{**r, "rep": "1", "ops_per_s": str(float(r["ops_per_s"]) * 3)} for r in rows]
    more = adaptive_round(points, rows, 5, 0.05)
    assert more and more[0].label.startswith(f"#{more[0].point} rep 2 domain-lock/")


def test_a_finished_point_says_oversubscribed_and_its_load():
    row = {
        "status": "ok",
        "audit_ok": True,
        "oversubscribed": True,
        "flags": "competing-load;window-stretched",
        "runq_wait_share": 0.314,
        "ops_per_s": 3.2e6,
        "workload": "dma",
    }
    text = progress.result_text(row)
    assert text == "3.2 M I/O/s, audit ok, oversubscribed, competing load 31%, window-stretched"
    clean = {**row, "oversubscribed": False, "flags": ""}
    assert progress.result_text(clean) == "3.2 M I/O/s, audit ok"
    assert sweep.summary_text(row) == text


def test_a_failed_point_says_whether_resume_redoes_it():
    lost = {"status": "failed", "error": "host h1 lost", "flags": "lost-host"}
    own = {"status": "failed", "error": "core exited 139", "flags": ""}
    assert progress.result_text(lost) == "FAILED (lost-host: --resume redoes it): host h1 lost"
    assert progress.result_text(own) == "FAILED (the point's own: kept): core exited 139"
