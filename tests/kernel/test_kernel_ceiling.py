"""`make ceiling`'s kernel table: the minimal C loop over the kernel's map_pages/unmap_pages
(bench/ceiling_kernel.c) builds against the adapter's header and runs clean on the object the
harness's kernel-arm points load, and the harness's side of the table runs audited."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from iommubench.core.kernel import build as kbuild

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _ceiling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ceiling", BENCH / "ceiling.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ceiling"] = module
    spec.loader.exec_module(module)
    return module


def test_the_kernel_table_runs_both_sides(kernel_object: kbuild.KernelObject) -> None:
    ceiling = _ceiling()
    obj = ceiling.kernel_object()
    assert obj is not None and obj.is_file()
    binary = ceiling.build_kernel_ceiling()
    cpu = sorted(os.sched_getaffinity(0))[0]
    assert ceiling.kernel_ceiling_ops(binary, obj, 0.05, cpu) > 0
    assert ceiling.harness_kernel_ops(0.1) > 0
    med = {"kernel_loop": 2e7, "kernel_harness": 1.9e7, "kernel_harness_nosample": 1.95e7}
    text = "\n".join(ceiling.kernel_lines(med, med))
    assert "**0.95x**" in text and "ceiling_kernel.c" in text
