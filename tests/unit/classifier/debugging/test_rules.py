"""The five local rules on trials written by the real smdebug hook: each fires on a crafted unhealthy
run and stays quiet on a healthy one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from classifier.debugging import hook as debug_hook
from classifier.debugging import rules

smd = debug_hook.import_smdebug()
from smdebug.trials import create_trial  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # smdebug 1.0.34's old API calls
STEPS_PER_EPOCH = 6


class GivenLoss(nn.modules.loss._Loss):
    """A loss module whose output is the value the test chose: the hook records it as the loss."""

    def forward(self, value):
        return value


def write_trial(path, train_losses, val_losses, grad_scale=1.0, layer_scale=1.0, raw=False):
    """Epoch by epoch: STEPS_PER_EPOCH training steps (real backward on a small MLP, recorded loss from
    train_losses[epoch]), then 2 validation steps recording val_losses[epoch]."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    with torch.no_grad():
        model[2].weight.mul_(layer_scale)
    given, criterion = GivenLoss(), nn.CrossEntropyLoss()
    hook = debug_hook.own_hook(smd, path, save_interval=1, loss_interval=1)
    if raw:  # full tensors, as a SageMaker Debugger configuration saves them
        for name in ("weights", "gradients", "relu_input"):
            hook.get_collection(name).reduction_config = None
    debug_hook.watch_relu_inputs(hook, model)
    hook.register_module(model)
    hook.register_loss(given)
    for train_loss, val_loss in zip(train_losses, val_losses, strict=True):
        hook.set_mode(smd.modes.TRAIN)
        for step in range(STEPS_PER_EPOCH):
            x = torch.randn(16, 8)
            (criterion(model(x), torch.randint(0, 3, (16,))) * grad_scale).backward()
            given(torch.tensor(train_loss + 0.01 * (step % 2)))  # a little step-to-step noise
            model.zero_grad()
        hook.set_mode(smd.modes.EVAL)
        for _ in range(2):
            with torch.no_grad():
                model(torch.randn(16, 8))
            given(torch.tensor(val_loss))
    hook.close()
    return create_trial(str(path))


def result(trial, rule_class):
    return rules.run_rule(rule_class, trial)


HEALTHY_TRAIN = [1.2, 0.9, 0.7, 0.55, 0.45, 0.38]
HEALTHY_VAL = [1.1, 0.88, 0.72, 0.58, 0.48, 0.41]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    return write_trial(tmp_path_factory.mktemp("healthy"), HEALTHY_TRAIN, HEALTHY_VAL)


def global_step_of_epoch_end(epoch: int) -> int:
    """Last validation step of 1-based `epoch` (STEPS_PER_EPOCH train + 2 validation steps per epoch)."""
    return epoch * (STEPS_PER_EPOCH + 2) - 1


@pytest.mark.parametrize("rule_class", rules.RULES, ids=lambda r: r.name)
def test_healthy_run_raises_no_issue(healthy, rule_class):
    outcome = result(healthy, rule_class)
    assert outcome.status == rules.NO_ISSUES, outcome
    assert "checked" in outcome.reason and outcome.step is None


def test_overfit_ignores_an_early_gap_that_closes(tmp_path):
    """From-scratch BatchNorm nets start with a huge validation loss that then falls: not overfitting."""
    trial = write_trial(tmp_path, [1.6, 1.4, 1.2, 1.1, 1.0], [150.0, 210.0, 19.0, 1.5, 1.0])
    assert result(trial, rules.Overfit).status == rules.NO_ISSUES


@pytest.mark.parametrize("raw", [False, True], ids=["reductions", "full-tensors"])
def test_vanishing_gradient_fires_on_zero_gradients(tmp_path, raw):
    trial = write_trial(tmp_path, HEALTHY_TRAIN, HEALTHY_VAL, grad_scale=0.0, raw=raw)
    outcome = result(trial, rules.VanishingGradient)
    assert (outcome.status, outcome.step) == (rules.ISSUES, 0)
    assert "gradient tensors have mean |g|" in outcome.reason


def test_overfit_fires_when_validation_loss_pulls_away(tmp_path):
    trial = write_trial(tmp_path, [1.0, 0.8, 0.6, 0.4, 0.3], [1.0, 0.85, 0.8, 0.9, 1.0])
    outcome = result(trial, rules.Overfit)
    # Validation worse than its best (0.8) with a gap > 10% from epoch 4; patience 2 -> epoch 5.
    assert (outcome.status, outcome.step) == (rules.ISSUES, global_step_of_epoch_end(5))
    assert "above training loss" in outcome.reason


def test_overtraining_fires_when_validation_stops_improving(tmp_path):
    trial = write_trial(tmp_path, [1.0, 0.8, 0.6, 0.5, 0.4, 0.3], [1.0, 0.7, 0.72, 0.71, 0.70, 0.75])
    outcome = result(trial, rules.Overtraining)
    # Best at epoch 2; three epochs without a 1% improvement -> epoch 5.
    assert (outcome.status, outcome.step) == (rules.ISSUES, global_step_of_epoch_end(5))
    assert "best 0.7000 at epoch 2" in outcome.reason


def test_loss_not_decreasing_fires_on_a_flat_loss(tmp_path):
    trial = write_trial(tmp_path, [1.0] * 4, [1.0] * 4)
    outcome = result(trial, rules.LossNotDecreasing)
    assert outcome.status == rules.ISSUES
    # Windows of 5 saved training losses: the 1st sets the best, the 2nd and 3rd stall (patience 2).
    train_steps = [s for s in trial.steps() if trial.mode_modestep(s)[0] == smd.modes.TRAIN]
    assert outcome.step == train_steps[14]


def test_poor_weight_initialization_fires_on_a_collapsed_layer(tmp_path):
    trial = write_trial(tmp_path, HEALTHY_TRAIN, HEALTHY_VAL, layer_scale=1e-3)
    outcome = result(trial, rules.PoorWeightInitialization)
    assert (outcome.status, outcome.step) == (rules.ISSUES, 0)
    assert "ReLU input variance differs" in outcome.reason


def test_missing_collections_are_reported_not_passed(tmp_path):
    hook = smd.Hook(out_dir=str(tmp_path), include_collections=["losses"], save_config=smd.SaveConfig(save_interval=1))
    model, loss = nn.Linear(4, 2), GivenLoss()
    hook.register_module(model)
    hook.register_loss(loss)
    hook.set_mode(smd.modes.TRAIN)
    for _ in range(3):
        model(torch.randn(2, 4))
        loss(torch.tensor(1.0))
    hook.close()
    by_name = {r.rule: r for r in rules.evaluate(tmp_path)}
    assert set(by_name) == {r.name for r in rules.RULES}
    assert by_name["vanishing_gradient"].status == rules.NO_DATA
    assert "gradients" in by_name["vanishing_gradient"].reason
    assert by_name["overfit"].status == rules.NO_DATA
