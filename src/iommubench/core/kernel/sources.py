"""Kernel source files as an input: found, extracted once into a cache, never copied into the repo.

The kernel's files are GPL-2.0. This module only *locates* them: a tree the user names (a kernel
checkout), or Debian's ``linux-source-6.12`` package (the installed tarball under ``/usr/src``, or
``apt-get download`` + ``dpkg-deb`` without root). The few members the build needs are staged
into a cache directory outside the repository, keyed by package version (or tree path) and the
files' hashes, with their provenance beside them.

No import from the rest of iommubench: this file stands alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PACKAGE = "linux-source-6.12"

# The members the build compiles or includes, relative to the top of a kernel tree. The shim
# provides every other header; "iommu-pages.h" is deliberately not staged, so the shim's copy
# is the one the quoted include finds.
MEMBERS: tuple[str, ...] = (
    "drivers/iommu/io-pgtable-arm.c",
    "drivers/iommu/io-pgtable-arm.h",
    "drivers/iommu/io-pgtable.c",
    "drivers/iommu/iova.c",
    "include/linux/io-pgtable.h",
    "include/linux/iova.h",
    "lib/rbtree.c",
    "include/linux/rbtree.h",
    "include/linux/rbtree_augmented.h",
    "include/linux/rbtree_types.h",
)
# Read for the version only (never compiled).
VERSION_MEMBER = "Makefile"

Progress = Callable[[str], None]


class KernelSourceUnavailable(RuntimeError):
    """No kernel source could be had; the message is one line saying what is missing."""


@dataclass(frozen=True)
class KernelSources:
    """A staged set of kernel files and where they came from."""

    root: Path  # a directory laid out like a kernel tree, holding only MEMBERS
    provenance: dict[str, object] = field(hash=False)

    @property
    def digest(self) -> str:
        """One hash over every staged file (names and contents)."""
        return str(self.provenance["sources_sha256"])

    @property
    def label(self) -> str:
        """A short human name: package and version, or tree path and git describe."""
        p = self.provenance
        if p.get("kind") == "package":
            return f"{p['package']} {p['version']}"
        describe = p.get("git_describe")
        return f"{p['tree']}" + (f" ({describe})" if describe else "")

    def path(self, member: str) -> Path:
        return self.root / member


def cache_dir() -> Path:
    """Where extracted sources and built objects live: $IOMMUBENCH_CACHE, else XDG cache."""
    env = os.environ.get("IOMMUBENCH_CACHE")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "iommubench" if xdg else Path.home() / ".cache" / "iommubench"
    return base / "kernel"


def _quiet(_msg: str) -> None:
    pass


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every member present under root."""
    return {m: _sha256_file(root / m) for m in MEMBERS if (root / m).is_file()}


