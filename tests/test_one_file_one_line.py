"""A new lock, driver (lock-free or lock-taking), IOVA allocator, invalidation mode or
walker-safety mode is one native file and one registration line; a workload is its header,
its state file and one line.

One scratch copy of the project gets seven new strategies, each an existing one's file copied
under a new name (its identifiers renamed) with its one line appended to its axis's `.def`
file; the core is built once from that tree (and the parameter table regenerated, as `make
docs` does). Each test then checks that `iommubench list` shows its strategy and runs there
the tests the strategy affects: the catalogue and parameter tests and the tests that iterate
the catalogue (racing workers, audited; TSan). No other file of the copy is edited —
CONTRIBUTING.md gives these steps, and this test keeps them true.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fixtures.scratch_tree import NATIVE, build_core, run_python, scratch_copy

pytestmark = pytest.mark.slow


def _add_strategy(tree: Path, axis_dir: str, source: str, old: str, new: str, line: str) -> None:
    """Copy `source` (a file of `axis_dir`) as NEW.c with its C prefix and YAML name renamed,
    and append the registration `line` to the axis's .def file."""
    folder = tree / NATIVE / axis_dir
    text = (folder / source).read_text()
    text = re.sub(rf"\b{old}_", f"{new}_", text)
    text = text.replace(f'"{old}"', f'"{new}"')
    text = re.sub(rf"(IB_DEFINE_\w+\(\"{new}\",\s*){old}\b", rf"\g<1>{new}", text)
    text = re.sub(rf"^(#define IB_LOCK_NAME ){old}$", rf"\g<1>{new}", text, flags=re.M)
    text = re.sub(rf"\b(ib_[a-z_]+?_){old}\b", rf"\g<1>{new}", text)  # ib_allocator_NAME
    (folder / f"{new}.c").write_text(text)
    (def_file,) = [p for p in folder.glob("*.def") if "ENTRY" in p.read_text()]
    _append_line(def_file, line)


def _copy_renamed(folder: Path, source: str, dest: str, old: str, new: str) -> None:
    """Copy `source` as `dest` with every `old` in it (any case: identifiers, include guard,
    registration line) made `new`."""
    text = (folder / source).read_text()
    for o, n in ((old, new), (old.upper(), new.upper())):
        text = text.replace(o, n)
    (folder / dest).write_text(text)


def _append_line(def_file: Path, line: str) -> None:
    with def_file.open("a") as f:
        f.write(line + "\n")


def _add_all(tree: Path) -> None:
    """The seven additions, as CONTRIBUTING.md describes them."""
    _add_strategy(tree, "locks", "ticket.c", "ticket", "myticket", "IB_LOCK_ENTRY(myticket)")
    _add_strategy(
        tree, "drivers", "lockfree.c", "lockfree", "mylockfree", "IB_DRIVER_ENTRY(mylockfree)"
    )
    drivers = tree / NATIVE / "drivers"
    _copy_renamed(drivers, "domain_lock.h", "mydomain.h", "domain_lock", "mydomain")
    text = (drivers / "mydomain.h").read_text().replace('"domain-lock"', '"mydomain"')
    (drivers / "mydomain.h").write_text(text)
    _append_line(drivers / "locked.def", '#include "mydomain.h"')
    _add_strategy(tree, "iova", "global.c", "global", "myglobal", "IB_ALLOCATOR_ENTRY(myglobal)")
    _add_strategy(
        tree, "inval", "strict.c", "strict", "mystrict", "IB_INVALIDATION_ENTRY(mystrict)"
    )
    _add_strategy(
        tree, "walkers", "unsafe.c", "unsafe", "myunsafe", "IB_WALKER_MODE_ENTRY(myunsafe)"
    )
    workloads = tree / NATIVE / "workloads"
    _copy_renamed(workloads, "prefault.h", "myprefault.h", "prefault", "myprefault")
    _copy_renamed(workloads, "prefault_state.c", "myprefault_state.c", "prefault", "myprefault")
    _append_line(workloads / "workloads.def", '#include "myprefault.h"')


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with the seven additions, its core built, its parameter table regenerated
    (`make docs`: the table names the workloads that read each parameter), and what `list`
    printed."""
    tree = scratch_copy(tmp_path_factory.mktemp("one_file") / "tree")
    _add_all(tree)
    build_core(tree)
    docs = "from iommubench.spec import parameters as p; p.update_readme(p.DOCS_TABLE)"
    made = run_python(tree, "-c", docs)
    assert made.returncode == 0, made.stderr
    return tree


def _check_in_scratch(tree: Path, axis: str, name: str, tests: list[str]) -> None:
    listed = run_python(tree, "-m", "iommubench.cli", "list")
    assert listed.returncode == 0, listed.stderr
    section = listed.stdout.split(f"{axis}:\n", 1)[1].split(":\n", 1)[0]
    assert re.search(rf"^  {re.escape(name)}\s+\S", section, re.M), section
    run = run_python(tree, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert name in run_python(tree, "-m", "pytest", "-q", "--collect-only", *tests).stdout


CATALOGUE_TESTS = ["tests/core/test_native_core.py", "tests/spec/test_parameters.py"]


def test_a_lock_is_one_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_lock_order.py", "tests/core/test_native_tsan.py"]
    _check_in_scratch(
        scratch, "lock", "myticket", [*CATALOGUE_TESTS, *tests, "-k", "myticket or catalogue"]
    )


def test_a_lock_free_driver_is_one_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_concurrency.py", "tests/core/test_native_tsan.py"]
    _check_in_scratch(
        scratch, "driver", "mylockfree", [*CATALOGUE_TESTS, *tests, "-k", "mylockfree"]
    )


def test_a_lock_taking_driver_is_one_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_concurrency.py", "tests/core/test_native_tsan.py"]
    _check_in_scratch(
        scratch, "driver", "mydomain", [*CATALOGUE_TESTS, *tests, "-k", "mydomain or lock_takers"]
    )


def test_an_allocator_is_one_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_dma.py", "tests/core/test_native_tsan.py"]
    _check_in_scratch(
        scratch, "allocator", "myglobal", [*CATALOGUE_TESTS, *tests, "-k", "myglobal"]
    )


def test_an_invalidation_mode_is_one_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_dma.py", "tests/core/test_native_tsan.py"]
    _check_in_scratch(
        scratch, "invalidation", "mystrict", [*CATALOGUE_TESTS, *tests, "-k", "mystrict"]
    )


def test_a_walker_mode_is_one_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_walkers.py"]
    _check_in_scratch(
        scratch, "walker_safety", "myunsafe", [*CATALOGUE_TESTS, *tests, "-k", "myunsafe"]
    )


def test_a_workload_is_its_header_its_state_file_and_one_line(scratch: Path) -> None:
    tests = ["tests/core/test_concurrency.py"]
    _check_in_scratch(
        scratch, "workload", "myprefault", [*CATALOGUE_TESTS, *tests, "-k", "myprefault"]
    )


def test_the_catalogue_and_parameter_tests_pass_with_all_seven(scratch: Path) -> None:
    """The tests that check the catalogue as a whole (names, scopes, the generated table),
    with every addition at once."""
    run = run_python(scratch, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CATALOGUE_TESTS)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
