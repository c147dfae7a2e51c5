"""The trainer SageMaker runs (through sagemaker-training's `train`, SAGEMAKER_PROGRAM).

Reads hyperparameters.json and the input channels, trains, logs metric lines, writes the artifact
to /opt/ml/model. Any failure writes its reason to /opt/ml/output/failure and exits non-zero.
"""
from __future__ import annotations

import copy
import logging
import math
import random
import sys
import time
import traceback

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from . import artifact, data, engine, hyperparams, metrics, model as model_lib, presets
from .paths import SageMakerPaths

log = logging.getLogger("classifier.train")
# Errors whose message is the whole story (no traceback needed in `failure`).
USER_ERRORS = (hyperparams.HyperparameterError, data.DataError, model_lib.ModelError, FloatingPointError)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_optimizer(hp, params):
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay, nesterov=True)
    return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)


def make_scheduler(hp, optimizer, steps_per_epoch: int):
    """Linear warm-up, then cosine to zero (or constant), stepped every batch."""
    warmup = hp.warmup_epochs * steps_per_epoch
    total = hp.epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if hp.scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_data(hp, paths: SageMakerPaths, workers: int):
    """Decode every split once; returns the DataSet and uint8 datasets for train/valid/test."""
    dataset = data.discover(paths.channels(), hp.val_fraction, hp.test_fraction, hp.seed)
    for note in dataset.notes:
        log.info(note)
    prep = presets.eval_preprocessing(hp.image_size)
    side = presets.cache_side(hp.image_size)
    train_transform = presets.train_transform(hp.image_size, hp.augment)
    sets = {}
    for name, split in dataset.splits.items():
        start = time.perf_counter()
        if name == "train":
            cache_bytes = len(split.samples) * 3 * side * side
            use_cache = hp.cache_images and cache_bytes < data.available_memory_bytes() // 2
            if hp.cache_images and not use_cache:
                log.info("train: decoded cache would need %.1f GB, over half the free memory: decoding per step",
                         cache_bytes / 1e9)
            decode = lambda p: presets.decode_for_cache(p, hp.image_size)  # noqa: E731
            size = side
        else:
            use_cache = True  # eval images are small once cropped, and decoded exactly like the server does
            decode = lambda p: presets.eval_image(p, prep)  # noqa: E731
            size = hp.image_size
        # Decoding everything once also finds the unreadable files before training starts.
        decoded = data.decode_all(split.samples, decode, size, workers)
        if decoded.skipped:
            log.warning(data.skipped_summary(name, decoded.skipped))
        if len(decoded.labels) == 0:
            raise data.DataError(f"split {name}/ has no readable images ({len(split.samples)} files tried)")
        log.info("%s: %d images from %s (%d skipped), decoded in %.1fs", name, len(decoded.labels), split.origin,
                 len(decoded.skipped), time.perf_counter() - start)
        if name == "train" and not use_cache:
            bad = {p for p, _ in decoded.skipped}
            sets[name] = data.FileImages([s for s in split.samples if s[0] not in bad], hp.image_size,
                                         train_transform)
        else:
            sets[name] = data.TensorImages(decoded.images, decoded.labels,
                                           train_transform if name == "train" else None)
    return dataset, sets


def run(hp, paths: SageMakerPaths) -> dict:
    generator = seed_everything(hp.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = data.default_workers(hp.num_workers)
    log.info("device %s, %d data workers, hyperparameters %s", device, workers, hyperparams.to_dict(hp))
    dataset, sets = load_data(hp, paths, workers)
    prep = presets.eval_preprocessing(hp.image_size)

    network = model_lib.build(hp.model_name, len(dataset.classes), hp.weights)
    trainable = model_lib.set_trainable(network, hp.fine_tune)
    network = network.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    params = [p for p in network.parameters() if p.requires_grad]
    log.info("%s with %d classes: %.2fM of %.2fM parameters train (fine-tune=%s)", hp.model_name,
             len(dataset.classes), sum(p.numel() for p in params) / 1e6,
             sum(p.numel() for p in network.parameters()) / 1e6, hp.fine_tune)

    loader_args = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    train_loader = DataLoader(sets["train"], batch_size=hp.batch_size, shuffle=True, drop_last=False,
                              generator=generator, **loader_args)
    eval_loaders = {name: DataLoader(sets[name], batch_size=max(hp.batch_size, 64), num_workers=0)
                    for name in ("valid", "test")}
    optimizer = make_optimizer(hp, params)
    scheduler = make_scheduler(hp, optimizer, len(train_loader))
    # fp16 autocast needs loss scaling; bf16 and fp32 don't (the scaler is then a no-op).
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    train_criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()

    best_acc, best_state, history = -1.0, None, []
    for epoch in range(1, hp.epochs + 1):
        stats = engine.train_one_epoch(network, trainable, train_loader, optimizer, scheduler, train_criterion,
                                       prep, scaler, epoch, hp.epochs, hp.log_interval)
        val = engine.evaluate(network, eval_loaders["valid"], eval_criterion, prep)
        row = dict(epoch=epoch, train_loss=stats.loss, train_acc=stats.acc, val_loss=val.loss, val_acc=val.acc,
                   epoch_seconds=stats.seconds + val.seconds, images_per_sec=stats.images / stats.seconds)
        history.append(row)
        print(metrics.format_metrics(**row), flush=True)
        if val.acc > best_acc:
            best_acc, best_state = val.acc, copy.deepcopy({k: v.cpu() for k, v in network.state_dict().items()})

    network.load_state_dict(best_state)
    test = engine.evaluate(network, eval_loaders["test"], eval_criterion, prep)
    final = dict(best_val_acc=best_acc, test_loss=test.loss, test_acc=test.acc)
    print(metrics.format_metrics(**final), flush=True)
    artifact.save(paths.model, best_state, classes=dataset.classes, model_name=hp.model_name,
                  image_size=hp.image_size, preprocessing=prep, hyperparameters=hyperparams.to_dict(hp),
                  metrics={**final, "history": history})
    log.info("model written to %s (test_acc %.4f)", paths.model, test.acc)
    return final


def write_failure(paths: SageMakerPaths, message: str) -> None:
    """SageMaker shows this file's text as the job's FailureReason."""
    try:
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        paths.failure.write_text(message)
    except OSError as err:
        log.error("could not write %s: %s", paths.failure, err)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout, force=True)
    paths = SageMakerPaths.from_env()
    try:
        hp = hyperparams.parse(hyperparams.read_file(paths.hyperparameters))
        run(hp, paths)
    except USER_ERRORS as err:
        message = f"{type(err).__name__}: {err}"
        log.error(message)
        write_failure(paths, message)
        return 1
    except Exception as err:  # the reason still has to reach SageMaker's FailureReason
        log.exception("training failed")
        write_failure(paths, f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
