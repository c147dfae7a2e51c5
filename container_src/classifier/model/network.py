"""Building a torchvision classifier with a new head, loading its weights, choosing what trains."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn


class ModelError(ValueError):
    """The model cannot be built as asked; the message says why and what to do."""


def weights_cache_dir() -> Path:
    """Where torchvision keeps downloaded weights; the image bakes them here (TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_weights_file(model_name: str) -> Path:
    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    return weights_cache_dir() / os.path.basename(weights.url)


def head_path(model: nn.Module) -> str:
    """Dotted name of the final Linear layer: fc (ResNet), classifier.N (EfficientNet...), heads.head (ViT)."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ModelError(
            f"{type(model).__name__} has no final Linear layer to replace (e.g. SqueezeNet);"
            " choose a model with a Linear classifier"
        )
    return linears[-1]


def _set_module(model: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def build(model_name: str, num_classes: int, weights: str = "none") -> nn.Module:
    """torchvision model `model_name` with its head resized to `num_classes`.

    weights: 'imagenet' (from the image's baked cache, never downloaded at run time), 'none', or a
    path to a state dict of the original architecture (its own head).
    """
    try:
        model = torchvision.models.get_model(model_name, weights=None)
    except ValueError:
        raise ModelError(f"unknown model {model_name!r}") from None
    if weights == "imagenet":
        path = imagenet_weights_file(model_name)
        if not path.is_file():
            raise ModelError(
                f"ImageNet weights for {model_name} are not in this image ({path}). Rebuild the image with "
                f"them (make build WEIGHTS_MODELS='{model_name}') on a machine that can download them, "
                "pass weights=<path> or use weights=none"
            )
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    elif weights != "none":
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        except Exception as err:  # a wrong file must name itself, not surface as a tensor-shape trace
            raise ModelError(f"weights file {weights} does not fit {model_name}: {err}") from None
    head = head_path(model)
    old = model.get_submodule(head)
    _set_module(model, head, nn.Linear(old.in_features, num_classes))
    return model


def last_block(model: nn.Module) -> nn.Module:
    """The last feature block, trained with the head in fine-tune=last-block.

    ResNet/ResNeXt/Wide-ResNet: layer4. Families with a `features` stack (EfficientNet, MobileNet,
    ConvNeXt, Swin, VGG, DenseNet...): its last block with parameters. ViT: the last encoder layer.
    RegNet: the last trunk stage.
    """
    if hasattr(model, "layer4"):
        return model.layer4
    for stack in ("features", "trunk_output"):
        if isinstance(getattr(model, stack, None), nn.Sequential):
            blocks = [m for m in getattr(model, stack) if any(True for _ in m.parameters())]
            return blocks[-1]
    if hasattr(model, "encoder") and hasattr(model.encoder, "layers"):
        return model.encoder.layers[-1]
    raise ModelError(f"fine-tune=last-block is not defined for {type(model).__name__}; use head or full")


def set_trainable(model: nn.Module, fine_tune: str) -> list[nn.Module]:
    """Freeze per `fine_tune`; returns the modules that train (frozen ones keep BatchNorm in eval)."""
    head = model.get_submodule(head_path(model))
    if fine_tune == "full":
        return [model]
    trainable = [head] if fine_tune == "head" else [last_block(model), head]
    model.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)
    return trainable


def train_mode(model: nn.Module, trainable: list[nn.Module]) -> None:
    """Train mode only where parameters train, so frozen BatchNorm statistics stay ImageNet's."""
    model.eval()
    for module in trainable:
        module.train()
