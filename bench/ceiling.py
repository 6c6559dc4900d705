"""Is the harness as fast as hand-written C, and how do the drivers scale from 1 to 2 workers?

Measured in one run, interleaved so drift hits both sides alike:
  1. one worker's lock-free map+unmap ops/s in the harness beside bench/ceiling.c, a minimal
     C loop doing the same walk with nothing around it;
  2. the machine's own 2-process ceiling: two copies of that loop on two CPUs at once, which
     bounds what any 2-worker point can reach here;
  3. for each strategy (driver, or driver/lock), 2-worker / 1-worker throughput with 128 MiB
     chunks (separate tables);
  4. the same ratio with one-page chunks (racing for the same tables) for domain-lock,
     table-lock and lockfree;
  5. what latency sampling costs: one lock-free worker timing no op, one in 1024, one in 64;
  6. the kernel table: the harness's kernel-code driver (pgtable kernel-arm, lockfree, one
     worker, prefault one page per call) beside bench/ceiling_kernel.c, a minimal C loop
     calling the same entry points of the same kernel-code object (map_pages, unmap_pages)
     on the same pages, with nothing around them. Skipped, with one line, when no kernel
     tree can be had.

    make ceiling            (or: .venv/bin/python bench/ceiling.py [--rounds N] [--seconds S]
                             [--kernel-only | --no-kernel] [--kernel-src PATH])
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from iommubench.run.point import run_point

HERE = Path(__file__).resolve().parent
NATIVE = HERE.parent / "src" / "iommubench" / "core" / "native"
REGION_MIB = 1024
KERNEL_REGION_MIB = 128  # 32768 pages: 64 leaf tables, as core/kernel/measure.py times
# strategies: a lock-taking driver with its lock (driver/lock), or a lock-free driver
DRIVERS = ["domain-lock/ttas", "domain-lock/pthread-mutex", "table-lock/ttas", "lockfree", "naive"]
SAMPLING = (0, 1024, 64)
# one-page chunks: every worker races for the same tables (the split lock's worst case)
RACING = ["domain-lock/ttas", "table-lock/ttas", "lockfree"]


def build_ceiling() -> Path:
    binary = HERE / "bin" / "ceiling"
    binary.parent.mkdir(exist_ok=True)
    subprocess.run(
        ["gcc", "-O2", "-std=gnu11", "-o", str(binary), str(HERE / "ceiling.c")], check=True
    )
    return binary


def build_kernel_ceiling() -> Path:
    binary = HERE / "bin" / "ceiling_kernel"
    binary.parent.mkdir(exist_ok=True)
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-std=gnu11",
            f"-I{NATIVE / 'pgtables'}",
            "-o",
            str(binary),
            str(HERE / "ceiling_kernel.c"),
        ],
        check=True,
    )
    return binary


def kernel_object() -> Path | None:
    """The object the harness's kernel-arm points load (built once), or None with one line."""
    from iommubench.core.errors import UsageError
    from iommubench.run import kernel_code

    try:
        obj = kernel_code.object_for({"pgtable": "kernel-arm"})
    except UsageError as exc:
        print(f"ceiling: no kernel table: {exc}", flush=True)
        return None
    assert obj is not None
    return obj.path


