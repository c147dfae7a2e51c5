"""Helpers shared by integration tests: the small training configuration and the launcher call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The small configuration that trains in CPU minutes (same as `make demo`).
SMALL_HP = {
    "model-name": "resnet18",
    "weights": "none",
    "fine-tune": "full",
    "image-size": "64",
    "epochs": "8",
    "batch-size": "32",
    "lr": "0.003",
    "augment": "basic",
    # 32 training steps in all: save tensors often enough for the debugger rules (test_report.py).
    "debugger-save-interval": "4",
    "debugger-loss-interval": "1",
}


def images() -> list[str]:
    """The image references the Makefile defines: train, serve, serve-cpu."""
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "print-images"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def train_command(data: Path, output: Path, image: str, hps: dict[str, str], *extra: str) -> list[str]:
    """scripts/train.py --local as a user types it, the hyperparameters as --hp NAME=VALUE."""
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "--local", "--data", str(data)]
    args += ["--output-dir", str(output), "--image", image, *extra]
    return args + [arg for name, value in hps.items() for arg in ("--hp", f"{name}={value}")]


def run_train(data: Path, output: Path, image: str, hps: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """scripts/train.py --local as a user runs it; returns the finished process (log in stdout)."""
    return subprocess.run(
        train_command(data, output, image, hps, *extra), capture_output=True, text=True, timeout=1200, cwd=ROOT
    )
