"""Pure-Python reference models: the test oracle for the native core."""

from iommubench.model.pagetable import (
    ENTRIES,
    FRAME_BITS,
    IOVA_PFN_BITS,
    LEVELS,
    PageTable,
)

__all__ = ["ENTRIES", "FRAME_BITS", "IOVA_PFN_BITS", "LEVELS", "PageTable"]
