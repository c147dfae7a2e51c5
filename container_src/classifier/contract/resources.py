"""What this container may use: CPUs and memory, as its cgroup limits them (one truth for the trainer
and the server). Inside a container, os.cpu_count() and /proc/meminfo describe the whole host: a
local multi-instance job or `docker run --cpus/--memory` would otherwise oversubscribe it."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def available_cpus(cgroup: Path = CGROUP) -> int:
    """The CPU affinity, capped by a cgroup CPU quota (v2 cpu.max, v1 cfs_quota/period)."""
    cpus = len(os.sched_getaffinity(0))
    v2 = _read(cgroup / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
    else:
        quota, period = _read(cgroup / "cpu" / "cpu.cfs_quota_us"), _read(cgroup / "cpu" / "cpu.cfs_period_us")
    try:
        if quota not in (None, "max", "-1"):
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (TypeError, ValueError):
        pass
    return cpus


def available_memory_bytes(cgroup: Path = CGROUP) -> int:
    """Memory this process can still use: the host's MemAvailable, capped by what the cgroup's limit
    leaves (v2 memory.max - memory.current, v1 limit - usage); a large number where neither reads."""
    available = 1 << 62
    meminfo = _read(Path("/proc/meminfo")) or ""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read(cgroup / limit_file), _read(cgroup / usage_file)
        if limit and usage and limit.isdigit() and usage.isdigit():
            available = min(available, max(0, int(limit) - int(usage)))
            break
    return available


def gpu_visible(dev: Path = Path("/dev")) -> bool:
    """Whether an NVIDIA GPU is visible (docker --gpus, GPU instances), without initialising CUDA: the
    server's master decides before it forks its workers, and CUDA does not survive a fork."""
    return any(dev.glob("nvidia[0-9]*"))
