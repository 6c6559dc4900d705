"""`iommubench reproduce`: run every reproduction case and set the published numbers beside the
ones measured here.

Each case runs as its own command (`iommubench run` on the case's config, or
`iommubench dma-map-benchmark` with the case's options), so a case is measured exactly as a
user would measure it, and its run directory stays under `OUT/runs/` to be reported or
compared later. A measure that needs more CPUs than this machine has is not run and its row
says so; headline values come only from valid, non-oversubscribed points.

Each row's verdict: a calibration input `matches by construction` (or, further than 1.15x
off, `calibration off`: the calibration did not hold in this run, e.g. under competing load);
a prediction with a number is `within 1.5x` or `misses` (the report then says what the model
leaves out); a row measured on the kernel's own code is `within 1.5x` or `differs` from the
figure published for other code or another machine (never a failure: the report says what
differs, and a case whose kernel tree cannot be had is not run); a shape check `passes` or
`FAILS` its stated criterion, or is `inconclusive` when a point it read carries a load flag
(`load.LOAD_FLAGS`: competing load, a level shift, a stretched window or a placement change:
the machine changed under the point, which can make or break a scaling shape by itself).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from iommubench.analysis import point_flags
from iommubench.analysis.decisions import headline, with_scaling
from iommubench.analysis.load import LOAD_FLAGS
from iommubench.analysis.point_summary import summarize
from iommubench.analysis.run_reader import Run, load_run, norm_value
from iommubench.core.errors import UsageError
from iommubench.kernelparity.cases import TOOL_OPTIONS, Case, Measure, load_cases
from iommubench.run import dma_measures
from iommubench.run.runlock import RunDirLock, RunLockedError
from iommubench.run.store import make_unique_dir
from iommubench.spec.columns import typed_json
from iommubench.spec.config import cpus_available

TOLERANCE = 1.5  # a prediction within this factor of the published number is "within"
CALIBRATION_TOLERANCE = 1.15  # a calibration input further off than this did not hold
VERDICTS = (
    "matches by construction",
    "calibration off",
    "within 1.5x",
    "misses",
    "differs",
    "passes",
    "FAILS",
    "inconclusive",
    "not run",
    "–",  # a measured value with nothing published to compare it with
)
_TOOL_LINE = re.compile(r"average (map|unmap) latency\((us|ns)\):\s*([0-9.]+)")


@dataclass
class Row:
    """One line of the reproduction table."""

    case: str
    measure: str
    published: str
    measured: float | None
    unit: str
    ratio: float | None
    kind: str
    verdict: str
    note: str
    source: str
    run: str = ""
    leaves_out: str = ""  # what the model leaves out, for a prediction that misses
    failed: bool = False  # the case's command failed, or a point of its run did


class CaseFailed(Exception):
    """A case's command failed; the text is one line."""


# --------------------------------------------------------------------------- running


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "iommubench.cli", *args]


def run_sweep_case(case: Case, out: Path) -> tuple[Path, int]:
    """Run the case's config with `iommubench run`: the run directory and the exit status
    (1: a point failed or failed its audit; its valid points are still measured)."""
    cfg = out / "configs" / f"{case.case}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump(case.config, sort_keys=False))
    proc = subprocess.run(
        _command(["run", str(cfg), "--out", str(out / "runs")]),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if not lines or not Path(lines[0]).is_dir():
        raise CaseFailed(f"iommubench run {cfg} exited {proc.returncode} without a run directory")
    return Path(lines[0]), proc.returncode


def tool_args(options: dict[str, int | str]) -> list[str]:
    return [a for k, v in options.items() for a in (TOOL_OPTIONS[k], str(v))]


def _run_tool(case: Case, extra: list[str], log: Path) -> dict[str, float]:
    assert case.dma_map_benchmark is not None
    args = ["dma-map-benchmark", *tool_args(case.dma_map_benchmark), *extra]
    proc = subprocess.run(_command(args), capture_output=True, text=True, check=False)
    with log.open("a") as f:
        f.write(f"$ iommubench {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no message"])[0]
        raise CaseFailed(f"iommubench {' '.join(args)} exited {proc.returncode}: {first}")
    return parse_tool_output(proc.stdout)


