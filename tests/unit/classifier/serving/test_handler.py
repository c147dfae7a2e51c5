"""The serving handler (model_fn/input_fn/predict_fn/output_fn) on a real small artifact."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch

from classifier.model import artifact, decoding, forward, runtimes
from classifier.serving.handler import ImageClassifierHandler, RequestContext, RequestError, parse_attributes
from classifier.serving.limits import Limits
from classifier.training import augmentation
from tests.image_cases import bomb_png, encode, noise_image, stored_as, truncated_jpeg, with_orientation
from tests.unit.small_model import CLASSES, IMAGE_SIZE


@pytest.fixture(scope="module")
def loaded(model_dir):
    handler = ImageClassifierHandler()
    return handler, handler.model_fn(str(model_dir))


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def answer(loaded, body, content_type, attributes=None, accept=None):
    handler, served = loaded
    inputs = handler.input_fn(body, content_type, RequestContext(attributes))
    payload, payload_type = handler.output_fn(handler.predict_fn(inputs, served), accept)
    assert payload_type == "application/json"
    return json.loads(payload)["predictions"]


def reference(model_dir, image: bytes) -> torch.Tensor:
    """The trainer's own evaluation path: eval_image + inference.probabilities."""
    network, metadata = artifact.load(model_dir)
    batch = torch.from_numpy(decoding.eval_image(image, metadata["preprocessing"]))[None]
    return forward.probabilities(network, batch, metadata["preprocessing"])[0]


# ---- every accepted content type
@pytest.mark.parametrize(
    "content_type,fmt",
    [
        ("image/jpeg", "JPEG"),
        ("image/png", "PNG"),
        ("application/x-image", "JPEG"),
        ("application/octet-stream", "PNG"),
        ("Image/JPEG; charset=binary", "JPEG"),
    ],
)
def test_one_image_gives_the_trainers_probabilities(loaded, model_dir, content_type, fmt):
    image = noise_image(1, fmt)
    assert_is_reference(answer(loaded, image, content_type), model_dir, image)


def assert_is_reference(ranked: list[dict], model_dir, image: bytes) -> None:
    """The answer is the top 5 of the trainer's own probabilities for `image`, ranked."""
    expected = reference(model_dir, image)
    assert len(ranked) == 5
    assert [r["probability"] for r in ranked] == sorted((r["probability"] for r in ranked), reverse=True)
    assert ranked[0]["index"] == int(expected.argmax())
    for row in ranked:
        assert row["label"] == CLASSES[row["index"]]
        assert row["probability"] == pytest.approx(float(expected[row["index"]]), abs=1e-6)


def test_grayscale_and_transparent_images_are_accepted(loaded, model_dir):
    for image in (encode(128, "PNG", mode="L"), encode((0, 0, 0, 0), "PNG", mode="RGBA")):
        assert_is_reference(answer(loaded, image, "image/png"), model_dir, image)


def test_json_instances_give_one_list_per_image(loaded, model_dir):
    images = [noise_image(2), noise_image(3, "PNG")]
    body = json.dumps({"instances": [{"b64": base64.b64encode(i).decode()} for i in images]}).encode()
    ranked = answer(loaded, body, "application/json", "top_k=2")
    assert len(ranked) == 2 and all(len(r) == 2 for r in ranked)
    for image, rows in zip(images, ranked, strict=True):
        assert rows[0]["index"] == int(reference(model_dir, image).argmax())


def test_npy_preprocessed_tensor_matches_the_image_path(loaded):
    handler, _ = loaded
    image = noise_image(4)
    normalised = runtimes.normalize(decoding.eval_image(image, handler.preprocessing)[None], handler.preprocessing)
    single = answer(loaded, npy(normalised[0]), "application/x-npy")
    batch = answer(loaded, npy(np.concatenate([normalised, normalised])), "application/x-npy")
    from_jpeg = answer(loaded, image, "image/jpeg")
    assert [r["index"] for r in single] == [r["index"] for r in from_jpeg]
    assert single[0]["probability"] == pytest.approx(from_jpeg[0]["probability"], abs=1e-5)
    assert len(batch) == 2 and batch[0] == batch[1]


# ---- top_k
@pytest.mark.parametrize(
    "attributes,k", [(None, 5), ("top_k=3", 3), ("trace=abc, top_k=1", 1), ("top_k=100", len(CLASSES)), ("other=1", 5)]
)
def test_top_k_from_custom_attributes(loaded, attributes, k):
    assert len(answer(loaded, noise_image(5), "image/jpeg", attributes)) == k


