"""Differential tests: the native drivers against the pure-Python reference page table.

Random map/unmap/remap sequences over clustered IOVA pfns (a few 1 GiB and 2 MiB
neighbourhoods plus the edges of the 36-bit space, so tables are shared and operations
collide) are replayed through the model and through each native driver, single-threaded via
the core's debug hooks. Every driver must agree with the model on each operation's result,
the final mappings, translations, and the number of reachable tables, and the audit must find
no leaked, double-freed, multiply linked or corrupt pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommubench.core import binding
from iommubench.core.arena import Arena
from iommubench.model import FRAME_BITS, IOVA_PFN_BITS, PageTable
from iommubench.spec.parameters import PAGES_PER_MIB, native_params

DRIVERS = ["serial-spin", "serial-mutex", "lockfree", "naive"]

# ib_debug_map / ib_debug_unmap / ib_translate return codes (enum ib_op_result)
OP_OK, OP_CONFLICT, OP_MISSING, OP_NOMEM = 0, 1, 2, 3
MAP_CODES = {"ok": OP_OK, "conflict": OP_CONFLICT}

PFN_LIMIT = 1 << IOVA_PFN_BITS
GIB_PFNS = 1 << 18  # pfns under one level-1 table (1 GiB)
MIB2_PFNS = 1 << 9  # pfns under one leaf table (2 MiB)
EDGE_PFNS = [
    0,
    1,
    MIB2_PFNS - 1,
    MIB2_PFNS,
    GIB_PFNS - 1,
    GIB_PFNS,  # also IB_REGION_BASE_PFN, where the prefault workload starts
    (1 << 27) - 1,
    1 << 27,
    PFN_LIMIT - MIB2_PFNS,
    PFN_LIMIT - 1,
]
EDGE_FRAMES = [0, 1, (1 << 30) + 5, (1 << FRAME_BITS) - 1]
MAX_OPS = 200


@dataclass(frozen=True)
class Op:
    kind: str  # "map", "unmap" or "remap" (unmap, then map with a new frame)
    pfn: int
    frame: int


def _pfns_near(bases: list[int], span: int) -> st.SearchStrategy[int]:
    return st.tuples(st.sampled_from(bases), st.integers(0, span - 1)).map(lambda t: t[0] | t[1])


@st.composite
def op_sequences(draw: st.DrawFn) -> list[Op]:
    """A working set of clustered pfns, then a map/unmap/remap sequence over it."""
    gibs = draw(st.lists(st.integers(0, PFN_LIMIT // GIB_PFNS - 1), min_size=1, max_size=3))
    gib_bases = [g * GIB_PFNS for g in gibs]
    blocks = draw(
        st.lists(
            st.tuples(st.sampled_from(gib_bases), st.integers(0, GIB_PFNS // MIB2_PFNS - 1)),
            min_size=1,
            max_size=4,
        )
    )
    mib2_bases = [g | (b * MIB2_PFNS) for g, b in blocks]
    pfn = st.one_of(
        _pfns_near(mib2_bases, MIB2_PFNS),  # same leaf table
        _pfns_near(gib_bases, GIB_PFNS),  # same level-1 table, maybe a new leaf table
        st.sampled_from(EDGE_PFNS),
    )
    working_set = draw(st.lists(pfn, min_size=1, max_size=32, unique=True))
    frame = st.one_of(st.integers(0, (1 << FRAME_BITS) - 1), st.sampled_from(EDGE_FRAMES))
    op = st.builds(
        Op,
        kind=st.sampled_from(["map", "map", "unmap", "remap"]),
        pfn=st.sampled_from(working_set),
        frame=frame,
    )
    return draw(st.lists(op, max_size=MAX_OPS))


def _region_mib_for(ops: list[Op], lib: Any) -> int:
    """A region whose pool covers every table the sequence can create, with slack."""
    distinct = len({op.pfn for op in ops})
    need = 1 + (3 * distinct) + 64  # root + up to 3 tables per pfn + a refill batch or two
    mib = 1
    while lib.ib_pool_pages_needed(mib * PAGES_PER_MIB, 1) < need:
        mib *= 2
    return mib


class NativeTable:
    """One driver's native page table in a fresh arena, driven through the debug hooks."""

    def __init__(self, driver: str, region_mib: int) -> None:
        self.ffi, self.lib = binding.load()
        point = dict(
            workload="prefault",
            driver=driver,
            workers=1,
            region_mib=region_mib,
            chunk_pages=1,
            cycles=0,
            cs_ns=0,
            warmup_s=0,
            duration_s_requested=1,
            sample_every=0,
            seed=1,
        )
        self.params = native_params(point)
        self.arena = Arena(self.params)
        self._frame = self.ffi.new("uint64_t *")

    def close(self) -> None:
        self.arena.close()

    def map(self, pfn: int, frame: int) -> int:
        return int(self.lib.ib_debug_map(self.arena.base, pfn, frame))

    def unmap(self, pfn: int) -> tuple[int, int | None]:
        self._frame[0] = 0xDEAD
        rc = int(self.lib.ib_debug_unmap(self.arena.base, pfn, self._frame))
        return rc, int(self._frame[0]) if rc == OP_OK else None

    def translate(self, pfn: int) -> int | None:
        rc = int(self.lib.ib_translate(self.arena.base, pfn, self._frame))
        assert rc in (OP_OK, OP_MISSING), rc
        return int(self._frame[0]) if rc == OP_OK else None

    def mappings(self, expect: int) -> dict[int, int]:
        cap = expect + 16
        pfns = self.ffi.new("uint64_t[]", cap)
        frames = self.ffi.new("uint64_t[]", cap)
        n = int(self.lib.ib_debug_dump(self.arena.base, pfns, frames, cap))
        assert n <= cap, f"dump found {n} mappings, the model has {expect}"
        return {int(pfns[i]): int(frames[i]) for i in range(n)}

    def audit(self) -> dict[str, int]:
        result = self.ffi.new("struct ib_audit_result *")
        assert self.lib.ib_audit(self.arena.base, result) == 0
        fields = [name for name, _ in self.ffi.typeof("struct ib_audit_result").fields]
        return {name: int(getattr(result, name)) for name in fields}


