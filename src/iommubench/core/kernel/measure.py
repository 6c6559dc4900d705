"""Time the kernel's map/unmap through the adapter against a minimal loop calling them directly.

Both loops run in one run, pass by pass alternately (see ``ibk_drive_bench``): single 4 KiB
pages, one call per page, tables already present, each worker in its own 1 GiB range.

    python -m iommubench.core.kernel.measure [--workers 1 2] [--pages 32768] [--passes 5]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from . import build as kbuild
from . import sources as ksources
from .lib import fork_workers, load, make_env


@dataclass
class Timing:
    workers: int
    pages: int
    passes: int
    # per worker, ops per second: [mode][op]; mode 0 a minimal loop calling the kernel's ops,
    # 1 the adapter (ibk_map/ibk_unmap), 2 the kernel's entry points from ibk_pgtable_direct;
    # op 0 map, 1 unmap
    rates: list[list[list[float]]]
    errors: int

    def line(self) -> str:
        def fmt(mode: int, op: int) -> str:
            per = self.rates[mode][op]
            return "+".join(f"{r / 1e6:.1f}" for r in per) + " M/s"

        def ratio(mode: int, op: int) -> str:
            return f"{sum(self.rates[mode][op]) / sum(self.rates[0][op]):.2f}x"

        return "\n".join(
            f"{self.workers} worker(s) {name}: direct {fmt(0, op)}, adapter {fmt(1, op)} "
            f"({ratio(1, op)}), exported entry points {fmt(2, op)} ({ratio(2, op)})"
            for op, name in ((0, "map"), (1, "unmap"))
        )


def time_map_unmap(
    obj: kbuild.KernelObject, workers: int, pages: int = 32768, passes: int = 5
) -> Timing:
    kl = load(obj)
    ffi, lib = kl.ffi, kl.lib
    env = make_env(kl, nr_cpus=workers, window_bytes=64 << 20)
    try:
        t = lib.ibk_pgtable_create(env.env, 48, 48, ffi.NULL)
        b = env.new("struct ibk_bench")
        lib.ibk_barrier_init(ffi.addressof(b.bar), workers)
        b.npages, b.nworkers, b.passes = pages, workers, passes
        codes = fork_workers(workers, lambda w: lib.ibk_drive_bench(t, b, w))
        if any(codes):
            raise RuntimeError(f"timing workers exited with {codes}")
        rates = [
            [[b.ops[m][op][w] / (b.ns[m][op][w] / 1e9) for w in range(workers)] for op in range(2)]
            for m in range(3)
        ]
        errors = sum(int(b.errors[w]) for w in range(workers))
        lib.ibk_pgtable_destroy(t)
        return Timing(workers, pages, passes, rates, errors)
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel-src", default=None, help="a kernel source tree (default: package)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pages", type=int, default=32768)
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args(argv)
    try:
        src = ksources.find(args.kernel_src, progress=lambda m: print(m, file=sys.stderr))
        obj = kbuild.build(src, progress=lambda m: print(m, file=sys.stderr))
    except (ksources.KernelSourceUnavailable, kbuild.KernelBuildError) as exc:
        print(f"iommubench: {exc}", file=sys.stderr)
        return 2
    print(f"kernel code: {src.label}, object {obj.key[:12]}")
    for n in args.workers:
        print(time_map_unmap(obj, n, args.pages, args.passes).line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
