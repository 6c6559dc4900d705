"""Reading a run directory: its rows, per-worker rows, metadata, config and histograms.

A repetition is *valid* when its status is "ok", its audit did not fail and the runner
flagged none of `INVALID_ROW_FLAGS` on it (contract: the `flags` column of points.csv).

The reader checks what it reads as the writer writes it (run/cells.py, the check --resume
makes). A cell that is not a number the writer could have written (an infinity, a negative or
absurd value, NaN where the throughput, the work or the audit is stored) is emptied and its
row set aside (`bad-value`); NaN elsewhere reads as empty, as older writers meant it. An ok
row that counted no work is `no-work`; a repetition whose npz cannot be read is
`damaged-file`, and its histograms and series are not used. Each of these, and a run still
being written or cut off, is said once as a `RunDataWarning` naming the file (the CLI prints
it as one line).
Also here: the helpers that name points by their parameter values.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from iommubench.core import hist as _hist
from iommubench.run import runlock
from iommubench.run.cells import (
    NAN_PROBLEM,
    STATUSES,
    DamagedFileError,
    field_problem,
    read_repetition,
)
from iommubench.run.store import damaged_repetitions, repetition_file
from iommubench.spec.catalogue import strategy
from iommubench.spec.columns import (
    AUDIT,
    MATCH_COLUMNS,
    MEASURES,
    PARAMETERS,
    PLACEMENT,
    POINT_COLUMNS,
)
from iommubench.spec.parameters import PARAMETERS as PARAMETERS_TABLE
from iommubench.spec.parameters import TEXT_PARAMETERS, applies

# row flags that make a repetition never count as a valid result: set by the runner, or by
# this reader for a stored value or file it refuses
NO_WORK, BAD_VALUE, DAMAGED_FILE = "no-work", "bad-value", "damaged-file"
INVALID_ROW_FLAGS = frozenset(
    {NO_WORK, "iova-exhausted", "window-stretched", BAD_VALUE, DAMAGED_FILE}
)

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
# the latency percentiles (map_p50_ns, ...): by their spelling, since a counter the core adds
# to MEASURES may end in _ns too
LATENCY_COLUMNS = [c for c in MEASURES if re.fullmatch(r"(map|unmap)_p\d+_ns", c)]
AUDIT_COUNTERS = [c for c in AUDIT if c != "audit_ok"]
WAIT_COLUMNS = ["lock_wait_ns", "iova_lock_wait_ns", "inv_lock_wait_ns", "guard_wait_ns"]
_CHECKED_COLUMNS = frozenset(POINT_COLUMNS)  # a column of another version is read unchecked
# the values a repetition's validity and throughput rest on: NaN there is never "no value"
_DECISIVE_COLUMNS = frozenset({"ops", "ops_per_s", "duration_s", *AUDIT})


class RunDataError(ValueError):
    """A run directory with nothing to analyse (no rows, or no point/rep columns)."""


class RunDataWarning(UserWarning):
    """Something the reader refused or set aside, or a run that is not complete: one line."""


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
    # what the reader refused or set aside, and whether the run is incomplete (one line each)
    notes: list[str] = field(default_factory=list)
    damaged: set[Path] = field(default_factory=set)  # npz files that cannot be used

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

    def _arrays(self, point: int, rep: int) -> dict[str, np.ndarray] | None:
        """The checked arrays of one repetition's npz; None if not written or damaged."""
        path = self._npz(point, rep)
        if path in self.damaged or not path.exists():
            return None
        try:
            return read_repetition(path)
        except DamagedFileError as exc:  # damaged since load_run looked
            self.damaged.add(path)
            _note(self.notes, f"{exc}; its histograms and series are not used")
            return None

    def hist(self, point: int, rep: int) -> dict[str, np.ndarray] | None:
        """The merged `map`/`unmap` histograms of one repetition, or None if not written."""
        arrays = self._arrays(point, rep)
        if arrays is None:
            return None
        return {k: arrays[k].astype(np.uint64) for k in ("map", "unmap")}

    def series(self, point: int, rep: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(tick times in ns, cumulative ops per worker and tick), or None if not recorded."""
        arrays = self._arrays(point, rep)
        if arrays is None or "series_t_ns" not in arrays:
            return None
        return arrays["series_t_ns"], arrays["series_ops"]

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
    """Read a run directory written by the runner (points.csv is required), checking what it
    reads (see the module's docstring); what it refuses is in `Run.notes`."""
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
    notes: list[str] = []
    raw = _checked(raw, _records(points_path), points_path, notes)
    if raw.empty:
        raise RunDataError(f"{points_path}: no rows yet: nothing to report")
    damaged = _check_repetition_files(run_dir, raw, notes)
    points = _normalise_points(raw)
    workers_path = run_dir / "workers.csv"
    workers = pd.read_csv(workers_path) if workers_path.exists() else pd.DataFrame()
    meta = _read_meta(run_dir, notes)
    _say_if_incomplete(run_dir, meta, len(points), notes)
    config, config_text = _read_config(run_dir)
    points, workers, stored = split_by_host(points, workers)
    return Run(run_dir, points, workers, meta, config, config_text, stored, notes, damaged)


def _note(notes: list[str], text: str) -> None:
    """Say `text` once (a RunDataWarning) and keep it in `notes`."""
    if text not in notes:
        notes.append(text)
        warnings.warn(RunDataWarning(text), stacklevel=3)


def _read_meta(run_dir: Path, notes: list[str]) -> dict[str, Any]:
    path = run_dir / "meta.json"
    if not path.exists():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        _note(notes, f"{path}: unreadable ({exc}); read without the run's metadata")
        return {}
    return meta if isinstance(meta, dict) else {}


# --------------------------------------------------------------------------- checks


def _records(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(first line, fields by column) of every record of a CSV file, blank lines skipped
    (as pandas skips them)."""
    out = []
    with path.open(newline="", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        line = reader.line_num + 1
        for fields in reader:
            if fields:
                out.append((line, dict(zip(header, fields, strict=False))))
            line = reader.line_num + 1
    return out


def _add_flag(raw: pd.DataFrame, i: Any, flag: str) -> None:
    have = row_flags(raw.at[i, "flags"]) if "flags" in raw else set()
    if flag not in have:
        raw.at[i, "flags"] = ";".join([*sorted(have), flag])


def _checked(
    raw: pd.DataFrame, records: list[tuple[int, dict[str, str]]], path: Path, notes: list[str]
) -> pd.DataFrame:
    """points.csv with every cell checked as the writer writes it: a row without a point or
    rep is dropped, a bad cell emptied and its row flagged `bad-value`, an ok row that
    counted nothing flagged `no-work`; each said once."""
    if len(records) != len(raw):  # pandas and csv disagree on a torn file: name rows instead
        records = [(-1, {c: _text(raw.at[i, c]) for c in raw.columns}) for i in raw.index]
    raw = raw.astype({"flags": object}) if "flags" in raw else raw.assign(flags=None)
    checked = [c for c in raw.columns if c in _CHECKED_COLUMNS]
    drop = []
    for i, (line, rec) in zip(raw.index, records, strict=True):
        where = f"{path} line {line}" if line > 0 else f"{path} row {i + 1}"
        bad = {c: p for c in checked if (p := field_problem(c, rec.get(c, "")))}
        if {"point", "rep"} & set(bad) or "" in (rec.get("point", ""), rec.get("rep", "")):
            _note(notes, f"{where}: no valid point and rep; the row is not read")
            drop.append(i)
            continue
        where = f"{where}: point {rec['point']} rep {rec['rep']}"
        refused = []
        for column, problem in bad.items():
            raw[column] = raw[column].astype(object)
            raw.at[i, column] = None
            if problem != NAN_PROBLEM or column in _DECISIVE_COLUMNS:
                refused.append(f"{column} {rec[column]!r} {problem}")
            # else older writers spelt a missing value "nan": read as empty
        if refused:
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            _note(notes, f"{where}: {refused[0]}{more}; set aside")
            _add_flag(raw, i, BAD_VALUE)
        _check_status(raw, i, rec, where, notes)
    return raw.drop(index=drop).reset_index(drop=True)


def _check_status(
    raw: pd.DataFrame, i: Any, rec: dict[str, str], where: str, notes: list[str]
) -> None:
    """An unknown status reads as failed; an ok row needs its throughput and some work."""
    status = rec.get("status", "ok") or "ok"
    if status not in STATUSES:
        _note(notes, f"{where}: status {status!r} is not ok or failed; read as failed")
        raw.at[i, "status"] = "failed"
    elif status == "ok" and "ops_per_s" in rec and rec["ops_per_s"] == "":
        _note(notes, f"{where}: status ok but no ops_per_s; set aside")
        _add_flag(raw, i, BAD_VALUE)
    elif (
        status == "ok"
        and _float(rec.get("ops", "")) == 0
        and NO_WORK not in row_flags(raw.at[i, "flags"])
    ):
        _note(notes, f"{where}: status ok but ops 0; set aside as no-work")
        _add_flag(raw, i, NO_WORK)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _check_repetition_files(run_dir: Path, raw: pd.DataFrame, notes: list[str]) -> set[Path]:
    """The npz files of ok rows that cannot be read as written; their rows `damaged-file`."""
    status = raw["status"].fillna("ok").astype(str) if "status" in raw else None
    ok = [i for i in raw.index if status is None or status[i] == "ok"]
    rows: dict[tuple[int, int], list[Any]] = {}
    for i in ok:
        rows.setdefault((int(raw.at[i, "point"]), int(raw.at[i, "rep"])), []).append(i)
    damaged = set()
    for point, rep, path, exc in damaged_repetitions(run_dir, rows):
        damaged.add(path)
        for i in rows[point, rep]:
            _add_flag(raw, i, DAMAGED_FILE)
        _note(notes, f"{exc}; point {point} rep {rep} set aside")
    return damaged


def _session_complete(session: dict[str, Any]) -> bool:
    if "complete" in session:
        return bool(session["complete"])
    outcome = str(session.get("outcome", ""))  # runs from before the `complete` field
    return outcome == "completed" or outcome.endswith("failed")


def _say_if_incomplete(run_dir: Path, meta: dict[str, Any], rows: int, notes: list[str]) -> None:
    """A note when the run is still being written, or its last session did not finish."""
    writer = runlock.writer_of(run_dir)
    if writer:
        _note(
            notes,
            f"{run_dir} is still being written (pid {writer.get('pid')}: "
            f"{writer.get('command')}): an incomplete run, {rows} rows so far",
        )
        return
    sessions = meta.get("sessions") or []
    last = sessions[-1] if sessions and isinstance(sessions[-1], dict) else None
    if last is None:
        return
    if "ended" not in last:
        why = "its last session never ended (killed?)"
    elif not _session_complete(last):
        why = f"its last session ended {last.get('outcome')!r}"
    else:
        return
    _note(
        notes,
        f"{run_dir}: {why}: an incomplete run of {rows} rows; resume it with the command in "
        f"{run_dir / 'RESUME'}",
    )


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
