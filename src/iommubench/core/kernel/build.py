"""Build the kernel-code object: the kernel's files, unmodified, with the project's shim.

The kernel's ``io-pgtable-arm.c``, ``io-pgtable.c``, ``iova.c`` and ``lib/rbtree.c`` (staged by
``sources``) are compiled with the shim's headers (``shim/``), the shim's run time
(``shim/shim.c``), the adapter (``adapter.c``, the C API of ``core/native/pgtables/ibk.h``),
the walkers' pass (``walk.c``) and the test and timing drivers (``drive.c``) into one shared
object in the cache, keyed by the sources' hash, the shim's hash, the variant and the
compiler. It is never written into the package tree and never shipped: it is a local build of
GPL-2.0 files.

Variants: ``normal``, and ``racy-cmpxchg`` (the negative control: the shim's
``cmpxchg64_relaxed`` becomes a plain read, compare and write).

A tree whose API the shim does not cover fails with one line naming the missing symbol and the
kernel file (from gcc's diagnostics).

The delayed work of ``iova.c`` (the depot trim, 100 ms) runs when the caller calls
``ibk_tick(env, now)``: the harness owns that timer (the checks call it from worker 0 every few
hundred operations), so the trim happens in the calling worker, as its CPU (``ibk_set_cpu``),
within one tick of when the kernel's workqueue would run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import sources as ksources

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"
# The adapter's C API lives beside its consumer in the native core (core/native/pgtables), so
# the core builds from its own folder; the object is built against the same header.
API = HERE.parent / "native" / "pgtables"

VARIANTS: tuple[str, ...] = ("normal", "racy-cmpxchg")
# Pauses between the racy read and its write: widens the window a real race needs, so racing
# workers are caught in milliseconds. The atomic variant is untouched.
RACY_WINDOW = 64

KERNEL_UNITS: tuple[str, ...] = (
    "drivers/iommu/io-pgtable-arm.c",
    "drivers/iommu/io-pgtable.c",
    "drivers/iommu/iova.c",
    "lib/rbtree.c",
)
OWN_UNITS: tuple[str, ...] = ("shim/shim.c", "adapter.c", "walk.c", "drive.c")

# The kernel's own codegen flags matter: without them UBSan flags a shift in io-pgtable-arm.c.
CFLAGS: tuple[str, ...] = (
    "-O2",
    "-g",
    "-fPIC",
    "-std=gnu11",
    "-fno-strict-aliasing",
    "-fno-strict-overflow",
    "-fno-delete-null-pointer-checks",
    "-fno-common",
    "-Werror=implicit-function-declaration",
    "-Werror=implicit-int",
    "-Werror=incompatible-pointer-types",
    "-Werror=int-conversion",
    "-Werror=return-type",
)
DEFINES: tuple[str, ...] = (
    "-DCONFIG_IOMMU_IO_PGTABLE_LPAE=1",
    "-DCONFIG_IOMMU_IO_PGTABLE_LPAE_SELFTEST=1",
    "-DCONFIG_IOMMU_IOVA=1",
)
EXPORTS = "{ global: ibk_*; local: *; };\n"

Progress = Callable[[str], None]


class KernelBuildError(RuntimeError):
    """The kernel files did not build against the shim; the message is one line."""


@dataclass(frozen=True)
class KernelObject:
    """A built shared object and what it was built from."""

    path: Path
    variant: str
    key: str
    sources: ksources.KernelSources
    has_cfg_alloc: bool

    def provenance(self) -> dict[str, object]:
        """What a row or meta.json records about the kernel code."""
        p = self.sources.provenance
        return {
            "kernel_source": self.sources.label,
            "kernel_source_kind": p.get("kind"),
            "kernel_version": p.get("kernel_version"),
            "kernel_package_version": p.get("version"),
            "kernel_tree": p.get("tree"),
            "kernel_git_describe": p.get("git_describe"),
            "kernel_files_sha256": self.sources.digest,
            "kernel_variant": self.variant,
            "kernel_object_key": self.key,
            "kernel_cfg_alloc": self.has_cfg_alloc,
        }


def _quiet(_msg: str) -> None:
    pass


def compiler() -> str:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or "cc"


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise KernelBuildError(f"no C compiler ({cc}: {exc.strerror})") from exc
    return (out.stdout.splitlines() or [cc])[0]


def shim_digest() -> str:
    """One hash over the shim, the adapter, the drivers and the flags."""
    h = hashlib.sha256()
    files = sorted(p for p in HERE.rglob("*") if p.suffix in (".c", ".h") and p.is_file())
    for f in [*files, API / "ibk.h"]:
        h.update(f.relative_to(HERE.parent).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    h.update("\0".join((*CFLAGS, *DEFINES, EXPORTS, str(RACY_WINDOW))).encode())
    return h.hexdigest()


def has_cfg_alloc(src: ksources.KernelSources) -> bool:
    """Does this tree's io_pgtable_cfg carry the alloc/free hooks (6.12)?"""
    text = src.path("include/linux/io-pgtable.h").read_text(errors="replace")
    return re.search(r"\(\s*\*\s*alloc\s*\)\s*\(\s*void\s*\*\s*cookie", text) is not None


