"""Cost profiles: per-call costs from published kernel measurements, and how they reach the
model.

A profile names target costs for one map call and one unmap call of a single 4 KiB page, and
optionally the cost of one IOTLB invalidation. The model's own call (the lock, the 4-level
walk, the leaf store) already costs something on this CPU, so a profile does not add the
published figure on top. Once per process the harness (run/calibrate.py) measures the
model's own single-page call (lockfree, one worker, tables in place, no timer in the loop:
`bare_call_ns`) and sets the busy work inside each call's critical section to what is left,
`max(0, target - bare)`, so that a single-page call costs the published figure (0 when the
model's own call already costs that much: the row records it). The busy work is the same
calibrated loop as `cs_ns` and `inv_ns`, so it is as exact as that loop: on a machine whose
speed changes under it (shared vCPUs, another process on a sibling thread) a nanosecond of
busy work does too. Every other figure a source gives (multi-page calls, other drivers,
contention) is left to the model: it is a prediction, not an input.
`cs_map_ns`/`cs_unmap_ns` (or `cs_ns`) set beside a profile add to its busy work. The
invalidation cost is a calibrated busy-wait already (`inv_ns`), so a profile's invalidation
figure becomes `inv_ns` unless the point sets it.
"""

from __future__ import annotations

from dataclasses import dataclass

NONE = "none"


@dataclass(frozen=True)
class Profile:
    """Published per-call costs in ns (None: the profile says nothing about that call)."""

    map_ns: int | None
    unmap_ns: int | None
    inv_ns: int | None
    description: str


PROFILES: dict[str, Profile] = {
    NONE: Profile(None, None, None, "no published costs: the model's own calls only"),
    "generic-pt-i7-12700": Profile(
        55,
        70,
        None,
        "generic_pt on an Intel i7-12700: map one 4K page 53-57 ns, unmap 69-72 ns (256x4K "
        "calls: map ~386 ns, unmap ~353 ns, left to the model as a prediction); source: "
        '"iommu: Consolidate iommu page table implementations" (generic_pt), v5 cover letter',
    ),
    "smmuv3-cmdq": Profile(
        None,
        None,
        240,
        "Arm SMMUv3 command-queue sync with the queue in local memory, ~240 ns per "
        "invalidation (inv_ns); source: SMMUv3 command-queue measurements on linux-arm-kernel "
        "as collected in the project's kernel facts",
    ),
    "smmuv3-cmdq-remote": Profile(
        None,
        None,
        550,
        "Arm SMMUv3 command-queue sync with the queue on a remote NUMA node, > 550 ns per "
        "invalidation (inv_ns, a lower bound); source: as smmuv3-cmdq",
    ),
}

DESCRIPTIONS: dict[str, str] = {name: p.description for name, p in PROFILES.items()}
DEFAULT_INV_NS = 240


def inv_ns_for(profile: str) -> int:
    """The invalidation cost a point gets when it does not set inv_ns itself."""
    inv = PROFILES[profile].inv_ns
    return DEFAULT_INV_NS if inv is None else inv


def busy_ns(target: int | None, bare: float) -> int:
    """Busy work that makes a call whose own cost is `bare` ns cost `target` ns; 0 without a
    target, or when the model's own call already costs that much."""
    if target is None:
        return 0
    return max(0, round(target - bare))
