"""Fixtures for the kernel-code tests: sources and built objects, or a one-line skip.

The kernel's files come from a kernel tree ($IOMMUBENCH_KERNEL_SRC) or Debian's linux-source
package (installed, cached, or fetched once with apt-get download; no root needed). When none
can be had, every test here skips with one line saying what is missing.
"""

from __future__ import annotations

import sys

import pytest

from iommubench.core.kernel import build as kbuild
from iommubench.core.kernel import sources as ksources


def pytest_configure(config: pytest.Config) -> None:
    # `slow` is registered in pyproject.toml too; registering it twice is harmless.
    config.addinivalue_line("markers", "slow: starts worker processes or compiles C")


def _progress(msg: str) -> None:
    print(f"iommubench: {msg}", file=sys.stderr)


@pytest.fixture(scope="session")
def kernel_sources() -> ksources.KernelSources:
    try:
        return ksources.find(progress=_progress)
    except ksources.KernelSourceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def kernel_object(kernel_sources: ksources.KernelSources) -> kbuild.KernelObject:
    return kbuild.build(kernel_sources, "normal", progress=_progress)


@pytest.fixture(scope="session")
def racy_object(kernel_sources: ksources.KernelSources) -> kbuild.KernelObject:
    return kbuild.build(kernel_sources, "racy-cmpxchg", progress=_progress)
