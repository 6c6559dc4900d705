"""What --resume checks before it runs anything: every stored row, and the build.

A resume adds rows to a run, so the rows already there must be exactly what this harness
would have written for this config: the header is this version's schema (a run written by a
version with other columns is refused, not guessed at), every field parses with its column's
type and range, every row's parameters are its point's, no (point, rep) appears twice, and no
torn line hides in the middle. The first bad line is named; nothing runs. workers.csv is held
to its header and to one row per (point, rep, worker).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iommubench.run.cells import STATUSES, field_problem
from iommubench.run.row_flags import failed_outside_the_point
from iommubench.run.store import WORKER_COLUMNS, damaged_repetitions, format_cell
from iommubench.spec.catalogue import is_negative_control
from iommubench.spec.columns import PARAMETERS, POINT_COLUMNS


class ResumeError(Exception):
    """A run directory that cannot be resumed: one line naming the file, line and problem."""


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of every CSV record; a bad byte or quote is a ResumeError."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ResumeError(f"{path} line {line}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ResumeError(f"{path} line {line}: unreadable CSV ({exc})") from None
        yield line, fields
        line = reader.line_num + 1


def _check_header(path: Path, first: tuple[int, list[str]] | None, want: list[str]) -> None:
    if first is None:
        raise ResumeError(f"{path} is empty (no header); this run cannot be resumed")
    _, header = first
    if header == want:
        return
    if not header or header[0] != want[0]:
        raise ResumeError(f"{path} line 1: no header (expected {','.join(want[:3])},...)")
    for i, expected in enumerate(want):
        if i >= len(header) or header[i] != expected:
            got = repr(header[i]) if i < len(header) else "missing"
            expected = repr(expected)
            break
    else:
        i, got, expected = len(want), repr(header[len(want)]), "no more columns"
    raise ResumeError(
        f"{path} line 1: the header is not this version's (column {i + 1} is {got}, expected "
        f"{expected}); a run written by another version cannot be resumed, start a new run"
    )


def _row_problem(
    row: dict[str, str], points: list[dict[str, Any]], max_reps: int, run_id: str
) -> str | None:
    for column in POINT_COLUMNS:
        problem = field_problem(column, row[column])
        if problem:
            return f"{column} {row[column]!r} {problem}"
    if row["run_id"] != run_id:
        return f"run_id {row['run_id']!r} is not this run's ({run_id})"
    if row["status"] not in STATUSES:
        return f"status {row['status']!r} is not one of {', '.join(STATUSES)}"
    for column in ("point", "rep", "core_hash", "version"):
        if row[column] == "":
            return f"{column} is empty"
    point, rep = int(row["point"]), int(row["rep"])
    if point >= len(points):
        return f"point {point} is out of range (the config has {len(points)} points)"
    if rep >= max_reps:
        return f"rep {rep} is out of range (the config allows {max_reps} repetitions)"
    if row["status"] == "ok" and "" in (row["ops_per_s"], row["audit_ok"]):
        return "status ok but ops_per_s or audit_ok is empty"
    for column in PARAMETERS:
        expected = str(format_cell(points[point].get(column)))
        if row[column] != expected:
            return f"{column} {row[column]!r} is not point {point}'s {expected!r}"
    return None


def check_points(
    path: Path,
    points: list[dict[str, Any]],
    max_reps: int,
    run_id: str,
    builds: list[dict[str, Any]],
) -> dict[tuple[int, int], dict[str, str]]:
    """Every row of points.csv checked, and the npz of every ok one; (point, rep) -> its
    row, for the pairs done. Raises ResumeError."""
    records = _records(path)
    _check_header(path, next(records, None), POINT_COLUMNS)
    known_builds = {(b.get("core_hash"), b.get("version")) for b in builds}
    seen: dict[tuple[int, int], int] = {}
    stored: dict[tuple[int, int], dict[str, str]] = {}
    for line, fields in records:
        if len(fields) != len(POINT_COLUMNS):
            raise ResumeError(
                f"{path} line {line}: {len(fields)} fields, expected {len(POINT_COLUMNS)} "
                "(a torn or glued row)"
            )
        row = dict(zip(POINT_COLUMNS, fields, strict=True))
        problem = _row_problem(row, points, max_reps, run_id)
        if problem is None and (row["core_hash"], row["version"]) not in known_builds:
            problem = (
                f"core_hash {row['core_hash']!r} version {row['version']!r} is no build "
                "recorded in meta.json"
            )
        if problem:
            raise ResumeError(f"{path} line {line}: {problem}")
        key = (int(row["point"]), int(row["rep"]))
        if key in seen:
            raise ResumeError(
                f"{path} line {line}: point {key[0]} rep {key[1]} again (first on line {seen[key]})"
            )
        seen[key] = line
        stored[key] = row
    _check_repetition_files(path.parent, [k for k, r in stored.items() if r["status"] == "ok"])
    return stored


def _check_repetition_files(run_dir: Path, pairs: list[tuple[int, int]]) -> None:
    """The npz of every ok pair reads as the writer wrote it (a missing one is allowed: the
    row stands without its histograms)."""
    for point, rep, _, exc in damaged_repetitions(run_dir, pairs):
        raise ResumeError(
            f"{exc}; point {point} rep {rep} cannot be resumed over (delete the file to "
            "keep its row without histograms, or start a new run)"
        )


def check_workers(path: Path, done: set[tuple[int, int]]) -> None:
    """workers.csv: its header, whole rows, one row per (point, rep, worker) of a done pair.

    Rows of pairs not done (the point was cut off between the two appends) are allowed: the
    store drops them before the pair runs again.
    """
    records = _records(path)
    _check_header(path, next(records, None), WORKER_COLUMNS)
    seen: dict[tuple[int, int, int], int] = {}
    for line, fields in records:
        if len(fields) != len(WORKER_COLUMNS):
            raise ResumeError(
                f"{path} line {line}: {len(fields)} fields, expected {len(WORKER_COLUMNS)} "
                "(a torn or glued row)"
            )
        if not all(f.isdigit() for f in fields[:3]):
            raise ResumeError(f"{path} line {line}: point, rep or worker is not an integer")
        point, rep, worker = (int(f) for f in fields[:3])
        if (point, rep) not in done:
            continue
        key = (point, rep, worker)
        if key in seen:
            raise ResumeError(
                f"{path} line {line}: point {point} rep {rep} worker {worker} again (first on "
                f"line {seen[key]})"
            )
        seen[key] = line


def builds_of(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Every build that wrote rows of this run: the first, then each resume's."""
    first = [meta["build"]] if isinstance(meta.get("build"), dict) else []
    sessions = meta.get("sessions") or []
    return first + [s["build"] for s in sessions if isinstance(s.get("build"), dict)]


