"""cffi builder for the native core (API mode, compiled by the package build).

The cdef below is the subset of core.h the harness calls; core.h stays free of Python headers
so a plain C program can drive the same core (tests/native/). The compiled module embeds a
hash of every native source so that a stale build is refused at import (see native_core.py).
"""

import hashlib
import re
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


_FUNCTION_MACRO = re.compile(r"#define (\w+)\(([\w, ]+)\) (.*)")
_INCLUDE = re.compile(r'#include "([^"]+)"')
_ARGUMENT = re.compile(r'"[^"]*"|[^,\s][^,]*')  # one macro argument: a string, or up to a comma


def _apply(body: str, params: list[str], args: list[str]) -> str:
    """A function-like macro's body with its parameters replaced and `##` pasted."""
    for param, arg in zip(params, args, strict=True):
        body = re.sub(rf"\b{param}\b", arg.strip(), body)
    return re.sub(r"\s*##\s*", "", body)


def _expand(lines: list[str], here: Path, macros: dict[str, tuple[list[str], str]]) -> list[str]:
    """Lines for cffi's cdef: object-like integer #defines kept, function-like macros of one
    line (e.g. IB_COUNTER and IB_LOCK_FAMILY in core.h) applied, quoted #includes (the .def
    files that declare each owner's fields) expanded in place, every other preprocessor line
    dropped."""
    out = []
    for line in lines:
        if m := _FUNCTION_MACRO.match(line):
            macros[m[1]] = ([p.strip() for p in m[2].split(",")], m[3])
        elif line.startswith("#undef"):
            macros.pop(line.split()[1], None)
        elif m := _INCLUDE.match(line):
            path = here / m[1]
            out += _expand(path.read_text().splitlines(), path.parent, macros)
        elif line.startswith("#define"):
            name, value = line.split()[1:3]
            out.append(f"#define {name} {value}" if value.isdigit() else "")
        elif not line.startswith("#"):
            for macro, (params, body) in macros.items():
                line = re.sub(
                    rf'\b{macro}\(((?:"[^"]*"|[^()"])*)\)',
                    lambda a, p=params, b=body: _apply(b, p, _ARGUMENT.findall(a[1])),
                    line,
                )
            out.append(line)
    return out


def _cdef_from_header() -> str:
    """The declarations of core.h after its stdint include, with the .def files it includes
    expanded, so cffi sees flat structs."""
    text = (NATIVE_DIR / "core.h").read_text()
    body = text.split("#include <stdint.h>", 1)[1].rsplit("#endif", 1)[0]
    return "\n".join(_expand(body.splitlines(), NATIVE_DIR, {}))


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header() + "\nstatic const char IB_SOURCE_HASH[];\n")
ffibuilder.set_source(
    "iommubench._core",
    f'#include "core.h"\nstatic const char IB_SOURCE_HASH[] = "{source_hash()}";\n',
    sources=[
        str(p.relative_to(NATIVE_DIR.parents[3])) for p in native_sources() if p.suffix == ".c"
    ],
    include_dirs=[str(NATIVE_DIR.relative_to(NATIVE_DIR.parents[3]))],
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
