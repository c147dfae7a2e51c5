"""The trainer SageMaker runs (through sagemaker-training's `train`, SAGEMAKER_PROGRAM).

Reads hyperparameters.json and the input channels, trains, logs metric lines, writes the artifact
to /opt/ml/model. Any failure writes its reason to /opt/ml/output/failure and exits non-zero.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import os
import random
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from classifier.contract import hyperparams, metrics, resources
from classifier.contract.paths import SageMakerPaths
from classifier.debugging import hook
from classifier.model import artifact, decoding
from classifier.model import network as model_lib
from classifier.training import augmentation, checkpoint, data, distributed, finalize, profiling, signals
from classifier.training import loop as epoch_loop

log = logging.getLogger("classifier.training.trainer")
# Errors whose message is the whole story (no traceback needed in `failure`).
USER_ERRORS = (
    hyperparams.HyperparameterError,
    data.DataError,
    model_lib.ModelError,
    FloatingPointError,
    hook.DebuggerError,
    checkpoint.CheckpointError,
    distributed.ClusterError,
)


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
    prep = decoding.eval_preprocessing(hp.image_size)
    side = augmentation.cache_side(hp.image_size)
    train_preset = augmentation.train_preset(hp.image_size, hp.augment)
    sets = {}
    for name, split in dataset.splits.items():
        start = time.perf_counter()
        if name == "train":
            cache_bytes = len(split.samples) * 3 * side * side
            use_cache = hp.cache_images and cache_bytes < resources.available_memory_bytes() // 2
            if hp.cache_images and not use_cache:
                log.info(
                    "train: decoded cache would need %.1f GB, over half the free memory: decoding per step",
                    cache_bytes / 1e9,
                )
            decode = lambda p: augmentation.decode_for_cache(p, hp.image_size)  # noqa: E731
            size = side
        else:
            use_cache = True  # eval images are small once cropped, and decoded exactly like the server does
            decode = lambda p: decoding.eval_image(p, prep)  # noqa: E731
            size = hp.image_size
        # Decoding everything once also finds the unreadable files before training starts.
        decoded = data.decode_all(split.samples, decode, size, workers)
        if decoded.skipped:
            log.warning(data.skipped_summary(name, decoded.skipped))
        if len(decoded.labels) == 0:
            raise data.DataError(f"split {name}/ has no readable images ({len(split.samples)} files tried)")
        log.info(
            "%s: %d images from %s (%d skipped), decoded in %.1fs",
            name,
            len(decoded.labels),
            split.origin,
            len(decoded.skipped),
            time.perf_counter() - start,
        )
        if name == "train" and not use_cache:
            bad = {s.path for s in decoded.skipped}
            sets[name] = data.FileImages([s for s in split.samples if s[0] not in bad], hp.image_size, train_preset)
        else:
            sets[name] = data.TensorImages(
                decoded.images, decoded.labels, train_preset if name == "train" else None, decoded.sources
            )
    return dataset, sets


def run(hp, paths: SageMakerPaths, context: distributed.Context | None = None) -> dict:
    """Train in this process (one rank of `context`; alone by default) and write the artifact from rank 0."""
    context = context or distributed.Context(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    generator = seed_everything(hp.seed)
    device = context.device
    workers = data.default_workers(hp.num_workers)
    log.info(
        "device %s, %d torch threads, %d data workers, hyperparameters %s",
        device,
        torch.get_num_threads(),
        workers,
        hyperparams.to_dict(hp),
    )
    dataset, sets = load_data(hp, paths, workers)
    prep = decoding.eval_preprocessing(hp.image_size)

    network = model_lib.build(hp.model_name, len(dataset.classes), hp.weights)
    trainable = model_lib.set_trainable(network, hp.fine_tune)
    network = network.to(
        device, memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format
    )
    params = [p for p in network.parameters() if p.requires_grad]
    log.info(
        "%s with %d classes: %.2fM of %.2fM parameters train (fine-tune=%s)",
        hp.model_name,
        len(dataset.classes),
        sum(p.numel() for p in params) / 1e6,
        sum(p.numel() for p in network.parameters()) / 1e6,
        hp.fine_tune,
    )

    loader_args = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    # Each rank trains on its shard; the order depends on (seed, epoch) only, so a resume can skip steps.
    sampler = distributed.EpochSampler(sets["train"], context, hp.seed)
    train_loader = DataLoader(
        sets["train"], batch_size=hp.batch_size, sampler=sampler, drop_last=False, generator=generator, **loader_args
    )
    eval_loaders = {
        name: DataLoader(distributed.shard(sets[name], context), batch_size=max(hp.batch_size, 64), num_workers=0)
        for name in ("valid", "test")
    }
    steps_per_epoch = len(train_loader)  # (a resumed epoch's loader is shorter)
    optimizer = make_optimizer(hp, params)
    scheduler = make_scheduler(hp, optimizer, steps_per_epoch)
    # fp16 autocast needs loss scaling; bf16 and fp32 don't (the scaler is then a no-op).
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    train_criterion = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    eval_criterion = nn.CrossEntropyLoss()
    # smdebug records worker 0 only in a distributed job (include_workers="one"): hook rank 0 alone.
    debug = (
        hook.start(hp, paths, network, [train_criterion, eval_criterion])  # smdebug hook (or Off)
        if context.is_main
        else hook.Off()
    )
    prof = profiling.start(hp, paths.output_data)  # utilisation sampler + torch.profiler window (or Off)

    folder = checkpoint_folder(hp, paths)
    modules = dict(network=network, optimizer=optimizer, scheduler=scheduler, scaler=scaler, generator=generator)
    loop = resume(folder, context, hp, dataset.classes, **modules)
    model = distributed.wrap(network, context)  # averages gradients across ranks; `network` stays the plain module
    optimisation = epoch_loop.Optimisation(model, trainable, train_criterion, optimizer, scheduler, scaler, prep)

    with signals.stop_requests() as stop_request:

        def stop() -> bool:  # every rank stops at the same step
            return distributed.any_true(context, stop_request.requested)

        for epoch in range(loop.epochs_done + 1, hp.epochs + 1):
            sampler.start(epoch, skip=loop.progress.step * hp.batch_size)
            debug.train()
            stats = epoch_loop.train_one_epoch(
                optimisation,
                train_loader,
                epoch,
                hp.epochs,
                hp.log_interval,
                on_step=prof.step,
                progress=loop.progress,
                stop=stop,
            )
            if stats.interrupted:
                path = save_checkpoint(folder, context, loop, hp, dataset.classes, **modules)
                raise Interrupted(
                    stop_request, f"epoch {epoch} step {loop.progress.step}/{steps_per_epoch}", folder, path
                )
            prof.epoch(epoch, stats)
            debug.eval()
            stats = global_stats(context, stats)
            val = global_stats(context, epoch_loop.evaluate(network, eval_loaders["valid"], eval_criterion, prep))
            row = dict(
                epoch=epoch,
                train_loss=stats.loss,
                train_acc=stats.acc,
                val_loss=val.loss,
                val_acc=val.acc,
                epoch_seconds=stats.seconds + val.seconds,
                images_per_sec=stats.images / stats.seconds,
            )
            loop.history.append(row)
            if val.acc > loop.best_acc:
                loop.best_acc = val.acc
                loop.best_state = copy.deepcopy({k: v.cpu() for k, v in network.state_dict().items()})
            loop.epochs_done, loop.progress = epoch, epoch_loop.EpochProgress()
            # Checkpoint before the metric line: a kill in between can repeat no epoch in the log.
            path = save_checkpoint(folder, context, loop, hp, dataset.classes, **modules)
            if context.is_main:
                print(metrics.format_metrics(**row), flush=True)
            if epoch < hp.epochs and stop():
                raise Interrupted(stop_request, f"the end of epoch {epoch}", folder, path)

    network.load_state_dict(loop.best_state)
    debug.test()
    test = global_stats(context, epoch_loop.evaluate(network, eval_loaders["test"], eval_criterion, prep))
    prof.stop()
    debug.close()  # fails the job when the hook stopped saving
    final = dict(best_val_acc=loop.best_acc, test_loss=test.loss, test_acc=test.acc)
    if context.is_main:
        print(metrics.format_metrics(**final), flush=True)
        # model.pt and metadata.json first: whatever happens to the export, the trained model is written.
        artifact.save(
            paths.model,
            loop.best_state,
            classes=dataset.classes,
            model_name=hp.model_name,
            image_size=hp.image_size,
            preprocessing=prep,
            hyperparameters=hyperparams.to_dict(hp),
            metrics={**final, "history": loop.history},
            export={"enabled": hp.export},
            explanation=finalize.explanation_target(network, prep["crop"]),
        )
        log.info("model written to %s (test_acc %.4f)", paths.model, test.acc)
        finalize.finalize(hp, paths, dataset.splits["train"].samples, sets["test"])
    distributed.barrier(context)  # no host exits (and gets its peers stopped) while rank 0 still writes
    return final


# --- Checkpoints, resume and stop requests (README "Multi-instance and spot training") ------------


class Interrupted(Exception):
    """A stop signal ended training early; the message says where and which checkpoint resumes it."""

    def __init__(self, request: signals.StopRequest, where: str, folder, path):
        self.signal = request.signal
        if folder is None:
            saved = "checkpoints are off (no checkpoint folder), so this progress is lost"
        else:  # only rank 0 writes (path is None on the other ranks)
            saved = (
                f"resumable checkpoint {path or f'written by rank 0 in {folder}'}: start the job again with "
                "the same checkpoint folder to continue"
            )
        super().__init__(f"stopped by {request.name} at {where}; {saved}")


@dataclasses.dataclass
class LoopState:
    """What the epoch loop carries from one epoch to the next, and what a checkpoint restores."""

    epochs_done: int = 0
    progress: epoch_loop.EpochProgress = dataclasses.field(default_factory=epoch_loop.EpochProgress)
    best_acc: float = -1.0
    best_state: dict | None = None
    history: list = dataclasses.field(default_factory=list)


def checkpoint_folder(hp, paths: SageMakerPaths):
    """The folder checkpoints go to, or None when they are off."""
    if hp.checkpoint_dir == "none":
        return None
    if hp.checkpoint_dir != hyperparams.BY_NAME["checkpoint-dir"].default:
        return Path(hp.checkpoint_dir)
    folder = paths.base / "checkpoints"  # /opt/ml/checkpoints (or under SAGEMAKER_BASE_DIR in tests)
    if not folder.is_dir():
        log.info("no %s (the job has no checkpoint_s3_uri): checkpoints off", folder)
        return None
    job = os.environ.get("TRAINING_JOB_NAME")
    if job and hyperparams.TUNER_KEYS & set(hyperparams.read_file(paths.hyperparameters)):
        # A tuning job gives all its trials one checkpoint_s3_uri: a folder per trial keeps a trial
        # from resuming another's run (SageMaker's TensorFlow toolkit does the same for model_dir).
        folder = folder / job
        folder.mkdir(exist_ok=True)
    return folder


def save_checkpoint(
    folder,
    context: distributed.Context,
    loop: LoopState,
    hp,
    classes,
    *,
    network,
    optimizer,
    scheduler,
    scaler,
    generator,
):
    """Rank 0 writes the checkpoint at the loop's position; returns its path (None elsewhere or when off)."""
    if folder is None or not context.is_main:
        return None
    start = time.perf_counter()
    state = dict(
        model=network.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(),
        partial=dataclasses.asdict(loop.progress),
        best_acc=loop.best_acc,
        best_state=loop.best_state,
        history=loop.history,
        rng=checkpoint.rng_state(generator),
        hyperparameters=hyperparams.to_dict(hp),
        classes=list(classes),
    )
    path = checkpoint.save(folder, state, checkpoint.Position(loop.epochs_done, loop.progress.step))
    log.info("checkpoint %s written (%.0f MB, %.1fs)", path, path.stat().st_size / 1e6, time.perf_counter() - start)
    return path


