"""A run directory: config.yaml, meta.json, points.csv, workers.csv, hist/.

The resolved config and meta.json are written before the first point. Each finished point is
appended to points.csv as one write of whole lines followed by fsync, so a crash leaves at
most a torn final line, which reopening (for --resume) trims.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from iommubench.columns import POINT_COLUMNS

WORKER_COLUMNS = [
    "point", "rep", "worker", "cpu", "ops", "maps", "unmaps", "lock_acquisitions",
    "lock_contended", "lock_wait_ns", "cas_attempts", "cas_failures", "tables_allocated",
    "tables_freed", "start_ns", "end_ns",
]  # fmt: skip


def new_run_id(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"


def format_cell(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return ";".join(str(v) for v in value)
    if value is None:
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


def _append_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _trim_torn_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _make_unique_dir(path: Path) -> Path:
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

    @property
    def run_id(self) -> str:
        return self.dir.name

    @classmethod
    def create(cls, run_dir: Path, resolved: dict[str, Any], meta: dict[str, Any]) -> RunStore:
        """A new run directory; runs started in the same second get -2, -3, ... suffixes."""
        run_dir = _make_unique_dir(run_dir)
        meta = {**meta, "run_id": run_dir.name}
        store = cls(run_dir)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        (run_dir / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        _append_durably(store.points_csv, (",".join(POINT_COLUMNS) + "\n").encode())
        _append_durably(store.workers_csv, (",".join(WORKER_COLUMNS) + "\n").encode())
        store.hist_dir.mkdir()
        return store

    @classmethod
    def reopen(cls, run_dir: Path) -> RunStore:
        store = cls(run_dir)
        for path in (store.points_csv, store.workers_csv):
            _trim_torn_line(path)
        return store

    def rows(self) -> list[dict[str, str]]:
        with self.points_csv.open(newline="") as f:
            return list(csv.DictReader(f))

    def completed(self) -> set[tuple[int, int]]:
        """(point, rep) pairs already recorded."""
        with self.points_csv.open(newline="") as f:
            return {(int(r["point"]), int(r["rep"])) for r in csv.DictReader(f)}

    def append(
        self,
        row: dict[str, Any],
        workers: list[dict[str, Any]],
        hist_map: np.ndarray | None,
        hist_unmap: np.ndarray | None,
    ) -> None:
        point, rep = row["point"], row["rep"]
        if hist_map is not None and hist_unmap is not None:
            np.savez_compressed(
                self.hist_dir / f"p{point:04d}-r{rep:03d}.npz", map=hist_map, unmap=hist_unmap
            )
        per_worker = [{**w, "point": point, "rep": rep} for w in workers]
        _append_durably(self.workers_csv, _csv_lines(WORKER_COLUMNS, per_worker))
        # points.csv last: a row there means everything else for it is on disk
        _append_durably(self.points_csv, _csv_lines(POINT_COLUMNS, [row]))
