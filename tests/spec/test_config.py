"""config.py: YAML sweep config -> validated points, and the errors users see."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from iommubench.spec import catalogue, columns, config, hostlimits
from iommubench.spec.config import ConfigError, Sweep, load_sweep, parse_sweep

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GOOD = sorted((CONFIGS / "good").glob("*.yaml"))
BAD = sorted((CONFIGS / "bad").glob("*.yaml"))
SRC = "bench/x.yaml"
WORKERS = f"must be an integer in 1..{config.max_workers()} or auto"


def _header(path: Path, tag: str) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# {tag}:"), f"{path} must start with '# {tag}: ...'"
    return first.split(":", 1)[1].strip()


def _error(doc: object, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        parse_sweep(doc, SRC, overrides)
    return str(info.value)


def _reload(sweep: Sweep, source: str = "resolved.yaml") -> Sweep:
    return parse_sweep(yaml.safe_load(sweep.resolved_yaml()), source)


# --------------------------------------------------------------------------- good configs


def test_parameters_match_the_points_csv_columns() -> None:
    assert [*config.PARAMETERS, "warmup_s", "duration_s_requested"] == columns.PARAMETERS


def test_choice_defaults_are_registered_names() -> None:
    for param, names in catalogue.choices().items():
        assert config.PARAMETER_DEFAULTS[param] in names


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_config_loads(path: Path) -> None:
    sweep = load_sweep(path)
    assert len(sweep.points) == int(_header(path, "expect-points"))
    assert len(sweep.points) == len({tuple(p.items()) for p in sweep.points})
    for point in sweep.points:
        assert list(point) == columns.PARAMETERS
        assert point["warmup_s"] == sweep.warmup_s
        assert point["duration_s_requested"] == sweep.duration_s
        assert isinstance(point["granule_pages"], tuple)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_config_round_trips(path: Path) -> None:
    sweep = load_sweep(path)
    again = _reload(sweep)
    assert again == sweep
    assert again.points == sweep.points
    assert again.fingerprint() == sweep.fingerprint()
    # Dumped by hand with yaml.safe_dump (axis order kept) it re-loads the same too.
    dumped = yaml.safe_dump(sweep.resolved(), sort_keys=False)
    assert parse_sweep(yaml.safe_load(dumped), "other.yaml") == sweep


def test_a_default_lock_survives_a_lock_free_first_point() -> None:
    """The resolved config (a run's config.yaml) keeps the config's default lock even when
    the first point is lock-free and so records lock `none` (found by the fuzz test)."""
    doc = {"defaults": {"lock": "adaptive-mutex"}, "sweep": {"driver": ["lockfree", "domain-lock"]}}
    sweep = parse_sweep(doc, SRC)
    assert [p["lock"] for p in sweep.points] == ["none", "adaptive-mutex"]
    again = _reload(sweep)
    assert again.points == sweep.points and again.fingerprint() == sweep.fingerprint()


def test_an_unknown_driver_lists_every_driver_and_suggests_the_nearest() -> None:
    """The allowed names come from the catalogue (a new driver is listed with no edit here)."""
    message = _error({"defaults": {"driver": "lockfre"}})
    allowed = message.split("allowed: ", 1)[1].split(";", 1)[0].split(", ")
    assert set(catalogue.names("driver")) <= set(allowed) and allowed == sorted(allowed)
    assert message.endswith("did you mean 'lockfree'?")


def test_minimal_config_is_all_defaults() -> None:
    sweep = parse_sweep({}, "bench/minimal.yaml")
    assert sweep.name == "minimal"
    assert sweep.description == ""
    assert (sweep.repetitions, sweep.warmup_s, sweep.duration_s) == (3, 0.2, 1.0)
    assert sweep.point_timeout_s == pytest.approx(60 + 4 * 1.2)
    assert sweep.axes == {}
    # the default driver is lock-free: it records no lock
    expected = dict(config.PARAMETER_DEFAULTS, lock="none", warmup_s=0.2, duration_s_requested=1.0)
    assert sweep.points == [expected]
    assert sweep.points[0]["granule_pages"] == (1,)


def test_lock_axis_resolves_aliases_and_lock_free_drivers() -> None:
    doc = {
        "sweep": {
            "driver": ["serial-spin", "serial-mutex", "table-lock", "lockfree"],
            "lock": ["tas", "ttas"],
        }
    }
    got = [(p["driver"], p["lock"]) for p in parse_sweep(doc, SRC).points]
    # an alias fixes its lock (one point per alias, whatever the lock axis says); a lock-free
    # driver ignores the lock axis and records none, once
    assert got == [
        ("domain-lock", "ttas"),
        ("domain-lock", "pthread-mutex"),
        ("table-lock", "tas"),
        ("table-lock", "ttas"),
        ("lockfree", "none"),
    ]


def test_null_sections_are_empty() -> None:
    assert parse_sweep({"defaults": None, "sweep": None}, SRC) == parse_sweep({}, SRC)


def test_cartesian_product_in_file_order() -> None:
    doc = {
        "defaults": {"workload": "dma", "seed": 7},
        "sweep": {
            "driver": ["naive", "lockfree", "serial-spin"],
            "workers": [4, 1],
            "allocator": ["global", "rcache"],
        },
    }
    sweep = parse_sweep(doc, SRC)
    assert list(sweep.axes) == ["driver", "workers", "allocator"]
    got = [(p["driver"], p["workers"], p["allocator"]) for p in sweep.points]
    # serial-spin is recorded as the pair it stands for
    assert got == list(
        itertools.product(["naive", "lockfree", "domain-lock"], [4, 1], ["global", "rcache"])
    )
    for point in sweep.points:
        assert point["workload"] == "dma"
        assert point["seed"] == 7
        assert point["queue_depth"] == 32
    # Reordering the axes reorders the points, and so changes the fingerprint.
    swapped = dict(doc, sweep=dict(reversed(list(doc["sweep"].items()))))
    other = parse_sweep(swapped, SRC)
    assert sorted(map(str, other.points)) == sorted(map(str, sweep.points))
    assert other.fingerprint() != sweep.fingerprint()


def test_sweep_overrides_defaults_for_its_axis() -> None:
    sweep = parse_sweep({"defaults": {"workers": 3}, "sweep": {"workers": [1, 2]}}, SRC)
    assert [p["workers"] for p in sweep.points] == [1, 2]


def test_floats_accept_ints() -> None:
    sweep = parse_sweep({"warmup_s": 0, "duration_s": 2, "point_timeout_s": 10}, SRC)
    assert (sweep.warmup_s, sweep.duration_s, sweep.point_timeout_s) == (0.0, 2.0, 10.0)
    assert all(isinstance(v, float) for v in (sweep.warmup_s, sweep.duration_s))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, (1,)), (1024, (1024,)), ([4], (4,)), ([1, 1, 2, 32], (1, 1, 2, 32)), ((8, 2), (8, 2))],
)
def test_granule_normalisation(value: object, expected: tuple[int, ...]) -> None:
    sweep = parse_sweep({"defaults": {"granule_pages": value}}, SRC)
    assert sweep.points[0]["granule_pages"] == expected


def test_granule_axis_values_may_be_mixes() -> None:
    sweep = parse_sweep({"sweep": {"granule_pages": [1, [1, 2], [4]]}}, SRC)
    assert sweep.axes["granule_pages"] == [(1,), (1, 2), (4,)]
    assert [p["granule_pages"] for p in sweep.points] == [(1,), (1, 2), (4,)]
    assert sweep.resolved()["sweep"]["granule_pages"] == [1, [1, 2], 4]
    assert _reload(sweep) == sweep
    # 1 and [1] are the same granule: a duplicate point.
    assert "sweep.granule_pages[1]: duplicate" in _error({"sweep": {"granule_pages": [1, [1]]}})


def test_chunk_pages_may_equal_the_region() -> None:
    sweep = parse_sweep({"defaults": {"region_mib": 1, "chunk_pages": 256}}, SRC)
    assert sweep.points[0]["chunk_pages"] == 256


def test_workers_limit_follows_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostlimits, "cpus_available", lambda: 2)
    assert parse_sweep({"defaults": {"workers": 128}}, SRC).points[0]["workers"] == 128
    message = _error({"defaults": {"workers": 129}})
    assert message.startswith(
        f"{SRC}: defaults.workers: must be an integer in 1..128 or auto (got 129; the limit is 64"
    )


def test_memory_limit_applies_to_the_arena_not_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """128 GiB of modelled memory needs about 0.5 GiB of page tables: a machine with less
    physical memory than the region runs it; one with less than the arena refuses it."""
    big = {"defaults": {"region_mib": 131072}}
    assert config.arena_mib(parse_sweep(big, SRC).points[0]) < 600
    monkeypatch.setattr(hostlimits, "physical_memory_mib", lambda: 1000)
    assert parse_sweep(big, SRC).points[0]["region_mib"] == 131072
    monkeypatch.setattr(hostlimits, "physical_memory_mib", lambda: 100)
    message = _error({"sweep": {"region_mib": [256, 131072]}})
    assert message.startswith(f"{SRC}: sweep.region_mib[1]: point 1 needs an arena of ")
    assert "more than this machine's physical memory (100 MiB)" in message


# --------------------------------------------------------------------------- resolved / fingerprint


def test_resolved_is_plain_and_complete() -> None:
    sweep = parse_sweep({"sweep": {"workers": [1, 2]}}, SRC)
    resolved = sweep.resolved()
    assert sorted(resolved) == sorted(config.TOP_KEYS)
    assert set(resolved["defaults"]) == set(config.PARAMETERS) - {"workers"}
    assert resolved["point_timeout_s"] == sweep.point_timeout_s
    yaml.safe_dump(resolved)  # no tuples or other non-plain values


def _variants() -> list[tuple[str, dict[str, Any]]]:
    changed: list[tuple[str, dict[str, Any]]] = [
        ("name", {"name": "other"}),
        ("description", {"description": "x"}),
        ("repetitions", {"repetitions": 4}),
        ("warmup_s", {"warmup_s": 0.3}),
        ("duration_s", {"duration_s": 1.5}),
        ("point_timeout_s", {"point_timeout_s": 99}),
        ("axis value", {"sweep": {"workers": [1, 3]}}),
        ("axis order", {"sweep": {"workers": [2, 1]}}),
        ("granule mix", {"defaults": {"granule_pages": [1, 2]}}),
    ]
    other_values: dict[str, object] = {
        "workload": "dma",
        "driver": "naive",
        "allocator": "global",
        "invalidation": "strict",
        "walker_safety": "exclusive",
        "walkers": 1,
        "queues_per_worker": 2,
        "queue_depth": 31,
        "granule_pages": 2,
        "dma_ns": 1,
        "inv_ns": 241,
        "completion": "remote",
        "cs_ns": 1,
        "region_mib": 255,
        "chunk_pages": 32767,
        "depot": "bounded",
        "cycles": 1,
        "sample_every": 0,
        "seed": 2,
    }
    for key, value in other_values.items():
        changed.append((f"defaults.{key}", {"defaults": {key: value}}))
    return changed


@pytest.mark.parametrize(("what", "change"), _variants(), ids=lambda v: str(v))
def test_fingerprint_changes_with_any_value(what: str, change: dict[str, Any]) -> None:
    base_doc: dict[str, Any] = {"name": "base", "sweep": {"workers": [1, 2]}}
    base = parse_sweep(base_doc, SRC)
    changed = parse_sweep({**base_doc, **change}, SRC)
    assert changed != base, what
    assert changed.fingerprint() != base.fingerprint(), what


def test_fingerprint_is_stable_and_hex() -> None:
    one = parse_sweep({"name": "a", "defaults": {"workers": 2}}, "one.yaml")
    two = parse_sweep({"defaults": {"workers": 2}, "name": "a"}, "two.yaml")
    assert one.fingerprint() == two.fingerprint()
    assert len(one.fingerprint()) == 64 and int(one.fingerprint(), 16) >= 0
    # Spelling a default out explicitly is the same config.
    assert parse_sweep({"name": "a", "defaults": {"workers": 2, "seed": 1}}, "x").fingerprint() == (
        one.fingerprint()
    )
    assert hash(one) == hash(two)


# --------------------------------------------------------------------------- bad configs


def test_bad_corpus_is_big_enough() -> None:
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_config_is_refused(path: Path) -> None:
    expect = _header(path, "expect")
    source = str(path)
    with pytest.raises(ConfigError) as info:
        load_sweep(source)
    message = str(info.value)
    assert message.startswith(f"{source}: "), message
    assert expect in message, message
    assert info.value.source == source
    assert 1 <= len(message.splitlines()) <= 3
    assert "pydantic" not in message and "Traceback" not in message


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {"defaults": {"driver": "lockfre"}},
            f"{SRC}: defaults.driver: unknown value 'lockfre'; allowed: ",
        ),
        ({"sweep": {"workers": [1, 2, 0]}}, f"{SRC}: sweep.workers[2]: must be an integer in 1.."),
        ({"sweep": {"workers": []}}, f"{SRC}: sweep.workers: empty axis; give at least one value"),
        ({"defaults": {"wrkers": 2}}, f"{SRC}: defaults.wrkers: unknown key; allowed: allocator"),
        ({"repetitions": True}, f"{SRC}: repetitions: must be an integer in 1..1000"),
        ({"defaults": {"cycles": -1}}, f"{SRC}: defaults.cycles: must be an integer in 0.."),
        ({"defaults": {"cs_ns": 1_000_001}}, f"{SRC}: defaults.cs_ns: must be an integer in 0.."),
        ({"duration_s": 3601}, f"{SRC}: duration_s: must be a number > 0 and <= 3600"),
        ({"point_timeout_s": 0}, f"{SRC}: point_timeout_s: must be a number > 0"),
        ({"sweep": {"depot": ["list", "lst"]}}, f"{SRC}: sweep.depot[1]: unknown value 'lst'"),
        ({"defaults": {"driver": 3}}, f"{SRC}: defaults.driver: must be one of: domain-lock"),
        ({"defaults": {"granule_pages": "1"}}, f"{SRC}: defaults.granule_pages: must be an int"),
        ({"defaults": {"granule_pages": [1, True]}}, f"{SRC}: defaults.granule_pages[1]: must"),
        ({"defaults": {"dma_ns": 1.5}}, f"{SRC}: defaults.dma_ns: must be an integer"),
        ({"sweep": {"warmup_s": [0.1]}}, f"{SRC}: sweep.warmup_s: not a parameter"),
        ([1, 2], f"{SRC}: the document must be a mapping"),
        (None, f"{SRC}: empty document"),
        ({None: 1}, f"{SRC}: <null>: unknown top-level key"),
        ({"defaults": {"seed": b"hi"}}, f"{SRC}: defaults.seed: must be an integer in 0.."),
        (
            {"defaults": {"cycles": b"hi"}},
            f"{SRC}: defaults.cycles: must be an integer in 0..4294967295 (got binary data)",
        ),
    ],
)
def test_error_messages(doc: object, expected: str) -> None:
    assert _error(doc).startswith(expected)


def test_too_many_points() -> None:
    axis = list(range(1, 51))
    doc = {"sweep": {"seed": axis, "cycles": axis, "walkers": list(range(5))}}
    assert _error(doc).startswith(
        f"{SRC}: sweep: at least 12500 points (12 h at 3 repetitions of 1.2 s); at most 10000 "
        "per sweep: split it into several configs"
    )
    # A sweep with exactly the limit is accepted.
    doc = {"sweep": {"seed": list(range(100)), "cycles": list(range(100))}}
    assert len(parse_sweep(doc, SRC).points) == config.MAX_POINTS


def test_too_many_points_is_refused_before_the_values_are_checked() -> None:
    # 20,000 values, the last one bad: the count is refused first, from the axis length.
    doc = {"sweep": {"seed": [*range(19_999), -1]}}
    assert _error(doc).startswith(
        f"{SRC}: sweep: at least 20000 points (20 h at 3 repetitions of 1.2 s); at most 10000 per"
    )


def test_duplicate_in_a_long_axis_names_both_places() -> None:
    # 10,000 distinct values and one repeat at the end: found, and named with its first index.
    message = _error({"sweep": {"seed": [*range(9_999), 5]}, "repetitions": 1})
    assert message.startswith(f"{SRC}: sweep.seed[9999]: duplicate value 5 (also at [5])")


def test_parse_does_not_mutate_the_document() -> None:
    doc: dict[str, Any] = {"defaults": {"workers": 1}, "sweep": {"driver": ["naive"]}}
    snapshot = yaml.safe_dump(doc)
    parse_sweep(doc, SRC, ["workers=2", "driver=lockfree", "sweep.seed=[1,2]", "repetitions=1"])
    assert yaml.safe_dump(doc) == snapshot


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_sweep("does/not/exist.yaml")
    assert str(info.value) == "does/not/exist.yaml: no such file"


def test_directory_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: "):
        load_sweep(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=rf"^{binary}: not UTF-8"):
        load_sweep(binary)


def test_zero_byte_and_comment_only_files(tmp_path: Path) -> None:
    for text in ("", "# nothing here\n", "---\n"):
        path = tmp_path / "e.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"^{path}: empty document"):
            load_sweep(path)


def test_load_uses_the_file_stem_as_name(tmp_path: Path) -> None:
    path = tmp_path / "my-sweep.yaml"
    path.write_text("defaults: {workers: 2}\n")
    assert load_sweep(path).name == "my-sweep"
    assert load_sweep(str(path)).name == "my-sweep"


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/new:os.system",
        "!!python/name:os.system",
        "!!python/object:os.system",
    ],
)
def test_python_tags_never_run(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'defaults:\n  seed: {tag} ["touch {marker}"]\n')
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    message = str(info.value)
    assert message.startswith(f"{path}: defaults.seed: tag '!!python/")
    assert "not allowed" in message
    assert not marker.exists()


def test_python_tag_in_override_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    value = f'!!python/object/apply:os.system ["touch {marker}"]'
    message = _error({}, (f"seed={value}",))
    assert message.startswith(f"{SRC}: --set seed=")
    assert not marker.exists()


# --------------------------------------------------------------------------- --set overrides


def test_set_top_level_keys() -> None:
    sweep = parse_sweep({}, SRC, ["repetitions=5", "duration_s=0.5", "name=quick"])
    assert (sweep.repetitions, sweep.duration_s, sweep.name) == (5, 0.5, "quick")
    assert sweep.points[0]["duration_s_requested"] == 0.5


def test_set_bare_parameter_goes_to_defaults_or_replaces_the_axis() -> None:
    doc = {"defaults": {"workers": 1}, "sweep": {"driver": ["naive", "lockfree"]}}
    sweep = parse_sweep(doc, SRC, ["workers=4", "driver=lockfree"])
    assert sweep.axes == {"driver": ["lockfree"]}
    assert [(p["driver"], p["workers"]) for p in sweep.points] == [("lockfree", 4)]
    sweep = parse_sweep(doc, SRC, ["driver=[serial-spin, serial-mutex]"])
    assert sweep.axes == {"driver": ["serial-spin", "serial-mutex"]}
    # A list for a parameter that is not an axis is its value (a granule mix here).
    sweep = parse_sweep(doc, SRC, ["granule_pages=[1,2]"])
    assert sweep.points[0]["granule_pages"] == (1, 2)


def test_set_dotted_forms_and_order() -> None:
    doc = {"sweep": {"workers": [1, 2]}}
    sweep = parse_sweep(doc, SRC, ["defaults.seed=9", "sweep.walkers=[0, 1]", "sweep.seed=3"])
    assert list(sweep.axes) == ["workers", "walkers", "seed"]
    assert len(sweep.points) == 4
    assert sweep.axes["seed"] == [3]
    sweep = parse_sweep(doc, SRC, ["workers=8", "workers=16"])  # later wins
    assert sweep.axes["workers"] == [16]
    sweep = parse_sweep(doc, SRC, ["sweep={}", "workers=3"])
    assert sweep.axes == {} and sweep.points[0]["workers"] == 3


def test_set_applies_before_validation() -> None:
    # The file alone is invalid; the override makes it valid.
    doc = {"defaults": {"driver": "lockfre"}}
    assert parse_sweep(doc, SRC, ["driver=lockfree"]).points[0]["driver"] == "lockfree"
    doc2 = {"defaults": {"region_mib": 1}}
    assert parse_sweep(doc2, SRC, ["chunk_pages=256"]).points[0]["chunk_pages"] == 256


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("wrkers=2", f"{SRC}: --set wrkers=2: unknown key; "),
        ("workers", f"{SRC}: --set workers: expected KEY=VALUE"),
        ("=4", f"{SRC}: --set =4: expected KEY=VALUE"),
        ("workers=0", f"{SRC}: --set workers: {WORKERS} (got 0)"),
        ("workers=true", f"{SRC}: --set workers: {WORKERS} (got boolean true)"),
        ("workers='4'", f"{SRC}: --set workers: {WORKERS} (got string '4'; remove"),
        ("defaults.driver=lockfre", f"{SRC}: --set defaults.driver: unknown value 'lockfre'"),
        ("sweep.workers=[1, 0]", f"{SRC}: --set sweep.workers[1]: must be an integer in 1.."),
        ("sweep.workers=[]", f"{SRC}: --set sweep.workers: empty axis"),
        ("defaults.wrkers=1", f"{SRC}: --set defaults.wrkers=1: unknown parameter"),
        ("default.workers=1", f"{SRC}: --set default.workers=1: unknown key"),
        ("repetitions=[1", f"{SRC}: --set repetitions=[1: cannot parse the value as YAML"),
        ("repetitions=0", f"{SRC}: --set repetitions: must be an integer in 1..1000"),
        ("duration_s=-1", f"{SRC}: --set duration_s: must be a number > 0"),
        ("defaults=[1]", f"{SRC}: --set defaults: must be a mapping"),
        ("defaults={wrkers: 1}", f"{SRC}: --set defaults.wrkers: unknown key"),
        ("region_mib=1", f"{SRC}: --set region_mib: chunk_pages 32768"),
    ],
)
def test_set_errors(override: str, expected: str) -> None:
    message = _error({"sweep": {"driver": ["naive"]}}, (override,))
    assert message.startswith(expected), message


def test_set_unknown_key_suggests() -> None:
    assert "did you mean 'workers'?" in _error({}, ("wrkers=2",))
    assert "did you mean 'duration_s'?" in _error({}, ("duraton_s=2",))


def test_set_errors_name_the_set_not_the_file_key() -> None:
    doc = {"defaults": {"workers": 2}}
    message = _error(doc, ("defaults.workers=0",))
    assert message.startswith(f"{SRC}: --set defaults.workers: must be an integer")
    # A value the file gave, untouched by --set, is still named by its file key path.
    message = _error({"defaults": {"workers": 0}}, ("seed=2",))
    assert message.startswith(f"{SRC}: defaults.workers: ")


def test_set_on_a_non_mapping_section_names_the_file() -> None:
    assert _error({"defaults": [1]}, ("seed=2",)).startswith(f"{SRC}: defaults: must be a mapping")


# --------------------------------------------------------------------------- native bounds


@pytest.mark.parametrize("name", sorted(config.INT_LIMITS))
def test_every_integer_bound_fits_the_native_struct(name: str) -> None:
    """The highest accepted value of each parameter can be written into struct ib_params."""
    from iommubench.spec.parameters import native_params

    lo, hi, _ = config.INT_LIMITS[name]
    if name == "workers":
        hi = config.max_workers()
    if name == "region_mib":
        hi = min(hi, config.physical_memory_mib() or hi)
    too_big = _error({"defaults": {name: config.INT_LIMITS[name][1] + 1}})
    assert too_big.startswith(f"{SRC}: defaults.{name}: "), too_big
    assert _error({"defaults": {name: lo - 1}}).startswith(f"{SRC}: defaults.{name}: ")
    for workload in ("prefault", "dma"):
        point = dict(parse_sweep({"defaults": {"workload": workload}}, SRC).points[0])
        point[name] = hi
        native_params(point)  # cffi raises OverflowError for a value that does not fit


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("seed", 2**64, "defaults.seed: must be an integer in 0..18446744073709551615"),
        ("cycles", 2**64, "defaults.cycles: must be an integer in 0..4294967295"),
        ("cycles", 2**32, "defaults.cycles: must be an integer in 0..4294967295"),
        ("sample_every", 2**32, "defaults.sample_every: must be an integer in 0..4294967295"),
        ("unmap_pages", 2**64 - 1, "defaults.unmap_pages: must be an integer in 1.."),
        ("chunk_pages", 2**64, "defaults.chunk_pages: must be an integer in 1.."),
        ("region_mib", 2**54, "defaults.region_mib: must be an integer in 1.."),
    ],
)
def test_values_that_would_overflow_are_refused(key: str, value: int, expected: str) -> None:
    message = _error({"defaults": {key: value}})
    assert message.startswith(f"{SRC}: {expected}"), message
    assert f"(got {value})" in message


def test_unmap_pages_must_fit_in_the_region() -> None:
    # 256 MiB is 65536 pages: the whole region in one call is allowed, one page more is not.
    sweep = parse_sweep({"defaults": {"region_mib": 256, "unmap_pages": 65536}}, SRC)
    assert sweep.points[0]["unmap_pages"] == 65536
    message = _error({"defaults": {"region_mib": 256, "unmap_pages": 65537}})
    assert message.startswith(
        f"{SRC}: defaults.unmap_pages: unmap_pages 65537 (defaults.unmap_pages) exceeds the "
        "65536 pages of region_mib 256"
    )
    # A swept region too small for the given unmap_pages names the unmap_pages key.
    doc = {"defaults": {"unmap_pages": 512, "chunk_pages": 1}, "sweep": {"region_mib": [4, 1]}}
    message = _error(doc)
    assert message.startswith(f"{SRC}: defaults.unmap_pages: unmap_pages 512 ")
    assert "(point 1)" in message
    # dma ignores the region, so it does not bound unmap_pages there
    doc = {"defaults": {"workload": "dma", "region_mib": 1, "unmap_pages": 4096}}
    assert parse_sweep(doc, SRC).points[0]["unmap_pages"] == 4096


# --------------------------------------------------------------------------- workers: auto


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [
        (1, [1]),
        (2, [1, 2]),
        (3, [1, 2, 3]),
        (4, [1, 2, 4]),
        (6, [1, 2, 4, 6]),
        (64, [1, 2, 4, 8, 16, 32, 64]),
    ],
)
def test_auto_workers_expansion(
    monkeypatch: pytest.MonkeyPatch, cpus: int, expected: list[int]
) -> None:
    monkeypatch.setattr(hostlimits, "cpus_available", lambda: cpus)
    assert config.auto_workers() == expected
    for doc in (
        {"sweep": {"workers": "auto"}},
        {"sweep": {"workers": ["auto"]}},
        {"defaults": {"workers": "auto"}},
    ):
        sweep = parse_sweep(doc, SRC)
        assert sweep.axes == {"workers": expected}, doc
        assert [p["workers"] for p in sweep.points] == expected


def test_auto_workers_is_recorded_in_the_resolved_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostlimits, "cpus_available", lambda: 6)
    doc = {"defaults": {"workers": "auto"}, "sweep": {"driver": ["lockfree", "naive"]}}
    sweep = parse_sweep(doc, SRC)
    resolved = sweep.resolved()
    assert resolved["sweep"] == {"driver": ["lockfree", "naive"], "workers": [1, 2, 4, 6]}
    assert "workers" not in resolved["defaults"]
    assert "workers: auto" not in sweep.resolved_yaml()
    again = _reload(sweep)
    assert again == sweep and again.fingerprint() == sweep.fingerprint()
    # The points: the workers axis added by a default is the innermost one.
    assert [(p["driver"], p["workers"]) for p in sweep.points[:5]] == [
        ("lockfree", 1),
        ("lockfree", 2),
        ("lockfree", 4),
        ("lockfree", 6),
        ("naive", 1),
    ]


def test_auto_workers_mixed_with_explicit_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostlimits, "cpus_available", lambda: 4)
    # auto's counts already in the list are dropped; an explicit oversubscribed count is kept
    assert parse_sweep({"sweep": {"workers": ["auto", 2, 8]}}, SRC).axes["workers"] == [1, 2, 4, 8]
    assert parse_sweep({"sweep": {"workers": [8, "auto"]}}, SRC).axes["workers"] == [8, 1, 2, 4]
    # a sweep axis of workers wins over a default of auto
    assert parse_sweep({"defaults": {"workers": "auto"}, "sweep": {"workers": [3]}}, SRC).axes == {
        "workers": [3]
    }
    # explicit duplicates are still refused
    assert "sweep.workers[2]: duplicate value 2" in _error({"sweep": {"workers": [2, "auto", 2]}})


def test_auto_workers_through_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostlimits, "cpus_available", lambda: 2)
    assert parse_sweep({}, SRC, ["workers=auto"]).axes == {"workers": [1, 2]}
    assert parse_sweep({}, SRC, ["sweep.workers=auto"]).axes == {"workers": [1, 2]}
    assert parse_sweep({"sweep": {"workers": [1]}}, SRC, ["workers=[auto]"]).axes == {
        "workers": [1, 2]
    }
    message = _error({}, ("workers=aut",))
    assert message.startswith(f"{SRC}: --set workers: must be an integer in 1..128 or auto")
    assert _error({"sweep": {"seed": "auto"}}).startswith(f"{SRC}: sweep.seed: must be a list")
    assert "sweep.seed[0]: must be an integer" in _error({"sweep": {"seed": ["auto"]}})


# --------------------------------------------------------------------------- the file itself


def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody writes: opening it for reading would block
    cases = {
        str(fifo): "is a FIFO (named pipe), not a regular file",
        "/dev/zero": "is a character device, not a regular file",
        str(tmp_path): "is a directory, not a regular file",
    }
    for path, expected in cases.items():
        with pytest.raises(ConfigError) as info:
            load_sweep(path)
        assert str(info.value) == f"{path}: {expected}; give a YAML config file"


def test_huge_and_binary_files_are_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * config.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError) as info:
        load_sweep(huge)
    assert str(info.value) == (
        f"{huge}: is {config.MAX_CONFIG_BYTES + 3} bytes; a config file may be at most "
        f"{config.MAX_CONFIG_BYTES} bytes (1 MiB)"
    )
    at_limit = tmp_path / "limit.yaml"
    at_limit.write_text("# " + "x" * (config.MAX_CONFIG_BYTES - 24) + "\nname: ok\n")
    assert at_limit.stat().st_size <= config.MAX_CONFIG_BYTES
    assert load_sweep(at_limit).name == "ok"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{latin}: not UTF-8 text \(byte 9\)$"):
        load_sweep(latin)


def test_unreadable_file(tmp_path: Path) -> None:
    import os

    path = tmp_path / "secret.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as a user who can read any file (root)")
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read: Permission denied$"):
        load_sweep(path)


def test_duplicate_key_and_merge_keys_in_one_parse(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    # a merged key overridden locally is not a duplicate
    path.write_text("defaults:\n  <<: {seed: 2}\n  seed: 3\n")
    assert load_sweep(path).points[0]["seed"] == 3
    path.write_text("defaults:\n  seed: 2\n  seed: 3\n")
    with pytest.raises(
        ConfigError, match=r"defaults.seed: duplicate key \(line 3; first given on line 2\)"
    ):
        load_sweep(path)


# --------------------------------------------------------------------------- a union of sweeps


UNION = {
    "defaults": {"workload": "prefault", "region_mib": 128, "workers": 2},
    "sweep": [
        {"driver": ["serial-spin", "lockfree"], "chunk_pages": [32768, 1]},
        {"workload": ["dma"], "driver": ["lockfree"], "completion": ["remote"]},
        {"driver": ["lockfree"], "chunk_pages": [1]},
    ],
}


def test_a_union_of_sweeps_is_its_parts_in_order_each_point_once() -> None:
    sweep = parse_sweep(UNION, SRC)
    got = [(p["workload"], p["driver"], p["chunk_pages"], p["completion"]) for p in sweep.points]
    assert got == [  # serial-spin is recorded as the pair it stands for
        ("prefault", "domain-lock", 32768, "local"),
        ("prefault", "domain-lock", 1, "local"),
        ("prefault", "lockfree", 32768, "local"),
        ("prefault", "lockfree", 1, "local"),
        ("dma", "lockfree", 32768, "remote"),  # the third part's point is the first's
    ]
    assert {p["workers"] for p in sweep.points} == {2} and sweep.axes == {}
    resolved = sweep.resolved()
    assert [list(part) for part in resolved["sweep"]] == [
        ["driver", "chunk_pages"],
        ["workload", "driver", "completion"],
        ["driver", "chunk_pages"],
    ]
    again = _reload(sweep)
    assert again == sweep and again.points == sweep.points
    assert again.fingerprint() == sweep.fingerprint()
    single = parse_sweep({**UNION, "sweep": UNION["sweep"][0]}, SRC)
    assert single.fingerprint() != sweep.fingerprint()


def test_set_reaches_every_part_of_a_union(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostlimits, "cpus_available", lambda: 2)
    # an axis some parts vary: set there, and the default for the others
    sweep = parse_sweep(UNION, SRC, ["chunk_pages=1"])
    assert {p["chunk_pages"] for p in sweep.points} == {1}
    # sweep.KEY: an axis of every part
    sweep = parse_sweep(UNION, SRC, ["sweep.workers=auto"])
    assert sorted({p["workers"] for p in sweep.points}) == [1, 2]
    assert len(sweep.points) == 10
    message = _error(UNION, ("sweep.driver=[lockfre]",))
    assert message.startswith(f"{SRC}: --set sweep.driver[0]: unknown value 'lockfre'")


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ([], "sweep: empty list of sweeps; give at least one mapping"),
        ([{"driver": ["lockfree"]}, 3], "sweep[1]: must be a mapping (got 3)"),
        ([{"driver": ["lockfree"]}, {"drivr": ["naive"]}], "sweep[1].drivr: unknown key"),
        ([{"driver": ["lockfree", "lockfre"]}], "sweep[0].driver[1]: unknown value 'lockfre'"),
        ([{"chunk_pages": [65536]}], "sweep[0].chunk_pages[0]: chunk_pages 65536"),
    ],
)
def test_a_bad_part_of_a_union_is_named(sweep: list[Any], expected: str) -> None:
    message = _error({"defaults": {"region_mib": 128}, "sweep": sweep})
    assert message.startswith(f"{SRC}: {expected}"), message
