"""The kernel's own iova.c as the harness's IOVA allocator (allocator: kernel-iova): dma points
run by the runner, each worker process a CPU of iova.c's per-CPU rcache, audited (no two ranges
overlap, every range back after the CPUs' magazines, the depot and the kernel's flush, the
magazine and depot counts consistent, no kernel WARN); the audit itself catches a leaked and a
double-freed IOVA; what cannot apply is refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iommubench.core.kernel import build as kbuild
from iommubench.core.kernel import lib as klib
from iommubench.run.point import run_point
from iommubench.spec.config import ConfigError, parse_sweep

pytestmark = pytest.mark.slow

RETRIES = 4


def dpoint(**overrides: Any) -> dict[str, Any]:
    """A short dma point on the kernel's iova.c, with every parameter the runner reads."""
    point: dict[str, Any] = {
        "workload": "dma",
        "driver": "lockfree",
        "pgtable": "model",
        "allocator": "kernel-iova",
        "invalidation": "lazy",
        "workers": 2,
        "region_mib": 64,
        "chunk_pages": 1,
        "cycles": 0,
        "cs_ns": 0,
        "queue_depth": 16,
        "granule_pages": [1, 1, 2, 4],
        "dma_ns": 0,
        "inv_ns": 0,
        "warmup_s": 0.05,
        "duration_s_requested": 0.2,
        "sample_every": 64,
        "seed": 1,
    }
    point.update(overrides)
    return point


def ok(result: Any) -> dict[str, Any]:
    assert result.status == "ok", result.error
    m = result.measures
    keys = ("iova_leaks", "iova_double_allocs", "kernel_warns", "lost_mappings", "ops")
    assert m["audit_ok"], {k: m.get(k) for k in keys}
    assert m["iova_leaks"] == m["iova_double_allocs"] == m["kernel_warns"] == 0
    assert m["kernel_variant"] == "normal" and m["kernel_files_sha256"] and m["kernel_source"]
    assert m["ops"] > 0
    return m


@pytest.mark.parametrize(
    "pgtable, invalidation",
    [("model", "lazy"), ("model", "strict"), ("kernel-arm", "lazy"), ("kernel-arm", "strict")],
)
@pytest.mark.parametrize("completion", ["local", "remote"])
def test_two_workers_on_the_kernels_iova_pass_the_audit(
    kernel_object: kbuild.KernelObject, pgtable: str, invalidation: str, completion: str
) -> None:
    m = ok(run_point(dpoint(pgtable=pgtable, invalidation=invalidation, completion=completion)))
    # every I/O took one IOVA of at most 4 pages: each allocation is a hit or a miss, mostly
    # hits; the misses of a cold cache may all fall in the warm-up (uncounted) when a worker
    # is descheduled under load, so a miss in the window is not required
    assert m["rcache_hits"] > m["rcache_misses"] >= 0
    assert m["iova_fallbacks"] >= m["rcache_misses"]  # a miss is a range from the tree
    assert m["iova_lock_acquisitions"] > 0  # iova.c's spinlocks, counted by the shim
    if completion == "remote":  # one CPU frees what another allocated: the depot carries it
        assert m["depot_pushes"] > 0 and m["depot_pops"] > 0


def test_the_depot_trim_runs_on_the_harness_timer(kernel_object: kbuild.KernelObject) -> None:
    """Three workers completing each other's I/Os leave more full magazines in a class's depot
    than CPUs; iova.c's delayed work, run from the workers' poll (ibk_tick), trims them."""
    trims = 0
    for _ in range(RETRIES):
        m = ok(
            run_point(
                dpoint(
                    workers=3,
                    completion="remote",
                    queues_per_worker=4,
                    queue_depth=1024,
                    granule_pages=[1, 2, 4, 8, 16, 32],
                    duration_s_requested=1.0,
                )
            )
        )
        trims += m["depot_trims"]
        if trims:
            break
    assert trims > 0, "the depot never held more full magazines than CPUs for 100 ms"


def test_a_point_after_one_that_never_reached_its_audit_runs_clean(
    kernel_object: kbuild.KernelObject,
) -> None:
    """A point that times out leaves iova.c's process state pointing into its arena; the
    arena's detach resets it, so the next kernel-iova point in the process starts clean."""
    failed = run_point(dpoint(duration_s_requested=5.0), timeout_s=0.5)
    assert failed.status == "failed"
    ok(run_point(dpoint()))


def test_sizes_above_the_rcache_go_to_the_tree(kernel_object: kbuild.KernelObject) -> None:
    m = ok(run_point(dpoint(granule_pages=[64], map_mode="single")))
    assert m["rcache_hits"] == m["rcache_misses"] == 0  # 64 pages: never cached
    assert m["iova_fallbacks"] > 0


# --- the audit itself, on the object directly ------------------------------------------------


