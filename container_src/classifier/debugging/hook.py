"""The SageMaker Debugger (smdebug) hook of the trainer.

Where it comes from:
- SageMaker Debugger attached to the job (cloud, DebuggerHookConfig): SageMaker writes
  input/config/debughookconfig.json and uploads what the hook writes; the hook follows that file.
- Otherwise (local mode, or accounts without Debugger: `--debugger project`): the trainer's own
  settings (hyperparameters `tensors-dir`, `debugger-save-interval`, `debugger-loss-interval`).

What it saves: `losses` (train and validation), `weights`, `gradients` and `relu_input` (the input
of every ReLU call). Weights, gradients and ReLU inputs are saved as reductions (a few scalars per
tensor, enough for the rules in classifier.debugging.rules) because full tensors of a ResNet50 at batch 64
are gigabytes per step.

smdebug 1.0.34 (2023, the last release) needs workarounds; see README "Debugging and profiling".
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from classifier.contract import outputs
from classifier.contract.paths import SageMakerPaths

log = logging.getLogger(__name__)

HOOK_CONFIG = Path("input/config/debughookconfig.json")  # relative to /opt/ml (SageMakerPaths.base)
COLLECTIONS = outputs.COLLECTIONS
# Per-tensor scalars kept for each step; rules read them with Tensor.reduction_value().
REDUCTIONS = {
    outputs.WEIGHTS: dict(reductions=["mean", "std"], abs_reductions=["mean"], norms=["l2"]),
    outputs.GRADIENTS: dict(reductions=["mean", "std"], abs_reductions=["mean"], norms=["l2"]),
    outputs.RELU_INPUT: dict(reductions=["mean", "variance", "min", "max"], abs_reductions=["mean"]),
}


class DebuggerError(RuntimeError):
    """The debugger is on but cannot work; the message says why and how to go on."""


def import_smdebug():
    """smdebug.pytorch, with the protobuf workaround; a clear error when it cannot load."""
    # smdebug's generated protobuf files predate protobuf 4; the pure-Python backend still reads them.
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    try:
        import smdebug.pytorch as smd
    except Exception as err:  # ImportError, protobuf's TypeError, a missing undeclared dependency...
        raise DebuggerError(
            f"debugger=true but smdebug cannot be imported ({type(err).__name__}: {err}). Rebuild the training "
            "image (docker/requirements/train-nodeps.txt installs smdebug) or set the hyperparameter "
            "debugger=false to train without it. Outside the image, set PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python "
            "before anything imports protobuf"
        ) from None
    return smd


def host_path(path: str, paths: SageMakerPaths) -> Path:
    """A /opt/ml/... setting, moved under SAGEMAKER_BASE_DIR when that replaces /opt/ml (tests)."""
    p = Path(path)
    if p.is_relative_to("/opt/ml") and paths.base != Path("/opt/ml"):
        return paths.base / p.relative_to("/opt/ml")
    return p


def make_relus_not_inplace(model: nn.Module) -> int:
    """In-place ReLUs overwrite their input before a forward hook sees it, so `relu_input` would hold
    the (non-negative) outputs. Returns how many were switched; the weights do not change."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.ReLU) and module.inplace:
            module.inplace = False
            count += 1
    return count


def watch_relu_inputs(hook, model: nn.Module) -> None:
    """Every nn.ReLU's input goes to `relu_input`, whatever the module is called ("relu" in ResNets,
    "features.1" in VGG). smdebug names them <module>_input_<n-th call in the step>, so a ResNet block
    that calls its one ReLU module twice gives two tensors."""
    relu_input = hook.get_collection(outputs.RELU_INPUT)
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            relu_input.add_module_tensors(module, inputs=True, outputs=False)


def _hook_class(smd):
    class Hook(smd.Hook):
        @staticmethod
        def _make_numpy_array(tensor_value):
            # smdebug calls .numpy() as is: that fails on bf16 (autocast on GPUs) and on inference tensors.
            import torch

            if isinstance(tensor_value, torch.Tensor):
                tensor_value = tensor_value.detach()
                if tensor_value.is_floating_point():
                    tensor_value = tensor_value.float()
                return tensor_value.cpu().numpy()
            return smd.Hook._make_numpy_array(tensor_value)

    return Hook


