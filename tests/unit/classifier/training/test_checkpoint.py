"""Checkpoint files: atomic write, newest valid wins, damaged ones skipped with a warning, RNG round trip."""

import logging
import os
import random

import numpy as np
import pytest
import torch

from classifier.training import checkpoint
from classifier.training.checkpoint import Position


def state(value: float = 1.0) -> dict:
    model = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(model.weight, value)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return dict(
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler={"last_epoch": 3},
        scaler={},
        partial={"step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0},
        best_acc=0.5,
        best_state=model.state_dict(),
        history=[{"epoch": 1, "val_acc": 0.5}],
        rng=checkpoint.rng_state(torch.Generator().manual_seed(1)),
        hyperparameters={"lr": 0.1},
        classes=["a", "b"],
    )


def test_round_trip_with_weights_only(tmp_path):
    saved = state(2.0)
    path = checkpoint.save(tmp_path, saved, Position(3, 0))
    assert checkpoint.NAME.match(path.name) and path.name.startswith("checkpoint-e0003-s000000-")
    loaded = checkpoint.read(path)  # torch.load(weights_only=True) inside
    assert loaded["epochs_done"] == 3 and loaded["step"] == 0
    assert torch.equal(loaded["model"]["weight"], saved["model"]["weight"])
    assert loaded["optimizer"]["state"][0]["exp_avg"].shape == (2, 3)
    assert loaded["history"] == [{"epoch": 1, "val_acc": 0.5}]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_newest_position_wins_and_only_the_newest_two_are_kept(tmp_path):
    for position in (Position(1, 0), Position(2, 0), Position(2, 5), Position(3, 0)):
        checkpoint.save(tmp_path, state(float(position.epochs_done)), position)
    kept = checkpoint.candidates(tmp_path)
    assert [position for position, _ in kept] == [Position(3, 0), Position(2, 5)]
    loaded, path = checkpoint.load_latest(tmp_path)
    assert (loaded["epochs_done"], loaded["step"]) == (3, 0) and path == kept[0][1]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_newest_is_skipped_with_a_warning(tmp_path, caplog, damage):
    older = checkpoint.save(tmp_path, state(1.0), Position(1, 0))
    newest = checkpoint.save(tmp_path, state(2.0), Position(2, 0))
    payload = newest.read_bytes()
    if damage == "truncate":  # a copy cut short (e.g. an interrupted sync)
        newest.write_bytes(payload[: len(payload) // 2])
    elif damage == "flip":  # one byte changed inside the tensor data: torch alone would not notice
        middle = len(payload) // 2
        newest.write_bytes(payload[:middle] + bytes([payload[middle] ^ 0xFF]) + payload[middle + 1 :])
    else:
        newest.write_bytes(b"not a checkpoint at all")
    with caplog.at_level(logging.WARNING, logger="classifier.training.checkpoint"):
        loaded, path = checkpoint.load_latest(tmp_path)
    assert path == older and loaded["epochs_done"] == 1
    assert any(newest.name in r.getMessage() and "checksum" in r.getMessage() for r in caplog.records), caplog.text


def test_file_with_a_valid_checksum_that_torch_cannot_read_is_skipped(tmp_path, caplog):
    payload = b"PK\x03\x04 this is no torch archive"
    name = checkpoint.file_name(Position(5, 0), checkpoint._digest(payload))
    (tmp_path / name).write_bytes(payload)
    with caplog.at_level(logging.WARNING, logger="classifier.training.checkpoint"):
        assert checkpoint.load_latest(tmp_path) is None
    assert "torch cannot load it" in caplog.text


class Custom:
    """An arbitrary pickled object: weights_only=True must refuse to build it."""


def test_pickled_objects_are_refused_by_weights_only(tmp_path, caplog):
    import io

    buffer = io.BytesIO()
    torch.save({**state(), "format_version": 1, "epochs_done": 1, "step": 0, "extra": Custom()}, buffer)
    payload = buffer.getvalue()
    (tmp_path / checkpoint.file_name(Position(1, 0), checkpoint._digest(payload))).write_bytes(payload)
    with caplog.at_level(logging.WARNING, logger="classifier.training.checkpoint"):
        assert checkpoint.load_latest(tmp_path) is None
    assert "torch cannot load it" in caplog.text


def test_unknown_files_and_left_over_temporaries_are_not_loaded(tmp_path, caplog):
    (tmp_path / "checkpoint-latest.pt").write_bytes(b"x")
    (tmp_path / ".checkpoint-e0009-s000000-0123456789abcdef.pt.tmp-77").write_bytes(b"half written")
    with caplog.at_level(logging.WARNING, logger="classifier.training.checkpoint"):
        assert checkpoint.load_latest(tmp_path) is None
    assert "checkpoint-latest.pt" in caplog.text
    assert checkpoint.load_latest(tmp_path / "missing") is None


def test_a_crash_during_the_write_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, state(1.0), Position(1, 0))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, state(2.0), Position(2, 0))
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.candidates(tmp_path)[0][1].name]
    assert checkpoint.load_latest(tmp_path)[0]["epochs_done"] == 1


