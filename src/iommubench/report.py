"""The report of a run: report.md and a self-contained report.html, with the figures.

The report is built once as a list of blocks (headings, paragraphs, tables, lists, code,
figures) and rendered twice: to Markdown (figures linked as PNG/SVG files next to it) and to
HTML (figures embedded as base64 PNG, inline CSS, nothing fetched from a network).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from iommubench import machine, plots, sections, stats

WIN_BAND = 0.05

FIGURE_CAPTIONS = {
    "throughput": (
        "Median throughput over the valid repetitions of each point, with its 95% bootstrap "
        "interval as a band. Dotted: the linear ideal from the series' smallest worker count. "
        "Crosses: points whose audit failed (never joined into lines). Hatched: more workers "
        "than CPUs available."
    ),
    "scaling": (
        "Speedup (throughput / the group's 1-worker throughput) and parallel efficiency "
        "(speedup / workers). Dotted: perfect scaling."
    ),
    "contention": (
        "Share of worker time spent waiting for a lock (lock_wait_ns / (duration x workers)), "
        "and failed compare-and-swap attempts per operation."
    ),
    "latency": (
        "Map and unmap latency percentiles on a log scale: p50 solid with filled markers, p99 "
        "dashed with hollow markers."
    ),
    "fairness": (
        "Per-worker fairness: Jain's index over the workers' op counts (1 = perfectly even) and "
        "the least busy worker's ops over the busiest's (below 0.5 = starvation)."
    ),
}


# --------------------------------------------------------------------------- blocks


@dataclass
class Block:
    kind: str  # h, p, table, list, code, figure, md
    data: Any


def h(level: int, text: str) -> Block:
    return Block("h", (level, text))


def p(text: str) -> Block:
    return Block("p", text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> Block:
    return Block("table", (list(headers), [[str(c) for c in r] for r in rows]))


def bullets(items: Sequence[str]) -> Block:
    return Block("list", list(items))


def code(text: str, lang: str = "") -> Block:
    return Block("code", (text.rstrip("\n"), lang))


# --------------------------------------------------------------------------- formatting


def _isnum(v: Any) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))


def eng(v: Any, digits: int = 3) -> str:
    """1.23 M style numbers; '–' for missing."""
    if not _isnum(v):
        return "–"
    v = float(v)
    if v == 0:
        return "0"
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= div:
            return f"{v / div:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


def pct(v: Any, digits: int = 1) -> str:
    return f"{100 * float(v):.{digits}f}%" if _isnum(v) else "–"


def num(v: Any, digits: int = 2) -> str:
    return f"{float(v):.{digits}f}" if _isnum(v) else "–"


def ns(v: Any) -> str:
    return f"{float(v):.0f}" if _isnum(v) else "–"


# --------------------------------------------------------------------------- content


def _summary_rows(summary: pd.DataFrame, shown: list[str]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "point",
        *shown,
        "reps ok/all",
        "median ops/s",
        "95% CI",
        "CV",
        "speedup",
        "efficiency",
        "lock wait",
        "CAS fail/op",
        "map p99 ns",
        "unmap p99 ns",
        "Jain",
        "audit",
    ]
    rows = []
    for _, r in summary.iterrows():
        verdict = {
            "ok": "ok",
            "partial": "ok (some reps failed)",
            "caught": "caught (control)",
            "audit-failed": "**FAILED**",
            "error": "**error**",
        }.get(r["verdict"], str(r["verdict"]))
        ci = "–" if not _isnum(r["ci_lo"]) else f"{eng(r['ci_lo'])} – {eng(r['ci_hi'])}"
        if r["ci_single"]:
            ci += " (1 rep)"
        flags = []
        if r["oversubscribed"]:
            flags.append("over")
        if r["noisy"]:
            flags.append("noisy")
        if r["handoff_unstable"]:
            flags.append("handoff")
        median = eng(r["ops_per_s"]) + ("" if r["valid"] else " (invalid)")
        rows.append(
            [
                str(int(r["point"])) + (f" [{', '.join(flags)}]" if flags else ""),
                *[stats.norm_value(r.get(c)) or "–" for c in shown],
                f"{int(r['reps_valid'])}/{int(r['reps'])}",
                median,
                ci,
                pct(r["cv"]),
                num(r.get("speedup")),
                pct(r.get("efficiency"), 0),
                pct(r["contention_share"]),
                f"{r['cas_fail_per_op']:.2g}" if _isnum(r["cas_fail_per_op"]) else "–",
                ns(r.get("map_p99_ns")),
                ns(r.get("unmap_p99_ns")),
                num(r["jain"], 3),
                verdict,
            ]
        )
    return headers, rows


def _winner_rows(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    w = stats.winners(summary, band=WIN_BAND)
    headers = ["context", "workers", "winner(s)", "best median ops/s", "drivers compared"]
    rows = [
        [
            r["context"],
            stats.norm_value(r["workers"]),
            r["winners"],
            eng(r["best_ops_per_s"]),
            str(int(r["candidates"])),
        ]
        for _, r in w.iterrows()
    ]
    return headers, rows


def _scaling_rows(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    controls = (
        summary["point"][summary.get("driver", pd.Series(dtype=str)).isin(stats.NEGATIVE_CONTROLS)]
        if "driver" in summary
        else []
    )
    sc = stats.scaling(summary)
    sc = sc[~sc["point"].isin(list(controls))]
    headers = ["group", "peak ops/s", "at workers", "collapse (peak / at max workers)"]
    rows = []
    for g, d in sc.groupby("group", sort=False):
        r = d.iloc[0]
        rows.append(
            [
                str(g),
                eng(r["peak_ops_per_s"]),
                stats.norm_value(r["peak_workers"]) or "–",
                num(r["collapse_factor"]),
            ]
        )
    return headers, rows


def build(
    run: stats.Run,
    summary: pd.DataFrame,
    figures: Sequence[Path],
    extra_sections: Sequence[tuple[str, str]] = (),
) -> list[Block]:
    """The report's blocks, in order."""
    meta = run.meta
    cfg = run.config or {}
    blocks: list[Block] = [h(1, f"iommubench report: {run.run_id}")]
    if cfg.get("description") or cfg.get("name"):
        blocks.append(p(f"**{cfg.get('name', '')}** {cfg.get('description', '')}".strip()))
    n_pts = len(summary)
    counts = summary["verdict"].value_counts().to_dict() if n_pts else {}
    overview = [
        f"{n_pts} points, {int(summary['reps'].sum()) if n_pts else 0} repetitions",
        f"valid points: {int(summary['valid'].sum()) if n_pts else 0}",
        "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"started: {meta.get('started', 'unknown')}",
        f"iommubench {meta.get('version') or meta.get('iommubench_version') or '?'}, "
        f"git {meta.get('git_sha') or 'unknown'}",
    ]
    blocks.append(bullets(overview))

    # warnings first: they qualify every number below
    warns = stats.warnings(run, summary)
    blocks.append(h(2, "Warnings"))
    blocks.append(bullets(warns) if warns else p("None."))

    blocks.append(h(2, "Correctness"))
    notes = stats.audit_notes(summary)
    failed = summary[summary["verdict"] == "audit-failed"] if n_pts else summary
    lines = [
        f"point {int(r['point'])}: AUDIT FAILED ({r['audit_detail'] or 'audit_ok is False'})"
        for _, r in failed.iterrows()
    ]
    lines += [f"{n} — expected for the negative control" for n in notes]
    if not lines:
        lines = ["every point passed its audit"]
    blocks.append(bullets(lines))

    shown = stats.varying_params(summary) if n_pts else []
    blocks.append(h(2, "Summary per point"))
    blocks.append(
        p(
            "Median over valid repetitions (status ok and audit passed) with a 95% bootstrap "
            "interval of the median; CV = coefficient of variation; lock wait = share of worker "
            "time spent waiting for any lock (domain, IOVA tree, invalidation queue, walk guard). "
            "Flags: over = oversubscribed, noisy = CV > 10% or "
            "CI half-width > 5%, handoff = placement changed during the point."
        )
    )
    blocks.append(table(*_summary_rows(summary, shown)))

    blocks.append(h(2, "Winner per worker count"))
    blocks.append(
        p(
            f"Drivers within {WIN_BAND:.0%} of the best median throughput are co-winners; "
            "points without a valid result and the naive control are not candidates."
        )
    )
    wh, wr = _winner_rows(summary)
    blocks.append(table(wh, wr) if wr else p("No valid points to compare."))

    sh, sr = _scaling_rows(summary)
    if sr:
        blocks.append(h(2, "Scaling"))
        blocks.append(table(sh, sr))

    blocks.append(h(2, "Figures"))
    pngs = [f for f in figures if f.suffix == ".png"]
    if not pngs:
        blocks.append(p("No figures."))
    for f in pngs:
        svg = f.with_suffix(".svg")
        blocks.append(Block("figure", (f, svg if svg.exists() else None)))

    blocks.append(h(2, "Machine"))
    blocks.append(table(["property", "value"], machine.summary_items(meta)))

    blocks.append(h(2, "Configuration (resolved)"))
    if meta.get("config_path"):
        blocks.append(p(f"From `{meta['config_path']}`."))
    blocks.append(code(run.config_text or "(config.yaml missing)", "yaml"))

    for title, body in extra_sections:
        blocks.append(h(2, title))
        blocks.append(Block("md", body))

    blocks.append(h(2, "Reproduce"))
    blocks.append(code(meta.get("command") or "(command not recorded in meta.json)", "sh"))
    blocks.append(
        p(
            f"Report generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} "
            f"from `{run.run_dir}`."
        )
    )
    return blocks