def resume(
    folder, context: distributed.Context, hp, classes, *, network, optimizer, scheduler, scaler, generator
) -> LoopState:
    """Restore the newest valid checkpoint into the given objects; a fresh LoopState when there is none."""
    found = checkpoint.load_latest(folder) if folder else None
    position = [found[0]["epochs_done"], found[0]["step"]] if found else [-1, -1]
    if not distributed.same_on_all(context, position):
        raise checkpoint.CheckpointError(
            f"the hosts found different newest checkpoints in {folder} (this one: "
            f"{found[1] if found else 'none'}): every host needs the same folder"
        )
    if not found:
        if folder:
            log.info("no checkpoint in %s: starting at epoch 1", folder)
        return LoopState()
    state, path = found
    checkpoint.check_compatible(state, path, hyperparams.to_dict(hp), classes)
    network.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    checkpoint.set_rng_state(state["rng"], generator)
    loop = LoopState(
        state["epochs_done"],
        epoch_loop.EpochProgress(**state["partial"]),
        state["best_acc"],
        state["best_state"],
        list(state["history"]),
    )
    log.info(
        "resuming from %s: %d of %d epochs done, then %d steps into epoch %d",
        path,
        loop.epochs_done,
        hp.epochs,
        loop.progress.step,
        loop.epochs_done + 1,
    )
    return loop


