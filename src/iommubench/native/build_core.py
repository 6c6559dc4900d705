"""cffi builder for the native core (API mode, compiled by the package build).

The cdef below is the subset of core.h the harness calls; core.h stays free of Python headers
so a plain C program can drive the same core (tests/native/). The compiled module embeds a
hash of every native source so that a stale build is refused at import (see native_core.py).
"""

import hashlib
from pathlib import Path

from cffi import FFI

NATIVE_DIR = Path(__file__).resolve().parent


def native_sources() -> list[Path]:
    """Every file the core is built from, in a stable order."""
    return sorted(
        p for p in NATIVE_DIR.rglob("*") if p.suffix in {".c", ".h", ".def"} and p.is_file()
    )


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in native_sources():
        digest.update(path.relative_to(NATIVE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cdef_from_header() -> str:
    """The declarations between the CDEF markers of core.h, minus preprocessor lines."""
    text = (NATIVE_DIR / "core.h").read_text()
    body = text.split("#include <stdint.h>", 1)[1].rsplit("#endif", 1)[0]
    lines = []
    for line in body.splitlines():
        if line.startswith("#define"):
            name, value = line.split()[1:3]
            lines.append(f"#define {name} {value}" if value.isdigit() else "")
        elif not line.startswith("#"):
            lines.append(line)
    return "\n".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header() + "\nstatic const char IB_SOURCE_HASH[];\n")
ffibuilder.set_source(
    "iommubench._core",
    f'#include "core.h"\nstatic const char IB_SOURCE_HASH[] = "{source_hash()}";\n',
    sources=[
        str(p.relative_to(NATIVE_DIR.parents[2])) for p in native_sources() if p.suffix == ".c"
    ],
    include_dirs=[str(NATIVE_DIR.relative_to(NATIVE_DIR.parents[2]))],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
