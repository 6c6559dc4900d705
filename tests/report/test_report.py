"""The report: Markdown and self-contained HTML with every section; renders in a browser."""

import re
import shutil
import subprocess

import pytest

from iommubench.report import build

try:
    from fixtures.synthetic_run import make_run
except ImportError:  # tests imported as a package
    from tests.fixtures.synthetic_run import make_run

SECTIONS = [  # in this order: the decided comparisons on the first screen, warnings below
    "Winner per worker count",
    "Scaling",
    "Correctness",
    "Summary per point",
    "Lock contention per lock",
    "Warnings",
    "Figures",
    "Run",
    "Machine",
    "Configuration (resolved)",
    "Reproduce",
]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    run_dir = make_run(root, per_lock=True, series=True, reps=5)
    _, md, html = build.write_report(run_dir, root / "out")
    return run_dir, md, html


def test_files_and_sections(written):
    _, md, html = written
    assert md.name == "report.md" and html.name == "report.html"
    text = md.read_text()
    page = html.read_text()
    for s in SECTIONS:
        assert f"## {s}\n" in text
        assert f"<h2>{s}</h2>" in page
    at = [text.index(f"## {s}\n") for s in SECTIONS]
    assert at == sorted(at)
    # the first screen: the conditions in one line, then the decided comparisons
    head = text.split("## Winner per worker count")[0]
    assert "**Conditions:** no competing load" in head and head.count("\n\n") <= 6
    assert "<strong>synthetic</strong>" in page
    assert re.search(r'<td class="num">[\d.]+ M</td>', page)


def test_report_content(written):
    _, md, _ = written
    text = md.read_text()
    # the machine, the config and the exact command
    assert "Synthetic CPU @ 3.0GHz" in text
    assert "intel_iommu=on" in text
    assert "repetitions: 3" in text
    assert "iommubench run bench/synthetic.yaml --out results/run-a" in text
    # warnings: oversubscription, handoff probes, starvation, a failed repetition
    warn = text.split("## Warnings")[1].split("## Figures")[0]
    assert "oversubscribed" in warn
    assert "handoff probes" in warn
    assert "starvation" in warn
    assert "worker 1 exited" in warn
    # the naive control is reported as caught, not as a failure
    corr = text.split("## Correctness")[1].split("## Summary")[0]
    assert "| point | label | flags | what qualifies its number |" in warn
    assert corr.count("caught by the audit") == 3
    assert "AUDIT FAILED" not in text
    assert "caught (control)" in text
    # winners: lockfree separates from serial-spin (strategy domain-lock/ttas) at every worker
    # count within the CPUs, except at 4, where every serial-spin repetition changed state
    win = text.split("## Winner per worker count")[1].split("## ")[0]
    for w in (1, 2):
        assert re.search(
            rf"\| all \| {w} \| lockfree \| [^|]+ \| [^|]+ \| lockfree / domain-lock/ttas \| "
            r"[\d.]+x \[",
            win,
        )
    assert "| all | 4 | not comparable: placement states differ" in win
    assert "| 8 |" not in win  # oversubscribed: not a candidate
    assert "naive" not in win.split("|---|")[1]
    # the unit follows the workload
    assert "median I/O/s" in text and "ops/s" not in text.split("## Figures")[0]


def test_tied_drivers_are_no_winner(tmp_path):
    model = {"lockfree": {1: 25e6}, "serial-spin": {1: 25e6}}
    run_dir = make_run(
        tmp_path, drivers=("lockfree", "serial-spin"), workers=(1,), model=model, noise=0.2, reps=5
    )
    _, md, _ = build.write_report(run_dir, tmp_path / "out")
    win = md.read_text().split("## Winner per worker count")[1].split("## ")[0]
    assert re.search(
        r"\| all \| 1 \| no significant difference \((lockfree|domain-lock/ttas), ", win
    )


def test_html_is_self_contained(written):
    _, md, html = written
    page = html.read_text()
    assert page.count("data:image/png;base64,") == len(list(md.parent.glob("*.png"))) >= 5
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "<link" not in page and "<script" not in page
    # the markdown links its figures as files next to it
    text = md.read_text()
    for name in ("throughput", "scaling", "contention", "latency", "fairness"):
        assert f"]({name}.png)" in text
        assert (md.parent / f"{name}.svg").exists()


def test_report_without_meta_or_config(tmp_path):
    run_dir = make_run(tmp_path, write_workers=False, write_hist=False)
    (run_dir / "meta.json").unlink()
    (run_dir / "config.yaml").unlink()
    _, md, html = build.write_report(run_dir, tmp_path / "out")
    text = md.read_text()
    assert "command not recorded" in text and "config.yaml missing" in text
    assert html.exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_html_renders_in_headless_chromium(written, tmp_path):
    from PIL import Image

    _, _, html = written
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            html.resolve().as_uri(),
        ],
        check=False,
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100, "the screenshot is blank"
    # a good part of the page is drawn (text, tables, figures), not just a white sheet
    hist = img.histogram()
    nonwhite = sum(hist[:200]) / (img.width * img.height)
    assert nonwhite > 0.02
