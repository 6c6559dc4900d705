"""Throughput within a repetition: the pure series functions on synthetic arrays with known
answers, the stored series round trip, and a real point's recorded ticks."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import prefault_point
from iommubench.core.hist import empty
from iommubench.run import runner, timeseries
from iommubench.run.point import run_point
from iommubench.run.store import RunStore
from iommubench.spec import parameters

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

TICK = 10_000_000  # 10 ms


def cumulative(rates_per_tick: np.ndarray) -> np.ndarray:
    return np.cumsum(np.asarray(rates_per_tick, dtype=np.float64)).astype(np.uint64)


def test_per_tick_throughput_sums_workers_and_divides_by_the_tick() -> None:
    t = timeseries.tick_times(TICK, 4)
    assert t.tolist() == [TICK, 2 * TICK, 3 * TICK, 4 * TICK]
    ops = np.array([cumulative([100, 100, 200, 0]), cumulative([50, 50, 50, 50])])
    rates = timeseries.per_tick_throughput(t, ops)
    # ops per 10 ms tick -> ops/s
    assert rates.tolist() == pytest.approx([15_000, 15_000, 25_000, 5_000])


def test_within_cv_and_batch_means_known_answers() -> None:
    x = np.array([90.0, 110.0] * 10)
    assert timeseries.within_cv(x) == pytest.approx(np.std(x, ddof=1) / 100.0)
    assert timeseries.within_cv(x[:4]) is None  # too few ticks to say
    assert timeseries.batch_means(np.arange(10.0), 3).tolist() == [1.0, 4.0, 7.0]
    assert timeseries.batch_means(np.arange(2.0), 3).size == 0


@pytest.mark.parametrize(
    ("step", "noise_cv", "start_frac"), [(1.3, 0.05, 0.6), (1.5, 0.10, 0.4), (1 / 1.4, 0.05, 0.5)]
)
def test_a_lasting_step_is_found_with_its_ratio(step, noise_cv, start_frac) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.normal(1e6, noise_cv * 1e6, 100)
        at = int(100 * start_frac)
        x[at:] *= step
        shift = timeseries.level_shift(x)
        assert shift.found
        assert shift.ratio == pytest.approx(step, rel=0.1)
        assert abs(shift.at_tick - at) <= 5


@pytest.mark.parametrize("ticks", [20, 100, 300])
def test_stationary_noise_of_cv_10_percent_is_not_a_shift(ticks) -> None:
    rng = np.random.default_rng(11)
    found = [timeseries.level_shift(rng.normal(1e6, 1e5, ticks)).found for _ in range(200)]
    assert not any(found)


def test_a_short_step_is_not_a_level_shift() -> None:
    x = np.full(100, 1e6)
    x[50:55] *= 2  # 5 % of the window: a blip, not a level
    assert not timeseries.level_shift(x).found


def test_too_short_a_series_gives_no_verdict() -> None:
    shift = timeseries.level_shift(np.ones(5))
    assert (shift.found, shift.ratio) == (False, None)
    cols = timeseries.summarise(TICK, timeseries.tick_times(TICK, 5), np.ones((1, 5)))
    assert cols["level_shift"] is None and cols["within_cv"] is None


def test_stored_series_round_trip(tmp_path) -> None:
    store = RunStore.create(tmp_path / "run", {"name": "t"}, {})
    t = timeseries.tick_times(TICK, 3)
    ops = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint64)
    hist = empty()
    row = {"point": 2, "rep": 1, "status": "ok"}
    store.append(row, [], hist, hist, (t, ops))
    loaded = timeseries.load_series(store.dir, 2, 1)
    assert loaded is not None
    assert loaded[0].tolist() == t.tolist() and loaded[1].tolist() == ops.tolist()
    assert loaded[1].dtype == np.uint64 and loaded[1].shape == (2, 3)
    assert timeseries.load_series(store.dir, 0, 0) is None


def test_a_real_point_records_one_tick_per_10_ms_of_its_window() -> None:
    point = prefault_point(cycles=0, warmup_s=0.05, duration_s_requested=0.2, region_mib=4,
                           chunk_pages=512)  # fmt: skip
    result = run_point(point)
    assert result.status == "ok", result.error
    t, ops = result.series_t_ns, result.series_ops
    assert t is not None and ops is not None
    # the ticks run from 10 ms to the end of the 200 ms window
    assert t.tolist() == timeseries.tick_times(TICK, 20).tolist()
    assert ops.shape == (1, 20)
    assert np.all(np.diff(ops[0].astype(np.int64)) >= 0)
    # the last tick falls at the window's end: everything the worker counted
    assert int(ops[0, -1]) == result.workers[0]["ops"]
    m = result.measures
    assert m["tick_ns"] == TICK and m["series_ticks"] == 20
    assert m["within_cv"] is not None and m["level_shift"] in (True, False)


def test_long_windows_get_coarser_ticks() -> None:
    short = parameters.native_params(prefault_point(duration_s_requested=10.0))
    long = parameters.native_params(prefault_point(duration_s_requested=25.0))
    assert runner.series_tick_ns(short) == TICK  # 1000 ticks fit in the 1024 slots
    assert runner.series_tick_ns(long) == 3 * TICK  # 2500 would not; 834 do
