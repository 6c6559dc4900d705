"""The repository holds none of the kernel's files: they are an input, staged in a cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

from iommubench.core.kernel import sources as ksources

ROOT = Path(__file__).resolve().parents[2]


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:  # not a git checkout (an sdist): every file under the root
        return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    return [ROOT / line for line in out.stdout.splitlines()]


# The licence tag a kernel file opens with, spelled in two parts so that this file, which
# looks for it, never carries it.
GPL_TAG = "SPDX-License-Identifier: " + "GPL"


def test_no_kernel_file_and_no_gpl_source_in_the_repository() -> None:
    """No tracked file has a kernel file's path or carries a GPL licence tag anywhere."""
    offenders = []
    for path in _tracked():
        if not path.is_file():
            continue
        rel = path.relative_to(ROOT).as_posix()
        if any(rel.endswith(m) for m in ksources.MEMBERS):
            offenders.append(f"{rel} (a kernel file's path)")
        elif GPL_TAG.encode() in path.read_bytes():
            offenders.append(f"{rel} (GPL)")
    assert not offenders, offenders


def test_the_shim_is_the_projects_own_code() -> None:
    shim = Path(ksources.__file__).resolve().parent
    for path in sorted(shim.rglob("*")):
        if path.suffix in {".c", ".h"}:
            head = path.read_text()[:200]
            assert "SPDX-License-Identifier: MIT" in head, path
