"""Training checkpoints: atomic writes, the newest valid one wins, damaged ones are reported and skipped.

One file per checkpoint in the checkpoint folder (/opt/ml/checkpoints on SageMaker, which syncs it
with checkpoint_s3_uri; a file:// channel in local mode):

    checkpoint-e{epochs done:04d}-s{steps done in the next epoch:06d}-{sha256 of the file, 16 hex}.pt

The name orders checkpoints by training progress (not by mtime, which an S3 round trip rewrites) and
carries the content's checksum, so a file cut short or altered after the write is recognised before
torch reads it. Files are written to a temporary name, fsynced, then renamed: a crash mid-write
never leaves a file that looks complete. Everything inside is a tensor or a plain type, so
torch.load(weights_only=True) reads it (RNG states included).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREFIX = "checkpoint-"
NAME = re.compile(r"^checkpoint-e(\d{4,})-s(\d{6,})-([0-9a-f]{16})\.pt$")
KEEP = 2  # the newest two: if the newest turns out damaged, the one before it still resumes the job
REQUIRED = (
    "format_version",
    "epochs_done",
    "step",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "partial",
    "best_acc",
    "best_state",
    "history",
    "rng",
    "hyperparameters",
    "classes",
)
# Settings that may change between a run and its resume without changing what is trained.
RESUME_FREE = {
    "log-interval",
    "num-workers",
    "checkpoint-dir",
    "debugger",
    "tensors-dir",
    "debugger-save-interval",
    "debugger-loss-interval",
    "profiling",
    "profiler-steps",
    "monitor-interval-ms",
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, order=True)
class Position:
    """Training progress: `epochs_done` finished epochs, then `step` batches of the next one."""

    epochs_done: int
    step: int


def file_name(position: Position, digest: str) -> str:
    return f"{PREFIX}e{position.epochs_done:04d}-s{position.step:06d}-{digest}.pt"


def _digest(payload) -> str:
    return hashlib.sha256(payload).hexdigest()[:16]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power loss could otherwise forget it)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(folder: Path, state: dict, position: Position) -> Path:
    """Write `state` atomically as the checkpoint at `position`; keeps the newest KEEP files."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(
        {**state, "format_version": FORMAT_VERSION, "epochs_done": position.epochs_done, "step": position.step}, buffer
    )
    payload = buffer.getbuffer()
    final = folder / file_name(position, _digest(payload))
    temporary = folder / f".{final.name}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(folder)
    for _, old in candidates(folder)[KEEP:]:
        old.unlink(missing_ok=True)
    return final


def candidates(folder: Path, warn: bool = False) -> list[tuple[Position, Path]]:
    """Checkpoint files by name, newest position first (contents not checked yet)."""
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = NAME.match(path.name)
            if match:
                found.append((Position(int(match[1]), int(match[2])), path))
            elif warn and (path.name.startswith(PREFIX) or path.suffix == ".pt"):
                log.warning(
                    "ignoring %s in the checkpoint folder: not a name this trainer writes "
                    "(checkpoint-eNNNN-sNNNNNN-<sha256>.pt)",
                    path,
                )
    return sorted(found, key=lambda item: (item[0], item[1].name), reverse=True)


def read(path: Path) -> dict:
    """One checkpoint, verified against its checksum and loaded with weights_only=True."""
    match = NAME.match(path.name)
    if not match:
        raise CheckpointError(f"{path}: not a checkpoint name this trainer writes")
    try:
        payload = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err})") from None
    if _digest(payload) != match[3]:
        raise CheckpointError(
            f"{path}: content does not match the checksum in its name (cut short or corrupted; {len(payload)} bytes)"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling problem means the same thing: unusable
        raise CheckpointError(f"{path}: torch cannot load it ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a checkpoint")
    missing = [key for key in REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing}")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {state['format_version']}, this trainer reads {FORMAT_VERSION}")
    return state


def load_latest(folder: Path) -> tuple[dict, Path] | None:
    """The newest checkpoint that reads back intact; every one skipped is logged as a warning."""
    for _, path in candidates(folder, warn=True):
        try:
            return read(path), path
        except CheckpointError as err:
            log.warning("skipping checkpoint %s", err)
    return None


def check_compatible(state: dict, path: Path, hyperparameters: dict, classes: list[str]) -> None:
    """Refuse to resume a different run (other model, classes or recipe) from this folder."""
    if list(state["classes"]) != list(classes):
        raise CheckpointError(
            f"{path} was trained on other classes ({len(state['classes'])} vs "
            f"{len(classes)}): use an empty checkpoint folder for a new data set"
        )
    old = state["hyperparameters"]
    changed = sorted(
        k for k in set(old) | set(hyperparameters) if k not in RESUME_FREE and old.get(k) != hyperparameters.get(k)
    )
    if changed:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {hyperparameters.get(k)!r}" for k in changed)
        raise CheckpointError(
            f"{path} belongs to a run with other hyperparameters ({details}): resume with "
            "the same ones, or use an empty checkpoint folder to start a new run"
        )


# --- RNG states as tensors and plain types (weights_only=True refuses numpy arrays) -------------


def rng_state(generator: torch.Generator | None = None) -> dict:
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state() if generator is not None else None,
    }


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])
