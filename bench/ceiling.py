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
  5. what latency sampling costs: one lock-free worker timing no op, one in 1024, one in 64.

    make ceiling            (or: .venv/bin/python bench/ceiling.py [--rounds N] [--seconds S])
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
REGION_MIB = 1024
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
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    binary = build_ceiling()
    samples: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", flush=True)
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
    lines = [
        f"# Harness vs minimal C loop ({time.strftime('%Y-%m-%d %H:%M')}, {len(cpus)} CPUs,"
        f" {args.rounds} rounds x {args.seconds} s, medians)",
        "",
        f"- minimal C loop, 1 CPU: {med['ceiling_1'] / 1e6:.1f} Mops/s",
        f"- harness lockfree, 1 worker: {med['harness_lockfree_1'] / 1e6:.1f} Mops/s"
        f" = **{med['harness_lockfree_1'] / med['ceiling_1']:.2f}x** the minimal loop",
    ]
    if "ceiling_2" in med:
        lines.append(
            f"- minimal C loop, 2 copies on 2 CPUs: {med['ceiling_2'] / 1e6:.1f} Mops/s in all"
            f" = **{med['ceiling_2'] / med['ceiling_1']:.2f}x** one copy (the machine's ceiling"
            " for any 2-worker point)"
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
    lines += ["", "| lock-free, 1 worker, sampling | Mops/s | vs no sampling |", "|---|---|---|"]
    for every in SAMPLING:
        name = "off" if every == 0 else f"1 op in {every}"
        ratio = med[f"sampling_{every}"] / med["sampling_0"]
        lines.append(f"| {name} | {med[f'sampling_{every}'] / 1e6:.1f} | {ratio:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path("reports") / f"ceiling-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ceiling.md").write_text(text)
    (out / "samples.json").write_text(json.dumps(samples, indent=2))
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
