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


def collapse_text(r: dict[str, Any]) -> str:
    """'collapse 1.90x [1.80, 2.01]' or 'inconclusive (load): 1.2x [..]' for a scaling row."""
    verdict = r.get("collapse_verdict") or ""
    if verdict == "peak at the largest" or r.get("collapse_factor") is None:
        return "no collapse: the peak is at the largest worker count"
    factor = ratio(r["collapse_factor"], r.get("collapse_lo"), r.get("collapse_hi"))
    return f"{verdict} {factor}" if verdict == "collapse" else f"collapse {verdict}: {factor}"


def peak_text(r: dict[str, Any], unit: str = "") -> str:
    """'peak 33.1 M I/O/s at 2 worker(s) (over 1: 1.86x [1.80, 1.91])', or with the verdict
    that kept it from being one; no verdict where the collapse says the same (the next best
    is the largest worker count)."""
    verdict = r.get("peak_verdict") or ""
    at = f"peak {eng(r['peak'])}{' ' + unit if unit else ''} at {r['peak_workers']} worker(s)"
    same = r.get("peak_over") == r.get("max_workers") and r.get("collapse_verdict") not in (
        None,
        "",
        "peak at the largest",
    )
    if verdict in ("", "one worker count") or same:
        return at
    r_over = ratio(r.get("peak_ratio"), r.get("peak_lo"), r.get("peak_hi"))
    over = f"over {r['peak_over']}: {r_over}"
    return f"{at} ({over})" if verdict == "peak" else f"{at}: {verdict} ({over})"
