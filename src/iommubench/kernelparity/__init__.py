"""Parity with the kernel's own tools and published numbers: `dma-map-benchmark` on the model
and `reproduce` (published figures beside the ones measured here, from `bench/reproduce/`).

Imports any layer below; only the CLI imports it.
"""