def run_tool_case(case: Case, out: Path) -> dict[str, float]:
    """Run `iommubench dma-map-benchmark` with the case's options twice: as the kernel
    prints (each sample truncated to 100 ns units: `map`, `unmap` in µs, comparable with the
    published lines) and with --ns (the untruncated means: `map_ns`, `unmap_ns` in ns). The
    tool's output is kept in OUT/runs/CASE.txt."""
    log = out / "runs" / f"{case.case}.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    kernel = _run_tool(case, [], log)
    exact = _run_tool(case, ["--ns"], log)
    return {**kernel, **{f"{k}_ns": v * 1000.0 for k, v in exact.items()}}


def parse_tool_output(text: str) -> dict[str, float]:
    """{'map': µs, 'unmap': µs} from the tool's 'average ... latency(us|ns):' lines."""
    found: dict[str, float] = {}
    for kind, unit, value in _TOOL_LINE.findall(text):
        found[kind] = float(value) / (1000.0 if unit == "ns" else 1.0)
    if set(found) != {"map", "unmap"}:
        raise CaseFailed("dma-map-benchmark printed no map and unmap latency lines")
    return found


# --------------------------------------------------------------------------- measuring


@dataclass
class RunData:
    """A run directory loaded for measuring: the run and its per-point summary."""

    run: Run
    summary: pd.DataFrame
    cpus: int

    @classmethod
    def load(cls, run_dir: Path) -> RunData:
        run = load_run(run_dir)
        summary = with_scaling(summarize(run))
        c = pd.to_numeric(summary.get("cpus_available", pd.Series(dtype=float)), errors="coerce")
        return cls(run, summary, int(c.max()) if c.notna().any() else cpus_available())

    def series(self, where: dict[str, Any]) -> pd.DataFrame:
        """Headline points (valid, not oversubscribed) whose parameters match `where`."""
        s = self.summary[headline(self.summary)]
        for key, value in where.items():
            if key not in s:
                raise CaseFailed(f"where: {key!r} is not a parameter of the run")
            s = s[s[key].map(norm_value) == norm_value(value)]
        return s

    def at(self, where: dict[str, Any], workers: int) -> pd.Series | None:
        s = self.series(where)
        s = s[pd.to_numeric(s["workers"]) == workers]
        if len(s) > 1:
            raise CaseFailed(f"where: {where} matches {len(s)} points at {workers} workers")
        return s.iloc[0] if len(s) else None


def _worker_counts(m: Measure, data: RunData) -> list[int]:
    if isinstance(m.workers, int):
        return [m.workers]
    counts = sorted(int(w) for w in pd.to_numeric(data.series(m.where)["workers"]).unique())
    if m.workers == "max":
        return counts[-1:]
    return [w for w in counts if w > 1]


def _value(m: Measure, data: RunData, workers: int) -> float | None:
    """The measured value at `workers`, or None when the run has no valid point for it."""
    row = data.at(m.where, workers)
    if row is None:
        return None
    if m.stat == "ops_per_s":
        return float(row["ops_per_s"])
    if m.stat in ("speedup", "efficiency"):
        v = row.get(m.stat)
        return float(v) if v is not None and math.isfinite(v) else None
    if m.stat == "ns_per_op":  # on-CPU time: a wait for the CPU is not the call's cost
        oncpu = row.get("oncpu_share")
        share = float(oncpu) if oncpu is not None and math.isfinite(oncpu) else 1.0
        return 1e9 * workers * share / float(row["ops_per_s"])
    if m.stat == "time_s":
        return float(row["duration_s"])
    if m.stat == "time_speedup":
        one = data.at(m.where, 1)
        return None if one is None else float(one["duration_s"]) / float(row["duration_s"])
    if m.stat == "ratio":
        assert m.over is not None
        den = data.at(m.over, workers)
        return None if den is None else float(row["ops_per_s"]) / float(den["ops_per_s"])
    if m.stat == "latency_mean_ns":
        assert m.field is not None
        mean, _ = dma_measures.hist_mean_sd_ns(data.run.point_hist(int(row["point"]), m.field))
        return mean
    raise CaseFailed(f"stat {m.stat} is not read from a run")


# --------------------------------------------------------------------------- rows


