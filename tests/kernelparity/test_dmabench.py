"""`iommubench dma-map-benchmark` against upstream's tool: options, ranges, messages and exit
codes, the header, and the kernel's sampling arithmetic on samples with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iommubench.cli import main
from iommubench.kernelparity import dma_map_benchmark
from iommubench.run.point import run_point

pytestmark = pytest.mark.slow  # starts worker processes, runs or compiles

DEFAULTS = {name: default for _, name, default in dma_map_benchmark.OPTIONS}


def samples_of(ns: np.ndarray) -> dma_map_benchmark.Samples:
    """What the native core sums for these samples."""
    ns = np.asarray(ns, dtype=np.int64)
    units = ns // 100
    return dma_map_benchmark.Samples(
        len(ns), int(ns.sum()), int((ns * ns).sum()), int(units.sum()), int((units * units).sum())
    )


def test_kernel_arithmetic_truncates_each_sample_then_averages_in_whole_units() -> None:
    # 50, 150, 250 and 1049 ns are 0, 1, 2 and 10 whole 100 ns units: sum 13, squares 105;
    # avg = 13 // 4 = 3, variance = 105 // 4 - 9 = 17, int_sqrt = 4
    s = samples_of(np.array([50, 150, 250, 1049]))
    assert dma_map_benchmark.kernel_mean_sd(s.n, s.units, s.units_sq) == (3, 4)
    assert dma_map_benchmark.result_line("map", s, ns=False) == (
        "average map latency(us):0.3 standard deviation:0.4"
    )


def test_samples_below_100_ns_print_zero_as_the_kernel_does() -> None:
    s = samples_of(np.full(1000, 99))
    assert dma_map_benchmark.result_line("unmap", s, ns=False) == (
        "average unmap latency(us):0.0 standard deviation:0.0"
    )
    assert dma_map_benchmark.result_line("unmap", s, ns=True) == (
        "average unmap latency(ns):99.0 standard deviation:0.0"
    )


def test_ns_precision_is_the_population_moments_of_the_samples() -> None:
    ns = np.random.default_rng(1).integers(20, 5000, size=10_000)
    s = samples_of(ns)
    mean, sd = dma_map_benchmark.ns_mean_sd(s.n, s.ns, s.ns_sq)
    assert mean == pytest.approx(ns.mean(), rel=1e-12)
    assert sd == pytest.approx(ns.std(), rel=1e-9)
    avg, sd_units = dma_map_benchmark.kernel_mean_sd(s.n, s.units, s.units_sq)
    units = ns // 100
    assert avg == int(units.sum()) // len(units)
    assert sd_units == math.isqrt(int((units * units).sum()) // len(units) - avg * avg)


def test_no_samples_print_zeroes() -> None:
    assert dma_map_benchmark.kernel_mean_sd(0, 0, 0) == (0, 0)
    assert dma_map_benchmark.ns_mean_sd(0, 0, 0) == (0.0, 0.0)


@pytest.mark.parametrize(
    "mode, head",
    [
        (
            0,
            "dma mapping benchmark(SINGLE_MODE): threads:2 seconds:3 node:-1 dir:FROM_DEVICE "
            "granule:8",
        ),
        (
            1,
            "dma mapping benchmark(SG_MODE): threads:2 seconds:3 node:-1 dir:FROM_DEVICE granule:8",
        ),
    ],
)
def test_header_is_upstreams(mode: int, head: str) -> None:
    opts = {**DEFAULTS, "threads": 2, "seconds": 3, "dir": 2, "granule": 8, "mode": mode}
    assert dma_map_benchmark.header(opts) == head


@pytest.mark.parametrize(
    "args, message",
    [
        (["-m", "2"], "invalid map mode, SINGLE_MODE:0, SG_MODE: 1"),
        (["-m", "-1"], "invalid map mode, SINGLE_MODE:0, SG_MODE: 1"),
        (["-t", "0"], "invalid number of threads, must be in 1-1024"),
        (["-t", "1025"], "invalid number of threads, must be in 1-1024"),
        (["-s", "0"], "invalid number of seconds, must be in 1-300"),
        (["-s", "301"], "invalid number of seconds, must be in 1-300"),
        (["-x", "-1"], "invalid transmit delay, must be in 0-10000000"),
        (["-x", "10000001"], "invalid transmit delay, must be in 0-10000000"),
        (["-b", "19"], "invalid dma mask bit, must be in 20-64"),
        (["-b", "65"], "invalid dma mask bit, must be in 20-64"),
        (["-d", "3"], "invalid dma direction"),
        (["-g", "0"], "invalid granule size"),
        (["-g", "1025"], "invalid granule size"),
        (["-n", "999"], "invalid numa node"),
        # upstream checks the mode first, then threads, ..., granule last
        (["-g", "0", "-t", "0", "-m", "5"], "invalid map mode, SINGLE_MODE:0, SG_MODE: 1"),
        (["-g", "0", "-b", "1"], "invalid dma mask bit, must be in 20-64"),
    ],
)
def test_out_of_range_prints_upstreams_message_and_exits_1(args, message, capsys) -> None:
    assert main(["dma-map-benchmark", *args]) == 1
    err = capsys.readouterr().err
    assert err == f"iommubench: dma-map-benchmark: {message}\n"


def test_more_threads_than_this_machine_runs_exits_1(capsys) -> None:
    from iommubench.spec.config import max_workers

    assert main(["dma-map-benchmark", "-t", str(max_workers() + 1)]) == 1
    err = capsys.readouterr().err
    assert f"must be in 1-{max_workers()} on this machine" in err and err.count("\n") == 1


@pytest.mark.parametrize("args", [["-t", "x"], ["-q", "1"], ["--invalidation", "x"]])
def test_malformed_input_is_a_usage_error(args, capsys) -> None:
    try:
        code = main(["dma-map-benchmark", *args])
    except SystemExit as exc:  # argparse's own errors leave through SystemExit
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("iommubench: dma-map-benchmark") and err.count("\n") == 1


@pytest.mark.parametrize("mode, flag", [("0", []), ("1", ["--ns"])])
def test_a_run_prints_upstreams_three_lines(mode, flag, capsys) -> None:
    assert main(["dma-map-benchmark", "-s", "1", "-t", "2", "-g", "4", "-m", mode, *flag]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0] == dma_map_benchmark.header(
        {**DEFAULTS, "threads": 2, "seconds": 1, "granule": 4, "mode": int(mode)}
    )
    unit = "ns" if flag else "us"
    for line, direction in zip(lines[1:], ("map", "unmap"), strict=True):
        assert line.startswith(f"average {direction} latency({unit}):")
        assert " standard deviation:" in line


def test_native_sample_sums_truncate_each_sample() -> None:
    """Each sample's whole 100 ns units, summed natively, lie between the ns sum / 100 less one
    unit per sample and the ns sum / 100."""
    opts = {**DEFAULTS, "seconds": 1, "granule": 4}
    point = {**dma_map_benchmark.benchmark_point(opts), "duration_s_requested": 0.1}
    result = run_point(point)
    assert result.status == "ok", result.error
    for direction in ("map", "unmap"):
        s = dma_map_benchmark.Samples.of(result.workers, direction)
        assert s.n > 100
        assert s.ns - 99 * s.n <= 100 * s.units <= s.ns
        assert s.units_sq <= s.ns_sq // 10_000
