"""A counter the native core declares as a measure (IB_MEASURE in a counters.def file) is a
column of points.csv, summed over the point's workers, and of workers.csv, each worker's own,
with no Python edit: the catalogue lists the measures and the columns derive from it.

The first tests read this build's catalogue and run one short point through the results
store; the slow one turns an internal counter into a measure in a scratch copy of the project
and checks that it reaches both files there.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

from conftest import dma_point
from fixtures.scratch_tree import NATIVE, ROOT, build_core, run_python, scratch_copy
from iommubench.core import binding
from iommubench.run.point import run_point
from iommubench.run.store import WORKER_COLUMNS, RunStore
from iommubench.run.sweep import Task, make_row
from iommubench.spec import catalogue, columns

_INCLUDE = re.compile(r'^#include "([^"]+)"', re.M)
_DECLARED = re.compile(r"^IB_(MEASURE|COUNTER|LOCK_FAMILY)\((\w+)", re.M)
LOCK_FIELDS = ("_acquisitions", "_contended", "_wait_ns", "_max_wait_ns")


def _declared(path: Path) -> list[tuple[str, str]]:
    """(kind, name) of every counter of a counters.def file, its includes expanded in place
    and each lock family's four counters listed: the order struct ib_counters has."""
    out: list[tuple[str, str]] = []
    for m in re.finditer(rf"{_INCLUDE.pattern}|{_DECLARED.pattern}", path.read_text(), re.M):
        if m[1]:
            out += _declared(path.parent / m[1])
        elif m[2] == "LOCK_FAMILY":
            out += [("LOCK_FAMILY", m[3] + field) for field in LOCK_FIELDS]
        else:
            out.append((m[2], m[3]))
    return out


def test_the_catalogue_lists_the_declared_measures_in_order() -> None:
    declared = _declared(ROOT / NATIVE / "counters.def")
    assert [name for _, name in declared] == binding.struct_fields("struct ib_counters")
    measures = [name for kind, name in declared if kind == "MEASURE"]
    assert measures and catalogue.counter_measures() == tuple(measures)


def test_every_lock_family_is_declared_once_and_has_its_columns() -> None:
    """IB_LOCK_FAMILY lines reach the catalogue in declaration order, each with its four
    columns of points.csv: a new lock the core counts needs no Python edit."""
    declared = _declared(ROOT / NATIVE / "counters.def")
    prefixes = [
        name[: -len("_acquisitions")]
        for kind, name in declared
        if kind == "LOCK_FAMILY" and name.endswith("_acquisitions")
    ]
    assert list(catalogue.lock_families()) == prefixes and len(set(prefixes)) == len(prefixes)
    assert all(catalogue.lock_families().values())  # each says what it locks
    for prefix in prefixes:
        for field in LOCK_FIELDS:
            assert prefix + field in columns.POINT_COLUMNS, prefix + field


def test_every_measure_is_a_column_of_both_files_once() -> None:
    measures = catalogue.counter_measures()
    assert [c for c in columns.MEASURES if c in measures] == list(measures)  # declared order
    for name in measures:
        assert name in columns.POINT_COLUMNS and name in WORKER_COLUMNS, name
    for header in (columns.POINT_COLUMNS, WORKER_COLUMNS):
        twice = [c for c, n in Counter(header).items() if n > 1]
        assert not twice, f"kept twice: {twice}"
    # what the harness derives is never also a counter summed by the core
    assert not set(columns.DERIVED) & set(measures)


def test_a_points_measures_are_the_sums_of_its_workers_rows(tmp_path: Path) -> None:
    """One real point, stored as a run stores it: in points.csv every measure is the sum of
    that column over the point's rows of workers.csv."""
    # the allocator's and invalidation's measures count too; short
    point = dma_point(warmup_s=0.0, duration_s_requested=0.1)
    result = run_point(point)
    assert result.status == "ok", result.error
    store = RunStore.create(tmp_path / "run", {"name": "counters"}, {})
    row = make_row(store.run_id, Task(0, 0, point), result, timer_ns=1.0)
    store.append(row, result.workers, result.hist_map, result.hist_unmap)
    with store.points_csv.open() as f:
        (stored,) = list(csv.DictReader(f))
    with store.workers_csv.open() as f:
        workers = list(csv.DictReader(f))
    assert len(workers) == point["workers"]
    assert int(stored["ops"]) > 0
    for name in catalogue.counter_measures():
        assert stored[name] != "", name
        assert int(stored[name]) == sum(int(w[name]) for w in workers), name


@pytest.mark.slow
def test_a_counter_declared_a_measure_reaches_both_files_with_no_python_edit(
    tmp_path: Path,
) -> None:
    """In a scratch copy, one word of workloads/counters.def turns `ring_full` (counted by
    dma, reported nowhere) into a measure; built there, it is a column of both files and the
    tests above pass for it."""
    tree = scratch_copy(tmp_path / "tree")
    def_file = tree / NATIVE / "workloads" / "counters.def"
    text = def_file.read_text()
    assert "IB_COUNTER(ring_full)" in text
    def_file.write_text(text.replace("IB_COUNTER(ring_full)", "IB_MEASURE(ring_full)"))
    build_core(tree)
    shown = run_python(
        tree,
        "-c",
        "from iommubench.spec import columns; from iommubench.run import store; "
        "print('ring_full' in columns.POINT_COLUMNS, 'ring_full' in store.WORKER_COLUMNS)",
    )
    assert shown.stdout.split() == ["True", "True"], shown.stderr[-2000:]
    tests = ["tests/run/test_counter_columns.py", "-m", "not slow"]
    run = run_python(tree, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
