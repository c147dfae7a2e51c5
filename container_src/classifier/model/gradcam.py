"""Grad-CAM on the torch model: which part of the image made the model answer its top class.

Grad-CAM (Selvaraju et al. 2017) weighs each channel k of a feature map A by the mean over its
positions of d(score of class c)/dA_k and sums: map = ReLU(sum_k w_k A_k). The layer is the last one
whose map is at least MIN_MAP x MIN_MAP at the served crop (`locate`): later maps are sharper in
meaning but too coarse to point at anything (ResNet's last is 7x7 at 224, 2x2 at 64).

When that layer is the network's last map and the head is global average pooling + one Linear layer
(ResNet, EfficientNet, RegNet, MNASNet, ShuffleNet...), the gradient of class c's score is W[c] / (h w)
at every position, so Grad-CAM equals CAM from the head's weights, sum_k W[c,k] A_k, up to a positive
scale that the heatmap's normalisation removes. That needs no gradients, so it is an extra output of the
ONNX export (`WithCam`) and the slim serving image (no torch) can explain those models too.

Hooks on torch modules, not captum or pytorch-grad-cam: the server must compute the same map with
ONNX Runtime and no torch, which neither library does, and their dependencies (matplotlib, opencv,
scikit-learn, scipy) would double the serving image for 30 lines. tests/unit/classifier/model/test_gradcam.py checks
these maps against captum's LayerGradCam.
"""

from __future__ import annotations

import torch
from torch import nn

from classifier.model import network as model_lib

MIN_MAP = 7
# Transformers keep a token sequence, not a spatial map, up to their head: Grad-CAM is not defined there.
TOKEN_MODELS = ("VisionTransformer", "SwinTransformer", "MaxVit")


def locate(network: nn.Module, crop: int) -> dict:
    """metadata.json's "explanation": {"method", "layer", "map", "head_weights"} or {"unsupported": why}.

    head_weights: Grad-CAM at `layer` equals CAM from the head's weights (checked numerically on a
    random batch), so the ONNX export can carry it.
    """
    kind = type(network).__name__
    if any(token in kind for token in TOKEN_MODELS):
        return {
            "unsupported": f"{kind} has no spatial feature map before its head (it classifies from tokens), "
            "so Grad-CAM is not defined for it; explanations need a CNN (ResNet, EfficientNet...)"
        }
    # In the order the modules finish; copies, since a later in-place op (DenseNet's ReLU) changes them.
    head_input: list[torch.Tensor] = []
    head = network.get_submodule(model_lib.head_path(network))
    outputs: list[tuple[str, torch.Tensor]] = []
    hooks = [
        module.register_forward_hook(
            lambda m, i, o, name=name: outputs.append((name, o.clone() if isinstance(o, torch.Tensor) else o))
        )
        for name, module in network.named_modules()
        if name
    ]
    hooks.append(head.register_forward_pre_hook(lambda m, args: head_input.append(args[0])))
    training = network.training
    try:
        batch = torch.randn(2, 3, crop, crop, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            network.eval()(batch.to(next(network.parameters()).device))
    finally:
        network.train(training)
        for hook in hooks:
            hook.remove()
    maps = [(name, out) for name, out in outputs if isinstance(out, torch.Tensor) and out.ndim == 4]
    candidates = [(name, out) for name, out in maps if min(out.shape[2:]) >= MIN_MAP]
    if not candidates:
        largest = max(maps, key=lambda item: item[1].shape[2] * item[1].shape[3], default=None)
        found = f"its largest is {tuple(largest[1].shape[2:])} at {largest[0]}" if largest else "it has none"
        return {"unsupported": f"{kind} has no feature map of at least {MIN_MAP}x{MIN_MAP} at crop {crop} ({found})"}
    layer, out = candidates[-1]
    # The head reads exactly this map's spatial mean (a later map, or a ReLU/LayerNorm between, fails it).
    pooled = out.float().mean((2, 3))
    head_weights = bool(
        isinstance(head, nn.Linear)
        and head_input
        and head_input[-1].shape == pooled.shape
        and torch.allclose(head_input[-1].float(), pooled, rtol=1e-4, atol=1e-5)
    )
    return {"method": "gradcam", "layer": layer, "map": list(out.shape[2:]), "head_weights": head_weights}


class GradCam:
    """Grad-CAM maps (N, h, w) at `layer` for each image's top class, with the logits of that pass.

    Its own forward pass, with gradients: the serving forward pass runs under inference_mode. The
    maps are raw (before ReLU and normalisation, which `explain.heatmap` does for every runtime).
    """

    def __init__(self, network: nn.Module, layer: str):
        self.network = network
        self.layer = network.get_submodule(layer)

    def __call__(self, batch: torch.Tensor, preprocessing: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """batch: uint8 (N,3,H,W) images or normalised float tensors, as `inference.logits` takes them."""
        captured: list[torch.Tensor] = []

        def keep(module, inputs, output):
            # A frozen network gives activations that need no gradient: ask for one here, at the layer.
            captured.append(output if output.requires_grad else output.requires_grad_())

        hook = self.layer.register_forward_hook(keep)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                from classifier.model import forward

                logits = forward.logits(self.network, batch, preprocessing)
                top = logits.argmax(1)
                (grads,) = torch.autograd.grad(logits.gather(1, top[:, None]).sum(), captured[-1])
        finally:
            hook.remove()
        activations = captured[-1].detach().float()
        weights = grads.float().mean((2, 3), keepdim=True)
        return logits.detach(), (weights * activations).sum(1)


class WithCam(nn.Module):
    """The network for the ONNX export when `locate` found head_weights: logits and, per image, the CAM
    of its top class at `layer` (N, h, w), from the head's weights. The extra output costs one
    weighted sum over the last map (under 0.5% of ResNet50's forward pass; benchmarks/serving.py)."""

    def __init__(self, network: nn.Module, layer: str):
        super().__init__()
        self.network = network
        self.layer_name = layer

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        hook = self.network.get_submodule(self.layer_name).register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            logits = self.network(images)
        finally:
            hook.remove()
        weights = self.network.get_submodule(model_lib.head_path(self.network)).weight[logits.argmax(1)]
        return logits, (captured[-1] * weights[:, :, None, None]).sum(1)
