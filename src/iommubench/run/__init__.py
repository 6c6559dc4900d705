"""Running and storing: one point (`runner`) and its calibration, the sweep and the fleet,
resume, the run directory (`store`), the run lock, interrupts, progress, machine metadata and
competing load, and the flags the runner sets on a row.

Imports `iommubench.core` and `iommubench.spec` only.
"""
