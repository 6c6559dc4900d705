"""Cost profiles and per-call costs: how a published per-call cost becomes busy work in the
model, how cs_map_ns / cs_unmap_ns follow cs_ns, how inv_ns follows a profile, and how rows
written before these parameters existed read."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from iommubench.analysis.run_reader import _normalise_points
from iommubench.cli import main
from iommubench.run import calibrate
from iommubench.run.point import run_point
from iommubench.spec import config, profiles
from iommubench.spec.parameters import native_params

SRC = "t.yaml"


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> tuple[float, float]:
    """A machine whose bare single-page call costs 10 ns."""
    monkeypatch.setattr(calibrate, "bare_call_ns", lambda: 10.0)
    return 10.0


def test_busy_work_is_what_the_published_cost_leaves_after_the_models_own() -> None:
    assert profiles.busy_ns(55, 8.4) == 47
    assert profiles.busy_ns(55, 80.0) == 0  # the model alone already costs more
    assert profiles.busy_ns(None, 8.4) == 0


def test_a_profile_sets_both_calls_busy_work_and_cs_adds_to_it(bare) -> None:
    point = {"workload": "prefault", "profile": "generic-pt-i7-12700"}
    assert calibrate.busy_for(point) == (45, 60, 10.0, 10.0)
    assert calibrate.busy_for({**point, "cs_ns": 3, "cs_unmap_ns": 7})[:2] == (48, 67)


@pytest.mark.parametrize(
    "given, expected",
    [
        ({}, (0, 0)),
        ({"cs_ns": 30}, (30, 30)),
        ({"cs_ns": 30, "cs_map_ns": 5}, (5, 30)),
        ({"cs_unmap_ns": 9}, (0, 9)),
        ({"profile": "generic-pt-i7-12700"}, (45, 60)),
    ],
)
def test_each_call_gets_its_busy_work(bare, given, expected) -> None:
    """The runner writes busy_for's first two into the native cs_map_ns and cs_unmap_ns; the
    point's own cs_* reach them already when no profile is calibrated."""
    point = config.parse_sweep({"defaults": given}, SRC).points[0]
    assert calibrate.busy_for(point)[:2] == expected
    if "profile" not in given:
        p = native_params(point)
        assert (p.cs_map_ns, p.cs_unmap_ns) == expected


@pytest.mark.parametrize(
    "given, inv",
    [
        ({}, 240),
        ({"profile": "smmuv3-cmdq"}, 240),
        ({"profile": "smmuv3-cmdq-remote"}, 550),
        ({"profile": "smmuv3-cmdq-remote", "inv_ns": 100}, 100),
        ({"inv_ns": 0}, 0),
    ],
)
def test_inv_ns_follows_the_profile_unless_set(given, inv) -> None:
    point = config.parse_sweep({"defaults": {"workload": "dma", **given}}, SRC).points[0]
    assert native_params(point).inv_ns == inv


def test_following_parameters_stay_unset_and_the_config_round_trips() -> None:
    sweep = config.parse_sweep(
        {"defaults": {"cs_unmap_ns": 4}, "sweep": {"cs_ns": [0, 20], "profile": ["none"]}}, SRC
    )
    assert [p["cs_map_ns"] for p in sweep.points] == [None, None]
    assert [p["cs_unmap_ns"] for p in sweep.points] == [4, 4]
    again = config.parse_sweep(yaml.safe_load(sweep.resolved_yaml()), SRC)
    assert again.points == sweep.points


@pytest.mark.parametrize(
    "defaults, key",
    [
        ({"profile": "generic-pt"}, "defaults.profile"),
        ({"cs_map_ns": 1_000_001}, "defaults.cs_map_ns"),
        ({"cs_unmap_ns": -1}, "defaults.cs_unmap_ns"),
    ],
)
def test_bad_cost_values_are_refused_by_name(defaults, key) -> None:
    with pytest.raises(config.ConfigError) as exc:
        config.parse_sweep({"defaults": defaults}, SRC)
    assert str(exc.value).startswith(f"{SRC}: {key}: ")


def test_rows_from_before_the_cost_parameters_read_with_what_they_ran_with() -> None:
    old = pd.DataFrame(
        {"point": [0, 1], "rep": [0, 0], "workload": ["dma", "prefault"], "cs_ns": [30, 0]}
    )
    df = _normalise_points(old)
    assert list(df["cs_map_ns"]) == [30, 0] and list(df["cs_unmap_ns"]) == [30, 0]
    assert list(df["profile"]) == ["none", "none"] and list(df["map_mode"]) == ["sg", "sg"]
    assert list(df["inv_ns"]) == [240, 240]
    new = pd.DataFrame(
        {
            "point": [0, 1],
            "rep": [0, 0],
            "workload": ["dma", "dma"],
            "cs_ns": [30, 30],
            "cs_map_ns": [None, 5],
            "cs_unmap_ns": [None, None],
            "profile": ["smmuv3-cmdq-remote", "none"],
            "inv_ns": [None, 100],
        }
    )
    df = _normalise_points(new)
    assert list(df["cs_map_ns"]) == [30, 5] and list(df["cs_unmap_ns"]) == [30, 30]
    assert list(df["inv_ns"]) == [550, 100]


def test_list_names_every_profile_with_its_source(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in profiles.PROFILES:
        line = next(x for x in out.splitlines() if x.strip().startswith(name + " "))
        assert name == "none" or "source:" in line, line


def test_the_calibration_measures_the_models_own_calls() -> None:
    bare = calibrate.per_call_ns(0)
    assert math.isfinite(bare) and 0 < bare < 10_000


def test_a_profiled_point_records_its_calibrated_busy_work(bare) -> None:
    point = config.parse_sweep(
        {
            "defaults": {
                "profile": "generic-pt-i7-12700",
                "region_mib": 4,
                "chunk_pages": 1024,
                "cycles": 2,
                "workers": 1,
            }
        },
        SRC,
    ).points[0]
    m = run_point(point).measures
    assert m["audit_ok"]
    assert (m["cs_map_busy_ns"], m["cs_unmap_busy_ns"]) == (45, 60)
    assert (m["bare_map_ns"], m["bare_unmap_ns"]) == (10.0, 10.0)


def test_reading_a_config_never_calibrates(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> float:
        raise AssertionError("calibrated while reading a config")

    monkeypatch.setattr(calibrate, "bare_call_ns", refuse)
    sweep = config.parse_sweep({"defaults": {"profile": "generic-pt-i7-12700"}}, SRC)
    assert sweep.points[0]["profile"] == "generic-pt-i7-12700"
