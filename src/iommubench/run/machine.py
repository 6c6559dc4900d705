"""Machine metadata for a run's meta.json, and the noise warnings it implies.

Everything here only reads: it never changes a governor, a boost setting or an affinity. Every
read tolerates a missing or unreadable file and yields None.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

SYS_CPU = Path("/sys/devices/system/cpu")
SYS_NODE = Path("/sys/devices/system/node")
IOMMU_PREFIXES = ("iommu", "intel_iommu", "amd_iommu")


def _read(path: Path | str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def parse_cpulist(text: str | None) -> list[int] | None:
    """Parse a kernel CPU list such as "0-3,8,10-11"."""
    if text is None:
        return None
    cpus: list[int] = []
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo")
    if text:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model", "Processor"):
                return value.strip() or None
    return platform.processor() or None


def online_cpus() -> list[int] | None:
    cpus = parse_cpulist(_read(SYS_CPU / "online"))
    if cpus is None:
        n = os.cpu_count()
        return list(range(n)) if n else None
    return cpus


def allowed_cpus() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def numa_nodes() -> dict[str, list[int] | None] | None:
    """NUMA node -> its CPUs, or None when the kernel exposes no node directory."""
    try:
        nodes = sorted(
            (p for p in SYS_NODE.iterdir() if re.fullmatch(r"node\d+", p.name)),
            key=lambda p: int(p.name[4:]),
        )
    except OSError:
        return None
    if not nodes:
        return None
    return {p.name: parse_cpulist(_read(p / "cpulist")) for p in nodes}


def smt_active() -> bool | None:
    text = _read(SYS_CPU / "smt" / "active")
    return None if text is None else text == "1"


def governors(cpus: list[int] | None) -> dict[str, str | None] | None:
    """The cpufreq governor of each CPU (None when cpufreq is not exposed, e.g. in many VMs)."""
    if not cpus:
        return None
    out = {str(c): _read(SYS_CPU / f"cpu{c}" / "cpufreq" / "scaling_governor") for c in cpus}
    return None if all(v is None for v in out.values()) else out


def turbo() -> dict[str, Any]:
    """Turbo/boost state: intel_pstate's no_turbo, or cpufreq's boost. None = not exposed."""
    no_turbo = _read(SYS_CPU / "intel_pstate" / "no_turbo")
    boost = _read(SYS_CPU / "cpufreq" / "boost")
    enabled: bool | None = None
    source: str | None = None
    if no_turbo is not None:
        enabled, source = no_turbo == "0", "intel_pstate/no_turbo"
    elif boost is not None:
        enabled, source = boost == "1", "cpufreq/boost"
    return {"enabled": enabled, "source": source}


def iommu_cmdline() -> list[str] | None:
    """The kernel command line's IOMMU tokens (iommu=, iommu.strict=, intel_iommu=, ...)."""
    text = _read("/proc/cmdline")
    if text is None:
        return None
    return [t for t in text.split() if t.startswith(IOMMU_PREFIXES)]


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def git_sha(path: Path | None = None) -> str | None:
    """The git SHA of the repository holding the package source, or None."""
    where = path or Path(__file__).resolve().parent
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def package_version() -> str | None:
    try:
        from iommubench._version import __version__

        return __version__
    except ImportError:
        return None


def build() -> dict[str, str | None]:
    """What the results depend on of this installation: version, native core, git SHA."""
    from iommubench.core import binding

    return {
        "version": package_version(),
        "core_hash": binding.built_source_hash(),
        "git_sha": git_sha(),
    }


def build_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key recorded -> current' for every build field that differs."""
    return [
        f"{key} {recorded.get(key)} -> {current.get(key)}"
        for key in ("version", "core_hash", "git_sha")
        if recorded.get(key) != current.get(key)
    ]


