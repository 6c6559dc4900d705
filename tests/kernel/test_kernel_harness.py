"""The kernel's io-pgtable-arm.c as the harness's page table (pgtable: kernel-arm): points run
by the runner, racing worker processes, audited in the kernel's LPAE format by the audit's own
walk and by the kernel's iova_to_phys, beside the model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iommubench.core.kernel import build as kbuild
from iommubench.run.point import run_point
from iommubench.spec import catalogue
from iommubench.spec.config import ConfigError, parse_sweep

pytestmark = pytest.mark.slow

RETRIES = 8


def kpoint(**overrides: Any) -> dict[str, Any]:
    """A small prefault point on the kernel's page table, with every parameter the runner
    reads (as tests/conftest.py's prefault_point)."""
    point: dict[str, Any] = {
        "workload": "prefault",
        "driver": "lockfree",
        "pgtable": "kernel-arm",
        "workers": 2,
        "region_mib": 64,
        "chunk_pages": 1,
        "cycles": 2,
        "cs_ns": 0,
        "warmup_s": 0.0,
        "duration_s_requested": 0.2,
        "sample_every": 64,
        "seed": 1,
    }
    point.update(overrides)
    return point


def ok(result: Any) -> dict[str, Any]:
    assert result.status == "ok", result.error
    m = result.measures
    assert m["audit_ok"], {k: m[k] for k in m if "kernel" in k or k in AUDIT_KEYS}
    assert m["kernel_warns"] == 0
    assert m["kernel_variant"] == "normal" and m["kernel_files_sha256"]
    return m


AUDIT_KEYS = ("lost_mappings", "wrong_translations", "leaked_tables", "double_frees")


@pytest.mark.parametrize(
    "layout", [dict(chunk_pages=1), dict(chunk_pages=8192)], ids=["racing", "separate"]
)
@pytest.mark.parametrize("driver", ["lockfree", "domain-lock/ticket", "domain-lock/pthread-mutex"])
def test_two_workers_on_the_kernel_table_pass_the_audit(
    kernel_object: kbuild.KernelObject, driver: str, layout: dict[str, int]
) -> None:
    d, _, lock = driver.partition("/")
    extra = {"lock": lock} if lock else {}
    # range unmaps of 512 pages cover whole leaf tables, which io-pgtable-arm.c frees at once
    m = ok(run_point(kpoint(driver=d, unmap_pages=512, **layout, **extra)))
    assert m["maps"] == m["unmaps"] == 2 * 64 * 256
    if layout["chunk_pages"] >= 512:  # an unmap call never crosses a chunk
        assert m["tables_freed"] >= 2 * 32  # every leaf table, each cycle
    assert m["kernel_tlb_flush_walks"] == m["tables_freed"]  # a walk flush before each free


def test_a_timed_run_leaves_live_mappings_the_audit_checks(
    kernel_object: kbuild.KernelObject,
) -> None:
    m = ok(run_point(kpoint(cycles=0, duration_s_requested=0.2, warmup_s=0.05)))
    assert m["ops"] > 0


def test_racing_installs_lose_the_kernels_cmpxchg_and_stay_correct(
    kernel_object: kbuild.KernelObject,
) -> None:
    lost = 0
    # more tables to install each try (page-sized unmaps leave them in place, so only a larger
    # region races more): a loaded machine may keep the two workers apart
    for attempt in range(RETRIES):
        m = ok(run_point(kpoint(chunk_pages=1, region_mib=256 << min(attempt, 2), cycles=1)))
        lost += m["cas_failures"]
        if lost:
            break
    assert lost > 0, "the workers never raced to install a table"


def test_the_racy_cmpxchg_control_is_caught(racy_object: kbuild.KernelObject) -> None:
    assert "kernel-arm-racy" in {
        name for name, e in catalogue.axis("pgtable").items() if e.negative_control
    }
    for _ in range(RETRIES):
        result = run_point(
            kpoint(pgtable="kernel-arm-racy", chunk_pages=1, region_mib=256, cycles=2)
        )
        assert result.status == "ok", result.error
        m = result.measures
        assert m["kernel_variant"] == "racy-cmpxchg"
        if not m["audit_ok"]:
            assert m["lost_mappings"] or m["leaked_tables"] or m["kernel_warns"]
            assert catalogue.is_negative_control(
                {"driver": "lockfree", **kpoint(pgtable="kernel-arm-racy")}
            )
            return
    pytest.fail(f"the racy control passed its audit {RETRIES} times")


@pytest.mark.parametrize("invalidation", ["lazy", "strict"])
@pytest.mark.parametrize("driver", ["lockfree", "domain-lock"])
def test_dma_on_the_kernel_table(
    kernel_object: kbuild.KernelObject, driver: str, invalidation: str
) -> None:
    point = kpoint(
        workload="dma",
        driver=driver,
        invalidation=invalidation,
        allocator="rcache",
        queue_depth=16,
        granule_pages=[1, 1, 2, 4],
        dma_ns=0,
        inv_ns=0,
        cycles=0,
        warmup_s=0.05,
        duration_s_requested=0.2,
    )
    m = ok(run_point(point))
    assert m["ops"] > 0


def test_walkers_count_the_kernel_walks_reads_of_freed_tables(
    kernel_object: kbuild.KernelObject,
) -> None:
    uaf = 0
    for attempt in range(RETRIES):  # longer each try: a loaded machine may keep them apart
        m = ok(
            run_point(
                kpoint(
                    workers=1,
                    walkers=1,
                    walker_safety="unsafe",
                    chunk_pages=512,
                    unmap_pages=512,
                    cycles=0,
                    duration_s_requested=0.3 * (1 << min(attempt, 3)),
                )
            )
        )
        assert m["walker_passes"] > 0
        uaf += m["walker_uaf_reads"]
        if uaf:
            break
    assert uaf > 0, "no walker pass overlapped an unmap that freed a table"


def _config(tmp: Path, **sweep: list[Any]) -> dict[str, Any]:
    return {
        "name": "k",
        "repetitions": 1,
        "warmup_s": 0.0,
        "duration_s": 0.1,
        "defaults": {"workload": "prefault", "pgtable": "kernel-arm", "region_mib": 16},
        "sweep": sweep,
    }


@pytest.mark.parametrize(
    "sweep, words",
    [
        ({"driver": ["table-lock"]}, ["table-lock", "kernel-arm", "lockfree", "domain-lock"]),
        ({"driver": ["naive"]}, ["naive", "kernel-arm"]),
        ({"walkers": [1], "walker_safety": ["deferred-free"]}, ["deferred-free", "unsafe"]),
    ],
)
def test_combinations_that_mean_nothing_are_refused_in_one_line(
    tmp_path: Path, sweep: dict[str, list[Any]], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sweep(_config(tmp_path, **sweep), "k.yaml")
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_run_with_kernel_src_records_the_tree(kernel_sources: Any, tmp_path: Path) -> None:
    """The patch workflow's first half: a run against a named tree says so in meta.json and
    in every row."""
    tree = tmp_path / "linux"
    shutil.copytree(kernel_sources.root, tree)
    cfg = tmp_path / "k.yaml"
    cfg.write_text(
        "name: k\nrepetitions: 1\nwarmup_s: 0\nduration_s: 0.1\n"
        "defaults: {workload: prefault, region_mib: 16, chunk_pages: 512, workers: 1, cycles: 1}\n"
        "sweep: {pgtable: [model, kernel-arm]}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "iommubench.cli",
            "run",
            str(cfg),
            "--out",
            str(tmp_path / "r"),
            "--kernel-src",
            str(tree),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["kernel_code"]["kernel_tree"] == str(tree.resolve())
    assert meta["kernel_code"]["kernel_source_kind"] == "tree"
    rows = (run_dir / "points.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("kernel_source")
    kernel_rows = [r.split(",") for r in rows[1:] if ",kernel-arm," in r]
    assert kernel_rows and all(str(tree.resolve()) in r[col] for r in kernel_rows)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "iommubench.cli",
            "run",
            str(cfg),
            "--out",
            str(tmp_path / "r"),
            "--kernel-src",
            str(tmp_path / "nowhere"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
