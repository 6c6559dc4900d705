"""The report's layout: summary.json's content as a list of blocks (headings, paragraphs,
tables, lists, code, figures) for the Markdown and HTML renderers. Only formatting here:
every number comes from the summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iommubench.analysis.decisions import WIN_MARGIN
from iommubench.report.fmt import eng, interval, isnum, ns, num, pct, peak_text, ratio

LINE_KEY = (
    " In every figure a series is a colour and a marker; solid lines join points measured "
    "under clean conditions; a dashed line with a hollow marker touches a flagged point "
    "(competing load, a level shift, a stretched window, a placement change, noisy, or "
    "oversubscribed); dotted: an ideal or reference line; dash-dot: a fitted model. "
    "Crosses: audit failed; grey diamonds: no valid repetition (not an audit failure)."
)
FIGURE_CAPTIONS = {
    "throughput": (
        "Median throughput over the same-state valid repetitions of each point, with its "
        "interval as a band (a 95% CI from 6 repetitions, else the range). Hatched: more "
        "workers than CPUs available." + LINE_KEY
    ),
    "scaling": (
        "Speedup (the Hodges-Lehmann ratio of a point to the group's 1-worker point) and "
        "parallel efficiency (speedup / workers), with their 95% CI as a band, for points "
        "within the CPU count." + LINE_KEY
    ),
    "contention": (
        "Share of worker time spent waiting for a lock, and failed CAS per operation." + LINE_KEY
    ),
    "latency": "Map and unmap latency, p50 and p99, one panel each." + LINE_KEY,
    "fairness": "Per-worker fairness: Jain's index and least busy / busiest worker." + LINE_KEY,
}
VERDICT_TEXT = {
    "ok": "ok",
    "partial": "ok (some reps failed)",
    "caught": "caught (control)",
    "audit-failed": "**FAILED**",
    "error": "**error**",
}


@dataclass
class Block:
    kind: str  # h, p, table, list, code, figure
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


def _points_table(s: dict[str, Any]) -> Block:
    unit = s["unit"]
    shown = s["shown"]
    headers = [
        "point",
        *shown,
        "n",
        f"median {unit}",
        "interval",
        "flags",
        "set aside",
        "state",
        "CV",
        "CV within",
        "speedup",
        "efficiency",
        "lock wait",
        "map p99 ns",
        "unmap p99 ns",
        "Jain",
        "audit",
    ]
    rows = []
    for pt in s["points"]:
        aside = ", ".join(f"{k} {v}" for k, v in pt["set_aside"].items()) or "–"
        rows.append(
            [
                str(pt["point"]),
                *[pt["params"].get(c, "–") for c in shown],
                str(pt["n"]),
                eng(pt["estimate"]) + ("" if pt["valid"] else " (invalid)"),
                interval(pt),
                ", ".join(pt["flags"]) or "–",
                aside,
                pt["state"] or "–",
                pct(pt["cv"]),
                pct(pt["batch_cv"]),
                num(pt["speedup"]),
                pct(pt["efficiency"], 0),
                pct(pt["contention_share"]),
                ns(pt["map_p99_ns"]),
                ns(pt["unmap_p99_ns"]),
                num(pt["jain"], 3),
                VERDICT_TEXT.get(pt["verdict"], pt["verdict"]),
            ]
        )
    return table(headers, rows)


def winner_text(w: dict[str, Any]) -> str:
    """'lockfree', 'no significant difference (a, b)' or 'inconclusive (load): why'."""
    if w["verdict"] == "winner":
        return w["winner"]
    if w["tied"]:
        return f"no significant difference ({', '.join(w['tied'])})"
    return f"{w['verdict']}: {w.get('note') or w['method']}"


def flags_cell(flags: Sequence[str] | None) -> str:
    return ", ".join(flags or []) or "–"


def collapse_cell(r: dict[str, Any]) -> str:
    """'collapse 1.90x [1.80, 2.01]', 'inconclusive (load): 1.2x [..]' or 'none'."""
    verdict = r.get("collapse_verdict") or ""
    if verdict == "peak at the largest" or not isnum(r.get("collapse_factor")):
        return "none: the peak is at the largest worker count"
    factor = ratio(r["collapse_factor"], r.get("collapse_lo"), r.get("collapse_hi"))
    return f"{verdict} {factor}" if verdict == "collapse" else f"{verdict}: {factor}"


def _winners(s: dict[str, Any]) -> list[Block]:
    out = [
        h(2, "Winner per worker count"),
        p(
            "Candidates are locking strategies: the driver with the algorithm of the lock it "
            "takes (domain-lock/ticket, table-lock/mcs, lockfree). A strategy wins only when "
            "the 95% CI of its throughput ratio to every other one lies above "
            f"{1 + WIN_MARGIN:g}: significantly ahead by more than {WIN_MARGIN:.0%}, also once "
            "each repetition is moved by what its measured load could explain (else "
            "`inconclusive (load)`) and with the set-aside repetitions put back (else "
            "`inconclusive (set aside)`); otherwise the tied strategies are named. "
            "Candidates: valid points within the CPU count; the naive control is never one. "
            "Ratio: the leader over its closest rival. Flags: those of the points the claim "
            "rests on."
        ),
    ]
    if not s["winners"]:
        return [*out, p("No context has two valid candidates.")]
    rows = [
        [
            w["context"],
            w["workers"],
            winner_text(w),
            flags_cell(w.get("flags")),
            eng(w["best_ops_per_s"]),
            f"{w.get('leader') or '–'} / {w['runner_up'] or '–'}",
            ratio(w["ratio"], w["lo"], w["hi"]),
            str(w["candidates"]),
        ]
        for w in s["winners"]
    ]
    head = [
        "context",
        "workers",
        "winner",
        "flags",
        f"best median {s['unit']}",
        "leader / closest rival",
        "ratio [95% CI]",
        "strategies",
    ]
    return [*out, table(head, rows)]


def _strategies(s: dict[str, Any]) -> list[Block]:
    if not s.get("strategies"):
        return []
    rows = [
        [
            r["context"],
            r["workers"],
            r["strategy"],
            eng(r["ops_per_s"]),
            interval(r),
            pct(r["of_best"], 0),
            num(r["jain"], 3),
            num(r["ops_spread"]),
            pct(r["lock_contended_share"]),
            ns(r["lock_mean_wait_ns"]),
        ]
        for r in s["strategies"]
    ]
    return [
        h(2, "Locking strategies compared"),
        p(
            "Every strategy of a context and worker count side by side, fastest first "
            "(medians over the valid repetitions; the winner table above says which "
            "differences are significant). Of best: the median over the fastest one's. "
            "Fairness: Jain's index of the per-worker operation counts (1: equal work; 1/n: "
            "one worker did it all) and busiest / least busy worker; a FIFO lock (ticket, "
            "MCS, qspinlock) keeps both near 1, a test-and-set lock lets the CPU that "
            "released it win it again. Contended and mean wait: the strategy's own lock "
            "(the domain or table locks), per acquisition and per contended acquisition."
        ),
        table(
            [
                "context",
                "workers",
                "strategy",
                f"median {s['unit']}",
                "interval",
                "of best",
                "Jain",
                "busiest / least",
                "contended",
                "mean wait ns",
            ],
            rows,
        ),
    ]


def _scaling(s: dict[str, Any]) -> list[Block]:
    if not s["scaling"]:
        return []
    rows = [
        [
            r["group"],
            peak_text(r),
            r["max_workers"],
            collapse_cell(r),
            flags_cell(r.get("flags")),
        ]
        for r in s["scaling"]
    ]
    return [
        h(2, "Scaling"),
        p(
            "From valid points within the CPU count only; oversubscribed points are in the "
            "table below. Peak: the best median, decided over the next best worker count like "
            f"an improvement at {WIN_MARGIN:.0%}; collapse: the peak over the largest worker "
            "count's throughput, decided like a regression; both with the Hodges-Lehmann ratio "
            "and its 95% CI, beyond what the measured load could explain, with and without "
            "set-aside repetitions."
        ),
        table(
            [
                "group",
                f"peak median {s['unit']} (over the next best)",
                "largest workers",
                "collapse (peak / at largest)",
                "flags",
            ],
            rows,
        ),
    ]


USL_TEXT = (
    "The Universal Scalability Law, X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted by least "
    "squares on log throughput to every repetition of the valid points within the CPU "
    "count (σ: the share of work that serialises; κ: the coherency cost between each pair "
    "of workers; N*: where the model peaks). A model, not a measurement: beyond the fitted "
    "worker counts it is an extrapolation. Intervals: {method}."
)


def _estimate(e: dict[str, Any], fmt: Any) -> str:
    if not isnum(e.get("lo")):
        return fmt(e["value"])
    hi = "∞" if e.get("hi") is None else fmt(e["hi"])
    return f"{fmt(e['value'])} [{fmt(e['lo'])}, {hi}]"


def _usl(s: dict[str, Any]) -> list[Block]:
    block = s.get("usl") or {}
    fits, skipped = block.get("fits", []), block.get("skipped", [])
    if not fits and not skipped:
        return []
    out = [h(2, "Scaling model (USL)")]
    if fits:
        out.append(p(USL_TEXT.format(method=fits[0]["interval"])))

        def g(v: float) -> str:
            return f"{v:.3g}"

        rows = [
            [
                f["group"],
                _estimate(f["lambda"], eng),
                _estimate(f["sigma"], g),
                _estimate(f["kappa"], g),
                "∞" if f["peak_workers"] is None else f"{f['peak_workers']:.1f}",
                ", ".join(f"{w:g}" for w in f["workers"]),
                f["n"],
            ]
            for f in fits
        ]
        headers = [
            "group",
            f"λ {s['unit']} (1 worker)",
            "σ contention",
            "κ coherency",
            "N*",
            "workers fitted",
            "n",
        ]
        out.append(table(headers, rows))
    by_reason: dict[str, list[str]] = {}
    for k in skipped:
        by_reason.setdefault(k["reason"], []).append(k["group"])
    for reason, groups in by_reason.items():
        out.append(p(f"No fit for {', '.join(groups)}: {reason}."))
    return out


def _locks(s: dict[str, Any]) -> list[Block]:
    if not s["locks"]:
        return []
    rows = [
        [
            str(r["point"]),
            r["label"],
            r["name"],
            eng(r["acquisitions"]),
            pct(r["contended_share"]),
            pct(r["wait_share"], 2),
            ns(r["mean_wait_ns"]),
            ns(r["max_wait_ns"]),
        ]
        for r in s["locks"]
    ]
    return [
        h(2, "Lock contention per lock"),
        p(
            "As `perf lock contention` shows it: acquisitions, the share that had to wait, the "
            "share of worker time spent waiting, the mean wait of a contended acquisition and "
            "the longest single wait (medians over the point's repetitions; max: the longest)."
        ),
        table(
            [
                "point",
                "point label",
                "lock",
                "acquisitions",
                "contended",
                "time waiting",
                "mean wait ns",
                "max wait ns",
            ],
            rows,
        ),
    ]


def _overview(s: dict[str, Any]) -> Block:
    o = s["overview"]
    aside = ", ".join(f"{k} {v}" for k, v in o["set_aside"].items()) or "none"
    machines = o.get("machines") or []
    pooled = any("+" in m for m in machines)
    how = " (a+b: identical hosts, same CPU model and allowed CPUs, pooled)" if pooled else ""
    return bullets(
        [
            f"{o['points']} points, {o['repetitions']} repetitions, throughput in {s['unit']}",
            f"valid points: {o['valid_points']}",
            "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(o["verdicts"].items())),
            f"repetitions set aside: {aside}",
            f"started: {o['started']}",
            f"iommubench {o['version']}, git {o['git_sha']}",
            "machines: " + (", ".join(machines) or "not recorded") + how,
        ]
    )


def _first_screen(s: dict[str, Any]) -> list[Block]:
    """The run's conditions in one line, and the estimator named once."""
    o = s["overview"]
    return [p(f"**Conditions:** {o['conditions']}."), p(f"**Estimator:** {o['estimator']}.")]


