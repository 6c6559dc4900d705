"""Reproduction cases: a published number, where it comes from, and the config that measures
it here. One YAML file per case under `bench/reproduce/`, validated before anything runs.

A case either runs a sweep (`config:`, an ordinary run config written inline) or the
`dma-map-benchmark` mirror (`dma_map_benchmark:`, the kernel tool's options), and lists the
measures it compares. A case is a *calibration* input (a parameter was set from this very
number, so it matches by construction: `calibration:` says how), a *prediction* (nothing
was tuned to it), or *kernel-code*: a number measured on the kernel's own code compiled here
(`pgtable: kernel-arm`, `allocator: kernel-iova`) beside one published for other code or
another machine (`leaves_out:` says what differs). A measure may state a pass/fail
criterion (`pass_if`), for published results that are a shape rather than a number.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iommubench.spec.config import ConfigError, parse_sweep, parse_yaml

CASE_DIR = Path("bench") / "reproduce"  # relative to the repository root, like the configs
STATS = (
    "dma_map_benchmark",  # the tool's mean: field map|unmap (its lines, µs), map_ns|unmap_ns
    "ns_per_op",  # a point's on-CPU time per op and worker, ns
    "latency_mean_ns",  # a point's mean map or unmap latency (field: map|unmap), ns
    "ops_per_s",  # a point's median throughput
    "speedup",  # median throughput at `workers` over the same series at 1 worker
    "efficiency",  # speedup / workers
    "time_s",  # a point's median measured window (a fixed-cycle run: the time to do it)
    "time_speedup",  # time_s at 1 worker over time_s at `workers`
    "ratio",  # ops_per_s at `where` over ops_per_s at `over`, both at `workers`
)
TOOL_OPTIONS = {  # dma_map_benchmark: key -> the tool's flag
    "threads": "-t",
    "seconds": "-s",
    "node": "-n",
    "bits": "-b",
    "dir": "-d",
    "dma_trans_ns": "-x",
    "granule": "-g",
    "mode": "-m",
    "invalidation": "--invalidation",
    "profile": "--profile",
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_PASS_IF = re.compile(r"^\s*(<=|>=|<|>)\s*([0-9.eE+-]+)\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Measure(_Strict):
    """One compared number: how to read it from the case's results, and the published one."""

    name: str
    stat: Literal[STATS]  # type: ignore[valid-type]
    published: float | str | None = None  # a number, a statement (a shape), or not published
    unit: str = ""
    field: Literal["map", "unmap", "map_ns", "unmap_ns"] | None = None
    where: dict[str, Any] = Field(default_factory=dict)  # the parameters of the series
    over: dict[str, Any] | None = None  # ratio's denominator series
    workers: int | Literal["max", "each"] = "max"  # max: most workers short of oversubscribed
    needs_cpus: int = Field(default=1, ge=1)
    pass_if: str | None = None  # "< 1", ">= 0.75": the criterion of a shape check
    note: str = ""
    leaves_out: str = ""  # this measure's own account of a miss (else the case's)

    @field_validator("note", "leaves_out", "name")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return " ".join(v.split())

    @field_validator("pass_if")
    @classmethod
    def _criterion(cls, v: str | None) -> str | None:
        if v is not None and not _PASS_IF.match(v):
            raise ValueError(f"{v!r}: a comparison and a number, e.g. '< 1' or '>= 0.75'")
        return v

    @model_validator(mode="after")
    def _fields(self) -> Measure:
        if self.stat == "dma_map_benchmark" and self.field is None:
            raise ValueError("stat dma_map_benchmark needs field: map, unmap, map_ns or unmap_ns")
        if self.stat == "latency_mean_ns" and self.field not in ("map", "unmap"):
            raise ValueError("stat latency_mean_ns needs field: map or unmap")
        if self.stat == "ratio" and self.over is None:
            raise ValueError("stat ratio needs over: (the denominator's parameters)")
        return self

    def passes(self, value: float) -> bool | None:
        """The criterion's verdict on `value`, or None when the measure has none."""
        if self.pass_if is None:
            return None
        m = _PASS_IF.match(self.pass_if)
        assert m is not None  # checked by the validator
        return COMPARISONS[m.group(1)](value, float(m.group(2)))


class Case(_Strict):
    """One published result and the run that measures it here."""

    case: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    source: str
    kind: Literal["calibration", "prediction", "kernel-code"]
    calibration: str = ""  # for a calibration input: which parameter was set from it
    leaves_out: str = ""  # what the model leaves out, quoted where a prediction misses
    needs_cpus: int = Field(default=1, ge=1)
    config: dict[str, Any] | None = None
    dma_map_benchmark: dict[str, int | str] | None = None
    measures: list[Measure] = Field(min_length=1)

    @field_validator("title", "source", "calibration", "leaves_out")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return " ".join(v.split())

    @model_validator(mode="after")
    def _one_runner(self) -> Case:
        if (self.config is None) == (self.dma_map_benchmark is None):
            raise ValueError("give exactly one of config: or dma_map_benchmark:")
        unknown = sorted(set(self.dma_map_benchmark or {}) - set(TOOL_OPTIONS))
        if unknown:
            raise ValueError(
                f"dma_map_benchmark: unknown option {unknown[0]!r}; allowed: "
                + ", ".join(TOOL_OPTIONS)
            )
        if self.kind == "calibration" and not self.calibration:
            raise ValueError("a calibration case says which parameter it set (calibration:)")
        if self.kind == "kernel-code" and not self.leaves_out:
            raise ValueError("a kernel-code case says what differs from the published setup")
        wants_tool = {m.stat == "dma_map_benchmark" for m in self.measures}
        if wants_tool != {self.dma_map_benchmark is not None}:
            raise ValueError("stat dma_map_benchmark goes with dma_map_benchmark:, and only")
        return self


def _location(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err.get("loc", ()))


def load_case(path: Path) -> Case:
    """A validated case; ConfigError (one line naming the file and key) when it is not."""
    source = str(path)
    doc = parse_yaml(source, path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ConfigError(source, "", "a case is a mapping (case, title, source, ...)")
    try:
        case = Case.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(source, _location(err), err["msg"]) from None
    if case.config is not None:
        parse_sweep(case.config, f"{source}: config")  # a bad sweep is refused up front
    return case


def load_cases(directory: Path = CASE_DIR, only: list[str] | None = None) -> list[Case]:
    """Every case in `directory` (sorted by file name), or those named in `only`."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(str(directory), "", "no case files (*.yaml)")
    cases = [load_case(f) for f in files]
    names = [c.case for c in cases]
    if only:
        unknown = [o for o in only if o not in names]
        if unknown:
            raise ConfigError(
                str(directory),
                "--only",
                f"unknown case {unknown[0]!r}; allowed: {', '.join(names)}",
            )
        cases = [c for c in cases if c.case in only]
    return cases
