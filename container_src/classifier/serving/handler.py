"""The model handler, on sagemaker-inference-toolkit's handler contract.

    model_fn(model_dir)                  -> ServedModel (the trainer's artifact on the runtime selection.py picks)
    input_fn(body, content_type, ctx)    -> Inputs (a batch: uint8 images or float tensors)
    predict_fn(inputs, model)            -> {"predictions": ...} (top-k labels with probabilities) and, with
                                            explain=gradcam, {"explanations": ...} (explain.record)
    output_fn(prediction, accept)        -> (JSON bytes, content type)

The HTTP server (app.py) only moves bytes in and out; everything about the model lives here. Every
bad input raises RequestError with the HTTP status and a message naming the problem. The contract
is kept as a convention, not by subclassing the toolkit: its decoder knows no image types, its .npy
decoder allows pickles and its encoder adds nothing JSON does not do, while its package would put
boto3, scipy and psutil in the image for nothing. Images are
decoded in two passes: every image's header first (format, size: an over-limit request is refused
before any pixel is decoded), then each image under the worker's pixel budget (limits.py). Batches
are numpy arrays end to end: the slim serving image (serve-cpu) has no torch.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from classifier.model import artifact, decoding, explanations, selection

from .limits import Deadline, Limits

DEFAULT_TOP_K = 5
JSON, NPY = "application/json", "application/x-npy"
# These carry the raw bytes of one image: each format presets.FORMATS reads by its own type, and two
# generic ones. The body's real format decides how it is read (a PNG sent as image/jpeg is read as the
# PNG it is): clients mislabel uploads often, and the bytes, not the label, are what a parser meets.
IMAGE_TYPES = (
    *(kind for kinds in decoding.MEDIA_TYPES.values() for kind in kinds),
    "application/x-image",
    "application/octet-stream",
)
SUPPORTED_TYPES = IMAGE_TYPES + (JSON, NPY)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
MAX_NPY_VALUE = 1000.0


class RequestError(Exception):
    """A request this model cannot answer: `status_code` is the HTTP status, `message` says why."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class RequestContext:
    """What the handler reads from the request besides the body (the server fills it)."""

    custom_attributes: str | None = None
    deadline: Deadline | None = None  # None: the handler's own limits.timeout_s from now


@dataclass(frozen=True)
class Inputs:
    batch: np.ndarray  # (N, 3, H, W): uint8 decoded images or float32 preprocessed tensors
    single: bool  # one image (answer a flat list) or `instances` / an (N,3,H,W) array
    top_k: int
    deadline: Deadline | None = None
    explain: bool = False  # explain=gradcam: a heatmap of each image's top class


class Predictor(Protocol):
    """What predict_fn calls: a ServedModel, or in a server worker a batching.BatchedModel in front of it.
    `deadline` is for the batcher, which drops a request's queued images once it passes; a ServedModel
    runs one forward pass, which cannot be interrupted, and takes the deadline only to share this type."""

    runtime: object
    metadata: dict

    @property
    def classes(self) -> list[str]: ...

    @property
    def preprocessing(self) -> dict: ...

    def predict(self, batch: np.ndarray, deadline: Deadline | None = None) -> np.ndarray: ...

    def explain(self, batch: np.ndarray, deadline: Deadline | None = None) -> tuple[np.ndarray, np.ndarray]: ...


