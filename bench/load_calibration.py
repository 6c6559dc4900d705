"""What competing load costs a point, against the share of its window it measured.

    .venv/bin/python bench/load_calibration.py [ROUNDS] [OUT.csv]

Seven points of bench/default.yaml (one and two workers, spinlock, mutex and lock-free, both
allocators; 0.2 s warm-up, 0.3 s window) run in rounds under four conditions: as the machine
is, with one busy process pinned to CPU 0, with one busy half of every 10 ms on CPU 0, and
with one on each CPU. Each result is written with its measured run-queue wait, steal and
time on a CPU. Then, for every two results A and B of one point, the load rule
(iommubench.analysis.load: a repetition could have run up to 1 / low faster, low = 1 - w l)
says T_B / T_A >= low_B / high_A; the script counts the pairs outside that bound for the rule
and for the weaker 1 - l, and prints each point's throughput against its load share.
Results whose workers were absent (neither on a CPU nor waiting for one) for over a quarter
of the window are left out: the runner flags them window-stretched and sets them aside.
"""

from __future__ import annotations

import csv
import itertools
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from iommubench import load_sweep, run_point
from iommubench.analysis import load

WANT = {
    ("lockfree", "rcache", 1),
    ("lockfree", "global", 1),
    ("domain-lock/ttas", "rcache", 1),
    ("domain-lock/ttas", "rcache", 2),
    ("domain-lock/pthread-mutex", "global", 2),
    ("lockfree", "rcache", 2),
    ("domain-lock/pthread-mutex", "rcache", 1),
}
CONDITIONS = [
    ("as is", []),
    ("cpu0", [(0, 1.0)]),
    ("cpu0 half", [(0, 0.5)]),
    ("both", [(0, 1.0), (1, 1.0)]),
]
MEASURED = ["ops_per_s", "runq_wait_share", "steal_share", "oncpu_share", "level_shift",
            "level_shift_ratio", "flags"]  # fmt: skip
COLUMNS = ["round", "cond", "strategy", "allocator", "workers", *MEASURED, "loadavg"]


def spin(cpu: int, duty: float) -> None:
    """A competing process on `cpu`, busy `duty` of every 10 ms."""
    os.sched_setaffinity(0, {cpu})
    while True:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.01 * duty:
            pass
        if duty < 1:
            time.sleep(0.01 * (1 - duty))


def points() -> list[dict]:
    out = []
    for p in load_sweep(Path(__file__).with_name("default.yaml")).points:
        lock = p.get("lock")
        strat = p["driver"] if lock in (None, "none") else f"{p['driver']}/{lock}"
        if (strat, p["allocator"], p["workers"]) in WANT:
            out.append({**p, "warmup_s": 0.2, "duration_s_requested": 0.3, "_strategy": strat})
    return out


def measure(rounds: int, out: Path) -> None:
    chosen = points()
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for rnd in range(rounds):
            for cond, spinners in CONDITIONS:
                procs = [mp.Process(target=spin, args=s, daemon=True) for s in spinners]
                for pr in procs:
                    pr.start()
                time.sleep(0.2)
                for p in chosen:
                    params = {k: v for k, v in p.items() if k != "_strategy"}
                    m = run_point(params).measures
                    where = [rnd, cond, p["_strategy"], p["allocator"], p["workers"]]
                    w.writerow([*where, *(m.get(c) for c in MEASURED), os.getloadavg()[0]])
                    f.flush()
                for pr in procs:
                    pr.terminate()
                    pr.join()


def outside(g: pd.DataFrame, low: np.ndarray, high: np.ndarray) -> tuple[int, int, float]:
    """(pairs below the bound, pairs, the worst ratio to the bound)."""
    t = g["ops_per_s"].to_numpy(dtype=float)
    bad, worst, pairs = 0, np.inf, list(itertools.permutations(range(len(g)), 2))
    for i, j in pairs:
        bound = low[j] / high[i]
        bad += t[j] / t[i] < bound
        worst = min(worst, t[j] / t[i] / bound)
    return bad, len(pairs), worst


def analyse(path: Path) -> None:
    df = pd.read_csv(path)
    absent = 1 - df["oncpu_share"].fillna(0) - df["runq_wait_share"].fillna(0)
    print(f"{len(df)} results; {int((absent > 0.25).sum())} left out (workers absent)")
    df = df[absent <= 0.25]
    rows = [r.to_dict() for _, r in df.iterrows()]
    df["l"] = [load.load_share(r) for r in rows]
    factors = np.array([load.factors(r) for r in rows])
    df["low"], df["high"] = factors[:, 0], factors[:, 1]
    df["low1"] = np.maximum(load.FLOOR, 1 - df["l"])
    for key, g in df.groupby(["strategy", "allocator", "workers"]):
        rule = outside(g, g["low"].to_numpy(), g["high"].to_numpy())
        weak = outside(g, g["low1"].to_numpy(), np.ones(len(g)))
        print(f"{' '.join(map(str, key)):40s} n={len(g):2d} load {g['l'].min():.2f}-"
              f"{g['l'].max():.2f} | rule: {rule[0]}/{rule[1]} below (worst {rule[2]:.2f}) | "
              f"1 - l: {weak[0]}/{weak[1]} below (worst {weak[2]:.2f})")  # fmt: skip
    for key, g in df.groupby(["strategy", "allocator", "workers"]):
        best = g["ops_per_s"].max()
        pairs = sorted(zip(g["l"], g["ops_per_s"], strict=True))
        pts = " ".join(f"{a:.2f}:{b / best:.2f}" for a, b in pairs)
        print(f"{' '.join(map(str, key))} (load share: throughput / best) {pts}")


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "load_calibration.csv")
    if not out.exists():
        measure(rounds, out)
    analyse(out)