def global_stats(context: distributed.Context, stats: epoch_loop.EpochStats) -> epoch_loop.EpochStats:
    """One rank's epoch figures -> the whole job's (sums over ranks; the slowest rank's time)."""
    if not context.distributed:
        return stats
    loss_sum, correct, images = distributed.all_sum(
        context, [stats.loss * stats.images, stats.acc * stats.images, stats.images]
    )
    (seconds,) = distributed.all_max(context, [stats.seconds])
    return dataclasses.replace(
        stats,
        loss=loss_sum / max(images, 1),
        acc=round(correct) / max(images, 1),
        images=round(images),
        seconds=seconds,
    )


def write_failure(paths: SageMakerPaths, message: str) -> None:
    """SageMaker shows this file's text as the job's FailureReason."""
    try:
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        paths.failure.write_text(message)
    except OSError as err:
        log.error("could not write %s: %s", paths.failure, err)


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout, force=True
    )


def main() -> int:
    configure_logging()
    paths = SageMakerPaths.from_env()
    try:
        hp = hyperparams.parse(hyperparams.read_file(paths.hyperparameters))
        cluster = distributed.Cluster.from_sagemaker(paths.resource_config)
    except USER_ERRORS as err:
        return fail(paths, err)
    # One process per GPU (spawned) or one per host; each runs train_process with its own rank.
    return distributed.launch(functools.partial(train_process, hp, paths), cluster)


def train_process(hp, paths: SageMakerPaths, context: distributed.Context) -> int:
    """One rank's whole run; every failure becomes SageMaker's failure file and a non-zero exit code."""
    configure_logging()  # spawned GPU processes start with a fresh interpreter
    try:
        run(hp, paths, context)
    except Interrupted as err:
        log.warning(str(err))
        write_failure(paths, f"Interrupted: {err}")
        return 128 + err.signal  # what a shell reports for a process ended by that signal
    except USER_ERRORS as err:
        return fail(paths, err)
    except Exception as err:  # the reason still has to reach SageMaker's FailureReason
        log.exception("training failed")
        write_failure(paths, f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}")
        return 1
    return 0


def fail(paths: SageMakerPaths, err: Exception) -> int:
    message = f"{type(err).__name__}: {err}"
    log.error(message)
    write_failure(paths, message)
    return 1


if __name__ == "__main__":
    sys.exit(main())
