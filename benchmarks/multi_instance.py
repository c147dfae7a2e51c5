"""Multi-instance benchmark: training images/s with 1 and 2 local-mode instances (containers).

    python benchmarks/multi_instance.py [--image IMAGE] [--epochs 4] [--counts 1 2]

Runs the training image in SageMaker local mode on the sample data (scripts/train.py --local
--instance-count N), the same per-process batch in every run, and reads the trainer's
`images_per_sec` metric lines (all ranks' images / the slowest rank's seconds). The first epoch is
left out (start-up). Every local instance shares this machine's cores, so the figure says whether
the distributed path works and what it costs here, not how real instances scale (see README).
Writes build/benchmarks/multi_instance.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from classifier.contract import metrics
from classifier_host.data import samples as sample_set

ROOT = Path(__file__).resolve().parents[1]

HPS = {
    "model-name": "resnet18",
    "weights": "none",
    "fine-tune": "full",
    "image-size": "64",
    "batch-size": "32",
    "lr": "0.003",
    "augment": "basic",
    "debugger": "false",
    "profiling": "false",
}


def train_image() -> str:
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "print-images"], capture_output=True, text=True, check=True)
    return os.environ.get("TRAIN_IMAGE") or out.stdout.split()[0]


def run(image: str, data: Path, output: Path, count: int, epochs: int) -> dict:
    args = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--local",
        "--data",
        str(data),
        "--output-dir",
        str(output),
        "--image",
        image,
        "--instance-count",
        str(count),
    ]
    for name, value in {**HPS, "epochs": str(epochs)}.items():
        args += ["--hp", f"{name}={value}"]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{count}-instance job failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    rates = metrics.parse_metrics(done.stdout)["images_per_sec"][1:]
    return {
        "instances": count,
        "images_per_sec": statistics.median(rates),
        "per_epoch": rates,
        "job_seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=None, help="training image (default: make print-images)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per job (the first is not counted)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2], help="instance counts to run")
    args = parser.parse_args()
    image = args.image or train_image()
    with tempfile.TemporaryDirectory() as tmp:
        data = sample_set.make(Path(tmp) / "data")
        results = [run(image, data, Path(tmp) / f"out{n}", n, args.epochs) for n in args.counts]
    base = results[0]["images_per_sec"]
    print(f"{'instances':>9} {'images/s':>9} {'vs first':>9} {'job s':>6}   (machine: {os.cpu_count()} cores)")
    for r in results:
        print(
            f"{r['instances']:>9} {r['images_per_sec']:>9.1f} {r['images_per_sec'] / base:>8.2f}x "
            f"{r['job_seconds']:>6.0f}"
        )
    out = ROOT / "build" / "benchmarks" / "multi_instance.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "hyperparameters": HPS, "results": results}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
