"""Fuzz config.parse_sweep: any document and any --set list gives a valid Sweep or a ConfigError.

The rules are restated here, independently of config.py, so a Sweep that slips a bad point
through fails the test.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iommubench.spec import catalogue, columns
from iommubench.spec.config import TOP_KEYS, ConfigError, Sweep, load_sweep, parse_sweep

SRC = "fuzz/x.yaml"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

try:
    CPUS = len(os.sched_getaffinity(0))
except AttributeError:  # pragma: no cover - not Linux
    CPUS = os.cpu_count() or 1
MEMORY_MIB = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20

CHOICES: dict[str, dict[str, str]] = catalogue.choices()
INT_RANGES: dict[str, tuple[int, float]] = {
    "workers": (1, 64 * CPUS),
    "walkers": (0, 64),
    "queues_per_worker": (1, 64),
    "queue_depth": (1, 4096),
    "dma_ns": (0, 10_000_000),
    "cs_ns": (0, 1_000_000),
    "region_mib": (1, 2**32),  # and an arena that fits in the physical memory
    "chunk_pages": (1, 2**40),
    "unmap_pages": (1, 2**40),
    "walker_gap_us": (0, 10_000_000),
    "cycles": (0, 2**32 - 1),
    "dma_bits": (20, 64),
    "sample_every": (0, 2**32 - 1),  # uint32_t in struct ib_params
    "seed": (0, 2**64 - 1),  # uint64_t
}
# unset (None): they follow another parameter (the profile, cs_ns)
OPTIONAL_INT_RANGES: dict[str, tuple[int, int]] = {
    "inv_ns": (0, 10_000_000),
    "cs_map_ns": (0, 1_000_000),
    "cs_unmap_ns": (0, 1_000_000),
}
PARAMS = sorted([*CHOICES, *INT_RANGES, *OPTIONAL_INT_RANGES, "granule_pages"])
TOP = list(TOP_KEYS)


def _is_int(value: object) -> bool:
    return type(value) is int


def check_sweep(sweep: Sweep) -> None:
    """Every rule of the config, restated."""
    assert isinstance(sweep.name, str) and sweep.name.strip()
    assert isinstance(sweep.description, str)
    assert _is_int(sweep.repetitions) and 1 <= sweep.repetitions <= 1000
    assert type(sweep.warmup_s) is float and 0 <= sweep.warmup_s <= 60
    assert type(sweep.duration_s) is float and 0 < sweep.duration_s <= 3600
    assert type(sweep.point_timeout_s) is float and 0 < sweep.point_timeout_s <= 86400
    assert sweep.points, "a sweep always has at least one point"
    parts = sweep.union or (sweep.axes,)  # a union of sweeps, or one
    counts = [math.prod(len(v) for v in axes.values()) for axes in parts]
    # a point in two parts runs once, and a lock-free driver ignores the lock axis (one point,
    # not one per lock)
    assert 1 <= len(sweep.points) <= sum(counts)
    assert len({json.dumps(list(p.items()), default=str) for p in sweep.points}) == len(
        sweep.points
    )
    assert not (sweep.union and sweep.axes)
    for axes in parts:
        for axis, values in axes.items():
            assert axis in PARAMS and values
    for point in sweep.points:
        assert list(point) == columns.PARAMETERS
        assert point["warmup_s"] == sweep.warmup_s
        assert point["duration_s_requested"] == sweep.duration_s
        for key, names in CHOICES.items():
            if key != "lock":
                assert point[key] in names, key
        # the driver is recorded without alias; the lock is one of the algorithms exactly
        # when the driver takes locks, none otherwise
        takes_lock = point["driver"] in catalogue.LOCK_TAKING_DRIVERS
        assert (point["lock"] in catalogue.names("lock")) == takes_lock, point["lock"]
        assert takes_lock or point["lock"] == catalogue.NO_LOCK
        for key, (lo, hi) in INT_RANGES.items():
            assert _is_int(point[key]) and lo <= point[key] <= hi, (key, point[key])
        for key, (lo, hi) in OPTIONAL_INT_RANGES.items():
            value = point[key]
            assert value is None or (_is_int(value) and lo <= value <= hi), (key, value)
        granule = point["granule_pages"]
        assert isinstance(granule, tuple) and granule
        assert all(_is_int(g) and 1 <= g <= 1024 for g in granule)
        assert len(granule) <= 64
        if point["workload"] == "prefault":  # region, chunk and unmap are prefault-only
            assert point["chunk_pages"] <= point["region_mib"] * 256
            assert point["unmap_pages"] <= point["region_mib"] * 256
    assert len(sweep.points) <= 10_000
    # And it survives its own round trip.
    again = parse_sweep(yaml.safe_load(sweep.resolved_yaml()), "again.yaml")
    assert again == sweep and again.fingerprint() == sweep.fingerprint()


def run(doc: object, overrides: list[str] | tuple[str, ...] = ()) -> None:
    try:
        sweep = parse_sweep(doc, SRC, overrides)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{SRC}: "), message
        assert 1 <= len(message.splitlines()) <= 3, message
        assert len(message) < 1000, message
        return
    check_sweep(sweep)


# --------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-2, max_value=70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(TOP + PARAMS), st.text(max_size=10), st.integers(), st.none())
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)

names = st.sampled_from(sorted({n for c in CHOICES.values() for n in c}))
plausible = st.one_of(
    names,
    st.integers(min_value=-2, max_value=5000),
    st.sampled_from(
        [0, 1, 2, 64, 65, 256, 1024, 1025, 4096, 4097, 32768, 10_000_001, 2**40, 2**40 + 1]
    ),
    st.sampled_from([2**32 - 1, 2**32, 2**64 - 1, 2**64, 2**128]),
    st.just("auto"),
    st.lists(st.integers(min_value=0, max_value=1100), max_size=4),
    st.floats(min_value=-1, max_value=100),
    st.booleans(),
    st.sampled_from(["4", "1e-3", "lockfre", "", None]),
)
param_keys = st.one_of(st.sampled_from(PARAMS), st.sampled_from(["wrkers", "duration_s", "x"]))
axis_values = st.one_of(st.lists(plausible, max_size=4), plausible)
structured = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=8), plausible),
        "description": st.one_of(st.text(max_size=8), plausible),
        "defaults": st.one_of(st.dictionaries(param_keys, plausible, max_size=6), plausible),
        "sweep": st.one_of(
            st.dictionaries(param_keys, axis_values, max_size=3),
            st.lists(st.dictionaries(param_keys, axis_values, max_size=2), max_size=3),
            plausible,
        ),
        "repetitions": plausible,
        "warmup_s": st.one_of(plausible, st.floats(min_value=0, max_value=61)),
        "duration_s": st.one_of(plausible, st.floats(min_value=-1, max_value=4000)),
        "point_timeout_s": plausible,
    },
)

valid_values: dict[str, st.SearchStrategy[Any]] = {
    **{k: st.sampled_from(sorted(v)) for k, v in CHOICES.items()},
    **{
        k: st.integers(min_value=lo, max_value=int(min(hi, 10**6)))
        for k, (lo, hi) in {**INT_RANGES, **OPTIONAL_INT_RANGES}.items()
        if k not in ("region_mib", "chunk_pages", "unmap_pages", "workers")
    },
    "workers": st.one_of(st.integers(min_value=1, max_value=64 * CPUS), st.just("auto")),
    "region_mib": st.integers(min_value=1, max_value=min(MEMORY_MIB, 4096)),
    "chunk_pages": st.integers(min_value=1, max_value=300_000),
    "unmap_pages": st.integers(min_value=1, max_value=300_000),
    "granule_pages": st.one_of(
        st.integers(min_value=1, max_value=1024),
        st.lists(st.integers(min_value=1, max_value=1024), min_size=1, max_size=4),
    ),
}
mostly_valid = st.fixed_dictionaries(
    {},
    optional={
        "defaults": st.sets(st.sampled_from(PARAMS), max_size=6).flatmap(
            lambda ks: st.fixed_dictionaries({k: valid_values[k] for k in sorted(ks)})
        ),
        "sweep": st.sets(st.sampled_from(PARAMS), max_size=3).flatmap(
            lambda ks: st.fixed_dictionaries(
                {k: st.lists(valid_values[k], min_size=1, max_size=3) for k in sorted(ks)}
            )
        ),
        "repetitions": st.integers(min_value=1, max_value=1000),
        "duration_s": st.floats(min_value=0.001, max_value=3600),
    },
)


def _yaml_text(value: object) -> str:
    try:
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    except yaml.YAMLError:
        return "~"


override_keys = st.one_of(
    st.sampled_from(TOP + PARAMS),
    st.sampled_from(PARAMS).map(lambda k: f"defaults.{k}"),
    st.sampled_from(PARAMS).map(lambda k: f"sweep.{k}"),
    st.sampled_from(["wrkers", "defaults.x", "sweep.", "a.b.c", ""]),
)
overrides = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={_yaml_text(v)}", override_keys, plausible),
        st.builds(lambda k, v: f"{k}={v}", override_keys, st.text(max_size=10)),
        st.text(max_size=20),
    ),
    max_size=4,
)


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(anything)
def test_arbitrary_documents(doc: object) -> None:
    run(doc)


@SETTINGS
@given(structured, overrides)
def test_documents_of_valid_keys(doc: dict[str, Any], sets: list[str]) -> None:
    run(doc)
    run(doc, sets)


@SETTINGS
@given(mostly_valid, overrides)
def test_mostly_valid_documents(doc: dict[str, Any], sets: list[str]) -> None:
    run(doc)
    run(doc, sets)


@SETTINGS
@given(st.text(max_size=80))
def test_arbitrary_yaml_text(text: str) -> None:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    except (ValueError, RecursionError):  # e.g. an integer of too many digits
        return
    run(doc)


yaml_fragments = st.lists(
    st.sampled_from(
        [
            "defaults:\n",
            "sweep:\n",
            "  workers: 2\n",
            "  workers: [1, 2]\n",
            "  driver: naive\n",
            "  granule_pages: [1, [2, 4]]\n",
            "repetitions: 2\n",
            "name: x\n",
            "  - 1\n",
            "!!python/object/apply:os.system [true]\n",
            "  seed: !!python/name:os.system\n",
            "&a [*a]\n",
            "  <<: {seed: 2}\n",
            "{",
            "]",
            ": :\n",
            "\t",
            "'",
            "  x: !!set {a}\n",
            "  d: 2024-01-01\n",
            "  b: !!binary aGk=\n",
            "\x1e",
            "---\n",
            "...\n",
        ]
    ),
    max_size=8,
).map("".join)


@SETTINGS
@given(st.one_of(yaml_fragments, st.text(max_size=40)))
def test_arbitrary_files(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            sweep = load_sweep(path)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: "), message
            assert 1 <= len(message.splitlines()) <= 3, message
            return
        check_sweep(sweep)
