"""Whether a process still exists: how the harness tells a stale leftover (an arena segment, a
run-registry entry, a report's staging directory, each named after the pid that made it) from
one whose owner is still at work."""

from __future__ import annotations

import os


def pid_alive(pid: object) -> bool:
    """True while a process of this pid exists (another user's counts); False for a pid that
    is not a positive int."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
