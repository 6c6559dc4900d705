"""SIGINT, SIGTERM and SIGHUP: stop the current point, keep every finished row.

SIGHUP (a closed terminal, a dropped SSH session, a killed tmux session) takes the same path
as SIGTERM, so the arena is unlinked and the workers reaped there too; the resume command is
in the run directory (RESUME) for a user who no longer has the terminal.

The handler raises KeyboardInterrupt at once, so a blocking wait ends promptly. But an
exception raised while the interpreter runs an at-fork callback or a destructor is printed
and dropped (a signal landing while a worker is being forked was lost this way), so the
handler also records the signal, and the runner's wait loop and the sweep loop re-raise from
the record at safe points.
"""

from __future__ import annotations

import signal
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: int | None = None


def _handler(signum: int, frame: Any) -> None:
    global _received
    _received = signum
    raise KeyboardInterrupt


def install() -> None:
    global _received
    _received = None
    for sig in HANDLED:
        signal.signal(sig, _handler)


def received() -> str | None:
    """The name of the signal that stopped the run (SIGINT, SIGTERM, SIGHUP), if any."""
    return None if _received is None else signal.Signals(_received).name


def raise_if_requested() -> None:
    if _received is not None:
        raise KeyboardInterrupt
