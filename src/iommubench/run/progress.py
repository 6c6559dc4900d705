"""Progress of a sweep: a live display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Reporter(Protocol):
    def start(self, total: int) -> None: ...
    def point_started(self, label: str) -> None: ...
    def point_finished(self, label: str, summary: str) -> None: ...
    def close(self) -> None: ...


class LiveReporter:
    def __init__(self) -> None:
        self._console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[last]}"),
            console=self._console,
        )
        self._task = None

    def start(self, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("sweep", total=total, last="")

    def point_started(self, label: str) -> None:
        self._progress.update(self._task, description=label)

    def point_finished(self, label: str, summary: str) -> None:
        self._progress.update(self._task, advance=1, last=f"last: {summary}")

    def close(self) -> None:
        self._progress.stop()


class PlainReporter:
    def __init__(self) -> None:
        self._total = 0
        self._done = 0
        self._t0 = time.monotonic()

    def start(self, total: int) -> None:
        self._total = total
        self._t0 = time.monotonic()

    def point_started(self, label: str) -> None:
        pass

    def point_finished(self, label: str, summary: str) -> None:
        self._done += 1
        elapsed = time.monotonic() - self._t0
        eta = elapsed / self._done * (self._total - self._done)
        print(
            f"[{self._done}/{self._total}] {label}: {summary} (eta {eta:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        pass


def make_reporter() -> Reporter:
    return LiveReporter() if sys.stderr.isatty() else PlainReporter()