def variant_flags(variant: str) -> list[str]:
    if variant == "normal":
        return []
    if variant == "racy-cmpxchg":
        return ["-DIBK_RACY_CMPXCHG", f"-DIBK_RACY_WINDOW={RACY_WINDOW}"]
    raise KernelBuildError(
        f"unknown kernel-code variant {variant!r} (one of {', '.join(VARIANTS)})"
    )


# --- gcc's diagnostics, reduced to one line ------------------------------------------------

_Q = r"['`\u2018\u2019]"
_PATTERNS: tuple[tuple[str, str], ...] = (
    (rf"implicit declaration of function {_Q}([\w]+){_Q}", "function {0} (undeclared)"),
    (rf"unknown type name {_Q}([\w ]+){_Q}", "type {0} (unknown)"),
    (rf"{_Q}([\w]+){_Q} undeclared", "{0} (undeclared)"),
    (rf"invalid use of undefined type {_Q}([\w ]+){_Q}", "{0} (undefined type)"),
    (rf"{_Q}([\w ]+){_Q} has no member named {_Q}([\w]+){_Q}", "{0}.{1} (no such member)"),
    (rf"field {_Q}([\w]+){_Q} has incomplete type", "field {0} (incomplete type)"),
    (rf"storage size of {_Q}([\w]+){_Q} isn.t known", "{0} (incomplete type)"),
    (r"([\w./-]+\.h): No such file or directory", "header <{0}> (not in the shim)"),
    (rf"too (?:few|many) arguments to function {_Q}([\w]+){_Q}", "function {0} (other signature)"),
    (rf"conflicting types for {_Q}([\w]+){_Q}", "{0} (conflicting types)"),
    (rf"incompatible type for argument \d+ of {_Q}([\w]+){_Q}", "function {0} (other signature)"),
)


def _where(path: str, stage: Path) -> str:
    """A diagnostic's file as a kernel path (drivers/iommu/...), or the shim's own name."""
    p = Path(path)
    for root, prefix in ((stage, ""), (HERE, "iommubench shim: ")):
        try:
            return prefix + p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path


def diagnose(output: str, stage: Path, unit: str, label: str) -> str:
    """One line from a failed compile: the symbol the shim lacks and the kernel file using it."""
    lines = output.splitlines()
    for line in lines:
        m = re.match(r"^(.*?):(\d+):(?:\d+:)? (?:fatal )?error: (.*)$", line)
        if not m:
            continue
        path, lineno, msg = m.groups()
        for pattern, fmt in _PATTERNS:
            sm = re.search(pattern, msg)
            if sm:
                what = fmt.format(*(g.strip() for g in sm.groups()))
                return (
                    f"kernel API not covered by the shim: {what} in "
                    f"{_where(path, stage)}:{lineno} ({label})"
                )
        return f"kernel source does not build with the shim: {_where(path, stage)}:{lineno}: " + (
            f"{msg} ({label})"
        )
    for line in lines:
        m = re.search(r"undefined reference to [`'\u2018]([\w]+)['\u2019]", line)
        if m:
            what = f"function {m.group(1)} (undefined)"
            return f"kernel API not covered by the shim: {what} in {unit} ({label})"
    tail = next((ln for ln in reversed(lines) if ln.strip()), "no output")
    return f"kernel source does not build with the shim: {unit}: {tail.strip()} ({label})"