def test_another_runs_checkpoint_is_refused_with_the_differences(tmp_path):
    path = checkpoint.save(tmp_path, state(), Position(1, 0))
    loaded = checkpoint.read(path)
    checkpoint.check_compatible(loaded, path, {"lr": 0.1, "log-interval": 5}, ["a", "b"])  # free to change
    with pytest.raises(checkpoint.CheckpointError, match=r"lr: 0.1 -> 0.2.*empty checkpoint folder"):
        checkpoint.check_compatible(loaded, path, {"lr": 0.2}, ["a", "b"])
    with pytest.raises(checkpoint.CheckpointError, match="other classes"):
        checkpoint.check_compatible(loaded, path, {"lr": 0.1}, ["a", "b", "c"])


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    generator = torch.Generator().manual_seed(7)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.random(), np.random.normal(), torch.rand(1), torch.rand(1, generator=generator)  # mid-stream states
    path = checkpoint.save(tmp_path, {**state(), "rng": checkpoint.rng_state(generator)}, Position(1, 0))
    expected = (random.random(), np.random.normal(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    random.seed(99), np.random.seed(99), torch.manual_seed(99), generator.manual_seed(99)
    checkpoint.set_rng_state(checkpoint.read(path)["rng"], generator)
    assert (
        random.random(),
        np.random.normal(),
        torch.rand(1).item(),
        torch.rand(1, generator=generator).item(),
    ) == expected


# --- The trainer in-process: SIGTERM mid-epoch, resume, same result as an uninterrupted run -------

TRAIN_HP = {
    "model-name": "resnet18",
    "weights": "none",
    "fine-tune": "full",
    "image-size": "32",
    "epochs": "2",
    "batch-size": "16",
    "lr": "0.003",
    "num-workers": "0",
    "augment": "basic",
    "log-interval": "1",
    "debugger": "false",
    "profiling": "false",
}


class SigtermAt(logging.Handler):
    """Sends this process SIGTERM when the trainer logs `text` (a progress line): a deterministic mid-epoch stop."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def emit(self, record):
        if self.text in record.getMessage():
            import signal

            os.kill(os.getpid(), signal.SIGTERM)


def train_job(tmp_path, data, hps, monkeypatch, stop_at: str | None = None):
    """One trainer run in this process; returns (exit code, stdout, SageMaker base folder)."""
    import contextlib
    import io
    import json

    from classifier.training import trainer

    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True, exist_ok=True)
    (base / "input" / "data").mkdir(exist_ok=True)
    if not (base / "input" / "data" / "training").exists():
        (base / "input" / "data" / "training").symlink_to(data)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hps))
    (base / "output" / "failure").unlink(missing_ok=True)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    out, handler = io.StringIO(), SigtermAt(stop_at or "\0")
    engine_log = logging.getLogger("classifier.training.loop")
    engine_log.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out):
            code = trainer.main()
    finally:
        engine_log.removeHandler(handler)
    return code, out.getvalue(), base


def test_sigterm_mid_epoch_then_resume_matches_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    from classifier.contract import metrics

    folder = tmp_path / "checkpoints"
    hps = {**TRAIN_HP, "checkpoint-dir": str(folder)}
    code, first, base = train_job(tmp_path / "a", tiny_data, hps, monkeypatch, stop_at="epoch 1/2 step 2/4")
    assert code == 128 + 15, first
    assert "stopped by SIGTERM at epoch 1 step 2/4" in (base / "output" / "failure").read_text()
    assert [p for p, _ in checkpoint.candidates(folder)] == [Position(0, 2)]
    assert "[metrics]" not in first and not (base / "model" / "model.pt").exists()

    code, second, base = train_job(tmp_path / "a", tiny_data, hps, monkeypatch)
    assert code == 0, second
    assert "epoch 1/2 step 3/4" in second and "epoch 1/2 step 2/4" not in second  # resumed at the exact step
    assert metrics.parse_metrics(second)["epoch"] == [1.0, 2.0]
    assert [p for p, _ in checkpoint.candidates(folder)] == [Position(2, 0), Position(1, 0)]

    # Same seed, no interruption, no checkpoints: on CPU the interrupted run must come out identical.
    code, whole, _ = train_job(tmp_path / "b", tiny_data, {**TRAIN_HP, "checkpoint-dir": "none"}, monkeypatch)
    assert code == 0, whole
    resumed, uninterrupted = metrics.parse_metrics(second), metrics.parse_metrics(whole)
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "test_acc"):
        assert resumed[name] == uninterrupted[name], name
    assert torch.equal(
        torch.load(base / "model" / "model.pt", weights_only=True)["fc.weight"],
        torch.load(tmp_path / "b" / "ml" / "model" / "model.pt", weights_only=True)["fc.weight"],
    )

    # The folder now belongs to that run: another recipe is refused, naming the difference.
    code, _, base = train_job(tmp_path / "a", tiny_data, {**hps, "lr": "0.01"}, monkeypatch)
    assert code == 1
    failure = (base / "output" / "failure").read_text()
    assert "CheckpointError" in failure and "lr: 0.003 -> 0.01" in failure


# --- The image's PID 1 (classifier.training.signals): SIGTERM must reach the trainer, not just `train` -------

TRAINER = """
import sys, time
from classifier.training import signals
with signals.stop_requests() as stop:
    print("registered", flush=True)
    while not stop.requested:
        time.sleep(0.05)
sys.exit(42)  # saved and exited by itself
"""


def start_init(tmp_path, command):
    import subprocess
    import sys

    env = {**os.environ, "CLASSIFIER_STOP_REGISTRY": str(tmp_path / "registry")}
    return subprocess.Popen(
        [sys.executable, "-m", "classifier.training.signals", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_init_forwards_sigterm_to_the_registered_trainer(tmp_path):
    import signal
    import sys

    # `sh -c` stands in for sagemaker-training's `train`: a parent that forwards nothing.
    init = start_init(tmp_path, ["sh", "-c", f"{sys.executable} -c '{TRAINER}'; exit $?"])
    assert init.stdout.readline().strip() == "registered"
    init.send_signal(signal.SIGTERM)
    out, err = init.communicate(timeout=60)
    assert init.returncode == 42, err  # the trainer's own exit code, through `train`, through the init
    assert "SIGTERM forwarded to" in err
    assert not list((tmp_path / "registry").iterdir())  # the trainer unregistered itself


def test_init_stops_train_itself_before_a_trainer_registered(tmp_path):
    import signal

    # The child's first line means the init is running it, and the init installs its handlers before that.
    init = start_init(tmp_path, ["sh", "-c", "echo started; exec sleep 60"])
    assert init.stdout.readline().strip() == "started"
    init.send_signal(signal.SIGTERM)
    init.communicate(timeout=60)
    assert init.returncode == 128 + signal.SIGTERM


def test_tuning_trials_get_a_checkpoint_folder_each(tmp_path, monkeypatch):
    """A tuning job gives every trial one checkpoint_s3_uri; a trial must not resume another's run."""
    import json
    from types import SimpleNamespace

    from classifier.contract import hyperparams
    from classifier.contract.paths import SageMakerPaths
    from classifier.training import trainer

    paths = SageMakerPaths(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    paths.hyperparameters.parent.mkdir(parents=True)
    hp = SimpleNamespace(checkpoint_dir=hyperparams.BY_NAME["checkpoint-dir"].default)
    monkeypatch.setenv("TRAINING_JOB_NAME", "tune-001-abc")
    paths.hyperparameters.write_text(json.dumps({"lr": "0.01"}))
    assert trainer.checkpoint_folder(hp, paths) == tmp_path / "checkpoints"  # a plain (spot) job: the folder itself
    paths.hyperparameters.write_text(json.dumps({"lr": "0.01", "_tuning_objective_metric": "best_val_acc"}))
    assert trainer.checkpoint_folder(hp, paths) == tmp_path / "checkpoints" / "tune-001-abc"
    assert (tmp_path / "checkpoints" / "tune-001-abc").is_dir()