def _failed_on_its_own(row: dict[str, str]) -> bool:
    """A failure of the point itself: a failed row with no outside kind (a crash of the
    core), or a failed audit (not the negative control's, which is its expected result)."""
    if row["status"] != "ok":
        return not failed_outside_the_point(row["flags"])
    return row["audit_ok"] == "False" and not is_negative_control(row)


def to_redo(
    stored: dict[tuple[int, int], dict[str, str]], redo_failed: bool
) -> dict[tuple[int, int], dict[str, str]]:
    """The stored pairs a resume runs again, with what is recorded of each: every failure
    from outside the point (a lost host or scheduler, a full /dev/shm, a timeout, a killed
    worker) and, with `redo_failed`, the point's own failures too."""
    redo = {}
    for key, row in stored.items():
        outside = row["status"] != "ok" and failed_outside_the_point(row["flags"])
        if outside or (redo_failed and _failed_on_its_own(row)):
            redo[key] = {
                "point": key[0],
                "rep": key[1],
                "status": row["status"],
                "flags": row["flags"],
                "error": row["error"],
                "host": row["host"],
            }
    return redo


def describe_redo(redo: dict[tuple[int, int], dict[str, str]]) -> str:
    """'3 (point, rep) pairs that failed: timed-out 2, lost-host 1' for the resume's line."""
    kinds: dict[str, int] = {}
    for row in redo.values():
        kind = row["flags"] or ("audit failed" if row["status"] == "ok" else "failed")
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    return f"{len(redo)} (point, rep) pair(s) that failed before ({counts})"