def _warnings(s: dict[str, Any]) -> list[Block]:
    out = [h(2, "Warnings"), bullets(s["warnings"]) if s["warnings"] else p("None for the run.")]
    rows = [
        [str(w["point"]), w["label"] or "all", flags_cell(w["flags"]), "; ".join(w["details"])]
        for w in s.get("point_warnings") or []
    ]
    if rows:
        out.append(table(["point", "label", "flags", "what qualifies its number"], rows))
    return out


def _section(sec: dict[str, Any]) -> list[Block]:
    out = [h(2, sec["title"])]
    if sec.get("text"):
        out.append(p(sec["text"]))
    if sec.get("headers"):
        out.append(table(sec["headers"], sec.get("rows", [])))
    return out


def blocks(s: dict[str, Any]) -> list[Block]:
    """The report's blocks, in order."""
    out: list[Block] = [h(1, f"iommubench report: {s['run_id']}")]
    if s["name"] or s["description"]:
        out.append(p(f"**{s['name']}** {s['description']}".strip()))
    out += _first_screen(s)
    out += _winners(s) + _scaling(s)
    out += [h(2, "Correctness"), bullets(s["correctness"])]
    out.append(h(2, "Summary per point"))
    out.append(
        p(
            "Median over the valid repetitions (status ok, audit passed, no invalidating "
            "flag) measured in the point's majority placement state. Interval: the "
            "distribution-free 95% CI of the median from order statistics when n >= 6, "
            "else the range of the n repetitions (never called a CI). CV: across "
            "repetitions; CV within: of 10 batch means within one repetition's time series "
            "(the largest over the repetitions; shown, never used to narrow the interval). "
            "State: the placement state of the repetitions used. Set aside: "
            "repetitions that feed no estimate, and why. Lock wait: share of worker time "
            "waiting for any lock."
        )
    )
    out.append(_points_table(s))
    out += _strategies(s) + _usl(s) + _locks(s) + _warnings(s)
    out.append(h(2, "Figures"))
    if not s["figures"]:
        out.append(p("No figures."))
    out += [Block("figure", f) for f in s["figures"]]
    for sec in s["sections"]:
        out += _section(sec)
    out += [h(2, "Run"), _overview(s)]
    out += [h(2, "Machine"), table(["property", "value"], s["machine"])]
    out.append(h(2, "Configuration (resolved)"))
    if s["config_path"]:
        out.append(p(f"From `{s['config_path']}`."))
    out.append(code(s["config_text"] or "(config.yaml missing)", "yaml"))
    out.append(h(2, "Reproduce"))
    out.append(code(s["command"] or "(command not recorded in meta.json)", "sh"))
    out.append(p(f"Report generated {s['generated']} from `{s['run_dir']}`."))
    return out


def caption(fig: dict[str, Any]) -> str:
    return fig.get("caption") or FIGURE_CAPTIONS.get(fig["name"], "")


__all__ = ["Block", "blocks", "caption", "isnum", "winner_text"]