@pytest.mark.parametrize("attributes", ["top_k=0", "top_k=abc", "top_k=", "top_k", "top_k=-2", "top_k=2.5"])
def test_bad_top_k_is_400(attributes):
    with pytest.raises(RequestError) as err:
        parse_attributes(attributes, 10)
    assert err.value.status_code == 400 and "top_k" in err.value.message


def test_accept_header(loaded):
    handler, served = loaded
    prediction = handler.predict_fn(handler.input_fn(noise_image(6), "image/jpeg"), served)
    for accept in (None, "*/*", "application/json", "text/html, application/json;q=0.9"):
        assert handler.output_fn(prediction, accept)[1] == "application/json"
    with pytest.raises(RequestError) as err:
        handler.output_fn(prediction, "text/csv")
    assert err.value.status_code == 406


# ---- bad input: each one a clear 4xx
def b64_body(*items) -> bytes:
    return json.dumps({"instances": list(items)}).encode()


BAD_REQUESTS = {
    "empty body": (b"", "image/jpeg", 400, "empty"),
    "not an image": (b"hello, this is text", "image/jpeg", 400, "not a readable image"),
    "truncated jpeg": (truncated_jpeg(), "image/jpeg", 400, "image"),
    "decompression bomb": (bomb_png(), "image/png", 413, "larger than"),
    "malformed json": (b'{"instances": [', "application/json", 400, "not valid JSON"),
    "json not utf-8": (b"\xff\xfe\x00", "application/json", 400, "not valid JSON"),
    "json without instances": (b'{"images": []}', "application/json", 400, "instances"),
    "json empty instances": (b64_body(), "application/json", 400, "at least one"),
    "json instance not an object": (b64_body("abc"), "application/json", 400, "instances[0]"),
    "bad base64": (b64_body({"b64": "!!!not base64!!!"}), "application/json", 400, "instances[0].b64"),
    "base64 of text": (
        b64_body({"b64": base64.b64encode(b"plain text").decode()}),
        "application/json",
        400,
        "instances[0]: not a readable image",
    ),
    "npy garbage": (b"\x93NUMPY garbage", "application/x-npy", 400, ".npy"),
    "npy pickled objects": (npy(np.array([{"a": 1}], dtype=object)), "application/x-npy", 400, ".npy"),
    "npy float64": (npy(np.zeros((3, IMAGE_SIZE, IMAGE_SIZE))), "application/x-npy", 400, "float32"),
    "npy wrong shape": (npy(np.zeros((3, 8, 8), np.float32)), "application/x-npy", 400, "shape"),
    "npy empty batch": (npy(np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32)), "application/x-npy", 400, "shape"),
    "npy nan": (npy(np.full((3, IMAGE_SIZE, IMAGE_SIZE), np.nan, np.float32)), "application/x-npy", 400, "NaN"),
    "oversized body": (b"\xff" * (Limits().max_payload_bytes + 1), "image/jpeg", 413, "SERVING_MAX_PAYLOAD_MB"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_naming_the_problem(loaded, name):
    handler, _ = loaded
    body, content_type, status, words = BAD_REQUESTS[name]
    with pytest.raises(RequestError) as err:
        handler.input_fn(body, content_type, RequestContext())
    assert err.value.status_code == status
    assert words in err.value.message


@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", None, "application/x-npz"])
def test_unsupported_content_type(loaded, content_type):
    handler, _ = loaded
    with pytest.raises(RequestError) as err:
        handler.input_fn(noise_image(8), content_type)
    assert err.value.status_code == 415 and "is not supported; send one of image/jpeg" in err.value.message


def test_model_fn_names_a_missing_artifact(tmp_path):
    with pytest.raises(artifact.ArtifactError, match="metadata.json is missing"):
        ImageClassifierHandler().model_fn(str(tmp_path))


# ---- limits: refused by the headers, before any pixel is decoded
def limited(model_dir, **limits):
    handler = ImageClassifierHandler(Limits(**limits))
    handler.model_fn(str(model_dir))
    return handler


def test_too_many_instances_is_413_before_any_is_decoded(model_dir):
    handler = limited(model_dir, max_images=3)
    body = b64_body(*[{"b64": "!!! not even base64 !!!"}] * 4)  # would be a 400 if anything were decoded
    with pytest.raises(RequestError) as err:
        handler.input_fn(body, "application/json")
    assert (
        err.value.status_code == 413 and "SERVING_MAX_IMAGES" in err.value.message and "4 images" in err.value.message
    )
    npy_batch = npy(np.zeros((4, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32))
    with pytest.raises(RequestError, match="SERVING_MAX_IMAGES"):
        handler.input_fn(npy_batch, "application/x-npy")


def test_too_many_pixels_per_request_is_413_before_decoding(model_dir):
    handler = limited(model_dir, max_request_pixels=15_000)
    # The first image's data is cut short (decoding it would be a 400); its header says 100x70.
    instances = [
        {"b64": base64.b64encode(truncated_jpeg()).decode()},
        {"b64": base64.b64encode(encode((1, 2, 3), "PNG", size=(120, 90))).decode()},
    ]
    with pytest.raises(RequestError) as err:
        handler.input_fn(b64_body(*instances), "application/json")
    assert err.value.status_code == 413 and "SERVING_MAX_REQUEST_MEGAPIXELS" in err.value.message
    assert "instances[1]" in err.value.message
    assert handler.budget.free == handler.budget.capacity  # nothing was held for decoding


def test_one_image_over_the_limit_is_413_naming_its_size(model_dir):
    handler = limited(model_dir, max_request_pixels=5_000, decode_budget_pixels=5_000)
    with pytest.raises(RequestError) as err:
        handler.input_fn(encode((1, 2, 3), "PNG", size=(100, 60)), "image/png")
    assert err.value.status_code == 413 and "100x60 = 6,000 pixels; the limit is 5,000" in err.value.message


def test_a_busy_decode_budget_is_a_503_that_says_so(model_dir):
    from classifier.serving.limits import BudgetExhausted

    handler = limited(model_dir, decode_wait_s=0.05)
    with handler.budget.hold(handler.budget.capacity, 1):  # other requests hold the whole budget
        with pytest.raises(BudgetExhausted, match="SERVING_DECODE_BUDGET_MEGAPIXELS"):
            handler.input_fn(noise_image(1), "image/jpeg")
    # Once they let go, the same request is answered.
    image = noise_image(1)
    answered = handler.predict_fn(handler.input_fn(image, "image/jpeg"), handler.model_fn(str(model_dir)))
    assert_is_reference(answered["predictions"], model_dir, image)


# ---- formats: an allow-list; others are refused by name
def heif(color) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(color, "HEIF")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"])
def test_every_accepted_format_decodes(loaded, model_dir, fmt):
    image = heif((200, 30, 30)) if fmt == "HEIF" else encode((200, 30, 30), fmt)
    assert_is_reference(answer(loaded, image, "application/octet-stream"), model_dir, image)


@pytest.mark.parametrize("fmt", ["PPM", "TGA", "PCX", "ICO"])
def test_other_formats_pil_knows_are_415_naming_the_format(loaded, fmt):
    handler, _ = loaded
    with pytest.raises(RequestError) as err:
        handler.input_fn(encode((1, 2, 3), fmt, size=(32, 32)), "application/octet-stream")
    assert err.value.status_code == 415 and f"image format {fmt} is not accepted" in err.value.message


# ---- EXIF orientation: what phones write
UPRIGHT = np.random.default_rng(3).integers(0, 256, (60, 90, 3), dtype=np.uint8)  # not square: rotation shows


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_upright_prediction(loaded, model_dir, orientation):
    """A lossless PNG (eXIf chunk) stored rotated: the server and the trainer's evaluation both see the
    upright image, so the probabilities equal the upright image's."""
    rotated = with_orientation(stored_as(UPRIGHT, orientation), orientation, "PNG")
    upright = with_orientation(UPRIGHT, 1, "PNG")
    prep = decoding.eval_preprocessing(IMAGE_SIZE)
    assert np.array_equal(decoding.eval_image(rotated, prep), decoding.eval_image(upright, prep))
    side = augmentation.cache_side(IMAGE_SIZE)
    assert augmentation.decode_for_cache(io.BytesIO(rotated), IMAGE_SIZE).shape == (3, side, side)
    served = {r["index"]: r["probability"] for r in answer(loaded, rotated, "image/png", f"top_k={len(CLASSES)}")}
    expected = reference(model_dir, upright)
    assert max(abs(served[i] - float(expected[i])) for i in range(len(CLASSES))) < 1e-4
