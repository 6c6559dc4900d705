"""Renderers of the report's blocks: Markdown (figures linked as PNG/SVG files beside it)
and self-contained HTML (figures embedded as base64 PNG, inline CSS, nothing fetched)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from iommubench.report.blocks import Block, caption


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(b: Block) -> list[str]:
    if b.kind == "h":
        level, text = b.data
        return [f"{'#' * level} {text}\n"]
    if b.kind == "p":
        return [f"{b.data}\n"]
    if b.kind == "list":
        return ["\n".join(f"- {i}" for i in b.data) + "\n"]
    if b.kind == "code":
        text, lang = b.data
        return [f"```{lang}\n{text}\n```\n"]
    if b.kind == "table":
        headers, rows = b.data
        out = ["| " + " | ".join(_md_cell(c) for c in headers) + " |"]
        out.append("|" + "|".join("---" for _ in headers) + "|")
        out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
        return [*out, ""]
    if b.kind == "figure":
        f = b.data
        links = f"[SVG]({f['svg']})" if f["svg"] else ""
        return [
            f"### {f['name']}\n",
            f"![{f['name']}]({f['png']})\n",
            f"{caption(f)} {links}".strip() + "\n",
        ]
    raise ValueError(f"unknown block kind {b.kind!r}")


def render_md(blocks: Sequence[Block]) -> str:
    return "\n".join(line for b in blocks for line in _md_block(b))


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

_NUMERIC = re.compile(r"^[-+]?[\d.]+( ?[kMGT])?%?x?( \(.*\))?$|^–$")


def inline(text: str) -> str:
    """Escape, then render `code` and **bold**."""
    out = []
    for part in re.split(r"(`[^`]+`)", text):
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(part)))
    return "".join(out)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{inline(c)}</th>" for c in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{inline(c)}</td>' if _NUMERIC.match(c) else f"<td>{inline(c)}</td>"
            for c in r
        )
        + "</tr>"
        for r in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="tablewrap">{table}</div>'


def _html_figure(f: dict, out_dir: Path) -> str:
    name = html.escape(f["name"])
    png = out_dir / f["png"]
    data = base64.b64encode(png.read_bytes()).decode("ascii") if png.exists() else ""
    return (
        f'<figure id="fig-{name}"><h3>{name}</h3>'
        f'<img alt="{name}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption(f) or f['name'])}</figcaption></figure>"
    )


def _html_block(b: Block, out_dir: Path) -> str:
    if b.kind == "h":
        level, text = b.data
        return f"<h{level}>{inline(text)}</h{level}>"
    if b.kind == "p":
        return f"<p>{inline(b.data)}</p>"
    if b.kind == "list":
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.data) + "</ul>"
    if b.kind == "code":
        return f"<pre><code>{html.escape(b.data[0])}</code></pre>"
    if b.kind == "table":
        return _html_table(*b.data)
    if b.kind == "figure":
        return _html_figure(b.data, out_dir)
    raise ValueError(f"unknown block kind {b.kind!r}")


def render_html(blocks: Sequence[Block], title: str, out_dir: Path) -> str:
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    return "\n".join([*head, *(_html_block(b, out_dir) for b in blocks), "</body></html>"])
