"""CPUs and memory as the container's cgroup limits them (v2 and v1 layouts, written to a temp folder)."""

from __future__ import annotations

import os

from classifier.contract import resources

HOST_CPUS = len(os.sched_getaffinity(0))


def write(root, files: dict[str, str]):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


def test_cpus_follow_a_v2_quota_and_ignore_max(tmp_path):
    assert resources.available_cpus(write(tmp_path / "a", {"cpu.max": "100000 100000"})) == 1
    assert resources.available_cpus(write(tmp_path / "b", {"cpu.max": "max 100000"})) == HOST_CPUS
    assert resources.available_cpus(write(tmp_path / "c", {"cpu.max": "50000 100000"})) == 1  # never 0


def test_cpus_follow_a_v1_quota(tmp_path):
    v1 = write(tmp_path, {"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"})
    assert resources.available_cpus(v1) == 1
    unlimited = write(tmp_path / "u", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert resources.available_cpus(unlimited) == HOST_CPUS


def test_memory_is_what_the_cgroup_limit_leaves(tmp_path):
    host = resources.available_memory_bytes(tmp_path / "none")
    assert 0 < host < 1 << 62  # /proc/meminfo read
    assert host > 1 << 30  # these machines have GBs free: the limits below are what binds
    v2 = write(tmp_path / "v2", {"memory.max": str(1 << 30), "memory.current": str(1 << 28)})
    assert resources.available_memory_bytes(v2) == (1 << 30) - (1 << 28)
    v1 = write(
        tmp_path / "v1", {"memory/memory.limit_in_bytes": str(1 << 29), "memory/memory.usage_in_bytes": str(1 << 28)}
    )
    assert resources.available_memory_bytes(v1) == 1 << 28
    unlimited = write(tmp_path / "max", {"memory.max": "max", "memory.current": "5"})
    assert abs(resources.available_memory_bytes(unlimited) - host) < host / 4  # MemAvailable moves a little
