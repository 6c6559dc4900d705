"""SIGINT and SIGTERM: stop the current point, keep every finished row.

The handler raises KeyboardInterrupt at once, so a blocking wait ends promptly. But an
exception raised while the interpreter runs an at-fork callback or a destructor is printed
and dropped (a signal landing while a worker is being forked was lost this way), so the
handler also records the signal, and the runner's wait loop and the sweep loop re-raise from
the record at safe points.
"""

from __future__ import annotations

import signal
from typing import Any

_received: int | None = None


def _handler(signum: int, frame: Any) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt


def install() -> None:
    global _received
    _received = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def raise_if_requested() -> None:
    if _received is not None:
        raise KeyboardInterrupt
