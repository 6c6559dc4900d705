"""Adding a lock is one file and one registration line: copy locks/ttas.c under a new name
(its identifiers renamed), add its locks.def line, build the core from that tree, and run a
2-worker point with the new lock under both lock-taking drivers; the audit must pass. No
other file of the tree is edited."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "iommubench"

POINT = """
import json, sys
from iommubench.core import binding
from iommubench.run.point import run_point
from iommubench.spec.parameters import PARAMETERS
out = {"locks": binding.lock_names()}
lock = next(p for p in PARAMETERS if p.name == "lock")
out["described"] = lock.choices()["ttas-copy"]
for driver in ("domain-lock", "table-lock"):
    r = run_point(dict(workload="prefault", driver=driver, lock="ttas-copy", workers=2,
                       region_mib=4, chunk_pages=1, cycles=2, warmup_s=0,
                       duration_s_requested=1, sample_every=0, seed=1))
    out[driver] = [r.status, r.error, bool(r.measures.get("audit_ok")),
                   int(r.measures.get("lock_acquisitions", 0))]
print(json.dumps(out))
"""


def _copy_lock(native: Path) -> None:
    """The one file and the one line: ttas.c as ttas_copy.c, every ttas identifier renamed."""
    text = (native / "locks" / "ttas.c").read_text()
    assert "ttas_" in text and '"ttas"' in text
    text = text.replace("ttas_", "ttas_copy_").replace('"ttas"', '"ttas-copy"')
    text = text.replace(
        'IB_DEFINE_LOCK("ttas-copy", ttas,', 'IB_DEFINE_LOCK("ttas-copy", ttas_copy,'
    )
    (native / "locks" / "ttas_copy.c").write_text(text)
    with (native / "locks" / "locks.def").open("a") as f:
        f.write("IB_LOCK_ENTRY(ttas_copy)\n")


def native_description(name: str) -> str:
    from iommubench.core import binding

    return binding.lock_descriptions()[name]


def test_a_lock_is_one_file_and_one_line(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        PACKAGE, src / "iommubench", ignore=shutil.ignore_patterns("_core*.so", "__pycache__")
    )
    native = src / "iommubench" / "core" / "native"
    _copy_lock(native)
    # the builder names sources relative to the project root; the module lands in ./iommubench
    build = subprocess.run(
        [sys.executable, str(native / "build_core.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    built = list((tmp_path / "iommubench").glob("_core*.so"))
    assert built, build.stdout[-2000:]
    shutil.move(built[0], src / "iommubench" / built[0].name)
    env = {**os.environ, "PYTHONPATH": str(src)}
    run = subprocess.run(
        [sys.executable, "-c", POINT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert "ttas-copy" in got["locks"] and "ttas" in got["locks"]
    # `iommubench list` describes it from its own file: no Python edit
    assert got["described"] and got["described"] == native_description("ttas"), got
    for driver in ("domain-lock", "table-lock"):
        status, error, audit_ok, acquisitions = got[driver]
        assert status == "ok", (driver, error)
        assert audit_ok, driver
        # 2 cycles of the region's 1024 pages, each mapped and unmapped under the new lock
        assert acquisitions >= 2 * 2 * 1024, (driver, acquisitions)
