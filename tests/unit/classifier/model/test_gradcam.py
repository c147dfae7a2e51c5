"""Grad-CAM: where it looks (gradcam.locate), that it is Grad-CAM (against captum), that the ONNX export's
CAM output equals it, and explain=gradcam through the handler on each runtime."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
import torchvision
from captum.attr import LayerGradCam
from PIL import Image

from classifier.model import artifact, decoding, explanations, gradcam, runtimes, selection
from classifier.model import network as model_lib
from classifier.serving.handler import ImageClassifierHandler, RequestContext, RequestError
from classifier.serving.limits import Limits
from classifier.training import export

CLASSES = ["beagle", "corgi", "husky", "poodle", "pug"]


def network(name: str = "resnet18", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return model_lib.build(name, len(CLASSES)).eval()


@pytest.mark.parametrize(
    "name,crop,layer,size,head_weights",
    [
        ("resnet18", 64, "layer2", [8, 8], False),  # layer3 is 4x4, layer4 2x2: too coarse to point at anything
        ("resnet18", 224, "layer4", [7, 7], True),  # the last map, pooled into one Linear: CAM = Grad-CAM
        ("efficientnet_b0", 224, "features", [7, 7], True),
        ("mobilenet_v3_small", 224, "features", [7, 7], False),  # a two-layer head: Grad-CAM needs gradients
        ("densenet121", 224, "features", [7, 7], False),  # a ReLU (in place) between the map and the pooling
    ],
)
def test_locate_picks_the_last_map_of_at_least_7x7(name, crop, layer, size, head_weights):
    assert gradcam.locate(network(name), crop) == {
        "method": "gradcam",
        "layer": layer,
        "map": size,
        "head_weights": head_weights,
    }


def test_locate_says_why_a_model_cannot_be_explained():
    vit = torchvision.models.vit_b_16(num_classes=3)
    assert "classifies from tokens" in gradcam.locate(vit, 224)["unsupported"]
    small = gradcam.locate(network(), 12)["unsupported"]  # conv1's 6x6 is its largest map
    assert "no feature map of at least 7x7 at crop 12 (its largest is (6, 6) at conv1)" in small, small


def test_locate_leaves_the_network_as_it_found_it():
    net = network().train()
    gradcam.locate(net, 64)
    assert net.training and not net._forward_hooks and not net.layer2._forward_hooks


@pytest.mark.parametrize("frozen", [False, True])
def test_gradcam_is_captums_layer_gradcam(frozen):
    """The same maps as captum's LayerGradCam at the same layer for each image's top class, frozen or not."""
    net = network()
    if frozen:
        net.requires_grad_(False)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 64, 64), dtype=np.uint8))
    prep = decoding.eval_preprocessing(64)
    logits, maps = gradcam.GradCam(net, "layer2")(images, prep)
    with torch.inference_mode():  # the serving forward pass's mode must not leak into the explanation
        again = gradcam.GradCam(net, "layer2")(images, prep)[1]
    normalised = (images.float() / 255 - torch.tensor(prep["mean"]).view(1, 3, 1, 1)) / torch.tensor(prep["std"]).view(
        1, 3, 1, 1
    )
    reference = LayerGradCam(net, net.layer2).attribute(normalised, target=logits.argmax(1)).squeeze(1)
    assert maps.shape == (4, 8, 8) and not maps.requires_grad
    assert torch.allclose(maps, reference.detach(), atol=1e-5) and torch.equal(maps, again)
    assert maps.abs().sum() > 0


def test_heatmap():
    raw = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    heat = explanations.heatmap(raw, 8)
    assert heat.shape == (8, 8) and heat.dtype == np.uint8 and heat.max() == 255 and heat[0, 0] == 0
    assert heat[7, 7] > heat[7, 0] > heat[0, 0]  # bilinear: the hot corner stays hot
    assert not explanations.heatmap(-np.ones((7, 7)), 224).any()  # nothing speaks for the class: no heat


@pytest.fixture(scope="module")
def cam_model(tmp_path_factory):
    """A resnet18 artifact at crop 224 (layer4 is 7x7: CAM = Grad-CAM) with its ONNX exports."""
    net = network("resnet18", seed=1)
    prep = decoding.eval_preprocessing(224)
    path = tmp_path_factory.mktemp("cam-model")
    explanation = gradcam.locate(net, 224)
    artifact.save(
        path,
        net.state_dict(),
        classes=CLASSES,
        model_name="resnet18",
        image_size=224,
        preprocessing=prep,
        hyperparameters={},
        metrics={"test_acc": 0.2},
        export={"enabled": True},
        explanation=explanation,
    )
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (6, 3, 224, 224), dtype=np.uint8))
    outcome = export.export_and_evaluate(net, prep, path, images, torch.arange(6) % 5, images.numpy(), explanation)
    assert not outcome.skipped
    artifact.record_runtimes(path, outcome.scores, {"enabled": True, "skipped": {}})
    return path, images.numpy()


def test_the_onnx_cam_output_is_grad_cam(cam_model):
    """fp32: the export's CAM gives torch Grad-CAM's heatmap; int8: the same within quantization."""
    path, images = cam_model
    metadata = artifact.load_metadata(path)
    net, _ = artifact.load(path)
    torch_probabilities, torch_maps = runtimes.TorchRuntime(net, metadata["preprocessing"]).explain(images)
    for name, tolerance in ((runtimes.ONNX, 1), (runtimes.ONNX_INT8, 48)):
        onnx = selection.build(path, name, metadata, 1)
        probabilities, maps = onnx.explain(images)
        assert np.array_equal(probabilities, onnx.probabilities(images))  # the extra output changes no answer
        assert np.array_equal(probabilities.argmax(1), torch_probabilities.argmax(1))
        for ours, reference in zip(maps, torch_maps, strict=True):
            difference = np.abs(
                explanations.heatmap(ours, 224).astype(int) - explanations.heatmap(reference, 224).astype(int)
            )
            assert difference.max() <= tolerance, name


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (240, 300, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("runtime", [runtimes.TORCH, runtimes.ONNX])
def test_the_handler_answers_explanations(cam_model, runtime):
    path, _ = cam_model
    handler = ImageClassifierHandler(Limits(max_explanations=2), selection.RuntimeRequest(runtime))
    served = handler.model_fn(str(path))
    body = jpeg(3)
    plain = handler.predict_fn(handler.input_fn(body, "image/jpeg", RequestContext("top_k=2")), served)
    answer = handler.predict_fn(handler.input_fn(body, "image/jpeg", RequestContext("top_k=2,explain=gradcam")), served)
    assert answer["predictions"] == plain["predictions"]  # explaining changes no answer
    record = answer["explanations"]
    assert (record["method"], record["layer"], record["label"]) == (
        "gradcam",
        "layer4",
        plain["predictions"][0]["label"],
    )
    heat, crop = explanations.decode_image(record["heatmap_png"]), explanations.decode_image(record["crop_png"])
    prep = served.preprocessing
    assert heat.shape == (224, 224) and heat.max() > 200  # the peak of a 7x7 map, bilinearly upsampled
    assert np.array_equal(crop, decoding.eval_image(body, prep).transpose(1, 2, 0))  # the crop the model saw
    # The offline explanation of the same crop, through torch.
    net, _ = artifact.load(path)
    _, maps = runtimes.TorchRuntime(net, prep).explain(decoding.eval_image(body, prep)[None])
    assert np.abs(heat.astype(int) - explanations.heatmap(maps[0], 224).astype(int)).max() <= 1
    # A batch: one explanation per image; above the cap: 413 naming the setting.
    batch = b'{"instances": [{"b64": "%s"}, {"b64": "%s"}]}' % (base64.b64encode(jpeg(4)), base64.b64encode(body))
    answers = handler.predict_fn(handler.input_fn(batch, "application/json", RequestContext("explain=gradcam")), served)
    # The same image's map in a batch of two: equal up to float rounding (ONNX Runtime picks kernels by batch
    # size, so the maps may differ in the last bits and a grey level flip at a rounding edge).
    assert len(answers["explanations"]) == 2
    batched = explanations.decode_image(answers["explanations"][1]["heatmap_png"])
    assert np.abs(batched.astype(int) - heat.astype(int)).max() <= 1
    triple = b'{"instances": [%s]}' % b",".join([b'{"b64": "%s"}' % base64.b64encode(body)] * 3)
    with pytest.raises(RequestError) as err:
        handler.input_fn(triple, "application/json", RequestContext("explain=gradcam"))
    assert err.value.status_code == 413 and "SERVING_MAX_EXPLANATIONS" in err.value.message
    with pytest.raises(RequestError) as err:
        handler.input_fn(body, "image/jpeg", RequestContext("explain=lime"))
    assert err.value.status_code == 400 and "explain must be gradcam" in err.value.message


def test_onnx_without_a_cam_output_says_what_would_explain(tmp_path):
    """resnet18 at 64 px: Grad-CAM at layer2 needs gradients; the ONNX runtimes answer 400 and say why."""
    net = network()
    prep = decoding.eval_preprocessing(64)
    explanation = gradcam.locate(net, 64)
    artifact.save(
        tmp_path,
        net.state_dict(),
        classes=CLASSES,
        model_name="resnet18",
        image_size=64,
        preprocessing=prep,
        hyperparameters={},
        metrics={},
        export={"enabled": True},
        explanation=explanation,
    )
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (4, 3, 64, 64), dtype=np.uint8))
    outcome = export.export_and_evaluate(net, prep, tmp_path, images, torch.arange(4), images.numpy(), explanation)
    artifact.record_runtimes(tmp_path, outcome.scores, {"enabled": True, "skipped": outcome.skipped})
    handler = ImageClassifierHandler(runtime=selection.RuntimeRequest(runtimes.ONNX))
    handler.model_fn(str(tmp_path))
    with pytest.raises(RequestError) as err:
        handler.input_fn(jpeg(5), "image/jpeg", RequestContext("explain=gradcam"))
    assert err.value.status_code == 400
    assert "needs gradients at layer2" in err.value.message and "SERVING_RUNTIME=torch" in err.value.message
    with pytest.raises(explanations.ExplainUnavailable):
        selection.build(tmp_path, runtimes.ONNX, artifact.load_metadata(tmp_path), 1).explain(images.numpy())
