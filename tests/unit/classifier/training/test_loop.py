"""classifier.training.loop: one training epoch and one evaluation pass, on a real (small) model and real
batches; what the trainer's log and checkpoints rely on (counts, interruption, resumption, a diverging loss)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from classifier.training import loop

PREP = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
BATCH = 8


def dataset(n: int = 64, seed: int = 0) -> TensorDataset:
    """Two classes a linear model can tell apart: dark and bright 4x4 uint8 images (the trainer's input type)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    base = torch.where(labels == 1, 180, 60).view(n, 1, 1, 1)
    noise = torch.randint(-40, 40, (n, 3, 4, 4), generator=g)
    return TensorDataset((base + noise).clamp(0, 255).to(torch.uint8), labels)


def optimisation(lr: float = 0.05, seed: int = 0) -> loop.Optimisation:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return loop.Optimisation(
        model=model,
        trainable=[model],
        criterion=nn.CrossEntropyLoss(),
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        preprocessing=PREP,
    )


def loader(data: TensorDataset, skip_batches: int = 0) -> DataLoader:
    """In order (no shuffle): a resumed epoch's loader yields the batches after `skip_batches`."""
    rest = torch.utils.data.Subset(data, range(skip_batches * BATCH, len(data)))
    return DataLoader(rest, batch_size=BATCH, shuffle=False)


def test_an_epoch_counts_every_image_and_learns():
    data, opt = dataset(), optimisation()
    criterion = nn.CrossEntropyLoss()
    before = loop.evaluate(opt.model, loader(data), criterion, PREP)
    stats = [loop.train_one_epoch(opt, loader(data), epoch, 5, log_interval=4) for epoch in range(1, 6)]
    after = loop.evaluate(opt.model, loader(data), criterion, PREP)
    assert all(s.images == len(data) and not s.interrupted for s in stats)
    assert stats[-1].loss < stats[0].loss and after.loss < before.loss
    assert after.acc == 1.0 and after.images == len(data)
    assert 0 <= stats[0].data_seconds <= stats[0].seconds


def test_evaluate_is_the_mean_loss_and_accuracy_over_every_image():
    data, opt = dataset(n=20), optimisation()  # 20: the last batch is short (8, 8, 4)
    criterion = nn.CrossEntropyLoss()
    result = loop.evaluate(opt.model, loader(data), criterion, PREP)
    images, labels = data.tensors
    with torch.no_grad():
        logits = opt.model((images.float() / 255 - 0.5) / 0.25)
    assert result.images == 20
    assert result.loss == pytest.approx(criterion(logits, labels).item(), rel=1e-5)
    assert result.acc == pytest.approx((logits.argmax(1) == labels).float().mean().item())


def test_a_stop_request_ends_the_epoch_part_way_and_a_resumed_epoch_ends_where_a_whole_one_would():
    data = dataset()
    whole_opt = optimisation()
    whole = loop.train_one_epoch(whole_opt, loader(data), 1, 1, log_interval=100)

    opt, progress, calls = optimisation(), loop.EpochProgress(), []

    def stop() -> bool:
        calls.append(progress.step)
        return progress.step == 3

    part = loop.train_one_epoch(opt, loader(data), 1, 1, log_interval=100, progress=progress, stop=stop)
    assert part.interrupted and progress.step == 3 and progress.seen == part.images == 3 * BATCH
    assert calls == [1, 2, 3]
    rest = loop.train_one_epoch(opt, loader(data, skip_batches=3), 1, 1, log_interval=100, progress=progress)
    assert not rest.interrupted and rest.images == len(data) == whole.images
    assert progress.step == len(data) // BATCH
    # The same steps in the same order: the same mean loss and weights as the uninterrupted epoch.
    assert rest.loss == pytest.approx(whole.loss, rel=1e-6) and rest.acc == whole.acc
    for resumed, uninterrupted in zip(opt.model.parameters(), whole_opt.model.parameters(), strict=True):
        assert torch.allclose(resumed, uninterrupted)


def test_stop_is_not_asked_after_the_last_step():
    data, asked = dataset(n=16), []
    loop.train_one_epoch(optimisation(), loader(data), 1, 1, log_interval=100, stop=lambda: asked.append(1) or True)
    assert len(asked) == 1  # two batches: asked after the first only; True there ends the epoch
    stats = loop.train_one_epoch(optimisation(), loader(data), 1, 1, log_interval=100, stop=lambda: False)
    assert stats.images == 16 and not stats.interrupted


def test_a_diverging_loss_names_the_epoch_and_step():
    opt = optimisation()
    with torch.no_grad():
        opt.model[1].weight[0, 0] = float("inf")  # what a too-large learning rate leaves behind
    before = [p.clone() for p in opt.model.parameters()]
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 2 step 1: lower lr"):
        loop.train_one_epoch(opt, loader(dataset()), 2, 3, log_interval=100)
    # Refused before the optimiser step: the weights are not made worse.
    assert all(torch.equal(a, b) for a, b in zip(before, opt.model.parameters(), strict=True))


def test_the_progress_line_logs_every_interval_and_the_last_step(caplog):
    caplog.set_level("INFO", "classifier.training.loop")
    loop.train_one_epoch(optimisation(), loader(dataset(n=40)), 1, 1, log_interval=2)  # 5 steps
    steps = [r.getMessage().split(" step ")[1].split(" ")[0] for r in caplog.records]
    assert steps == ["2/5", "4/5", "5/5"]
    assert all(math.isfinite(float(r.getMessage().split(" loss ")[1].split(" ")[0])) for r in caplog.records)