def _published_text(m: Measure) -> str:
    if m.published is None:
        return "–"
    if isinstance(m.published, (int, float)):
        return f"{m.published:g}"
    return str(m.published)


def _verdict(case: Case, m: Measure, value: float | None) -> tuple[str, float | None, str]:
    """(verdict, measured / published, note) of a measured value; a miss's account of what
    the model leaves out is the row's `leaves_out`, not its note."""
    numeric = isinstance(m.published, (int, float)) and m.published
    ratio = value / float(m.published) if value is not None and numeric else None
    notes = [m.note] if m.note else []
    if value is None:
        return "not run", None, "; ".join(["no valid point measured it", *notes])
    criterion = m.passes(value)
    if criterion is not None:
        verdict = "passes" if criterion else "FAILS"
        return verdict, ratio, "; ".join([f"criterion: {m.pass_if}", *notes])
    if case.kind == "calibration":
        held = ratio is None or 1 / CALIBRATION_TOLERANCE <= ratio <= CALIBRATION_TOLERANCE
        if held:
            return "matches by construction", ratio, "; ".join([case.calibration, *notes])
        off = f"the calibration did not hold in this run (beyond {CALIBRATION_TOLERANCE:g}x)"
        return "calibration off", ratio, "; ".join([off, case.calibration, *notes])
    if ratio is None:
        return "–", None, "; ".join(notes)
    if 1 / TOLERANCE <= ratio <= TOLERANCE:
        return f"within {TOLERANCE:g}x", ratio, "; ".join(notes)
    if case.kind == "kernel-code":
        return "differs", ratio, "; ".join([*notes, "what differs: below"])
    return "misses", ratio, "; ".join([*notes, "what the model leaves out: below"])


def _row(case: Case, m: Measure, name: str, value: float | None, run: str) -> Row:
    verdict, ratio, note = _verdict(case, m, value)
    # a prediction says what the model leaves out where it misses; a row on the kernel's own
    # code always says what differs from the published setup
    shown = verdict == "misses" or (case.kind == "kernel-code" and value is not None)
    missed = m.leaves_out or case.leaves_out if shown else ""
    return Row(
        case.case,
        name,
        _published_text(m),
        value,
        m.unit,
        ratio,
        case.kind,
        verdict,
        note,
        case.source,
        run,
        missed,
    )


def _not_run(case: Case, m: Measure, name: str, note: str, failed: bool = False) -> Row:
    """A row with no measured value: the case could not run here, or it failed."""
    return Row(
        case.case,
        name,
        _published_text(m),
        None,
        m.unit,
        None,
        case.kind,
        "not run",
        note,
        case.source,
        failed=failed,
    )


def _needs(case: Case, m: Measure, name: str, cpus: int, workers: int | None = None) -> Row:
    need = max(case.needs_cpus, m.needs_cpus, workers or 1)
    text = f"needs {need} CPUs, this machine has {cpus}"
    return _not_run(case, m, name, "; ".join([text, m.note] if m.note else [text]))


SCALING_STATS = ("speedup", "efficiency", "time_speedup")


def _flags_used(m: Measure, data: RunData, workers: int) -> list[str]:
    """The point flags (competing-load, noisy, ...) of every point a value was read from."""
    sides = [(m.where, workers)]
    sides += [(m.where, 1)] if m.stat in SCALING_STATS else []
    sides += [(m.over, workers)] if m.over is not None else []
    found: set[str] = set()
    for where, w in sides:
        row = data.at(where, w)
        if row is not None:
            found |= point_flags.split(row.get("flags"))
    return sorted(found)


