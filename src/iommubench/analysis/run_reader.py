"""Reading a run directory: its rows, per-worker rows, metadata, config and histograms.

A repetition is *valid* when its status is "ok", its audit did not fail and the runner
flagged none of `INVALID_ROW_FLAGS` on it (contract: the `flags` column of points.csv).
Also here: the helpers that name points by their parameter values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from iommubench.core import hist as _hist
from iommubench.run import timeseries
from iommubench.run.store import repetition_file
from iommubench.spec.catalogue import strategy
from iommubench.spec.columns import AUDIT, MATCH_COLUMNS, MEASURES, PARAMETERS, PLACEMENT
from iommubench.spec.parameters import PARAMETERS as PARAMETERS_TABLE
from iommubench.spec.parameters import TEXT_PARAMETERS, applies

# row flags (set by the runner) that make a repetition never count as a valid result
INVALID_ROW_FLAGS = frozenset({"no-work", "iova-exhausted", "window-stretched"})

STRING_COLUMNS = [
    "run_id",
    "host",
    "cpu_model",
    "cpus_allowed",
    "status",
    "error",
    "flags",
    *TEXT_PARAMETERS,
]
BOOL_COLUMNS = ["audit_ok", "oversubscribed", "level_shift"]
# The locking strategy (catalogue.strategy) is derived from two parameters, the driver and its
# lock. Wherever points are grouped, matched, labelled or drawn it stands in for them, so a
# run's `serial-spin` and another's `domain-lock` + `ttas` are one strategy; ignoring either
# part (compare --ignore lock) falls back to the other part.
STRATEGY = "strategy"
STRATEGY_PARTS = ("driver", "lock")
LATENCY_COLUMNS = [c for c in MEASURES if c.endswith("_ns") and c[:-3].split("_")[-1][0] == "p"]
AUDIT_COUNTERS = [c for c in AUDIT if c != "audit_ok"]
WAIT_COLUMNS = ["lock_wait_ns", "iova_lock_wait_ns", "inv_lock_wait_ns", "guard_wait_ns"]


class RunDataError(ValueError):
    """A run directory with nothing to analyse (no rows, or no point/rep columns)."""


@dataclass
class Run:
    """One run directory: its rows, per-worker rows, metadata and resolved config."""

    run_dir: Path
    points: pd.DataFrame
    workers: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    config_text: str | None = None
    # (point, rep) -> the point number stored on disk, where load_run split points by host
    stored_point: dict[tuple[int, int], int] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        rid = self.meta.get("run_id")
        if rid:
            return str(rid)
        if "run_id" in self.points and self.points["run_id"].notna().any():
            return str(self.points["run_id"].dropna().iloc[0])
        return self.run_dir.name

    def _npz(self, point: int, rep: int) -> Path:
        point = self.stored_point.get((int(point), int(rep)), point)
        return repetition_file(self.run_dir, point, rep)

    def hist(self, point: int, rep: int) -> dict[str, np.ndarray] | None:
        """The merged `map`/`unmap` histograms of one repetition, or None if not written."""
        path = self._npz(point, rep)
        if not path.exists():
            return None
        with np.load(path) as z:
            return {k: np.asarray(z[k], dtype=np.uint64) for k in z.files if k in ("map", "unmap")}

    def series(self, point: int, rep: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(tick times in ns, cumulative ops per worker and tick), or None if not recorded."""
        point = self.stored_point.get((int(point), int(rep)), point)
        return timeseries.load_series(self.run_dir, int(point), int(rep))

    def point_hist(self, point: int, kind: str = "map", valid_only: bool = True) -> np.ndarray:
        """A point's histogram of `kind` merged over its (valid) repetitions."""
        rows = self.points[self.points["point"] == point]
        if valid_only:
            rows = rows[valid_mask(rows)]
        hs = [h[kind] for r in rows["rep"] if (h := self.hist(point, int(r))) and kind in h]
        return _hist.merge(hs)


