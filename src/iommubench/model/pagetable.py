"""A reference IO page table with the drivers' single-threaded semantics.

Four levels of 512 entries, 9 bits of the IOVA page frame number per level, 36-bit pfns (a
48-bit IOVA space with a 4 KiB granule). Level 3 is the root; level 0 tables hold leaves.
Every native driver (serial-spin, serial-mutex, lockfree, naive) must behave exactly like this
when only one thread calls it:

- ``map(pfn, frame)`` walks from the root, creating each missing table on the way down, then
  installs the leaf; if a leaf is already present it answers ``"conflict"`` and leaves the
  state as it was (the tables on the way already exist, so nothing is created either).
- ``unmap(pfn)`` clears the leaf and returns its frame, or answers ``"missing"``; it never
  creates a table and never frees one: a table, once created, stays reachable (as in the
  native core today).

This is the oracle, so it favours being obviously correct over being fast: tables are plain
dicts keyed by entry index, and nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

LEVELS = 4
BITS_PER_LEVEL = 9
ENTRIES = 1 << BITS_PER_LEVEL
IOVA_PFN_BITS = LEVELS * BITS_PER_LEVEL  # 36
FRAME_BITS = 52  # a leaf is (frame << 12) | flags in 64 bits

MapStatus = Literal["ok", "conflict"]
UnmapStatus = Literal["ok", "missing"]


@dataclass
class Table:
    """One table. At level > 0 its entries are child tables; at level 0, leaf frames."""

    level: int
    children: dict[int, Table] = field(default_factory=dict)
    leaves: dict[int, int] = field(default_factory=dict)


def index(pfn: int, level: int) -> int:
    """The entry of ``pfn`` in a table at ``level``."""
    return (pfn >> (BITS_PER_LEVEL * level)) & (ENTRIES - 1)


def _check_pfn(pfn: int) -> None:
    if not 0 <= pfn < 1 << IOVA_PFN_BITS:
        raise ValueError(f"pfn {pfn:#x} is outside the {IOVA_PFN_BITS}-bit IOVA space")


def _check_frame(frame: int) -> None:
    if not 0 <= frame < 1 << FRAME_BITS:
        raise ValueError(f"frame {frame:#x} does not fit a {FRAME_BITS}-bit leaf")


class PageTable:
    """The reference page table: starts with just the root."""

    def __init__(self) -> None:
        self.root = Table(LEVELS - 1)

    def _leaf_table(self, pfn: int, create: bool) -> Table | None:
        """The level-0 table holding ``pfn``'s leaf; created on the way when ``create``."""
        table = self.root
        for level in range(LEVELS - 1, 0, -1):
            i = index(pfn, level)
            child = table.children.get(i)
            if child is None:
                if not create:
                    return None
                child = Table(level - 1)
                table.children[i] = child
            table = child
        return table

    def map(self, pfn: int, frame: int) -> MapStatus:
        _check_pfn(pfn)
        _check_frame(frame)
        table = self._leaf_table(pfn, create=True)
        assert table is not None
        i = index(pfn, 0)
        if i in table.leaves:
            return "conflict"
        table.leaves[i] = frame
        return "ok"

    def unmap(self, pfn: int) -> tuple[UnmapStatus, int | None]:
        """("ok", the frame that was mapped) or ("missing", None)."""
        _check_pfn(pfn)
        table = self._leaf_table(pfn, create=False)
        if table is None or index(pfn, 0) not in table.leaves:
            return "missing", None
        return "ok", table.leaves.pop(index(pfn, 0))

    def translate(self, pfn: int) -> int | None:
        """The frame ``pfn`` maps to, or None."""
        _check_pfn(pfn)
        table = self._leaf_table(pfn, create=False)
        return None if table is None else table.leaves.get(index(pfn, 0))

    def mappings(self) -> dict[int, int]:
        """Every live mapping, pfn -> frame, found by walking the whole tree."""
        out: dict[int, int] = {}

        def walk(table: Table, prefix: int) -> None:
            for i, frame in table.leaves.items():
                out[(prefix << BITS_PER_LEVEL) | i] = frame
            for i, child in table.children.items():
                walk(child, (prefix << BITS_PER_LEVEL) | i)

        walk(self.root, 0)
        return dict(sorted(out.items()))

    def table_count(self) -> int:
        """Tables reachable from the root, the root included."""

        def count(table: Table) -> int:
            return 1 + sum(count(child) for child in table.children.values())

        return count(self.root)