def combined_hash(hashes: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def kernel_version(makefile: Path) -> str | None:
    """VERSION.PATCHLEVEL.SUBLEVEL from a kernel Makefile, or None."""
    try:
        text = makefile.read_text(errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=\s*(\S*)\s*$", text, re.M)
        fields[key] = m.group(1) if m else ""
    if not fields["VERSION"]:
        return None
    ver = f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"
    return ver + fields["EXTRAVERSION"]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One process stages a given cache entry at a time (two test runs may start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load_stage(stage: Path) -> KernelSources | None:
    """A staged directory whose files still match their recorded hashes, or None."""
    meta = stage / "provenance.json"
    if not meta.is_file():
        return None
    try:
        prov = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    tree = stage / "tree"
    recorded = prov.get("files_sha256", {})
    if set(recorded) != set(MEMBERS) or file_hashes(tree) != recorded:
        return None
    return KernelSources(root=tree, provenance=prov)


def _write_stage(stage: Path, tree: Path, prov: dict[str, object]) -> KernelSources:
    hashes = file_hashes(tree)
    missing = [m for m in MEMBERS if m not in hashes]
    if missing:
        raise KernelSourceUnavailable(f"kernel source has no {missing[0]} ({prov.get('origin')})")
    prov = dict(prov, files_sha256=hashes, sources_sha256=combined_hash(hashes))
    (stage / "provenance.json").write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")
    return KernelSources(root=tree, provenance=prov)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


# --- a tree the user names -----------------------------------------------------------------


def _git_describe(tree: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(tree), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def from_tree(tree: Path | str, progress: Progress = _quiet) -> KernelSources:
    """Stage MEMBERS of a kernel tree (a checkout, patched or not) into the cache."""
    tree = Path(tree).expanduser().resolve()
    if not tree.is_dir():
        raise KernelSourceUnavailable(f"kernel source tree {tree} is not a directory")
    missing = [m for m in MEMBERS if not (tree / m).is_file()]
    if missing:
        raise KernelSourceUnavailable(f"kernel source tree {tree} has no {missing[0]}")
    digest = combined_hash(file_hashes(tree))
    stage = cache_dir() / "src" / f"tree-{digest[:16]}"
    prov: dict[str, object] = {
        "kind": "tree",
        "origin": str(tree),
        "tree": str(tree),
        "git_describe": _git_describe(tree),
        "kernel_version": kernel_version(tree / VERSION_MEMBER),
    }
    with _locked(stage):
        staged = _load_stage(stage)
        if staged is not None and staged.provenance.get("tree") == str(tree):
            # git describe may have moved (a new commit touching other files): refresh it.
            if staged.provenance.get("git_describe") != prov["git_describe"]:
                return _write_stage(stage, staged.root, dict(staged.provenance, **prov))
            return staged
        progress(f"staging kernel files from {tree}")
        tmp = Path(tempfile.mkdtemp(prefix=".stage-", dir=stage))
        for m in MEMBERS:
            (tmp / m).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / m, tmp / m)
        dest = stage / "tree"
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        return _write_stage(stage, dest, prov)


# --- Debian's linux-source package ---------------------------------------------------------


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]


def installed_version(package: str) -> str | None:
    """The installed version of a Debian package, or None."""
    if shutil.which("dpkg-query") is None:
        return None
    out = _run(["dpkg-query", "-W", "-f", "${Status}\t${Version}", package])
    if out.returncode != 0 or "install ok installed" not in out.stdout:
        return None
    return out.stdout.split("\t", 1)[1].strip() or None


def _deb_version(deb: Path) -> str | None:
    out = _run(["dpkg-deb", "-f", str(deb), "Version"])
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    """A sort key close enough to Debian's ordering for the versions of one package."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+~]", version))


def _stage_dir(package: str, version: str) -> Path:
    return cache_dir() / "src" / f"{_safe_name(package)}_{_safe_name(version)}"


def _tar_members(package: str) -> list[str]:
    # Debian's tarball holds one top directory named after the package.
    return [f"{package}/{m}" for m in (*MEMBERS, VERSION_MEMBER)]


def _extract_tarball(
    package: str, tar_cmd_input: list[str] | None, tarball: Path | None, dest: Path
) -> None:
    """Extract MEMBERS from a linux-source .tar.xz (a path, or the stdout of a command)."""
    dest.mkdir(parents=True, exist_ok=True)
    tar = ["tar", "-xJ", "-C", str(dest), "--strip-components=1"]
    if tarball is not None:
        res = _run([*tar, "-f", str(tarball), *_tar_members(package)])
        if res.returncode != 0:
            raise KernelSourceUnavailable(
                f"cannot extract {tarball}: {res.stderr.strip().splitlines()[-1:]}"
            )
        return
    assert tar_cmd_input is not None
    with subprocess.Popen(tar_cmd_input, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as src:
        res = subprocess.run(
            [*tar, "-f", "-", *_tar_members(package)],
            stdin=src.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert src.stdout is not None
        src.stdout.close()
        src.wait()
    if res.returncode != 0:
        tail = res.stderr.strip().splitlines()[-1:] or ["?"]
        raise KernelSourceUnavailable(f"cannot extract kernel files: {tail[0]}")


def _stage_from_tarball(
    package: str,
    version: str,
    origin: str,
    progress: Progress,
    tarball: Path | None = None,
    deb: Path | None = None,
) -> KernelSources:
    stage = _stage_dir(package, version)
    with _locked(stage):
        staged = _load_stage(stage)
        if staged is not None:
            return staged
        progress(f"extracting kernel files from {origin} (about 20 s, once)")
        tmp = Path(tempfile.mkdtemp(prefix=".stage-", dir=stage))
        if deb is not None:
            inner = f"./usr/src/{package}.tar.xz"
            # dpkg-deb --fsys-tarfile | tar -xO inner.tar.xz | tar -xJ members
            pipe = [
                "sh",
                "-c",
                'dpkg-deb --fsys-tarfile "$1" | tar -xO "$2"',
                "sh",
                str(deb),
                inner,
            ]
            _extract_tarball(package, pipe, None, tmp)
        else:
            _extract_tarball(package, None, tarball, tmp)
        dest = stage / "tree"
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        prov: dict[str, object] = {
            "kind": "package",
            "origin": origin,
            "package": package,
            "version": version,
            "kernel_version": kernel_version(dest / VERSION_MEMBER),
        }
        return _write_stage(stage, dest, prov)


def _cached_stages(package: str) -> list[KernelSources]:
    root = cache_dir() / "src"
    found: list[KernelSources] = []
    if not root.is_dir():
        return found
    for stage in root.glob(f"{_safe_name(package)}_*"):
        staged = _load_stage(stage)
        if staged is not None and staged.provenance.get("package") == package:
            found.append(staged)
    found.sort(key=lambda s: _version_key(str(s.provenance["version"])))
    return found


def _cached_debs(package: str) -> list[tuple[str, Path]]:
    debs = []
    for deb in (cache_dir() / "debs").glob(f"{package}_*.deb"):
        version = _deb_version(deb)
        if version:
            debs.append((version, deb))
    debs.sort(key=lambda vd: _version_key(vd[0]))
    return debs


def _apt_download(package: str, progress: Progress) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise KernelSourceUnavailable(
            f"no kernel source: {package} is not installed or cached, and this machine has no "
            "apt-get/dpkg-deb; pass a kernel tree (--kernel-src PATH)"
        )
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    progress(f"downloading {package} with apt-get download (about 150 MB, once)")
    res = _run(["apt-get", "download", package], cwd=str(debs), timeout=1800)
    got = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    if res.returncode != 0 or not got:
        why = (res.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise KernelSourceUnavailable(
            f"no kernel source: {package} is not installed or cached and `apt-get download "
            f"{package}` failed ({why}); pass a kernel tree (--kernel-src PATH)"
        )
    return got[-1]


def from_package(
    package: str = DEFAULT_PACKAGE,
    progress: Progress = _quiet,
    download: bool = True,
) -> KernelSources:
    """Stage MEMBERS from Debian's linux-source package.

    Order: the installed tarball (/usr/src/<package>.tar.xz); else the newest version already
    staged in the cache; else a cached .deb; else ``apt-get download`` (no root needed).
    """
    tarball = Path("/usr/src") / f"{package}.tar.xz"
    version = installed_version(package)
    if tarball.is_file() and version:
        return _stage_from_tarball(package, version, str(tarball), progress, tarball=tarball)
    cached = _cached_stages(package)
    if cached:
        return cached[-1]
    debs = _cached_debs(package)
    if not debs and download:
        _apt_download(package, progress)
        debs = _cached_debs(package)
    if not debs:
        raise KernelSourceUnavailable(
            f"no kernel source: {package} is not installed, not cached in {cache_dir()}, "
            "and downloading is off; pass a kernel tree (--kernel-src PATH)"
        )
    version, deb = debs[-1]
    return _stage_from_tarball(package, version, f"{deb.name}", progress, deb=deb)


def find(
    tree: Path | str | None = None,
    package: str | None = None,
    progress: Progress = _quiet,
    download: bool = True,
) -> KernelSources:
    """Kernel sources: the tree given, else $IOMMUBENCH_KERNEL_SRC, else the package."""
    if tree is None:
        tree = os.environ.get("IOMMUBENCH_KERNEL_SRC") or None
    if tree is not None:
        return from_tree(tree, progress)
    return from_package(package or DEFAULT_PACKAGE, progress, download=download)