def _measure_rows(case: Case, m: Measure, data: RunData, run: str) -> list[Row]:
    if isinstance(m.workers, int) and m.workers > data.cpus:
        return [_needs(case, m, m.name, data.cpus, m.workers)]
    counts = _worker_counts(m, data)
    if m.stat in SCALING_STATS:
        counts = [w for w in counts if w > 1]  # a speed-up needs a second CPU
    if not counts:
        need = 2 if m.stat in SCALING_STATS else 1
        if data.cpus < need:
            return [_needs(case, m, m.name, data.cpus, need)]
        return [_row(case, m, m.name, None, run)]
    rows = []
    for w in counts:
        name = m.name if m.workers != "each" else f"{m.name}, {w} workers"
        row = _row(case, m, name.replace("{workers}", str(w)), _value(m, data, w), run)
        used = _flags_used(m, data, w)
        if used:
            row.note = "; ".join([f"points flagged {', '.join(used)}", *filter(None, [row.note])])
        loaded = [f for f in used if f in LOAD_FLAGS]
        if m.pass_if is not None and loaded and row.verdict != "not run":
            # the machine changed under a point it read: the shape may be the load's
            why = ", ".join(f.replace("-", " ") for f in loaded)
            row.note = f"{row.verdict} under {why}: rerun on a quiet machine; {row.note}"
            row.verdict = "inconclusive"
        rows.append(row)
    return rows


def _kernel_tree_missing() -> str | None:
    """Why the kernel's code cannot be built here (no tree named by $IOMMUBENCH_KERNEL_SRC,
    no package to be had), or None."""
    from iommubench.core.kernel import sources as ksources

    try:
        ksources.find(progress=_say)
    except ksources.KernelSourceUnavailable as exc:
        return str(exc)
    return None


def case_rows(case: Case, out: Path, cpus: int) -> list[Row]:
    """Run one case (unless this machine lacks its CPUs, or, for a case on the kernel's own
    code, a kernel tree) and return its rows."""
    if case.kind == "kernel-code" and (missing := _kernel_tree_missing()):
        return [_not_run(case, m, m.name, f"no kernel tree: {missing}") for m in case.measures]
    runnable = [m for m in case.measures if max(case.needs_cpus, m.needs_cpus) <= cpus]
    skipped = {id(m) for m in case.measures} - {id(m) for m in runnable}
    rows: dict[int, list[Row]] = {
        id(m): [_needs(case, m, m.name, cpus)] for m in case.measures if id(m) in skipped
    }
    if runnable:
        try:
            rows.update(_run_case(case, runnable, out))
        except CaseFailed as exc:
            for m in runnable:
                rows[id(m)] = [_not_run(case, m, m.name, f"the case failed: {exc}", failed=True)]
    return [r for m in case.measures for r in rows[id(m)]]


def _run_case(case: Case, measures: list[Measure], out: Path) -> dict[int, list[Row]]:
    if case.dma_map_benchmark is not None:
        means = run_tool_case(case, out)
        run = str(out / "runs" / f"{case.case}.txt")
        rows = {id(m): [_row(case, m, m.name, means[str(m.field)], run)] for m in measures}
        for m in measures:
            if m.field in ("map", "unmap"):  # the kernel's figure; say what it truncated
                row = rows[id(m)][0]
                exact = f"untruncated mean {means[f'{m.field}_ns']:.0f} ns"
                row.note = "; ".join(filter(None, [exact, row.note]))
        return rows
    run_dir, status = run_sweep_case(case, out)
    data = RunData.load(run_dir)
    rows = {id(m): _measure_rows(case, m, data, str(run_dir)) for m in measures}
    if status != 0:
        for r in (r for group in rows.values() for r in group):
            r.failed = True
            r.note = "; ".join(filter(None, [f"a point failed (run exit {status})", r.note]))
    return rows


# --------------------------------------------------------------------------- the table


HEADERS = ["case", "measure", "published", "measured", "ratio", "kind", "verdict", "note"]


def fmt_measured(r: Row) -> str:
    if r.measured is None:
        return "–"
    return f"{r.measured:.3g} {r.unit}".strip()


def fmt_published(r: Row) -> str:
    if r.published == "–":
        return "–"
    try:
        float(r.published)
    except ValueError:
        return r.published
    return f"{r.published} {r.unit}".strip()


