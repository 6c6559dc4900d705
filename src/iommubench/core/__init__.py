"""The native layer: the binding to the compiled core (`binding`), the shared-memory arena of a
point (`arena`), the latency histogram format the core writes (`hist`), the C sources
(`native/`) and the build of the kernel's own files from a source tree (`kernel/`).

Nothing here imports another layer of the package.
"""