class ServedModel:
    """The trained model on its runtime (runtimes.py), its metadata, and why that runtime was chosen."""

    def __init__(self, runtime, metadata: dict, reason: str = ""):
        self.runtime = runtime
        self.metadata = metadata
        self.reason = reason

    @property
    def classes(self) -> list[str]:
        return self.metadata["classes"]

    @property
    def preprocessing(self) -> dict:
        return self.metadata["preprocessing"]

    def start(self, threads: int) -> ServedModel:
        """In each server worker after the fork: threads, the GPU when there is one (local_gpu, GPU
        instances: CUDA must not be initialised before the fork), a fresh ONNX Runtime session."""
        self.runtime.start(threads)
        return self

    def predict(self, batch: np.ndarray, deadline: Deadline | None = None) -> np.ndarray:
        """Probabilities (N, classes): the forward pass the trainer scored this runtime with (the deadline:
        see Predictor)."""
        return self.runtime.probabilities(batch)

    def explain(self, batch: np.ndarray, deadline: Deadline | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, raw Grad-CAM maps of each image's top class), in a pass of its own."""
        return self.runtime.explain(batch)


@dataclass(frozen=True)
class Attributes:
    top_k: int
    explain: bool = False


def parse_attributes(custom_attributes: str | None, num_classes: int) -> Attributes:
    """`top_k=K` (at most the class count) and `explain=gradcam` from the custom-attributes header;
    other attributes are ignored."""
    top_k, wants_explanation = min(DEFAULT_TOP_K, num_classes), False
    for item in re.split(r"[,;]", custom_attributes or ""):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key == "top_k":
            # isdecimal() alone admits other scripts' digits ('٣') and 5,000-digit strings, which int() refuses.
            if not sep or not (value.isascii() and value.isdecimal()) or len(value) > 9 or int(value) < 1:
                raise RequestError(400, f"{CUSTOM_ATTRIBUTES_HEADER}: top_k must be a whole number >= 1, got {value!r}")
            top_k = min(int(value), num_classes)
        elif key == "explain":
            if value.lower() != explanations.METHOD:
                raise RequestError(
                    400, f"{CUSTOM_ATTRIBUTES_HEADER}: explain must be {explanations.METHOD}, got {value!r}"
                )
            wants_explanation = True
    return Attributes(top_k, wants_explanation)


def media_type(content_type: str | None) -> str:
    """'image/JPEG; charset=x' -> 'image/jpeg'."""
    return (content_type or "").split(";")[0].strip().lower()


class ImageClassifierHandler:
    """model_fn / input_fn / predict_fn / output_fn for the image classifier.

    input_fn needs the model's preprocessing, which the contract does not pass to it: model_fn
    records it on the handler (one model per serving process).
    """

    def __init__(self, limits: Limits = Limits(), runtime: selection.RuntimeRequest = selection.RuntimeRequest()):
        self.limits = limits
        self.runtime = runtime
        self.budget = limits.pixel_budget()
        self.preprocessing: dict | None = None
        self.num_classes = 0
        self.explain_problem: str | None = None  # why explain=gradcam cannot be served, when it cannot

    # ---- model_fn
    def model_fn(self, model_dir, context=None) -> ServedModel:
        """Loads on the CPU; ServedModel.start() moves it to the GPU, if any (after the server's fork).

        Raises artifact.ArtifactError or selection.SelectionError, which name what is wrong."""
        metadata = artifact.load_metadata(Path(model_dir))
        choice = selection.choose(Path(model_dir), metadata, self.runtime)
        self.preprocessing = metadata["preprocessing"]
        self.num_classes = len(metadata["classes"])
        self.explain_problem = explanations.problem(choice.runtime.name, metadata)
        return ServedModel(choice.runtime, metadata, choice.reason)

    # ---- input_fn
    def input_fn(self, input_data: bytes, content_type: str | None, context: RequestContext | None = None) -> Inputs:
        if self.preprocessing is None:
            raise RuntimeError("input_fn called before model_fn: the preprocessing is not known yet")
        kind = media_type(content_type)
        if kind not in SUPPORTED_TYPES:
            raise RequestError(
                415,
                f"Content-Type {content_type or '(none)'!r} is not supported; send one of {', '.join(SUPPORTED_TYPES)}",
            )
        if not input_data:
            raise RequestError(400, f"request body is empty: send the {kind} data in the body")
        if len(input_data) > self.limits.max_payload_bytes:
            raise RequestError(
                413,
                f"request body is {len(input_data):,} bytes; the limit is "
                f"{self.limits.max_payload_bytes:,} ({self.limits.payload_setting})",
            )
        attributes = parse_attributes(context.custom_attributes if context else None, self.num_classes)
        if attributes.explain and self.explain_problem:
            raise RequestError(400, self.explain_problem)
        deadline = (context.deadline if context else None) or Deadline(self.limits.timeout_s)
        if kind in IMAGE_TYPES:
            sources, single = [("image", input_data)], True
        elif kind == JSON:
            sources, single = self._instances(input_data), False
        else:
            batch, single = self._npy(input_data)
            self._check_explanations(len(batch), attributes)
            return Inputs(batch, single, attributes.top_k, deadline, attributes.explain)
        self._check_explanations(len(sources), attributes)
        return Inputs(self._decode(sources, deadline), single, attributes.top_k, deadline, attributes.explain)

    def _check_explanations(self, count: int, attributes: Attributes) -> None:
        """Each explanation costs a pass with gradients (torch) and two PNGs: capped per request."""
        if attributes.explain and count > self.limits.max_explanations:
            raise RequestError(
                413,
                f"explain={explanations.METHOD} is limited to {self.limits.max_explanations} images "
                f"per request (SERVING_MAX_EXPLANATIONS); this one has {count}: send them in "
                "several requests",
            )

    def _too_many_images(self, count: int) -> RequestError:
        return RequestError(
            413,
            f"request has {count:,} images; the limit is {self.limits.max_images} per "
            "request (SERVING_MAX_IMAGES): send them in several requests",
        )

    def _instances(self, body: bytes) -> list[tuple[str, bytes]]:
        try:
            document = json.loads(body)
        except RecursionError:  # `[` x 100,000: json's C scanner recurses per level
            raise RequestError(
                400,
                "body is not valid JSON: it nests deeper than the parser allows; "
                'send {"instances": [{"b64": "<base64 image>"}, ...]}',
            ) from None
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, and integers of over 4,300 digits
            raise RequestError(400, f"body is not valid JSON ({err})") from None
        instances = document.get("instances") if isinstance(document, dict) else None
        if not isinstance(instances, list) or not instances:
            raise RequestError(
                400, 'JSON body must be {"instances": [{"b64": "<base64 image>"}, ...]} with at least one instance'
            )
        if len(instances) > self.limits.max_images:
            raise self._too_many_images(len(instances))
        sources = []
        for i, instance in enumerate(instances):
            encoded = instance.get("b64") if isinstance(instance, dict) else None
            if not isinstance(encoded, str):
                raise RequestError(400, f'instances[{i}] must be an object {{"b64": "<base64 image>"}}')
            try:
                sources.append((f"instances[{i}]", base64.b64decode(encoded, validate=True)))
            except (binascii.Error, ValueError) as err:
                raise RequestError(400, f"instances[{i}].b64 is not valid base64 ({err})") from None
        return sources

    def _decode(self, sources: list[tuple[str, bytes]], deadline: Deadline) -> np.ndarray:
        """uint8 (N, 3, crop, crop): headers checked for the whole request first, then decoded one by one."""
        limits = self.limits
        opened: list[tuple[str, Image.Image]] = []
        try:
            pixels = 0
            for what, data in sources:
                image = self._image_call(what, decoding.open_image, data, limits.max_image_pixels)
                opened.append((what, image))
                pixels += image.width * image.height
                if pixels > limits.max_request_pixels:
                    raise RequestError(
                        413,
                        f"the images of this request have more than {limits.max_request_pixels:,} "
                        f"pixels in all (SERVING_MAX_REQUEST_MEGAPIXELS; at {what}): send "
                        "fewer or smaller images per request",
                    )
            crops = []
            for what, image in opened:
                deadline.check("decoding the images")
                with self.budget.hold(image.width * image.height, min(limits.decode_wait_s, deadline.remaining())):
                    crops.append(self._image_call(what, decoding.eval_decode, image, self.preprocessing))
            return np.stack(crops)
        finally:
            for _, image in opened:
                image.close()

    @staticmethod
    def _image_call(what: str, function, *args):
        """presets' errors as HTTP answers: unknown format 415, too many pixels 413, unreadable 400."""
        try:
            return function(*args)
        except decoding.UnsupportedFormat as err:
            raise RequestError(415, f"{what}: {err}") from None
        except decoding.TooManyPixels as err:
            raise RequestError(413, f"{what}: {err}") from None
        except decoding.BadImage as err:
            raise RequestError(400, f"{what}: {err}") from None

    def _npy(self, body: bytes) -> tuple[np.ndarray, bool]:
        self._check_npy_header(body)
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
            raise RequestError(
                400,
                f"array dtype is {array.dtype}; send float32 {expected}, "
                "normalised as metadata.json's preprocessing says",
            )
        single = array.ndim == 3
        batch = array[None] if single else array
        if batch.ndim != 4 or batch.shape[1:] != (3, crop, crop) or batch.shape[0] == 0:
            raise RequestError(400, f"array shape is {array.shape}; this model takes {expected}")
        if len(batch) > self.limits.max_images:
            raise self._too_many_images(len(batch))
        if not np.isfinite(batch).all():
            raise RequestError(400, "array contains NaN or infinite values")
        # Normalised pixels lie within about +-3; values near float32's range overflow the forward pass
        # (inf logits, NaN probabilities, and JSON with NaN in it).
        if np.abs(batch).max() > MAX_NPY_VALUE:
            raise RequestError(
                400,
                f"array values reach {float(np.abs(batch).max()):.3g}; normalised pixels lie "
                f"within about +-3 (this server refuses beyond +-{MAX_NPY_VALUE:g})",
            )
        return np.ascontiguousarray(batch), single

    @staticmethod
    def _check_npy_header(body: bytes) -> None:
        """The shape an .npy header declares must be what the body holds, before numpy allocates it:
        a 100-byte header may declare terabytes. Other problems are np.load's to name."""
        stream = io.BytesIO(body)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        try:
            shape, _, dtype = readers[np.lib.format.read_magic(stream)](stream)
        except Exception:  # not a header these read (or version 3): np.load says what is wrong
            return
        declared = math.prod(shape) * dtype.itemsize
        if not dtype.hasobject and declared != len(body) - stream.tell():
            raise RequestError(
                400,
                f"the .npy header declares shape {shape} of {dtype} ({declared:,} bytes) but "
                f"the body holds {len(body) - stream.tell():,} bytes of data",
            )

    # ---- predict_fn
    def predict_fn(self, data: Inputs, model: Predictor, context=None) -> dict:
        if data.explain:
            return self._explained(data, model)
        probabilities = model.predict(data.batch, data.deadline)
        return self._ranked(probabilities, data, model)

    def _explained(self, data: Inputs, model: Predictor) -> dict:
        try:
            probabilities, maps = model.explain(data.batch, data.deadline)
        except explanations.ExplainUnavailable as err:  # found out only now (an artifact without a recorded layer)
            raise RequestError(400, str(err)) from None
        answer = self._ranked(probabilities, data, model)
        layer = model.runtime.explanation["layer"]
        top = probabilities.argmax(1)
        records = [
            explanations.record(raw, row, model.preprocessing, layer, model.classes[i], int(i))
            for raw, row, i in zip(maps, data.batch, top, strict=True)
        ]
        return {**answer, "explanations": records[0] if data.single else records}

    @staticmethod
    def _ranked(probabilities: np.ndarray, data: Inputs, model: Predictor) -> dict:
        # Stable sort: equal probabilities keep class order, the same answer on every runtime's run.
        indices = np.argsort(-probabilities, axis=1, kind="stable")[:, : data.top_k]
        ranked = [
            [{"label": model.classes[i], "index": i, "probability": float(row[i])} for i in top.tolist()]
            for row, top in zip(probabilities, indices, strict=True)
        ]
        return {"predictions": ranked[0] if data.single else ranked}

    # ---- output_fn
    def output_fn(self, prediction: dict, accept: str | None, context=None) -> tuple[bytes, str]:
        """JSON only; an Accept of */* or none means JSON."""
        for wanted in map(media_type, (accept or JSON).split(",")):
            if wanted in (JSON, "*/*", "application/*"):
                return json.dumps(prediction).encode(), JSON
        raise RequestError(406, f"Accept {accept!r} cannot be served: this endpoint answers application/json")
