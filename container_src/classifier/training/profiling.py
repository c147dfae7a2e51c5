"""What the trainer records about its own speed, under <output data>/profile/ (returned in output.tar.gz):

    system.jsonl   CPU %, memory %, process RSS and, through NVML where a GPU is present, GPU and GPU
                   memory use, sampled every `monitor-interval-ms` by a background thread
    trace.json     a chrome trace (chrome://tracing, Perfetto) of a short torch.profiler window
    operators.json the window's operators by self time
    epochs.jsonl   per epoch: seconds waiting for the data loader vs computing, images/s

scripts/classifier_host/reports/training.py turns them into the job report. SageMaker's own system
monitoring (ProfilerConfig) needs nothing in the container; this is what keeps working where that is not
available.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import torch

from classifier.contract import outputs

log = logging.getLogger(__name__)

SUBDIR = outputs.PROFILE_DIR
SYSTEM, TRACE, OPERATORS, EPOCHS = outputs.SYSTEM_FILE, outputs.TRACE_FILE, outputs.OPERATORS_FILE, outputs.EPOCHS_FILE
WARMUP_STEPS = 2  # the first steps pay for allocator and cuDNN start-up; leave them out of the window
TOP_OPERATORS = 25


class _Nvml:
    """GPU utilisation through NVML (nvidia-ml-py); absent GPUs or drivers mean no GPU columns."""

    def __init__(self):
        self.handles = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception as err:  # no library, no driver, no device: CPU-only sampling
            log.info("profiling: no GPU sampling (%s)", type(err).__name__)

    def sample(self) -> dict:
        row = {}
        for i, handle in enumerate(self.handles):
            util = self.nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            row[f"gpu{i}_util"] = float(util.gpu)
            row[f"gpu{i}_mem"] = 100.0 * memory.used / memory.total
        return row


class SystemMonitor:
    """Samples utilisation in a daemon thread until stop(); one JSON line per sample."""

    def __init__(self, path: Path, interval_s: float):
        import psutil

        self.path, self.interval_s = path, interval_s
        self.psutil, self.process = psutil, psutil.Process(os.getpid())
        self.nvml = _Nvml()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="system-monitor", daemon=True)

    def start(self) -> SystemMonitor:
        self.thread.start()
        return self

    def _run(self) -> None:
        # The first call only sets the reference point, per thread (psutil >= 5.9.6): made here,
        # in the sampling thread, or the first sample reads 0%.
        self.psutil.cpu_percent(None)
        start = time.time()
        with self.path.open("a") as out:
            while not self.stopped.wait(self.interval_s):
                row = {
                    "t": round(time.time() - start, 3),
                    "cpu": self.psutil.cpu_percent(None),
                    "mem": self.psutil.virtual_memory().percent,
                    "rss_gb": round(self.process.memory_info().rss / 1e9, 3),
                    **self.nvml.sample(),
                }
                out.write(json.dumps(row) + "\n")
                out.flush()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


class ProfilerWindow:
    """torch.profiler over `steps` training steps after a warm-up; step() is the loop's clock."""

    def __init__(self, folder: Path, steps: int):
        self.folder = folder
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=0, warmup=WARMUP_STEPS, active=steps, repeat=1),
            on_trace_ready=self._save,
            record_shapes=False,
        )
        self.profiler.start()
        self.running = True

    def _save(self, prof) -> None:
        prof.export_chrome_trace(str(self.folder / TRACE))
        device_attr = "self_device_time_total"
        rows = []
        for event in prof.key_averages():
            rows.append(
                {
                    "name": event.key,
                    "calls": event.count,
                    "self_cpu_ms": event.self_cpu_time_total / 1e3,
                    "self_device_ms": getattr(event, device_attr, 0.0) / 1e3,
                }
            )
        rows.sort(key=lambda r: r["self_cpu_ms"] + r["self_device_ms"], reverse=True)
        (self.folder / OPERATORS).write_text(json.dumps(rows[:TOP_OPERATORS], indent=1) + "\n")
        log.info("profiling: torch.profiler window written to %s", self.folder / TRACE)

    def step(self) -> None:
        if self.running:
            self.profiler.step()

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.profiler.stop()  # a run shorter than the window still saves what it recorded


class Profiling:
    """The trainer's handle: start() before training, step() per step, epoch() per epoch, stop()."""

    def __init__(self, folder: Path, hp):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.monitor = SystemMonitor(folder / SYSTEM, hp.monitor_interval_ms / 1000).start()
        self.window = ProfilerWindow(folder, hp.profiler_steps)

    def step(self) -> None:
        self.window.step()

    def epoch(self, epoch: int, stats) -> None:
        """Data-loading vs compute split of one training epoch (engine.EpochStats)."""
        row = {
            "epoch": epoch,
            "seconds": stats.seconds,
            "data_seconds": stats.data_seconds,
            "compute_seconds": stats.seconds - stats.data_seconds,
            "images_per_sec": stats.images / max(stats.seconds, 1e-9),
        }
        with (self.folder / EPOCHS).open("a") as out:
            out.write(json.dumps(row) + "\n")

    def stop(self) -> None:
        self.window.stop()
        self.monitor.stop()


class Off:
    """profiling=false: the trainer calls the same methods, nothing happens."""

    def step(self) -> None: ...
    def epoch(self, epoch: int, stats) -> None: ...
    def stop(self) -> None: ...


def start(hp, output_data: Path) -> Profiling | Off:
    if not hp.profiling:
        return Off()
    return Profiling(output_data / SUBDIR, hp)