def collect() -> dict[str, Any]:
    """Everything about this machine a result depends on, as a JSON-serialisable dict."""
    online = online_cpus()
    allowed = allowed_cpus()
    return {
        "hostname": platform.node() or None,
        "cpu_model": cpu_model(),
        "machine": platform.machine() or None,
        "cpus_online": online,
        "cpus_online_count": len(online) if online is not None else None,
        "cpus_allowed": allowed,
        "cpus_allowed_count": len(allowed) if allowed is not None else None,
        "numa_nodes": numa_nodes(),
        "smt_active": smt_active(),
        "governors": governors(online),
        "turbo": turbo(),
        "kernel": platform.release() or None,
        "iommu_cmdline": iommu_cmdline(),
        "load_average": load_average(),
        "python": sys.version.split()[0],
        "iommubench_version": package_version(),
        "git_sha": git_sha(),
    }


def noise_warnings(meta: dict[str, Any]) -> list[str]:
    """What about this machine may make measurements noisy or unrepresentative."""
    out: list[str] = []
    govs = meta.get("governors") or {}
    other = sorted({g for g in govs.values() if g and g != "performance"})
    if other:
        out.append(
            f"CPU frequency governor is {', '.join(other)} (not performance): "
            "frequency changes add noise"
        )
    turbo_state = meta.get("turbo") or {}
    if turbo_state.get("enabled"):
        out.append(f"turbo/boost is on ({turbo_state.get('source')}): clock speed varies with load")
    if meta.get("smt_active"):
        out.append("SMT is active: workers may share a physical core")
    allowed = meta.get("cpus_allowed_count")
    load = meta.get("load_average")
    if load and allowed and load[0] > 0.25 * allowed:
        out.append(
            f"1-minute load average {load[0]} is high for {allowed} allowed CPUs: "
            "other work competes with the benchmark"
        )
    if allowed is not None and allowed < 4:
        out.append(f"only {allowed} CPU(s) allowed: scaling beyond that is oversubscribed")
    online = meta.get("cpus_online_count")
    if allowed is not None and online is not None and allowed < online:
        out.append(f"the process may use {allowed} of {online} online CPUs (affinity mask)")
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return _compact_cpulist(value)
        return " ".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _compact_cpulist(cpus: list[int]) -> str:
    cpus = sorted(cpus)
    parts = []
    start = prev = cpus[0]
    for c in [*cpus[1:], None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def summary_items(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs describing the machine, for `info` and the report."""
    govs = meta.get("governors")
    gov_text = "unknown (no cpufreq)"
    if govs:
        distinct = sorted({str(g) for g in govs.values()})
        gov_text = ", ".join(distinct)
    turbo_state = meta.get("turbo") or {}
    turbo_text = _fmt(turbo_state.get("enabled"))
    if turbo_state.get("source"):
        turbo_text += f" ({turbo_state['source']})"
    nodes = meta.get("numa_nodes")
    nodes_text = "unknown" if not nodes else "; ".join(f"{k}: {_fmt(v)}" for k, v in nodes.items())
    online = meta.get("cpus_online")
    allowed = meta.get("cpus_allowed")
    return [
        ("host", _fmt(meta.get("hostname"))),
        ("CPU model", _fmt(meta.get("cpu_model"))),
        ("CPUs online", f"{_fmt(meta.get('cpus_online_count'))} ({_fmt(online)})"),
        ("CPUs allowed", f"{_fmt(meta.get('cpus_allowed_count'))} ({_fmt(allowed)})"),
        ("NUMA nodes", nodes_text),
        ("SMT active", _fmt(meta.get("smt_active"))),
        ("governor", gov_text),
        ("turbo/boost", turbo_text),
        ("kernel", _fmt(meta.get("kernel"))),
        ("IOMMU cmdline", _fmt(meta.get("iommu_cmdline"))),
        ("load average", _fmt(meta.get("load_average"))),
        ("python", _fmt(meta.get("python"))),
        ("iommubench", _fmt(meta.get("iommubench_version") or meta.get("version"))),
        ("git SHA", _fmt(meta.get("git_sha"))),
    ]


def format_info(meta: dict[str, Any]) -> str:
    """Human-readable machine metadata and its noise warnings, for `iommubench info`."""
    items = summary_items(meta)
    width = max(len(k) for k, _ in items)
    lines = [f"{k.ljust(width)}  {v}" for k, v in items]
    warns = noise_warnings(meta)
    if warns:
        lines.append("")
        lines.append("noise warnings:")
        lines.extend(f"  - {w}" for w in warns)
    return "\n".join(lines)
