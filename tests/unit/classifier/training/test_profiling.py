"""The utilisation sampler the report's timeline is drawn from."""

import json
import time

from classifier.training.profiling import SystemMonitor


def test_first_sample_measures_real_cpu_use(tmp_path):
    """psutil's reference point is per thread: primed anywhere but the sampling thread, the first
    sample reads 0% whatever the load (seen in the demo's report before the fix)."""
    path = tmp_path / "system.jsonl"
    monitor = SystemMonitor(path, interval_s=0.2).start()
    deadline = time.perf_counter() + 0.9
    while time.perf_counter() < deadline:  # keep a core busy while it samples
        sum(i * i for i in range(10_000))
    monitor.stop()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) >= 3
    assert rows[0]["cpu"] > 0, rows[:3]
    assert all(0 < r["mem"] <= 100 and r["rss_gb"] > 0 for r in rows)
