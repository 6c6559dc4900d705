"""iommubench: what IOMMU page-table locking and IOVA allocation strategies cost under DMA load.

The public face, for scripts (the rest of the package is private by convention; the CLI is
`iommubench.cli`):

- `load_sweep(path)`: a YAML sweep config, validated, as its points;
- `run_point(point)`: run one point (a dict of parameters) and audit it;
- `load_run(run_dir)`, `summarize(run)`: read a run directory, one row per point;
- `compare_runs(base, new)`: one verdict per matched point;
- `write_report(run_dir, out_dir)`: summary.json, report.md, report.html and figures;
- `__version__`.

Names are imported when first used, so `import iommubench` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from iommubench._version import __version__

_PUBLIC: dict[str, str] = {
    "load_sweep": "iommubench.spec.config",
    "run_point": "iommubench.run.point",
    "load_run": "iommubench.analysis.run_reader",
    "summarize": "iommubench.analysis.point_summary",
    "compare_runs": "iommubench.analysis.compare",
    "write_report": "iommubench.report.build",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'iommubench' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