def kernel_ceiling_ops(binary: Path, obj: Path, seconds: float, cpu: int) -> float:
    """ops/s of the minimal loop over the kernel's map_pages/unmap_pages on one CPU."""
    out = subprocess.run(
        ["taskset", "-c", str(cpu), str(binary), str(obj), str(KERNEL_REGION_MIB), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.split()[1])


def harness_kernel_ops(seconds: float, sample_every: int = 1024) -> float:
    """ops/s of one lock-free worker on the kernel's io-pgtable-arm.c, prefault, one page per
    call: the same pages as the minimal loop (one 128 MiB chunk)."""
    point = {
        "workload": "prefault",
        "driver": "lockfree",
        "pgtable": "kernel-arm",
        "workers": 1,
        "region_mib": KERNEL_REGION_MIB,
        "chunk_pages": KERNEL_REGION_MIB * 256,
        "cycles": 0,
        "cs_ns": 0,
        "warmup_s": 0.2,
        "duration_s_requested": seconds,
        "sample_every": sample_every,
        "seed": 1,
    }
    result = run_point(point)
    if result.status != "ok" or not result.measures["audit_ok"]:
        raise RuntimeError(result.error or "the kernel-arm point failed its audit")
    return result.measures["ops_per_s"]


def kernel_lines(med: dict[str, float], best: dict[str, float]) -> list[str]:
    loop, harness, off = "kernel_loop", "kernel_harness", "kernel_harness_nosample"
    return [
        "",
        "| the kernel's io-pgtable-arm.c, 1 worker, 4 KiB map + unmap per call | Mops/s median"
        " | best | vs the loop (median, best) |",
        "|---|---|---|---|",
        f"| minimal C loop over map_pages/unmap_pages (bench/ceiling_kernel.c) |"
        f" {med[loop] / 1e6:.1f} | {best[loop] / 1e6:.1f} | 1 |",
        f"| harness: pgtable kernel-arm, lockfree, sampling 1 op in 1024 |"
        f" {med[harness] / 1e6:.1f} | {best[harness] / 1e6:.1f} |"
        f" **{med[harness] / med[loop]:.2f}x**, {best[harness] / best[loop]:.2f}x |",
        f"| harness, sampling off | {med[off] / 1e6:.1f} | {best[off] / 1e6:.1f} |"
        f" {med[off] / med[loop]:.2f}x, {best[off] / best[loop]:.2f}x |",
    ]


def ceiling_ops(binary: Path, seconds: float, cpus: list[int]) -> list[float]:
    """ops/s of one copy per CPU in cpus, all running at once."""
    procs = [
        subprocess.Popen(
            ["taskset", "-c", str(cpu), str(binary), str(REGION_MIB), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for cpu in cpus
    ]
    return [float(p.communicate()[0].split()[1]) for p in procs]


def harness_ops(
    driver: str, workers: int, seconds: float, sample_every: int = 1024, chunk: int = 32768
) -> float:
    driver, _, lock = driver.partition("/")
    point = {
        "workload": "prefault",
        "driver": driver,
        "lock": lock or "none",
        "workers": workers,
        "region_mib": REGION_MIB,
        "chunk_pages": chunk,
        "cycles": 0,
        "cs_ns": 0,
        "warmup_s": 0.2,
        "duration_s_requested": seconds,
        "sample_every": sample_every,
        "seed": 1,
    }
    result = run_point(point)
    if result.status != "ok":
        raise RuntimeError(result.error)
    return result.measures["ops_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--kernel-only", action="store_true", help="only the kernel table")
    which.add_argument("--no-kernel", action="store_true", help="no kernel table")
    ap.add_argument("--kernel-src", type=Path, default=None, help="a kernel tree")
    args = ap.parse_args()
    if args.kernel_src is not None:
        from iommubench.run import kernel_code

        os.environ[kernel_code.SOURCE_ENV] = str(args.kernel_src.resolve())
    cpus = sorted(os.sched_getaffinity(0))
    model = not args.kernel_only
    binary = build_ceiling() if model else None
    obj = None if args.no_kernel else kernel_object()
    kbinary = build_kernel_ceiling() if obj is not None else None
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", flush=True)
        if kbinary is not None and obj is not None:
            add("kernel_loop", kernel_ceiling_ops(kbinary, obj, args.seconds, cpus[0]))
            add("kernel_harness", harness_kernel_ops(args.seconds))
            add("kernel_harness_nosample", harness_kernel_ops(args.seconds, 0))
        if binary is None:
            continue
        add("ceiling_1", ceiling_ops(binary, args.seconds, cpus[:1])[0])
        add("harness_lockfree_1", harness_ops("lockfree", 1, args.seconds))
        if len(cpus) >= 2:
            add("ceiling_2", sum(ceiling_ops(binary, args.seconds, cpus[:2])))
        for driver in DRIVERS:
            for workers in (1, 2):
                add(f"{driver}_{workers}", harness_ops(driver, workers, args.seconds))
        for driver in RACING:
            for workers in (1, 2):
                ops = harness_ops(driver, workers, args.seconds, chunk=1)
                add(f"racing_{driver}_{workers}", ops)
        for every in SAMPLING:
            add(f"sampling_{every}", harness_ops("lockfree", 1, args.seconds, every))

    med = {k: statistics.median(v) for k, v in samples.items()}
    best = {k: max(v) for k, v in samples.items()}
    load = os.getloadavg()
    lines = [
        f"# Harness vs minimal C loop ({time.strftime('%Y-%m-%d %H:%M')}, {len(cpus)} CPUs,"
        f" {args.rounds} rounds x {args.seconds} s, medians; load average before"
        f" {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})",
    ]
    if binary is not None:
        lines += [
            "",
            f"- minimal C loop, 1 CPU: {med['ceiling_1'] / 1e6:.1f} Mops/s",
            f"- harness lockfree, 1 worker: {med['harness_lockfree_1'] / 1e6:.1f} Mops/s"
            f" = **{med['harness_lockfree_1'] / med['ceiling_1']:.2f}x** the minimal loop",
        ]
        if "ceiling_2" in med:
            lines.append(
                f"- minimal C loop, 2 copies on 2 CPUs: {med['ceiling_2'] / 1e6:.1f} Mops/s in"
                f" all = **{med['ceiling_2'] / med['ceiling_1']:.2f}x** one copy (the machine's"
                " ceiling for any 2-worker point)"
            )
        lines += [
            "",
            "| 128 MiB chunks | 1 worker Mops/s | 2 workers Mops/s | 2w / 1w |",
            "|---|---|---|---|",
        ]
        for driver in DRIVERS:
            one, two = med[f"{driver}_1"], med[f"{driver}_2"]
            lines.append(f"| {driver} | {one / 1e6:.1f} | {two / 1e6:.1f} | {two / one:.2f} |")
        lines += ["", "| one-page chunks | 1 worker Mops/s | 2 workers Mops/s | 2w / 1w |"]
        lines += ["|---|---|---|---|"]
        for driver in RACING:
            one, two = med[f"racing_{driver}_1"], med[f"racing_{driver}_2"]
            lines.append(f"| {driver} | {one / 1e6:.1f} | {two / 1e6:.1f} | {two / one:.2f} |")
        lines += ["", "| lock-free, 1 worker, sampling | Mops/s | vs no sampling |"]
        lines += ["|---|---|---|"]
        for every in SAMPLING:
            name = "off" if every == 0 else f"1 op in {every}"
            ratio = med[f"sampling_{every}"] / med["sampling_0"]
            lines.append(f"| {name} | {med[f'sampling_{every}'] / 1e6:.1f} | {ratio:.3f} |")
    if "kernel_loop" in med:
        lines += kernel_lines(med, best)
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path("reports") / f"ceiling-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ceiling.md").write_text(text)
    (out / "samples.json").write_text(json.dumps(samples, indent=2))
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
