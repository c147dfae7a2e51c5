"""Step-time overhead of the smdebug hook (classifier/debugging/hook.py) on the trainer's training step.

    python benchmarks/debugger_overhead.py [--model resnet18] [--image-size 64] [--batch-size 32] [--steps 30]

Times the same real training step (forward, loss, backward, AdamW step) with no hook, with the
trainer's default intervals (weights/gradients/ReLU inputs every 100 steps, losses every 10) and with
everything saved every step (the worst case; the demo saves every 4). Configurations run interleaved,
several rounds, on one thread, and the figure compared is the process's CPU time per step: on a
machine shared with other jobs, wall-clock step times swing by several times from load alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn

from classifier.debugging import hook as debug_hook

CONFIGS = {"no hook": None, "hook, default intervals (100 / 10)": (100, 10), "hook, every step (1 / 1)": (1, 1)}


def step_times(config, args, out_dir: Path) -> list[float]:
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model, num_classes=10)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    hook = None
    if config is not None:
        smd = debug_hook.import_smdebug()
        debug_hook.make_relus_not_inplace(model)
        hook = debug_hook.own_hook(smd, out_dir, *config)
        debug_hook.watch_relu_inputs(hook, model)
        hook.register_module(model)
        hook.register_loss(criterion)
        hook.set_mode(smd.modes.TRAIN)
    model.train()
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, 10, (args.batch_size,))
    times = []
    for step in range(args.warmup + args.steps):
        start = time.process_time()
        loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
        if step >= args.warmup:
            times.append(time.process_time() - start)
    if hook is not None:
        hook.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round and configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("smdebug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    print(
        f"{args.model}, {args.image_size}px, batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds, "
        f"device cpu, {torch.get_num_threads()} threads"
    )
    times = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for index, (name, config) in enumerate(CONFIGS.items()):
                times[name] += step_times(config, args, Path(tmp) / f"{round_}-{index}")
    # The mean carries the occasional saving step (amortised cost); the median shows a typical step.
    base = statistics.mean(times["no hook"])
    for name, values in times.items():
        mean = statistics.mean(values)
        print(
            f"{name:38s} mean CPU time/step {mean * 1000:7.1f} ms (median {statistics.median(values) * 1000:7.1f})  "
            f"overhead {100 * (mean / base - 1):+6.1f}%"
        )


if __name__ == "__main__":
    main()
