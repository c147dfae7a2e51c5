"""The smdebug hook of the trainer: written by the real hook, read back with smdebug's create_trial."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torchvision
from torch import nn

from classifier.contract import hyperparams
from classifier.contract.paths import SageMakerPaths
from classifier.debugging import hook as debug_hook

smd = debug_hook.import_smdebug()
from smdebug.trials import create_trial  # noqa: E402

# smdebug 1.0.34 calls APIs numpy and protobuf deprecate (the reason for its pins; see debugger.py).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _model():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3)


def _run(debug, model, train_loss, eval_loss, train_steps=3, eval_steps=2):
    """A few real training steps, a validation pass, then two more training steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def train(n):
        debug.train()
        model.train()
        for _ in range(n):
            loss = train_loss(model(torch.randn(2, 3, 32, 32)), torch.randint(0, 3, (2,)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    train(train_steps)
    debug.eval()
    model.eval()
    with torch.inference_mode():
        for _ in range(eval_steps):
            eval_loss(model(torch.randn(2, 3, 32, 32)), torch.randint(0, 3, (2,)))
    train(2)
    debug.close()


def _start(tmp_path, **hp):
    settings = {"debugger-save-interval": "2", "debugger-loss-interval": "1", **hp}
    model, train_loss, eval_loss = _model(), nn.CrossEntropyLoss(), nn.CrossEntropyLoss()
    debug = debug_hook.start(hyperparams.parse(settings), SageMakerPaths(tmp_path), model, [train_loss, eval_loss])
    return debug, model, train_loss, eval_loss


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(tensors dir, model) of one short run with the trainer's own settings."""
    base = tmp_path_factory.mktemp("ml")
    debug, model, *losses = _start(base)
    # Default tensors-dir /opt/ml/output/tensors follows SAGEMAKER_BASE_DIR (here base).
    assert debug.out_dir == base / "output" / "tensors"
    _run(debug, model, *losses)
    return debug.out_dir, model


def test_round_trip_saves_each_collection_at_its_steps(written):
    trial = create_trial(str(written[0]))
    train_steps = trial.steps(mode=smd.modes.TRAIN)
    assert train_steps == list(range(5)) and trial.steps(mode=smd.modes.EVAL) == [0, 1]
    for collection in debug_hook.COLLECTIONS:
        assert trial.tensor_names(collection=collection), f"no {collection} saved"
    (loss_name,) = trial.tensor_names(collection="losses")
    loss = trial.tensor(loss_name)
    assert loss.steps(mode=smd.modes.TRAIN) == train_steps  # every step (loss interval 1)
    assert loss.steps(mode=smd.modes.EVAL) == [0, 1]
    assert loss.value(0, mode=smd.modes.EVAL) > 0  # a cross-entropy value, not a placeholder
    # Weights and gradients every 2nd training step, never at validation steps; saved as reductions.
    gradient = trial.tensor("gradient/ResNet_fc.weight")
    assert gradient.steps(mode=smd.modes.TRAIN) == [0, 2, 4]
    assert gradient.steps(mode=smd.modes.EVAL) == []
    assert gradient.reduction_value(0, "mean", abs=True) > 0
    weight = trial.tensor("ResNet_fc.weight")
    assert weight.steps(mode=smd.modes.TRAIN) == [0, 2, 4]
    assert weight.reduction_value(0, "l2") > 0


def test_relu_input_holds_the_inputs_of_every_relu_call(written):
    out_dir, model = written
    assert not any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    trial = create_trial(str(out_dir))
    names = set(trial.tensor_names(collection="relu_input"))
    # A BasicBlock calls its one ReLU module twice: both calls are kept apart.
    assert {"layer1.0.relu_input_0", "layer1.0.relu_input_1", "relu_input_0"} <= names
    assert len(names) == 1 + 2 * 8  # stem + 2 per block x 8 blocks
    first, second = trial.tensor("layer1.0.relu_input_0"), trial.tensor("layer1.0.relu_input_1")
    # Inputs of a ReLU after BatchNorm are about half negative; outputs never are.
    assert first.reduction_value(0, "min") < 0 and second.reduction_value(0, "min") < 0
    assert first.reduction_value(0, "variance") != second.reduction_value(0, "variance")


def test_inplace_relus_would_save_outputs_not_inputs(tmp_path):
    """Why start() switches ReLUs out of place: with inplace=True the hook sees the clamped values."""
    model, loss = _model(), nn.CrossEntropyLoss()
    hook = debug_hook.own_hook(smd, tmp_path / "t", save_interval=1, loss_interval=1)
    debug_hook.watch_relu_inputs(hook, model)
    hook.register_module(model)
    hook.register_loss(loss)
    hook.set_mode(smd.modes.TRAIN)
    loss(model(torch.randn(2, 3, 32, 32)), torch.randint(0, 3, (2,))).backward()
    hook.close()
    trial = create_trial(str(tmp_path / "t"))
    assert trial.tensor("layer1.0.relu_input_0").reduction_value(0, "min") >= 0


def test_bf16_tensors_are_written_as_float32():
    """Autocast on GPUs gives bf16 activations; smdebug's own conversion calls .numpy(), which refuses them."""
    values = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    with pytest.raises(TypeError):
        smd.Hook._make_numpy_array(values)
    array = debug_hook._hook_class(smd)._make_numpy_array(values)
    assert array.dtype.name == "float32" and array.tolist() == [1.5, -2.0]


def test_debugger_off_means_no_hook(tmp_path):
    debug, model, *losses = _start(tmp_path, debugger="false")
    assert isinstance(debug, debug_hook.Off)
    _run(debug, model, *losses, train_steps=1, eval_steps=1)
    assert not (tmp_path / "output").exists()
    assert any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))  # model untouched


def test_broken_smdebug_fails_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "smdebug.pytorch", None)  # what a missing package looks like to import
    with pytest.raises(debug_hook.DebuggerError, match="smdebug cannot be imported.*debugger=false"):
        _start(tmp_path)


def test_sagemaker_debugger_config_wins(tmp_path):
    """With SageMaker Debugger attached, the hook follows debughookconfig.json, not the trainer's settings."""
    config = tmp_path / "input" / "config" / "debughookconfig.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps(
            {
                "LocalPath": str(tmp_path / "sagemaker-tensors"),
                "HookParameters": {"save_interval": "3"},
                "CollectionConfigurations": [{"CollectionName": "losses"}, {"CollectionName": "gradients"}],
            }
        )
    )
    debug, *rest = _start(tmp_path)
    assert debug.out_dir == tmp_path / "sagemaker-tensors"
    _run(debug, *rest)
    trial = create_trial(str(debug.out_dir))
    assert trial.tensor("gradient/ResNet_fc.weight").steps(mode=smd.modes.TRAIN) == [0, 3]
    assert not trial.tensor_names(collection="relu_input")


def test_a_used_tensors_dir_is_refused(tmp_path):
    (tmp_path / "output" / "tensors").mkdir(parents=True)
    (tmp_path / "output" / "tensors" / "old").write_text("x")
    with pytest.raises(debug_hook.DebuggerError, match="not empty"):
        _start(tmp_path)


def test_tensors_dir_must_be_absolute():
    with pytest.raises(hyperparams.HyperparameterError, match="tensors-dir"):
        hyperparams.parse({"tensors-dir": "tensors"})
