"""The plain-text summary of a run (`report RUN --format text`): the decided comparisons
first, then one line per point; every line at most 72 columns. Renders summary.json's
content and computes nothing."""

from __future__ import annotations

import textwrap
from typing import Any

from iommubench.report.blocks import winner_text
from iommubench.report.fmt import collapse_text, eng, num, pct, peak_text, ratio

WIDTH = 72


def fit(line: str, indent: int = 4) -> list[str]:
    """One logical line as lines of at most WIDTH columns (continuations indented)."""
    if len(line) <= WIDTH:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    return textwrap.wrap(
        line.strip(),
        WIDTH,
        initial_indent=" " * lead,
        subsequent_indent=" " * (lead + indent),
        break_long_words=True,
        break_on_hyphens=False,
    )


def flag_text(flags: list[str]) -> str:
    """' [competing-load, noisy]' or '' when the claim carries no flag."""
    return f" [{', '.join(flags)}]" if flags else ""


def _winner_lines(w: dict[str, Any]) -> list[str]:
    ctx = f"{w['context']} w={w['workers']}"
    verdict = f"winner {w['winner']}" if w["verdict"] == "winner" else winner_text(w)
    out = [f"  {ctx}: {verdict}{flag_text(w.get('flags') or [])}"]
    if w.get("runner_up"):
        vs = f"{w.get('leader') or w['winner'] or w['tied'][0]} / {w['runner_up']}"
        out.append(f"      {vs} = {ratio(w['ratio'], w['lo'], w['hi'])}")
    return out


def _headline(s: dict[str, Any]) -> list[str]:
    out = ["Decided comparisons (leader / closest rival, 95% CI) [flags]:"]
    if not s["winners"]:
        out.append("  none: no context has two valid candidates")
    for w in s["winners"]:
        out += _winner_lines(w)
    for r in s["scaling"]:
        out.append(
            f"  scaling {r['group']}: {peak_text(r, s['unit'])}; "
            f"{collapse_text(r)}{flag_text(r.get('flags') or [])}"
        )
    return out


def _strategy_lines(s: dict[str, Any]) -> list[str]:
    if not s.get("strategies"):
        return []
    out = ["", "Strategies side by side: median, of best, Jain, busiest/least:"]
    last = None
    for r in s["strategies"]:
        if (r["context"], r["workers"]) != last:
            last = (r["context"], r["workers"])
            out.append(f"  {r['context']} w={r['workers']}:")
        out.append(
            f"    {r['strategy']:<26} {eng(r['ops_per_s']):>7} {pct(r['of_best'], 0):>5} "
            f"Jain {num(r['jain'], 3)} spread {num(r['ops_spread'])}"
        )
    return out


def _point_lines(pt: dict[str, Any]) -> list[str]:
    kind = "CI" if pt["interval"] == "95% CI" else "range"
    iv = f"[{eng(pt['lo'])}, {eng(pt['hi'])}] {kind}" if pt["lo"] is not None else "–"
    est = eng(pt["estimate"]) + ("" if pt["valid"] else "!")
    first = f"{pt['point']:>4} {pt['label']}"
    second = f"     {est:>8} {iv:<26} n={pt['n']:<2} {' '.join(pt['flags'])}".rstrip()
    return [first, second]


def _warning_lines(s: dict[str, Any]) -> list[str]:
    out = []
    if s["warnings"]:
        out += ["", "Warnings:"] + [f"  - {w}" for w in s["warnings"]]
    if s.get("point_warnings"):
        out += ["", "Per point (point label [flags]: details):"]
        for pw in s["point_warnings"]:
            head = f"  {pw['point']:>3} {pw['label']}{flag_text(pw['flags'])}"
            out.append(f"{head}: {'; '.join(pw['details'])}")
    return out


def render_text(s: dict[str, Any]) -> str:
    o = s["overview"]
    lines = [f"iommubench {s['run_id']}: {s['name'] or 'run'} ({s['unit']})"]
    lines.append(f"conditions: {o['conditions']}")
    lines.append(f"estimator: {o['estimator_short']}")
    lines.append("")
    lines += _headline(s)
    lines += _strategy_lines(s)
    lines += [
        "",
        f"Per point: median {s['unit']}, interval (CI: 95% from order",
        "statistics; range: min-max of n), n, flags; ! = no valid result",
    ]
    for pt in s["points"]:
        lines += _point_lines(pt)
    lines += _warning_lines(s)
    return "\n".join(part for line in lines for part in (fit(line) if line else [""]))
