"""Number formatting shared by the report renderers (missing values print as '–')."""

from __future__ import annotations

import math
from typing import Any


def isnum(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def eng(v: Any, digits: int = 3) -> str:
    """1.23 M style numbers; '–' for missing."""
    if not isnum(v):
        return "–"
    v = float(v)
    if v == 0:
        return "0"
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= div:
            return f"{v / div:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


def pct(v: Any, digits: int = 1) -> str:
    return f"{100 * float(v):.{digits}f}%" if isnum(v) else "–"


def num(v: Any, digits: int = 2) -> str:
    return f"{float(v):.{digits}f}" if isnum(v) else "–"


def ns(v: Any) -> str:
    return f"{float(v):.0f}" if isnum(v) else "–"


def interval(p: dict[str, Any]) -> str:
    """'1.2 M – 1.5 M (95% CI)' or '... (range, n=3)' for one summary point."""
    if not isnum(p.get("lo")):
        return "–"
    kind = "95% CI" if p.get("interval") == "95% CI" else f"range, n={p.get('n')}"
    return f"{eng(p['lo'])} – {eng(p['hi'])} ({kind})"


def ratio(r: Any, lo: Any, hi: Any) -> str:
    """'1.93x [1.85, 2.01]' (or without the interval when it has none)."""
    if not isnum(r):
        return "–"
    if not (isnum(lo) and isnum(hi)):
        return f"{r:.2f}x [no interval]"
    return f"{r:.2f}x [{lo:.2f}, {hi:.2f}]"
