"""Do the harness's spinlocks cost what Concurrency Kit's cost, and scale the same way?

bench/peer/peer.c holds a Concurrency Kit lock (Debian's libck-dev) around the same
page-table walk the harness does on the prefault workload (128 MiB chunks, so the lock is the
only thing the workers share). Interleaved in one run, for each algorithm pair and at 1 and 2
workers: the minimal ck loop, then the harness's domain-lock driver with its own lock.

    harness lock   ck peer
    - (lockfree)   no lock (the loops' own cost, apart from any lock)
    tas            ck_spinlock_fas (note: ck's fas re-reads the word before it retries)
    ttas           a test-and-test-and-set built from ck_pr_load/ck_pr_fas/ck_pr_stall
    ticket         ck_spinlock_ticket
    mcs            ck_spinlock_mcs

Prints the harness/ck ratio per algorithm and worker count, and each side's 2/1-worker shape.

    make peer        (or: .venv/bin/python bench/peer/peer.py [--rounds N] [--seconds S])
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from iommubench.run.point import run_point

HERE = Path(__file__).resolve().parent
BINARY = HERE.parent / "bin" / "peer"
REGION_MIB = 1024
CHUNK_PAGES = 32768
WARMUP_S = 0.2
# (harness lock, ck algorithm); "-" is the harness's lockfree driver beside the ck loop with
# no lock: what the loops around the locks cost, apart from any lock
PAIRS = [("-", "none"), ("tas", "fas"), ("ttas", "ttas"), ("ticket", "ticket"), ("mcs", "mcs")]
CK_HEADER = Path("/usr/include/ck_spinlock.h")
INSTALL_HINT = (
    "make peer needs Concurrency Kit: install it with `apt-get install libck-dev` (as root)"
)


def ensure_ck() -> None:
    """Installs libck-dev when it is missing and apt-get can run (as root); else exits 2."""
    if CK_HEADER.exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing libck-dev ...", flush=True)
        done = subprocess.run(["apt-get", "install", "-y", "libck-dev"], capture_output=True)
        if done.returncode == 0 and CK_HEADER.exists():
            return
    sys.exit(INSTALL_HINT)


def build_peer() -> Path:
    BINARY.parent.mkdir(exist_ok=True)
    cmd = ["gcc", "-O2", "-std=gnu11", "-pthread", "-o", str(BINARY), str(HERE / "peer.c")]
    subprocess.run(cmd, check=True)
    return BINARY


def ck_ops(algo: str, workers: int, seconds: float) -> float:
    args = [algo, workers, REGION_MIB, CHUNK_PAGES, WARMUP_S, seconds]
    out = subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"peer {algo} {workers}: {out.stderr.strip()}")
    return float(out.stdout.split()[1])


def harness_ops(lock: str, workers: int, seconds: float) -> float:
    point = {
        "workload": "prefault",
        **({"driver": "lockfree"} if lock == "-" else {"driver": "domain-lock", "lock": lock}),
        "workers": workers,
        "region_mib": REGION_MIB,
        "chunk_pages": CHUNK_PAGES,
        "cycles": 0,
        "cs_ns": 0,
        "warmup_s": WARMUP_S,
        "duration_s_requested": seconds,
        "sample_every": 0,
        "seed": 1,
    }
    result = run_point(point)
    if result.status != "ok":
        raise RuntimeError(result.error)
    return result.measures["ops_per_s"]


def measure(rounds: int, seconds: float, worker_counts: list[int]) -> dict[str, list[float]]:
    """Every (pair, workers) once per round, ck and harness back to back, the order flipped
    every other round so that drift hits both sides alike."""
    samples: dict[str, list[float]] = {}
    for rnd in range(rounds):
        print(f"round {rnd + 1}/{rounds}", flush=True)
        for lock, algo in PAIRS:
            for workers in worker_counts:
                for side in ("ck", "harness") if rnd % 2 == 0 else ("harness", "ck"):
                    ops = (
                        ck_ops(algo, workers, seconds)
                        if side == "ck"
                        else harness_ops(lock, workers, seconds)
                    )
                    samples.setdefault(f"{side}_{lock}_{workers}", []).append(ops)
    return samples


def render(med: dict[str, float], rounds: int, seconds: float, worker_counts: list[int]) -> str:
    lines = [
        f"# Harness locks vs Concurrency Kit ({time.strftime('%Y-%m-%d %H:%M')},"
        f" {len(os.sched_getaffinity(0))} CPUs, {rounds} rounds x {seconds} s, medians;"
        f" prefault, {REGION_MIB} MiB, {CHUNK_PAGES}-page chunks, domain-lock)",
        "",
        "| harness lock | ck | workers | harness Mops/s | ck Mops/s | harness / ck |",
        "|---|---|---|---|---|---|",
    ]
    for lock, algo in PAIRS:
        for workers in worker_counts:
            h, c = med[f"harness_{lock}_{workers}"], med[f"ck_{lock}_{workers}"]
            lines.append(
                f"| {lock} | {algo} | {workers} | {h / 1e6:.1f} | {c / 1e6:.1f} | {h / c:.2f} |"
            )
    if len(worker_counts) == 2:
        lines += ["", "| lock | harness 2w / 1w | ck 2w / 1w |", "|---|---|---|"]
        for lock, _ in PAIRS:
            h = med[f"harness_{lock}_2"] / med[f"harness_{lock}_1"]
            c = med[f"ck_{lock}_2"] / med[f"ck_{lock}_1"]
            lines.append(f"| {lock} | {h:.2f} | {c:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    ensure_ck()
    build_peer()
    worker_counts = [1, 2] if len(os.sched_getaffinity(0)) >= 2 else [1]
    samples = measure(args.rounds, args.seconds, worker_counts)
    med = {k: statistics.median(v) for k, v in samples.items()}
    text = render(med, args.rounds, args.seconds, worker_counts)
    print(text)
    out = Path("reports") / f"peer-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "peer.md").write_text(text)
    (out / "samples.json").write_text(json.dumps(samples, indent=2))
    print(f"written to {out}/")


if __name__ == "__main__":
    main()
