"""The model handler, on sagemaker-inference's DefaultInferenceHandler contract.

    model_fn(model_dir)                  -> ServedModel (the trainer's artifact, eval mode)
    input_fn(body, content_type, ctx)    -> Inputs (a batch: uint8 images or float tensors)
    predict_fn(inputs, model)            -> {"predictions": ...} (top-k labels with probabilities)
    output_fn(prediction, accept)        -> (JSON bytes, content type)

The HTTP server (app.py) only moves bytes in and out; everything about the model lives here. Every
bad input raises RequestError with the HTTP status and a message naming the problem.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sagemaker_inference import content_types, encoder, errors, utils
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler

from .. import artifact, inference, presets

# SageMaker real-time endpoints refuse larger payloads; the local container does the same.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
DEFAULT_TOP_K = 5
# sagemaker-inference's decoder knows no image types; these carry the raw bytes of one image.
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image", content_types.OCTET_STREAM)
SUPPORTED_TYPES = IMAGE_TYPES + (content_types.JSON, content_types.NPY)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


class RequestError(errors.BaseInferenceToolkitError):
    """A request this model cannot answer: `status_code` is the HTTP status, `message` says why."""

    def __init__(self, status_code: int, message: str):
        super().__init__(status_code, message, message)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RequestContext:
    """What the handler reads from the request besides the body (the server fills it)."""
    custom_attributes: str | None = None


@dataclass(frozen=True)
class Inputs:
    batch: torch.Tensor   # (N, 3, H, W): uint8 decoded images or float32 preprocessed tensors
    single: bool          # one image (answer a flat list) or `instances` / an (N,3,H,W) array
    top_k: int


class ServedModel:
    """The trained network, its metadata and the device it runs on."""

    def __init__(self, network: torch.nn.Module, metadata: dict):
        self.network = network
        self.metadata = metadata

    @property
    def classes(self) -> list[str]:
        return self.metadata["classes"]

    @property
    def preprocessing(self) -> dict:
        return self.metadata["preprocessing"]

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to_best_device(self) -> "ServedModel":
        """The GPU when the container has one (local_gpu, GPU instances), else the CPU.

        Called in each server worker after the fork: CUDA must not be initialised before it.
        """
        if torch.cuda.is_available():
            self.network.to("cuda")
        return self

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, classes) on the CPU: the trainer's evaluation forward pass."""
        return inference.probabilities(self.network, batch, self.preprocessing)


def parse_top_k(custom_attributes: str | None, num_classes: int) -> int:
    """`top_k=K` from the custom-attributes header (other attributes are ignored); at most the class count."""
    if not custom_attributes:
        return min(DEFAULT_TOP_K, num_classes)
    for item in re.split(r"[,;]", custom_attributes):
        key, sep, value = item.partition("=")
        if key.strip().lower() != "top_k":
            continue
        value = value.strip()
        if not sep or not value.isdigit() or int(value) < 1:
            raise RequestError(400, f"{CUSTOM_ATTRIBUTES_HEADER}: top_k must be a whole number >= 1, "
                                    f"got {value!r}")
        return min(int(value), num_classes)
    return min(DEFAULT_TOP_K, num_classes)


def media_type(content_type: str | None) -> str:
    """'image/JPEG; charset=x' -> 'image/jpeg'."""
    return (content_type or "").split(";")[0].strip().lower()


