"""parameters.py: the one parameter table, and everything derived from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iommubench import cli
from iommubench.analysis import run_reader
from iommubench.core import binding
from iommubench.spec import catalogue, columns, config, parameters
from iommubench.spec.parameters import native_params
from iommubench.spec.validators import Bad

DOCS = Path(__file__).resolve().parents[2] / parameters.DOCS_TABLE


def test_the_documented_parameter_table_is_the_generated_one() -> None:
    text = DOCS.read_text()
    assert text.count(parameters.README_BEGIN) == 1 and text.count(parameters.README_END) == 1
    shown = text.split(parameters.README_BEGIN, 1)[1].split(parameters.README_END, 1)[0]
    assert shown == parameters.markdown(), (
        f"the parameter table in {parameters.DOCS_TABLE} is stale: make docs"
    )
    assert parameters.with_table(text) == text
    stale = text.replace("| `seed` | `1` |", "| `seed` | `2` |")
    assert stale != text and parameters.with_table(stale) == text


def test_every_parameter_has_one_row_in_markdown_and_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = parameters.markdown().splitlines()[2:]
    assert [re.match(r"\| `([a-z_]+)` \|", r).group(1) for r in rows] == list(parameters.NAMES)
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    section = out[out.index("parameters (default; allowed):") + 1 :]
    assert [line.split()[0] for line in section] == list(parameters.NAMES)


def test_defaults_pass_their_own_validators() -> None:
    for p in parameters.PARAMETERS:
        assert p.check(p.default, p.name) == p.default, p.name


def test_config_columns_and_validation_come_from_the_table() -> None:
    assert {p.name: p.default for p in parameters.PARAMETERS} == config.PARAMETER_DEFAULTS
    assert [*parameters.NAMES, "warmup_s", "duration_s_requested"] == columns.PARAMETERS
    point = config.parse_sweep({}, "x.yaml").points[0]
    # the default driver is lock-free: it records no lock
    assert {k: point[k] for k in parameters.NAMES} == {**parameters.DEFAULTS, "lock": "none"}
    text = {p.name for p in parameters.PARAMETERS if p.choices is not None} | {"granule_pages"}
    assert set(parameters.TEXT_PARAMETERS) == text
    assert text <= set(run_reader.STRING_COLUMNS)


def test_choices_are_the_native_registries() -> None:
    drivers = parameters.BY_NAME["driver"]
    assert drivers.choices is not None
    aliases = list(catalogue.DRIVER_ALIASES)
    assert list(drivers.choices()) == [*binding.driver_names(), *aliases]
    allowed = ", ".join(sorted([*binding.driver_names(), *aliases]))
    with pytest.raises(Bad, match="allowed: " + allowed):
        drivers.check("lockfre", "defaults.driver")


def test_a_point_without_a_parameter_reaches_the_core_with_the_table_default() -> None:
    # One default: a point that omits sample_every is encoded with the table's 1024.
    p = native_params({"workload": "prefault", "driver": "lockfree", "workers": 1})
    assert p.sample_every == parameters.DEFAULTS["sample_every"] == 1024
    assert p.region_pages == 256 * parameters.DEFAULTS["region_mib"]


def test_encoding_follows_each_parameter_and_its_workload() -> None:
    prefault = dict(config.parse_sweep({}, "x.yaml").points[0], walker_gap_us=7, region_mib=4)
    p = native_params(prefault)
    assert (p.walker_gap_ns, p.region_pages, p.chunk_pages) == (7000, 1024, 32768)
    assert (p.allocator, p.queue_depth, p.n_granules, p.inv_ns) == (0, 0, 0, 0)  # dma only
    assert p.driver == binding.driver_names().index("lockfree")

    doc = {"defaults": {"workload": "dma", "granule_pages": [1, 4], "depot": "bounded"}}
    dma = config.parse_sweep(doc, "x.yaml").points[0]
    p = native_params(dma)
    assert (p.region_pages, p.chunk_pages, p.cycles) == (0, 0, 0)  # prefault only
    assert (p.n_granules, p.granules[0], p.granules[1]) == (2, 1, 4)
    assert (p.depot, p.queue_depth, p.inv_ns) == (0, 32, 240)
    assert p.allocator == binding.allocator_names().index("rcache")


def test_a_parameter_applies_to_the_workloads_that_read_it() -> None:
    assert parameters.applies("chunk_pages", "prefault")
    assert not parameters.applies("chunk_pages", "dma")
    assert not parameters.applies("completion", "prefault") and parameters.applies(
        "completion", "dma"
    )
    assert parameters.applies("workers", "dma") and parameters.applies("chunk_pages", None)
    # an axis's own parameters reach only where the axis itself does
    assert parameters.applies("depot", {"workload": "dma", "allocator": "rcache"})
    assert not parameters.applies("depot", {"workload": "dma", "allocator": "global"})
    assert not parameters.applies("depot", {"workload": "prefault", "allocator": "rcache"})
    assert parameters.applies("lock", {"driver": "table-lock"})
    assert not parameters.applies("lock", {"driver": "lockfree"})
    assert not parameters.applies("unmap_pages", "dma") and not parameters.applies(
        "map_mode", "prefault"
    )
    row = {"workload": "dma", "chunk_pages": 1, "completion": "remote", "workers": 2}
    assert (
        run_reader.label(row, ["workload", "chunk_pages", "completion", "workers"])
        == "dma remote w=2"
    )