def own_hook(smd, out_dir: Path, save_interval: int, loss_interval: int):
    """The hook the trainer configures itself: no SageMaker Debugger config present."""
    from smdebug.core.modes import ModeKeys
    from smdebug.core.reduction_config import ReductionConfig
    from smdebug.core.save_config import SaveConfig, SaveConfigMode

    # Validation losses every step: one value per batch, averaged per epoch by the rules and report.
    loss_config = {
        ModeKeys.TRAIN: SaveConfigMode(save_interval=loss_interval),
        ModeKeys.EVAL: SaveConfigMode(save_interval=1),
    }
    hook = _hook_class(smd)(
        out_dir=str(out_dir),
        save_config=SaveConfig(save_interval=save_interval),
        include_collections=list(COLLECTIONS),
        export_tensorboard=False,
    )
    hook.get_collection(outputs.LOSSES).save_config = loss_config
    for name, reductions in REDUCTIONS.items():
        hook.get_collection(name).reduction_config = ReductionConfig(**reductions, save_raw_tensor=False)
    # Weights, gradients and ReLU inputs are training-step quantities: none at validation or test steps.
    never = SaveConfigMode(start_step=0, end_step=0)
    for name in (outputs.WEIGHTS, outputs.GRADIENTS, outputs.RELU_INPUT):
        hook.get_collection(name).save_config = {
            ModeKeys.TRAIN: SaveConfigMode(save_interval=save_interval),
            ModeKeys.EVAL: never,
            ModeKeys.PREDICT: never,
        }
    return hook


class Debugger:
    """The trainer's handle on the hook: modes and the end-of-job check."""

    def __init__(self, smd, hook, out_dir: Path):
        self.smd, self.hook, self.out_dir = smd, hook, out_dir

    def train(self) -> None:
        self.hook.set_mode(self.smd.modes.TRAIN)

    def eval(self) -> None:
        self.hook.set_mode(self.smd.modes.EVAL)

    def test(self) -> None:
        """The final test pass: PREDICT mode, so the rules' validation rounds hold validation only."""
        self.hook.set_mode(self.smd.modes.PREDICT)

    def check(self) -> None:
        """smdebug catches its own errors and quietly stops saving; turn that into a failed job."""
        from smdebug.core.error_handling_agent import ErrorHandlingAgent

        if ErrorHandlingAgent.get_error_handling_agent().disable_smdebug:
            raise DebuggerError(
                "smdebug hit an error and stopped saving tensors (its traceback is in the log "
                "above); set debugger=false to train without it"
            )

    def close(self) -> None:
        self.hook.close()
        self.check()
        if not any(self.out_dir.glob("events/*/*.tfevents")):
            raise DebuggerError(
                f"the debugger hook wrote no tensors to {self.out_dir}; set debugger=false to train without it"
            )
        log.info("debugger: tensors in %s", self.out_dir)


class Off:
    """debugger=false: the trainer calls the same methods, nothing happens."""

    def train(self) -> None: ...
    def eval(self) -> None: ...
    def test(self) -> None: ...
    def close(self) -> None: ...


def start(hp, paths: SageMakerPaths, model: nn.Module, losses: list[nn.Module]) -> Debugger | Off:
    """The hook for this job, registered on the model and loss modules (Off when debugger=false)."""
    if not hp.debugger:
        return Off()
    smd = import_smdebug()
    config = paths.base / HOOK_CONFIG
    if config.is_file():
        hook = _hook_class(smd).create_from_json_file(str(config))
        out_dir = Path(hook.out_dir)
        log.info("debugger: SageMaker Debugger configuration %s, tensors to %s", config, out_dir)
    else:
        out_dir = host_path(hp.tensors_dir, paths)
        if out_dir.exists() and any(out_dir.iterdir()):
            # smdebug would mix this job's steps with an earlier job's and the rules would read both.
            raise DebuggerError(f"tensors-dir {out_dir} is not empty; point tensors-dir at a new folder")
        hook = own_hook(smd, out_dir, hp.debugger_save_interval, hp.debugger_loss_interval)
        watch_relu_inputs(hook, model)
        log.info(
            "debugger: own settings (no %s), tensors to %s every %d steps, losses every %d",
            config,
            out_dir,
            hp.debugger_save_interval,
            hp.debugger_loss_interval,
        )
    switched = make_relus_not_inplace(model)
    if switched:
        log.info("debugger: %d in-place ReLU modules made out-of-place so relu_input holds their inputs", switched)
    hook.register_module(model)
    for loss in losses:
        hook.register_loss(loss)
    return Debugger(smd, hook, out_dir)