class ImageClassifierHandler(DefaultInferenceHandler):
    """model_fn / input_fn / predict_fn / output_fn for the image classifier.

    input_fn needs the model's preprocessing, which the contract does not pass to it: model_fn
    records it on the handler (one model per serving process).
    """

    def __init__(self):
        self.preprocessing: dict | None = None
        self.num_classes = 0

    # ---- model_fn
    def default_model_fn(self, model_dir, context=None) -> ServedModel:
        """Loads on the CPU; ServedModel.to_best_device() moves it (after the server's fork)."""
        network, metadata = artifact.load(Path(model_dir), device="cpu")
        self.preprocessing = metadata["preprocessing"]
        self.num_classes = len(metadata["classes"])
        return ServedModel(network, metadata)

    # ---- input_fn
    def default_input_fn(self, input_data: bytes, content_type: str | None,
                         context: RequestContext | None = None) -> Inputs:
        if self.preprocessing is None:
            raise RuntimeError("input_fn called before model_fn: the preprocessing is not known yet")
        kind = media_type(content_type)
        if kind not in SUPPORTED_TYPES:
            raise errors.UnsupportedFormatError(content_type or "(none)")
        if not input_data:
            raise RequestError(400, f"request body is empty: send the {kind} data in the body")
        if len(input_data) > MAX_PAYLOAD_BYTES:
            raise RequestError(413, f"request body is {len(input_data):,} bytes; the limit is "
                                    f"{MAX_PAYLOAD_BYTES:,} (SageMaker's real-time payload limit)")
        top_k = parse_top_k(context.custom_attributes if context else None, self.num_classes)
        if kind in IMAGE_TYPES:
            return Inputs(self._image(input_data, "image").unsqueeze(0), True, top_k)
        if kind == content_types.JSON:
            return Inputs(self._instances(input_data), False, top_k)
        return self._npy(input_data, top_k)

    def _image(self, data: bytes, what: str) -> torch.Tensor:
        try:
            return presets.eval_image(data, self.preprocessing)
        except presets.BadImage as err:
            raise RequestError(400, f"{what}: {err}") from None

    def _instances(self, body: bytes) -> torch.Tensor:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RequestError(400, f"body is not valid JSON ({err})") from None
        instances = document.get("instances") if isinstance(document, dict) else None
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, 'JSON body must be {"instances": [{"b64": "<base64 image>"}, ...]} '
                                    "with at least one instance")
        images = []
        for i, instance in enumerate(instances):
            encoded = instance.get("b64") if isinstance(instance, dict) else None
            if not isinstance(encoded, str):
                raise RequestError(400, f'instances[{i}] must be an object {{"b64": "<base64 image>"}}')
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as err:
                raise RequestError(400, f"instances[{i}].b64 is not valid base64 ({err})") from None
            images.append(self._image(data, f"instances[{i}]"))
        return torch.stack(images)

    def _npy(self, body: bytes, top_k: int) -> Inputs:
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except ValueError as err:  # also raised for pickled object arrays
            raise RequestError(400, f"body is not a readable .npy array ({err})") from None
        except Exception as err:  # truncated headers raise EOFError, OSError...
            raise RequestError(400, f"body is not a readable .npy array ({type(err).__name__}: {err})") from None
        if not isinstance(array, np.ndarray):
            raise RequestError(400, "body is an .npz archive; send one .npy array")
        crop = self.preprocessing["crop"]
        expected = f"(3, {crop}, {crop}) or (N, 3, {crop}, {crop})"
        if array.dtype != np.float32:
            raise RequestError(400, f"array dtype is {array.dtype}; send float32 {expected}, "
                                    "normalised as metadata.json's preprocessing says")
        single = array.ndim == 3
        batch = array[None] if single else array
        if batch.ndim != 4 or batch.shape[1:] != (3, crop, crop) or batch.shape[0] == 0:
            raise RequestError(400, f"array shape is {array.shape}; this model takes {expected}")
        if not np.isfinite(batch).all():
            raise RequestError(400, "array contains NaN or infinite values")
        return Inputs(torch.from_numpy(np.ascontiguousarray(batch)), single, top_k)

    # ---- predict_fn
    def default_predict_fn(self, data: Inputs, model: ServedModel, context=None) -> dict:
        probabilities = model.predict(data.batch)
        values, indices = torch.topk(probabilities, data.top_k, dim=1)
        ranked = [[{"label": model.classes[i], "index": i, "probability": p}
                   for p, i in zip(row_p.tolist(), row_i.tolist())]
                  for row_p, row_i in zip(values, indices)]
        return {"predictions": ranked[0] if data.single else ranked}

    # ---- output_fn
    def default_output_fn(self, prediction: dict, accept: str | None, context=None) -> tuple[bytes, str]:
        """JSON only; an Accept of */* or none means JSON."""
        for wanted in map(media_type, utils.parse_accept(accept or content_types.JSON)):
            if wanted in (content_types.JSON, content_types.ANY, "application/*"):
                return encoder.encode(prediction, content_types.JSON).encode(), content_types.JSON
        raise RequestError(406, f"Accept {accept!r} cannot be served: this endpoint answers application/json")

    # The contract's names, as sagemaker-inference's Transformer calls them.
    model_fn = default_model_fn
    input_fn = default_input_fn
    predict_fn = default_predict_fn
    output_fn = default_output_fn