def _link_unit(output: str, objs: dict[str, str]) -> str:
    """The kernel file whose object the first undefined reference came from."""
    for line in output.splitlines():
        m = re.search(r"([\w.-]+\.o): in function", line)
        if m and m.group(1) in objs:
            return objs[m.group(1)]
    return "the kernel files"


_ENV = {**os.environ, "LC_ALL": "C"}  # ASCII quotes in gcc's messages


def _compile_all(
    cc: str, units: list[tuple[str, Path]], flags: list[str], out: Path
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Compile every unit in parallel; return {object name: unit} and the failures in order."""
    procs = []
    objs: dict[str, str] = {}
    for i, (unit, path) in enumerate(units):
        obj = out / f"{i:02d}-{Path(unit).stem}.o"
        objs[obj.name] = unit
        cmd = [cc, *flags, "-c", str(path), "-o", str(obj)]
        procs.append(
            (
                unit,
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_ENV),
            )
        )
    failures = []
    for unit, proc in procs:
        text, _ = proc.communicate()
        if proc.returncode != 0:
            failures.append((unit, text.decode(errors="replace")))
    return objs, failures


def build(
    src: ksources.KernelSources | None = None,
    variant: str = "normal",
    progress: Progress = _quiet,
    force: bool = False,
) -> KernelObject:
    """Build (or find in the cache) the kernel-code object for these sources and variant."""
    if src is None:
        src = ksources.find(progress=progress)
    extra = variant_flags(variant)
    cc = compiler()
    cfg_alloc = has_cfg_alloc(src)
    h = hashlib.sha256()
    for part in (src.digest, shim_digest(), variant, _compiler_id(cc), str(cfg_alloc)):
        h.update(part.encode() + b"\0")
    key = h.hexdigest()
    dest_dir = ksources.cache_dir() / "build" / key[:24]
    dest = dest_dir / f"libibk-{variant}.so"
    obj = KernelObject(dest, variant, key, src, cfg_alloc)
    if dest.is_file() and not force:
        return obj
    progress(f"building the kernel-code object ({variant}) from {src.label}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    env_flags = [*CFLAGS, *DEFINES, *extra]
    if cfg_alloc:
        env_flags.append("-DIBK_HAVE_CFG_ALLOC")
    includes = [f"-I{SHIM}", f"-I{HERE}", f"-I{API}", f"-I{src.root / 'include'}"]
    units: list[tuple[str, Path]] = [(u, src.path(u)) for u in KERNEL_UNITS]
    units += [(f"iommubench/{u}", HERE / u) for u in OWN_UNITS]
    with tempfile.TemporaryDirectory(prefix=".build-", dir=dest_dir) as tmp_s:
        tmp = Path(tmp_s)
        objs, failures = _compile_all(cc, units, [*env_flags, *includes], tmp)
        if failures:
            unit, text = failures[0]
            raise KernelBuildError(diagnose(text, src.root, unit, src.label))
        (tmp / "exports.map").write_text(EXPORTS)
        out = tmp / dest.name
        link = [
            cc,
            "-shared",
            "-Wl,--no-undefined",
            "-Wl,-Bsymbolic",
            f"-Wl,--version-script={tmp / 'exports.map'}",
            "-o",
            str(out),
            *sorted(str(tmp / o) for o in objs),
        ]
        res = subprocess.run(link, capture_output=True, text=True, check=False, env=_ENV)
        if res.returncode != 0:
            unit = _link_unit(res.stdout + res.stderr, objs)
            raise KernelBuildError(diagnose(res.stdout + res.stderr, src.root, unit, src.label))
        os.replace(out, dest)
    (dest_dir / f"build-{variant}.json").write_text(
        json.dumps({**obj.provenance(), "cc": _compiler_id(cc), "flags": env_flags}, indent=1)
        + "\n"
    )
    return obj
