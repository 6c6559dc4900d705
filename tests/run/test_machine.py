"""Machine metadata: tolerant reads, JSON-serialisable, noise warnings."""

import json
from pathlib import Path

from iommubench.run import machine


def test_collect_is_json_serialisable_and_has_the_keys():
    meta = machine.collect()
    json.dumps(meta)
    for key in [
        "cpu_model",
        "cpus_online",
        "cpus_allowed",
        "numa_nodes",
        "smt_active",
        "governors",
        "turbo",
        "kernel",
        "iommu_cmdline",
        "load_average",
        "python",
        "iommubench_version",
        "git_sha",
    ]:
        assert key in meta
    assert meta["cpus_allowed_count"] == len(meta["cpus_allowed"]) >= 1
    assert meta["git_sha"] is None or len(meta["git_sha"]) == 40


def test_parse_cpulist():
    assert machine.parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert machine.parse_cpulist("") == []
    assert machine.parse_cpulist(None) is None


def test_missing_files_read_as_none(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(machine, "SYS_CPU", tmp_path / "nope")
    monkeypatch.setattr(machine, "SYS_NODE", tmp_path / "nope2")
    assert machine.smt_active() is None
    assert machine.governors([0, 1]) is None
    assert machine.turbo() == {"enabled": None, "source": None}
    assert machine.numa_nodes() is None
    assert machine.git_sha(tmp_path) is None
    meta = machine.collect()
    assert meta["smt_active"] is None
    machine.format_info(meta)


def test_sysfs_values_are_read(monkeypatch, tmp_path: Path):
    cpu = tmp_path / "cpu"
    (cpu / "smt").mkdir(parents=True)
    (cpu / "smt" / "active").write_text("1\n")
    (cpu / "intel_pstate").mkdir()
    (cpu / "intel_pstate" / "no_turbo").write_text("0\n")
    for c in (0, 1):
        (cpu / f"cpu{c}" / "cpufreq").mkdir(parents=True)
        (cpu / f"cpu{c}" / "cpufreq" / "scaling_governor").write_text("powersave\n")
    node = tmp_path / "node"
    (node / "node0").mkdir(parents=True)
    (node / "node0" / "cpulist").write_text("0-1\n")
    monkeypatch.setattr(machine, "SYS_CPU", cpu)
    monkeypatch.setattr(machine, "SYS_NODE", node)
    assert machine.smt_active() is True
    assert machine.turbo() == {"enabled": True, "source": "intel_pstate/no_turbo"}
    assert machine.governors([0, 1]) == {"0": "powersave", "1": "powersave"}
    assert machine.numa_nodes() == {"node0": [0, 1]}


def test_noise_warnings():
    quiet = {
        "governors": {"0": "performance"},
        "turbo": {"enabled": False, "source": "cpufreq/boost"},
        "smt_active": False,
        "load_average": [0.1, 0.1, 0.1],
        "cpus_allowed_count": 16,
        "cpus_online_count": 16,
    }
    assert machine.noise_warnings(quiet) == []
    noisy = {
        "governors": {"0": "powersave", "1": "performance"},
        "turbo": {"enabled": True, "source": "intel_pstate/no_turbo"},
        "smt_active": True,
        "load_average": [3.0, 1.0, 1.0],
        "cpus_allowed_count": 2,
        "cpus_online_count": 4,
    }
    text = "\n".join(machine.noise_warnings(noisy))
    for word in ["powersave", "turbo", "SMT", "load average", "only 2 CPU", "2 of 4"]:
        assert word in text
    assert machine.noise_warnings({}) == []


def test_format_info_mentions_the_essentials():
    text = machine.format_info(machine.collect())
    for label in ["CPU model", "CPUs allowed", "governor", "kernel", "IOMMU cmdline", "git SHA"]:
        assert label in text
