"""One training epoch and one evaluation pass (the loop body, apart from set-up)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from classifier.model import forward
from classifier.model import network as model_lib

log = logging.getLogger(__name__)


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float
    data_seconds: float = 0.0  # waiting for the loader; the rest of `seconds` is compute (profiling.py)
    interrupted: bool = False  # stopped part-way by a stop request (the EpochProgress says where)


@dataclass
class EpochProgress:
    """What the current epoch has done so far: saved in checkpoints, carried over by a resumed job."""

    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    def record(self, step: int, loss: float, correct: int, count: int) -> None:
        self.step = step
        self.loss_sum += loss * count
        self.correct += correct
        self.seen += count

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)


@dataclass
class Optimisation:
    """What a training step uses besides its batch; the trainer builds it once."""

    model: torch.nn.Module  # what the step runs (DistributedDataParallel-wrapped in a distributed job)
    trainable: list[torch.nn.Module]  # in train mode; the frozen rest stays in eval (BatchNorm statistics)
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler  # fp16 loss scaling (a no-op for bf16 and fp32)
    preprocessing: dict

    def __post_init__(self):
        # Where the model sits and its autocast dtype are fixed once it is built: not looked up every step.
        self.device = next(self.model.parameters()).device
        self.autocast_dtype = forward.device_settings(self.device)[0]

    def step(self, images: torch.Tensor, labels: torch.Tensor, where: str) -> tuple[float, int]:
        """One optimiser step on a batch: (its mean loss, how many it got right)."""
        device, dtype = self.device, self.autocast_dtype
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = forward.logits(self.model, images, self.preprocessing)
            loss = self.criterion(outputs, labels)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss became {loss.item()} at {where}: lower lr or use a smaller batch")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item(), (outputs.argmax(1) == labels).sum().item()


class StepLog:
    """The progress line every `interval` steps and at the last: running loss, learning rate, images/s
    and time left in the epoch (torchvision's MetricLogger, cut down to what this loop reports)."""

    def __init__(self, epoch: int, epochs: int, first: int, steps: int, interval: int, seen_before: int):
        self.epoch, self.epochs, self.first, self.steps, self.interval = epoch, epochs, first, steps, interval
        self.seen_before = seen_before

    def step(self, step: int, progress: EpochProgress, lr: float, elapsed: float) -> None:
        if step % self.interval and step != self.steps:
            return
        left = elapsed / (step - self.first) * (self.steps - step)
        log.info(
            "epoch %d/%d step %d/%d loss %.4f lr %.3g %.1f img/s eta %s",
            self.epoch,
            self.epochs,
            step,
            self.steps,
            progress.loss,
            lr,
            (progress.seen - self.seen_before) / elapsed,
            _eta(left),
        )


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train_one_epoch(
    optimisation: Optimisation,
    loader,
    epoch: int,
    epochs: int,
    log_interval: int,
    *,
    on_step=None,
    progress: EpochProgress | None = None,
    stop=None,
) -> EpochStats:
    """on_step: called after every optimiser step (the profiler's step clock).

    progress: where this epoch stands (a resumed job passes the checkpoint's; the loader then yields
    only the remaining batches); updated after every step. stop: called after every step but the
    last; True ends the epoch early with `interrupted` set, so the caller can checkpoint it.
    """
    model_lib.train_mode(optimisation.model, optimisation.trainable)
    progress = progress if progress is not None else EpochProgress()
    first, earlier_seconds = progress.step, progress.seconds
    steps = first + len(loader)
    step_log = StepLog(epoch, epochs, first, steps, log_interval, progress.seen)
    start = time.perf_counter()
    data_seconds, fetch_start = 0.0, start
    interrupted = False
    for step, (images, labels) in enumerate(loader, first + 1):
        data_seconds += time.perf_counter() - fetch_start
        loss, correct = optimisation.step(images, labels, f"epoch {epoch} step {step}")
        progress.record(step, loss, correct, len(labels))
        elapsed = time.perf_counter() - start
        progress.seconds = earlier_seconds + elapsed
        step_log.step(step, progress, optimisation.scheduler.get_last_lr()[0], elapsed)
        if on_step is not None:
            on_step()
        if stop is not None and step < steps and stop():
            interrupted = True
            break
        fetch_start = time.perf_counter()
    return EpochStats(
        progress.loss,
        progress.correct / max(progress.seen, 1),
        progress.seen,
        earlier_seconds + time.perf_counter() - start,
        data_seconds,
        interrupted,
    )


@torch.inference_mode()
def evaluate(model, loader, criterion, preprocessing) -> EpochStats:
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for images, labels in loader:
        labels = labels.to(device)
        outputs = forward.logits(model, images, preprocessing)
        total_loss += criterion(outputs, labels).item() * len(labels)
        correct += (outputs.argmax(1) == labels).sum().item()
        seen += len(labels)
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen, time.perf_counter() - start)
