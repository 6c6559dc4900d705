"""A run directory: config.yaml, meta.json, RESUME, points.csv, workers.csv, hist/.

The resolved config, meta.json and RESUME (the command that resumes the run) are written
before the first point. Each finished point is appended to workers.csv, then points.csv, as
whole lines followed by fsync; a write that fails (disk full, I/O error) is cut back to the
file's length before it, so a row is either whole or absent. A crash can still leave a torn
final line, which reopening (for --resume) trims, and workers.csv rows of a point that never
reached points.csv, which reopening drops so the re-run point cannot duplicate them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from iommubench.run.cells import DamagedFileError, read_repetition
from iommubench.spec.columns import COUNTER_MEASURES, POINT_COLUMNS

# One row per worker of each (point, rep): who and where, every counter the core declares as a
# measure (columns.COUNTER_MEASURES, the worker's own value), the driver's lock counters, the
# worker's counted window and its own schedstat over that window (on a CPU / runnable, waiting
# for one); the row's oncpu_share and runq_wait_share are their averages over the workers.
WORKER_COLUMNS = [
    "point",
    "rep",
    "worker",
    "cpu",
    *COUNTER_MEASURES,
    "lock_acquisitions",
    "lock_contended",
    "lock_wait_ns",
    "start_ns",
    "end_ns",
    "sched_oncpu_ns",
    "sched_runq_ns",
]


def repetition_file(run_dir: Path | str, point: int, rep: int) -> Path:
    """The npz of one repetition: its merged histograms and its throughput series."""
    return Path(run_dir) / "hist" / f"p{int(point):04d}-r{int(rep):03d}.npz"


def damaged_repetitions(
    run_dir: Path | str, pairs: Iterable[tuple[int, int]]
) -> Iterator[tuple[int, int, Path, DamagedFileError]]:
    """(point, rep, file, why) for each repetition file of `pairs` that cannot be read as the
    writer wrote it; a missing file is none (its row stands without histograms)."""
    for point, rep in pairs:
        path = repetition_file(run_dir, point, rep)
        if not path.exists():
            continue
        try:
            read_repetition(path)
        except DamagedFileError as exc:
            yield point, rep, path, exc


def new_run_id(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"


def format_cell(value: Any) -> Any:
    """One CSV cell: lists joined by ";", None and a NaN or infinite float left empty (the
    writer never writes a non-finite number; run/cells.py checks what it does write)."""
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _csv_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    for row in rows:
        writer.writerow({k: format_cell(row.get(k)) for k in columns})
    return buf.getvalue().encode()


class StoreWriteError(OSError):
    """A result file could not be written (disk full, I/O error); nothing partial was kept."""


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written: a write may be short without failing."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _append_durably(path: Path, data: bytes) -> None:
    """Append whole lines and fsync; on failure cut the file back to its length before."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
                os.fsync(fd)
            raise StoreWriteError(exc.errno, f"{path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _truncate(path: Path, length: int) -> None:
    with contextlib.suppress(OSError):
        os.truncate(path, length)


def _trim_torn_line(path: Path) -> int:
    """Cut a torn final line (a crash mid-append); returns how many bytes were cut."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        path.write_bytes(data[:keep])
        return len(data) - keep
    return 0


def write_atomically(path: Path, text: str) -> None:
    """Replace a small file whole: a reader sees the old or the new text, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreWriteError(exc.errno, f"{path}: {exc.strerror or exc}") from exc


def make_unique_dir(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`, ...: the first that this process creates itself (two
    commands started in the same second never share a directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()  # atomic: of two runs racing for a name, one gets it
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{path}: no free run directory name")


class RunStore:
    """Writes one run directory; reopened by --resume."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.points_csv = run_dir / "points.csv"
        self.workers_csv = run_dir / "workers.csv"
        self.hist_dir = run_dir / "hist"
        self.meta_json = run_dir / "meta.json"
        self.resume_file = run_dir / "RESUME"
        self._done: set[tuple[int, int]] | None = None
        self._run_id: str | None = None
        self.writer_lock: Any = None  # the RunDirLock held while this process writes here

    @property
    def run_id(self) -> str:
        """The id the run was created with (kept if its directory is moved or renamed)."""
        if self._run_id is None:
            try:
                self._run_id = str(self.meta()["run_id"])
            except (OSError, ValueError, KeyError):
                return self.dir.name
        return self._run_id

    @classmethod
    def create(
        cls,
        run_dir: Path,
        resolved: dict[str, Any],
        meta: dict[str, Any],
        on_created: Callable[[Path], None] = lambda _: None,
    ) -> RunStore:
        """A new run directory; runs started in the same second get -2, -3, ... suffixes.

        `on_created` runs on the empty directory first (to lock it). If anything fails, the
        directory is removed again: a refused run leaves nothing behind.
        """
        run_dir = make_unique_dir(run_dir)
        try:
            on_created(run_dir)
            meta = {**meta, "run_id": run_dir.name}
            store = cls(run_dir)
            write_atomically(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
            store.write_meta(meta)
            _append_durably(store.points_csv, (",".join(POINT_COLUMNS) + "\n").encode())
            _append_durably(store.workers_csv, (",".join(WORKER_COLUMNS) + "\n").encode())
            store.hist_dir.mkdir()
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        return store

    @classmethod
    def reopen(cls, run_dir: Path) -> RunStore:
        """The store of an existing run, its torn final lines trimmed (a crash mid-append)."""
        store = cls(run_dir)
        for path in (store.points_csv, store.workers_csv):
            if path.is_file():
                _trim_torn_line(path)
        return store

    def meta(self) -> dict[str, Any]:
        return json.loads(self.meta_json.read_text())

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_atomically(self.meta_json, json.dumps(meta, indent=2, default=str) + "\n")

    def update_meta(self, change: Callable[[dict[str, Any]], None]) -> None:
        meta = self.meta()
        change(meta)
        self.write_meta(meta)

    def write_resume_command(self, command: str) -> None:
        write_atomically(self.resume_file, command + "\n")

    def rows(self) -> list[dict[str, str]]:
        with self.points_csv.open(newline="") as f:
            return list(csv.DictReader(f))

    def completed(self) -> set[tuple[int, int]]:
        """(point, rep) pairs already recorded."""
        with self.points_csv.open(newline="") as f:
            return {(int(r["point"]), int(r["rep"])) for r in csv.DictReader(f)}

    def forget(self, pairs: set[tuple[int, int]]) -> None:
        """Drop the rows of `pairs` from points.csv (rewritten whole) and their npz files, so
        that they run again (a resume redoing failures from outside the point). The caller
        records what it dropped first; workers.csv follows with keep_worker_rows_of."""
        if not pairs:
            return
        with self.points_csv.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None) or POINT_COLUMNS
            lines = list(reader)
        at = header.index("point"), header.index("rep")
        keep = [r for r in lines if (_int(r[at[0]]), _int(r[at[1]])) not in pairs]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *keep])
        write_atomically(self.points_csv, buf.getvalue())
        for point, rep in pairs:
            with contextlib.suppress(FileNotFoundError):
                repetition_file(self.dir, point, rep).unlink()
        self._done = None

    def keep_worker_rows_of(self, done: set[tuple[int, int]]) -> int:
        """Drop workers.csv rows of pairs not in points.csv (a crash between the two
        appends); the pair runs again and writes them anew. Returns how many were dropped."""
        with self.workers_csv.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            lines = list(reader)
        keep = [r for r in lines if len(r) >= 2 and (_int(r[0]), _int(r[1])) in done]
        if len(keep) != len(lines):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([header or WORKER_COLUMNS, *keep])
            write_atomically(self.workers_csv, buf.getvalue())
        return len(lines) - len(keep)

    def append(
        self,
        row: dict[str, Any],
        workers: list[dict[str, Any]],
        hist_map: np.ndarray | None,
        hist_unmap: np.ndarray | None,
        series: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Store one finished (point, rep): all of it, or on a write error none of it.
        series: (series_t_ns, series_ops), saved in the same npz (timeseries.load_series)."""
        point, rep = row["point"], row["rep"]
        if self._done is None:
            self._done = self.completed()
        if (point, rep) in self._done:
            raise ValueError(f"point {point} rep {rep} is already in {self.points_csv}")
        workers_size = self.workers_csv.stat().st_size
        hist_path = repetition_file(self.dir, point, rep)
        try:
            if hist_map is not None and hist_unmap is not None:
                extra = (
                    {} if series is None else {"series_t_ns": series[0], "series_ops": series[1]}
                )
                np.savez_compressed(hist_path, map=hist_map, unmap=hist_unmap, **extra)
            per_worker = [{**w, "point": point, "rep": rep} for w in workers]
            _append_durably(self.workers_csv, _csv_lines(WORKER_COLUMNS, per_worker))
            # points.csv last: a row there means everything else for it is on disk
            _append_durably(self.points_csv, _csv_lines(POINT_COLUMNS, [row]))
        except OSError as exc:
            _truncate(self.workers_csv, workers_size)
            with contextlib.suppress(OSError):
                hist_path.unlink()
            if isinstance(exc, StoreWriteError):
                raise
            raise StoreWriteError(exc.errno, f"{hist_path}: {exc.strerror or exc}") from exc
        self._done.add((point, rep))


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