# --------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_md(blocks: Sequence[Block], out_dir: Path) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind == "h":
            level, text = b.data
            out.append(f"{'#' * level} {text}\n")
        elif b.kind == "p":
            out.append(f"{b.data}\n")
        elif b.kind == "list":
            out.append("\n".join(f"- {i}" for i in b.data) + "\n")
        elif b.kind == "code":
            text, lang = b.data
            out.append(f"```{lang}\n{text}\n```\n")
        elif b.kind == "table":
            headers, rows = b.data
            out.append("| " + " | ".join(_md_cell(c) for c in headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
            out.append("")
        elif b.kind == "figure":
            png, svg = b.data
            rel = _rel(png, out_dir)
            out.append(f"### {png.stem}\n")
            out.append(f"![{png.stem}]({rel})\n")
            caption = FIGURE_CAPTIONS.get(png.stem, "")
            links = f"[SVG]({_rel(svg, out_dir)})" if svg else ""
            out.append(f"{caption} {links}".strip() + "\n")
        elif b.kind == "md":
            out.append(b.data.rstrip("\n") + "\n")
    return "\n".join(out)


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


# --------------------------------------------------------------------------- html

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eee; }
tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
pre { background: #f4f4f4; border: 1px solid #ddd; padding: .7em; overflow-x: auto; }
code { font-family: Menlo, Consolas, monospace; font-size: 90%; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #444; }
.tablewrap { overflow-x: auto; }
"""


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold**."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            esc = html.escape(part)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", esc))
    return "".join(out)


_BULLET = re.compile(r"^[-*]\s+")
_NUMERIC = re.compile(r"^[-+]?[\d.]+( ?[kMGT])?%?( \(.*\))?$|^–$")


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_inline(c)}</th>" for c in headers)
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="num">{_inline(c)}</td>' if _NUMERIC.match(c) else f"<td>{_inline(c)}</td>"
            for c in r
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def markdown_to_html(text: str) -> str:
    """A small Markdown subset for extra sections: headings, paragraphs, lists, code, tables."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1 : j]))}</code></pre>")
            i = j + 1
            continue
        if m := re.match(r"^(#{1,6})\s+(.*)$", s):
            flush()
            level = min(len(m.group(1)) + 2, 6)
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif s.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            if rows:
                out.append(_html_table(rows[0], rows[1:]))
            continue
        elif _BULLET.match(s):
            flush()
            items = []
            while i < len(lines) and _BULLET.match(lines[i].strip()):
                item = _BULLET.sub("", lines[i].strip())
                items.append(f"<li>{_inline(item)}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
            continue
        elif not s:
            flush()
        else:
            para.append(s)
        i += 1
    flush()
    return "\n".join(out)


def render_html(blocks: Sequence[Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    for b in blocks:
        if b.kind == "h":
            level, text = b.data
            out.append(f"<h{level}>{_inline(text)}</h{level}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.data)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.data) + "</ul>")
        elif b.kind == "code":
            text, _ = b.data
            out.append(f"<pre><code>{html.escape(text)}</code></pre>")
        elif b.kind == "table":
            out.append(_html_table(*b.data))
        elif b.kind == "figure":
            png, _ = b.data
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            caption = FIGURE_CAPTIONS.get(png.stem, png.stem)
            out.append(
                f'<figure id="fig-{html.escape(png.stem)}"><h3>{html.escape(png.stem)}</h3>'
                f'<img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        elif b.kind == "md":
            out.append(markdown_to_html(b.data))
    out.append("</body></html>")
    return "\n".join(out)


# --------------------------------------------------------------------------- entry point


def write_report(
    run_dir: str | Path,
    out_dir: str | Path,
    extra_sections: Sequence[tuple[str, str]] = (),
    x: str = "workers",
    hue: str | None = "driver",
    facet: str | None = None,
) -> tuple[Path, Path]:
    """Write report.md, report.html and the figures (PNG + SVG) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = stats.load_run(run_dir)
    summary = stats.with_scaling(stats.summarize(run))
    figures = plots.make_figures(run_dir, out, x=x, hue=hue, facet=facet, summary=summary)
    blocks = build(run, summary, figures, [*sections.for_run(run), *extra_sections])
    md_path = out / "report.md"
    html_path = out / "report.html"
    md_path.write_text(render_md(blocks, out))
    html_path.write_text(render_html(blocks, f"iommubench report: {run.run_id}"))
    return md_path, html_path