def cells(r: Row) -> list[str]:
    ratio = "–" if r.ratio is None else f"{r.ratio:.2f}"
    return [r.case, r.measure, fmt_published(r), fmt_measured(r), ratio, r.kind, r.verdict, r.note]


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    """The report: what ran where, the table, and each case's source."""
    esc: Callable[[str], str] = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = [
        "# iommubench reproduce",
        "",
        f"Measured {meta['generated']} on {meta['host']} ({meta['cpus']} CPUs allowed), "
        f"iommubench {meta['version']}, command `{meta['command']}`. Ratio: measured / "
        f"published. A calibration input matches by construction (a parameter was set from "
        f"that number); a prediction is `within {TOLERANCE:g}x` or `misses` (the note says "
        "what the model leaves out); a row of kind kernel-code is the kernel's own code "
        f"measured here, `within {TOLERANCE:g}x` or `differs` from a figure published for "
        "other code or another machine; a shape check passes or fails its stated criterion. "
        "A row whose case needs more CPUs than this machine has is not run.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(esc(c) for c in cells(r)) + " |" for r in rows]
    missed = [r for r in rows if r.leaves_out and r.kind != "kernel-code"]
    if missed:
        lines += ["", "## Where a prediction misses: what the model leaves out", ""]
        lines += [f"- `{r.case}`, {r.measure}: {r.leaves_out}" for r in missed]
    differ = {r.case: r.leaves_out for r in rows if r.leaves_out and r.kind == "kernel-code"}
    if differ:
        lines += ["", "## The kernel's own code: what differs from the published setup", ""]
        lines += [f"- `{c}`: {text}" for c, text in differ.items()]
    lines += ["", "## Sources", ""]
    seen: dict[str, str] = {}
    for r in rows:
        seen.setdefault(r.case, r.source)
    lines += [f"- `{c}`: {s}" for c, s in seen.items()]
    runs = sorted({r.run for r in rows if r.run})
    if runs:
        lines += ["", "## Runs", "", *[f"- `{r}`" for r in runs]]
    return "\n".join(lines) + "\n"


def write_report(rows: Sequence[Row], meta: dict[str, Any], out: Path) -> list[Path]:
    md = out / "reproduce.md"
    md.write_text(markdown(rows, meta))
    js = out / "reproduce.json"
    payload = {**meta, "rows": [_json_row(r) for r in rows]}
    js.write_text(json.dumps(typed_json(payload), indent=1, allow_nan=False) + "\n")
    return [md, js]


def _json_row(r: Row) -> dict[str, Any]:
    d = asdict(r)
    for k in ("measured", "ratio"):
        if d[k] is not None and not math.isfinite(d[k]):
            d[k] = None
    return d


def meta_for(command: str) -> dict[str, Any]:
    import socket

    from iommubench._version import __version__

    return {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": socket.gethostname(),
        "cpus": cpus_available(),
        "version": __version__,
        "command": command,
    }


# --------------------------------------------------------------------------- the command


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def print_table(rows: Sequence[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*HEADERS, show_lines=False, header_style="bold")
    for r in rows:
        table.add_row(*cells(r))
    Console(width=max(160, Console().width)).print(table)


def _output_dir(out: Path | None, out_dir: Callable[[Path, str], Path]) -> tuple[Path, RunDirLock]:
    """The directory this reproduction writes and its lock: a new results/reproduce-STAMP
    (suffixed -2, -3, ... when another started in the same second), or --out, refused while
    another reproduction writes it."""
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = make_unique_dir(out_dir(Path("results"), "--out") / f"reproduce-{stamp}")
    else:
        out = out_dir(out, "--out")
    try:
        return out, RunDirLock(out, "iommubench reproduce")
    except RunLockedError as exc:
        raise UsageError(f"--out {exc}") from None


def command(args: Any, out_dir: Callable[[Path, str], Path]) -> int:
    """Run the cases; `out_dir(path, option)` checks and creates the output directory."""
    only = [o.strip() for text in args.only for o in text.split(",") if o.strip()]
    cases = load_cases(args.cases, only or None)
    out, lock = _output_dir(args.out, out_dir)
    try:
        return _reproduce(cases, out)
    finally:
        lock.release()


def _reproduce(cases: list[Case], out: Path) -> int:
    cpus = cpus_available()
    rows: list[Row] = []
    for i, case in enumerate(cases, 1):
        _say(f"[{i}/{len(cases)}] {case.case}: {case.title}")
        rows += case_rows(case, out, cpus)
    print_table(rows)
    cmdline = "iommubench reproduce " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else ""
    for path in write_report(rows, meta_for(cmdline.strip()), out):
        print(path)
    return 1 if any(r.failed or r.verdict == "FAILS" for r in rows) else 0
