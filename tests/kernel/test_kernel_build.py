"""The kernel files build unmodified with the shim, into the cache; an unshimmed API is refused
in one line naming the symbol and the kernel file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iommubench.core.kernel import build as kbuild
from iommubench.core.kernel import sources as ksources

pytestmark = pytest.mark.slow

PACKAGE = Path(kbuild.__file__).resolve().parents[2]  # src/iommubench


def test_object_lives_in_the_cache_not_the_package(kernel_object: kbuild.KernelObject) -> None:
    assert kernel_object.path.is_file()
    assert PACKAGE not in kernel_object.path.parents
    assert ksources.cache_dir() in kernel_object.path.parents
    prov = kernel_object.provenance()
    assert prov["kernel_files_sha256"] == kernel_object.sources.digest
    assert prov["kernel_variant"] == "normal"
    # cached: a second build compiles nothing
    mtime = kernel_object.path.stat().st_mtime_ns
    again = kbuild.build(kernel_object.sources, "normal")
    assert again.path == kernel_object.path and again.path.stat().st_mtime_ns == mtime


def test_variants_differ(
    kernel_object: kbuild.KernelObject, racy_object: kbuild.KernelObject
) -> None:
    assert racy_object.key != kernel_object.key
    assert racy_object.path != kernel_object.path
    with pytest.raises(kbuild.KernelBuildError, match="unknown kernel-code variant"):
        kbuild.build(kernel_object.sources, "bogus")


def _copy_tree(src: ksources.KernelSources, dest: Path) -> Path:
    shutil.copytree(src.root, dest)
    return dest


def _refusal(tree: Path) -> str:
    staged = ksources.find(tree)
    with pytest.raises(kbuild.KernelBuildError) as err:
        kbuild.build(staged, "normal")
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def test_unshimmed_call_refused_in_one_line(
    kernel_sources: ksources.KernelSources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOMMUBENCH_CACHE", str(tmp_path / "cache"))
    tree = _copy_tree(kernel_sources, tmp_path / "linux")
    f = tree / "drivers/iommu/io-pgtable-arm.c"
    text = f.read_text()
    assert "\tdma_wmb();\n" in text
    f.write_text(
        text.replace("\tdma_wmb();\n", "\tdma_wmb();\n\tiommu_pte_flush_nowhere(ptep);\n", 1)
    )
    msg = _refusal(tree)
    assert "iommu_pte_flush_nowhere" in msg and "drivers/iommu/io-pgtable-arm.c" in msg


def test_declared_but_undefined_refused_at_link(
    kernel_sources: ksources.KernelSources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOMMUBENCH_CACHE", str(tmp_path / "cache"))
    tree = _copy_tree(kernel_sources, tmp_path / "linux")
    f = tree / "drivers/iommu/iova.c"
    text = f.read_text()
    anchor = "void\ninit_iova_domain("
    assert anchor in text
    decl = "void iova_hook_nowhere(void);\n\n"
    f.write_text(text.replace(anchor, decl + anchor, 1))
    g = tree / "drivers/iommu/iova.c"
    g.write_text(
        g.read_text().replace(
            "\tspin_lock_init(&iovad->iova_rbtree_lock);",
            "\tspin_lock_init(&iovad->iova_rbtree_lock);\n\tiova_hook_nowhere();",
            1,
        )
    )
    msg = _refusal(tree)
    assert "iova_hook_nowhere" in msg and "drivers/iommu/iova.c" in msg


def test_missing_header_refused_in_one_line(
    kernel_sources: ksources.KernelSources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOMMUBENCH_CACHE", str(tmp_path / "cache"))
    tree = _copy_tree(kernel_sources, tmp_path / "linux")
    f = tree / "lib/rbtree.c"
    f.write_text("#include <linux/maple_tree.h>\n" + f.read_text())
    msg = _refusal(tree)
    assert "linux/maple_tree.h" in msg and "lib/rbtree.c" in msg
