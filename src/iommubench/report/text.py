"""The plain-text summary of a run (`report RUN --format text`): the decided comparisons
first, then one line per point; every line at most 72 columns. Renders summary.json's
content and computes nothing."""

from __future__ import annotations

import textwrap
from typing import Any

from iommubench.report.blocks import winner_text
from iommubench.report.fmt import eng, num, pct, ratio

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


def _headline(s: dict[str, Any]) -> list[str]:
    out = ["Decided comparisons (best strategy / closest rival, 95% CI):"]
    if not s["winners"]:
        out.append("  none: no context has two valid candidates")
    for w in s["winners"]:
        ctx = f"{w['context']} w={w['workers']}"
        verdict = f"winner {w['winner']}" if w["verdict"] == "winner" else winner_text(w)
        out.append(f"  {ctx}: {verdict}")
        if w["runner_up"]:
            vs = f"{w['winner'] or w['tied'][0]} / {w['runner_up']}"
            out.append(f"      {vs} = {ratio(w['ratio'], w['lo'], w['hi'])}")
    for r in s["scaling"]:
        out.append(
            f"  scaling {r['group']}: peak {eng(r['peak'])} {s['unit']} at "
            f"{r['peak_workers']} worker(s), collapse {r['collapse_factor']:.2f}"
            if r["collapse_factor"] is not None
            else f"  scaling {r['group']}: peak {eng(r['peak'])} at {r['peak_workers']}"
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
            f"    {r['strategy']:<24} {eng(r['ops_per_s']):>8} {pct(r['of_best'], 0):>5} "
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


def render_text(s: dict[str, Any]) -> str:
    lines = [f"iommubench {s['run_id']}: {s['name'] or 'run'} ({s['unit']})"]
    machines = s["overview"].get("machines") or []
    if len(machines) > 1 or any("+" in m for m in machines):
        lines.append("machines: " + ", ".join(machines) + " (a+b: identical hosts, pooled)")
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
    aside = s["overview"]["set_aside"]
    if aside:
        lines += ["", "Set aside: " + ", ".join(f"{k} {v}" for k, v in aside.items())]
    if s["warnings"]:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in s["warnings"]]
    return "\n".join(part for line in lines for part in (fit(line) if line else [""]))