def replay(driver: str, ops: list[Op]) -> None:
    """Run ops through the model and the native driver, checking them against each other."""
    model = PageTable()
    native = NativeTable(driver, _region_mib_for(ops, binding.lib()))
    try:
        for step, op in enumerate(ops):
            where = f"step {step}: {op}"
            if op.kind in ("unmap", "remap"):
                status, old = model.unmap(op.pfn)
                rc, native_old = native.unmap(op.pfn)
                want = OP_OK if status == "ok" else OP_MISSING
                assert (rc, native_old) == (want, old), where
            if op.kind in ("map", "remap"):
                rc = native.map(op.pfn, op.frame)
                assert rc == MAP_CODES[model.map(op.pfn, op.frame)], where
            assert native.translate(op.pfn) == model.translate(op.pfn), where

        want_maps = model.mappings()
        assert native.mappings(len(want_maps)) == want_maps

        sample = {p for op in ops for p in (op.pfn - 1, op.pfn, op.pfn + 1)} | set(EDGE_PFNS)
        for pfn in sorted(p for p in sample if 0 <= p < PFN_LIMIT):
            assert native.translate(pfn) == model.translate(pfn), f"translate {pfn:#x}"

        audit = native.audit()
        assert audit["reachable_tables"] == model.table_count(), audit
        assert audit["present_mappings"] == len(want_maps), audit
        # stray_mappings counts every mapping outside the prefault ledger: expected here
        for name in (
            "lost_mappings",
            "wrong_translations",
            "leaked_tables",
            "double_frees",
            "multiply_linked",
            "corrupt_entries",
        ):
            assert audit[name] == 0, (name, audit)
        assert audit["reachable_tables"] + audit["free_pages"] == native.params.pool_pages
    finally:
        native.close()


@pytest.mark.parametrize("driver", DRIVERS)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=op_sequences())
def test_driver_matches_model(driver: str, ops: list[Op]) -> None:
    replay(driver, ops)


@pytest.mark.parametrize("driver", DRIVERS)
def test_known_sequence(driver: str) -> None:
    """A fixed sequence through shared tables, conflicts, remaps and the space's edges."""
    top = PFN_LIMIT - 1
    ops = [
        Op("map", 0, 7),
        Op("map", 511, 8),  # same leaf table
        Op("map", 512, 9),  # next leaf table
        Op("map", 0, 10),  # conflict: 0 keeps frame 7
        Op("unmap", 1, 0),  # missing, in an existing table
        Op("unmap", top, 0),  # missing, no table beneath the root there
        Op("remap", 511, 11),
        Op("map", top, (1 << FRAME_BITS) - 1),
        Op("unmap", 0, 0),
        Op("unmap", 0, 0),  # missing now
        Op("map", 0, 0),  # frame 0 is a valid leaf
    ]
    replay(driver, ops)


def test_model_semantics() -> None:
    pt = PageTable()
    assert pt.table_count() == 1
    assert pt.unmap(5) == ("missing", None)
    assert pt.table_count() == 1  # unmap never creates
    assert pt.map(5, 50) == "ok"
    assert pt.table_count() == 4
    assert pt.map(5, 51) == "conflict"
    assert pt.translate(5) == 50
    assert pt.map(511, 1) == "ok" and pt.table_count() == 4
    assert pt.map(512, 2) == "ok" and pt.table_count() == 5
    assert pt.map(GIB_PFNS, 3) == "ok" and pt.table_count() == 7
    assert pt.map(PFN_LIMIT - 1, 4) == "ok" and pt.table_count() == 10
    assert pt.unmap(5) == ("ok", 50)
    assert pt.translate(5) is None
    assert pt.table_count() == 10  # tables are never freed
    assert pt.mappings() == {511: 1, 512: 2, GIB_PFNS: 3, PFN_LIMIT - 1: 4}
    with pytest.raises(ValueError):
        pt.map(PFN_LIMIT, 1)
    with pytest.raises(ValueError):
        pt.map(0, 1 << FRAME_BITS)


@pytest.mark.parametrize("driver", DRIVERS)
def test_pool_exhaustion_is_reported_and_clean(driver: str) -> None:
    """Outside the model: a map that runs the pool dry answers 3 and maps nothing, and every
    table page stays accounted for (the tables it did install remain reachable)."""
    native = NativeTable(driver, region_mib=1)
    try:
        pool = native.params.pool_pages
        codes = [native.map(i * MIB2_PFNS, i) for i in range(pool)]  # a new leaf table each
        first_nomem = codes.index(OP_NOMEM)
        assert set(codes[:first_nomem]) == {OP_OK}
        assert set(codes[first_nomem:]) == {OP_NOMEM}
        assert native.translate(first_nomem * MIB2_PFNS) is None
        audit = native.audit()
        assert audit["present_mappings"] == first_nomem
        assert audit["reachable_tables"] + audit["free_pages"] == pool
        assert audit["leaked_tables"] == audit["double_frees"] == audit["corrupt_entries"] == 0
        assert native.unmap(0) == (OP_OK, 0)  # still usable after running dry
    finally:
        native.close()