def _to_bool(series: pd.Series) -> pd.Series:
    mapping = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}

    def conv(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return pd.NA
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        return mapping.get(str(v).strip().lower(), pd.NA)

    return series.map(conv).astype("boolean")


def _derive(df: pd.DataFrame) -> None:
    """Per-repetition measures derived from the counters: lock wait share, CAS, rcache."""
    nan = pd.Series(np.nan, index=df.index)
    waits = [df[c].fillna(0) for c in WAIT_COLUMNS if c in df]
    wait = sum(waits) if waits else nan
    dur, wk = (df.get(c, nan) for c in ("duration_s", "workers"))
    with np.errstate(divide="ignore", invalid="ignore"):
        df["contention_share"] = wait / (dur * 1e9 * wk)
        df["cas_fail_per_op"] = df.get("cas_failures", nan) / df.get("ops", nan)
        hits, misses = df.get("rcache_hits", nan), df.get("rcache_misses", nan)
        df["rcache_hit_rate"] = hits / (hits + misses)
    for col in ("contention_share", "cas_fail_per_op", "rcache_hit_rate"):
        df[col] = df[col].replace([np.inf, -np.inf], np.nan)


def _normalise_points(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in STRING_COLUMNS:
        if col in df:
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    for col in BOOL_COLUMNS:
        if col in df:
            df[col] = _to_bool(df[col])
    text = set(STRING_COLUMNS) | set(BOOL_COLUMNS)
    extra = [c for c in df.columns if c.endswith(("_acquisitions", "_contended", "_wait_ns"))]
    numeric = [*PARAMETERS, *PLACEMENT, *MEASURES, *AUDIT_COUNTERS, *extra, "point", "rep"]
    numeric += ["runq_wait_share", "steal_share", "oncpu_share", "within_cv", "tick_ns"]
    for col in dict.fromkeys(numeric):
        if col in df and col not in text:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "status" not in df:
        df["status"] = "ok"
    df["status"] = df["status"].fillna("ok").astype(str)
    if "audit_ok" not in df:
        df["audit_ok"] = pd.array([pd.NA] * len(df), dtype="boolean")
    if "flags" not in df:
        df["flags"] = None
    _fill_following_parameters(df)
    df = df.copy()  # one block per dtype again after the column-by-column conversion
    _derive(df)
    add_strategy(df)
    return df


def _fill_following_parameters(df: pd.DataFrame) -> None:
    """The values rows ran with where a parameter was unset (it followed another one) or did
    not exist yet (parameters.py: `before`, `follows`), so that such rows match rows that
    spell them out: e.g. cs_map_ns and cs_unmap_ns follow cs_ns, inv_ns the cost profile;
    rows from before profiles had none."""
    for p in PARAMETERS_TABLE:
        if p.before is not None:
            df[p.name] = (
                df[p.name].where(df[p.name].notna(), p.before) if p.name in df else p.before
            )
    for p in PARAMETERS_TABLE:
        if p.follows is None or p.follows[0] not in df:
            continue
        leader, how = p.follows
        value = df[leader].map(how)
        df[p.name] = df[p.name].fillna(value) if p.name in df else value


def add_strategy(df: pd.DataFrame) -> None:
    """Add the `strategy` column to a points frame that has a `driver` column."""
    if "driver" not in df:
        return
    locks = df["lock"] if "lock" in df else pd.Series(None, index=df.index, dtype=object)
    df[STRATEGY] = [strategy(d, k) for d, k in zip(df["driver"], locks, strict=True)]


def _read_config(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    path = run_dir / "config.yaml"
    if not path.exists():
        return None, None
    text = path.read_text()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:  # a config we cannot parse is still shown as text
        return None, text
    return (config if isinstance(config, dict) else None), text


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory written by the runner (points.csv is required)."""
    run_dir = Path(run_dir)
    points_path = run_dir / "points.csv"
    if not points_path.exists():
        raise FileNotFoundError(f"{points_path} not found: is {run_dir} a run directory?")
    try:
        raw = pd.read_csv(points_path, dtype={c: object for c in STRING_COLUMNS})
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise RunDataError(f"{points_path}: not a readable table ({exc})") from None
    missing = [c for c in ("point", "rep") if c not in raw.columns]
    if missing:
        raise RunDataError(f"{points_path}: no {missing[0]!r} column")
    if raw.empty:
        raise RunDataError(f"{points_path}: no rows yet: nothing to report")
    points = _normalise_points(raw)
    workers_path = run_dir / "workers.csv"
    workers = pd.read_csv(workers_path) if workers_path.exists() else pd.DataFrame()
    meta: dict[str, Any] = {}
    if (run_dir / "meta.json").exists():
        meta = json.loads((run_dir / "meta.json").read_text())
    config, config_text = _read_config(run_dir)
    points, workers, stored = split_by_host(points, workers)
    return Run(run_dir, points, workers, meta, config, config_text, stored)


def machine_kinds(points: pd.DataFrame) -> dict[str, str]:
    """host -> the name it is analysed under. Hosts of one kind (the same CPU model and the
    same allowed CPUs) pool their repetitions under their joined names, e.g. "lab-a+lab-b":
    a sweep split over identical machines to finish sooner is one machine's sweep, whose
    scaling needs every worker count together. Hosts of different kinds stay apart."""
    cols = [c for c in ("cpu_model", "cpus_allowed") if c in points]
    kind_of: dict[str, tuple[str, ...]] = {}
    for row in points[["host", *cols]].itertuples(index=False):
        kind_of.setdefault(str(row[0]), tuple(norm_value(v) for v in row[1:]))
    members: dict[tuple[str, ...], list[str]] = {}
    for host, kind in kind_of.items():
        members.setdefault(kind, []).append(host)
    if not cols:  # nothing says two hosts are alike: keep them apart
        return {h: h for h in kind_of}
    return {h: "+".join(sorted(members[k])) for h, k in kind_of.items()}


def split_by_host(
    points: pd.DataFrame, workers: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple[int, int], int]]:
    """With several kinds of host, one point per (config point, host kind), numbered in that
    order, so summaries, figures and comparisons tell the machines apart; with one kind (one
    host, or identical hosts sharing a sweep) one point per config point.

    Returns the frames and (point, rep) -> the point number stored on disk (for hist/).
    """
    if "host" not in points or points["host"].dropna().nunique() < 2:
        return points, workers, {}
    points = points.copy()
    points["host"] = points["host"].fillna("").map(machine_kinds(points))
    if points["host"].nunique() < 2:
        return points, workers, {}
    keys = sorted(set(zip(points["point"].astype(int), points["host"], strict=True)))
    number = {key: i for i, key in enumerate(keys)}
    stored = points["point"].astype(int)
    points["point"] = [number[(p, h)] for p, h in zip(stored, points["host"], strict=True)]
    origin = {
        (int(n), int(r)): int(p)
        for n, r, p in zip(points["point"], points["rep"], stored, strict=True)
    }
    if not workers.empty and {"point", "rep"} <= set(workers.columns):
        renumber = {(p, int(r)): n for (n, r), p in origin.items()}
        workers = workers.copy()
        workers["point"] = [
            renumber.get((int(p), int(r)), -1)
            for p, r in zip(workers["point"], workers["rep"], strict=True)
        ]
    return points, workers, origin


# --------------------------------------------------------------------------- row validity


def row_flags(value: Any) -> set[str]:
    """The `;`-joined flags of one row as a set (empty for a missing value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return set()
    return {f.strip() for f in str(value).split(";") if f.strip()}


def has_flag(df: pd.DataFrame, flag: str) -> pd.Series:
    """Rows whose `flags` column carries `flag`."""
    if "flags" not in df:
        return pd.Series(False, index=df.index)
    return df["flags"].map(lambda v: flag in row_flags(v)).astype(bool)


def invalid_reason(row: pd.Series | dict[str, Any]) -> str:
    """Why a repetition is not a valid result ('' when it is)."""
    if str(row.get("status", "ok")) != "ok":
        return "failed"
    audit = row.get("audit_ok")
    if isinstance(audit, (bool, np.bool_)) and not audit:
        return "audit failed"
    bad = sorted(row_flags(row.get("flags")) & INVALID_ROW_FLAGS)
    return bad[0] if bad else ""


def valid_mask(df: pd.DataFrame) -> pd.Series:
    """Rows that count for throughput: status ok, an audit that did not fail, no bad flag."""
    ok = df["status"].astype(str) == "ok"
    audit = df["audit_ok"].astype("boolean").fillna(True).astype(bool)
    flagged = pd.Series(False, index=df.index)
    if "flags" in df:
        flagged = df["flags"].map(lambda v: bool(row_flags(v) & INVALID_ROW_FLAGS)).astype(bool)
    return ok & audit & ~flagged


# --------------------------------------------------------------------------- parameters


def norm_value(v: Any) -> str:
    """A parameter value as a stable string: '' for empty, '4' for 4.0."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        if float(v).is_integer():
            return str(int(v))
        return repr(float(v))
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    return str(v)


def param_columns(df: pd.DataFrame, ignore: Sequence[str] = ()) -> list[str]:
    """The parameter columns present in a frame, in schema order, then the host, less
    `ignore`; `strategy` stands in for the driver and the lock where the frame has it and
    neither part is ignored (ignoring `strategy` ignores both parts)."""
    skip = set(ignore) | (set(STRATEGY_PARTS) if STRATEGY in ignore else set())
    cols = [c for c in MATCH_COLUMNS if c in df.columns and c not in skip]
    if STRATEGY not in df.columns or skip & {STRATEGY, *STRATEGY_PARTS}:
        return cols
    parts = [i for i, c in enumerate(cols) if c in STRATEGY_PARTS]
    at = parts[0] if parts else 0
    return [*cols[:at], STRATEGY, *[c for c in cols[at:] if c not in STRATEGY_PARTS]]


def varying_params(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Parameters that take more than one value across the frame's rows."""
    return [c for c in param_columns(df, ignore=exclude) if df[c].map(norm_value).nunique() > 1]


def param_key(row: pd.Series | dict[str, Any], cols: Sequence[str]) -> tuple[str, ...]:
    """The identity of a point by its parameter values (used to match across runs)."""
    return tuple(norm_value(row.get(c)) for c in cols)


def label(row: pd.Series | dict[str, Any], cols: Sequence[str]) -> str:
    """A short human label such as 'lockfree rcache w=4' from the given parameter columns."""
    parts = []
    workload = row.get("workload")
    for c in cols:
        if not applies(c, workload):  # e.g. chunk_pages on a dma point of a mixed run
            continue
        v = norm_value(row.get(c))
        if c == "workers":
            parts.append(f"w={v}")
        elif c in STRING_COLUMNS or c == STRATEGY:
            parts.append(v or "-")
        else:
            parts.append(f"{c}={v}")
    return " ".join(parts)
