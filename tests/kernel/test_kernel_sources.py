"""Kernel sources are found and staged once into the cache with provenance; never re-extracted."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from iommubench.core.kernel import sources as ksources

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_staged_members_and_provenance(kernel_sources: ksources.KernelSources) -> None:
    prov = kernel_sources.provenance
    assert set(prov["files_sha256"]) == set(ksources.MEMBERS)
    assert ksources.file_hashes(kernel_sources.root) == prov["files_sha256"]
    assert prov["sources_sha256"] == ksources.combined_hash(prov["files_sha256"])
    assert prov["kind"] in ("package", "tree")
    if prov["kind"] == "package":
        assert prov["version"] and prov["package"]
    assert str(prov["kernel_version"]).count(".") >= 2
    # staged outside the repository: the repo holds no kernel file
    assert REPO not in kernel_sources.root.parents


def test_second_find_reuses_the_cache(kernel_sources: ksources.KernelSources) -> None:
    before = kernel_sources.path("drivers/iommu/iova.c").stat().st_mtime_ns
    t0 = time.monotonic()
    again = ksources.find(download=False)
    assert time.monotonic() - t0 < 5.0  # no extraction (that takes ~20 s)
    assert again.digest == kernel_sources.digest
    assert again.path("drivers/iommu/iova.c").stat().st_mtime_ns == before


def test_a_named_tree_records_path_and_git_describe(
    kernel_sources: ksources.KernelSources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOMMUBENCH_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "linux"
    shutil.copytree(kernel_sources.root, tree)
    if shutil.which("git"):
        git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "base"], check=True)
    src = ksources.find(tree)
    assert src.provenance["kind"] == "tree"
    assert src.provenance["tree"] == str(tree.resolve())
    assert src.digest == kernel_sources.digest  # the same files, the same hash
    if shutil.which("git"):
        assert src.provenance["git_describe"]
        assert str(src.provenance["git_describe"]) in src.label
    assert tmp_path / "cache" in src.root.parents


def test_no_source_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOMMUBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ksources.KernelSourceUnavailable) as err:
        ksources.find(tmp_path / "no-such-tree")
    assert "\n" not in str(err.value) and "no-such-tree" in str(err.value)
    with pytest.raises(ksources.KernelSourceUnavailable) as err:
        ksources.from_package("linux-source-0.0-iommubench-none", download=False)
    msg = str(err.value)
    assert "\n" not in msg and "linux-source-0.0-iommubench-none" in msg and "--kernel-src" in msg
    partial = tmp_path / "partial"
    (partial / "drivers/iommu").mkdir(parents=True)
    with pytest.raises(ksources.KernelSourceUnavailable, match="has no"):
        ksources.find(partial)
