"""The native core's shared files name no strategy: every lock, driver, allocator,
invalidation mode, walker-safety mode and workload keeps its state, checks and sizes in its
own files, so core.h, arena.c and audit.c never mention one (in code or in comments)."""

import re
from pathlib import Path

import pytest

from iommubench.core import binding
from iommubench.spec import catalogue

NATIVE = Path(binding.__file__).resolve().parent / "native"
SHARED_FILES = ["core.h", "arena.c", "audit.c"]

# Terms only one axis's strategies use (their state, constants and counters' stems).
AXIS_TERMS = ["rcache", "depot", "magazine", "mag", "mags", "fq", "iova", "limbo", "grace"]
AXIS_TERMS += ["guard", "ws", "wl"]  # the walk guard; IB_WS_* and IB_WL_* enum prefixes


def strategy_names() -> list[str]:
    """Every registered name, as the native registries spell them, and the driver aliases."""
    names = [
        *binding.driver_names(),
        *binding.lock_names(),
        *binding.workload_names(),
        *binding.allocator_names(),
        *binding.invalidation_names(),
        *binding.walker_safety_names(),
        *catalogue.DRIVER_ALIASES,
    ]
    return sorted(set(names))


def words(text: str) -> list[str]:
    """Lower-case words, split at every non-alphanumeric character: `IB_WS_DEFERRED_FREE`,
    `deferred_free` and `deferred-free` all contain the words deferred, free."""
    return re.findall(r"[a-z0-9]+", text.lower())


def mentions(text: str, name: str) -> bool:
    """Whether the words of `name` occur in `text` one after the other."""
    have, want = words(text), words(name)
    return any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1))


def test_mentions_matches_c_identifiers_and_yaml_spellings() -> None:
    text = "if (safety == IB_WS_DEFERRED_FREE) ib_domain_lock(x); /* tas */"
    assert mentions(text, "deferred-free")
    assert mentions(text, "domain-lock")
    assert mentions(text, "tas")
    assert mentions(text, "ws")
    assert not mentions(text, "ttas")
    assert not mentions(text, "table-lock")
    assert not mentions("deferred; free", "group-mutex")


def test_registries_are_listed() -> None:
    names = strategy_names()
    for expected in ["ttas", "table-lock", "rcache", "lazy", "deferred-free", "dma"]:
        assert expected in names


@pytest.mark.parametrize("filename", SHARED_FILES)
def test_shared_file_names_no_strategy(filename: str) -> None:
    text = (NATIVE / filename).read_text()
    found = [t for t in strategy_names() + AXIS_TERMS if mentions(text, t)]
    assert not found, f"{filename} names {found}"