def _audit(kl: Any, d: Any) -> dict[str, int]:
    a = kl.ffi.new("struct ibk_iova_audit *")
    kl.lib.ibk_iova_audit(d, a)
    return {name: int(getattr(a, name)) for name, _ in kl.ffi.typeof(a[0]).fields}


@pytest.fixture
def iovad(kernel_object: kbuild.KernelObject) -> Any:
    kl = klib.load(kernel_object)
    env = klib.make_env(kl, nr_cpus=2, window_bytes=1 << 20)
    d = kl.lib.ibk_iova_create(env.env, 4096, 1)
    assert d != kl.ffi.NULL
    yield kl, d
    kl.lib.ibk_iova_destroy(d)
    kl.lib.ibk_set_cpu(-1)
    env.close()


LIMIT = (1 << 36) - 1


def test_the_audit_accounts_for_every_magazine(iovad: Any) -> None:
    kl, d = iovad
    kl.lib.ibk_set_cpu(0)
    pfns = [kl.lib.ibk_iova_alloc(d, 1, LIMIT, 1) for _ in range(1000)]
    kl.lib.ibk_set_cpu(1)  # freed on another CPU: full magazines go to the depot
    for pfn in pfns:
        kl.lib.ibk_iova_free(d, pfn, 1)
    a = _audit(kl, d)
    assert a["ranges"] == 1000 and a["leaks"] == 0 and a["overlaps"] == 0
    assert a["cpu_cached"] + a["depot_cached"] == 1000
    assert a["depot_cached"] == a["depot_magazines"] * a["magazine_size"] > 0
    assert a["partial_magazines"] == a["magazine_mismatch"] == a["objects_mismatch"] == 0
    assert a["warns"] == 0


def test_the_audit_catches_a_leaked_iova(iovad: Any) -> None:
    kl, d = iovad
    kl.lib.ibk_set_cpu(0)
    pfns = [kl.lib.ibk_iova_alloc(d, 2, LIMIT, 1) for _ in range(10)]
    for pfn in pfns[:-1]:
        kl.lib.ibk_iova_free(d, pfn, 2)
    a = _audit(kl, d)
    assert a["leaks"] == 1 and a["cpu_cached"] == 9


def test_the_audit_catches_a_double_free(iovad: Any) -> None:
    """free_iova_fast takes a pfn twice into a magazine without a word; the drain's second
    removal of it from the tree is iova.c's own WARN_ON."""
    kl, d = iovad
    kl.lib.ibk_set_cpu(0)
    pfns = [kl.lib.ibk_iova_alloc(d, 1, LIMIT, 1) for _ in range(10)]
    for pfn in pfns:
        kl.lib.ibk_iova_free(d, pfn, 1)
    kl.lib.ibk_iova_free(d, pfns[3], 1)
    a = _audit(kl, d)
    assert a["warns"] == 1 and a["leaks"] == 0


# --- refusals ---------------------------------------------------------------------------------


def test_more_workers_than_the_shims_cpus_are_refused_in_one_line(
    kernel_object: kbuild.KernelObject,
) -> None:
    cfg = {
        "name": "k",
        "repetitions": 1,
        "warmup_s": 0.0,
        "duration_s": 0.1,
        "defaults": {"workload": "dma", "allocator": "kernel-iova"},
        "sweep": {"workers": [65]},
    }
    with pytest.raises(ConfigError) as err:
        parse_sweep(cfg, "k.yaml")
    msg = str(err.value)
    assert "\n" not in msg and "kernel-iova" in msg and "64" in msg, msg


def test_without_kernel_sources_the_run_is_refused_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "k.yaml"
    cfg.write_text(
        "name: k\nrepetitions: 1\nwarmup_s: 0\nduration_s: 0.1\n"
        "defaults: {workload: dma, allocator: kernel-iova, workers: 1}\n"
    )
    (tmp_path / "empty").mkdir()
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
            str(tmp_path / "empty"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "allocator kernel-iova" in lines[0]


def test_bench_kernel_yaml_crosses_the_kernels_iova_with_both_page_tables() -> None:
    from iommubench.spec.config import load_sweep

    bench = Path(__file__).resolve().parents[2] / "bench" / "kernel.yaml"
    points = load_sweep(bench).points
    dma = {(p["pgtable"], p["allocator"]) for p in points if p["workload"] == "dma"}
    assert dma == {(t, a) for t in ("model", "kernel-arm") for a in ("rcache", "kernel-iova")}
    assert {p["workers"] for p in points} == {1, 2}


def test_bench_kernel_patch_yaml_is_the_kernels_code_only() -> None:
    from iommubench.spec.config import load_sweep

    bench = Path(__file__).resolve().parents[2] / "bench" / "kernel-patch.yaml"
    points = load_sweep(bench).points
    assert {p["pgtable"] for p in points} == {"kernel-arm"}
    assert {p["allocator"] for p in points if p["workload"] == "dma"} == {"kernel-iova"}
