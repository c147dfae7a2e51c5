"""Issue 21: requests that cost nothing to send cost little to serve, under a ResNet50's preprocessing
(resize 256, crop 224). The handler answers each crafted request with its status (tests/image_cases.py's
matrix), decoding never grows memory beyond what the source pixels need, and no parser on the request
path lets an exception through as a 500. Time per case is benchmarks/preprocessing.py's."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.model import artifact, decoding
from classifier.model import network as model_lib
from classifier.serving.handler import IMAGE_TYPES, ImageClassifierHandler, RequestContext, RequestError
from classifier.training import augmentation
from tests import image_cases

ROOT = Path(__file__).resolve().parents[4]
IMAGE_SIZE = 224  # the dog-breed recipe's: what crafted shapes cost depends on the resize, 256
CASES = image_cases.cheap_requests()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model-224")
    classes = [f"{i:03d}.class_{i}" for i in range(1, 6)]
    artifact.save(
        path,
        model_lib.build("resnet18", len(classes)).state_dict(),
        classes=classes,
        model_name="resnet18",
        image_size=IMAGE_SIZE,
        preprocessing=decoding.eval_preprocessing(IMAGE_SIZE),
        hyperparameters={},
        metrics={},
    )
    return path


@pytest.fixture(scope="module")
def loaded(model_dir):
    handler = ImageClassifierHandler()
    return handler, handler.model_fn(str(model_dir))


def status_of(loaded, body: bytes, content_type: str, attributes: str = "") -> tuple[int, object]:
    """(status, answer or message) of one request through input_fn -> predict_fn -> output_fn."""
    handler, served = loaded
    try:
        inputs = handler.input_fn(body, content_type, RequestContext(attributes or None))
        payload, _ = handler.output_fn(handler.predict_fn(inputs, served), None)
    except RequestError as err:
        return err.status_code, err.message
    return 200, json.loads(payload)["predictions"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_cheap_request_gets_its_status(loaded, case):
    status, answer = status_of(loaded, case.body, case.content_type, case.attributes)
    assert status == case.status, (case.name, answer)


def test_the_refusals_name_the_problem(loaded):
    """One wording check per kind of refusal: the shape and its limit, the nesting, the header's size."""
    by_name = {c.name: c for c in CASES}
    _, thin = status_of(loaded, by_name["1x20000 PNG"].body, "image/png")
    assert "1x20000" in thin and f"limit is {decoding.MAX_ASPECT_RATIO}:1" in thin
    _, deep = status_of(loaded, by_name["deep JSON: [ x 100,000"].body, "application/json")
    assert "nests deeper" in deep
    _, npy = status_of(loaded, by_name[".npy header declaring 12 GB"].body, "application/x-npy")
    assert "(20000, 3, 224, 224)" in npy and "1,000 bytes" in npy


DECODE_IN_A_FRESH_PROCESS = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from classifier.serving.handler import ImageClassifierHandler, RequestContext, RequestError
from tests import image_cases
cases = {c.name: c for c in image_cases.cheap_requests()}
handler = ImageClassifierHandler()
handler.model_fn(sys.argv[2])
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(["baseline", peak()]), flush=True)
for name in json.loads(sys.argv[3]):
    case = cases[name]
    try:
        handler.input_fn(case.body, case.content_type, RequestContext(case.attributes or None))
    except RequestError:
        pass
    print(json.dumps([name, peak()]), flush=True)
"""


def test_decoding_memory_is_bounded_by_source_pixels(model_dir):
    """In a fresh process, the cases in order of their bound (slack + 10 bytes per source pixel: PIL's
    decoded image, its RGB conversion and the crop): the process's peak memory after each case stays
    under the baseline plus that case's bound. A peak only grows, so a case over its bound shows."""
    slack = 64 * 2**20
    bound = {c.name: slack + 10 * c.pixels for c in CASES}
    order = sorted(bound, key=bound.get)
    done = subprocess.run(
        [sys.executable, "-c", DECODE_IN_A_FRESH_PROCESS, str(ROOT), str(model_dir), json.dumps(order)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    baseline = rows[0][1]
    for name, peak in rows[1:]:
        assert peak - baseline <= bound[name], (
            f"{name}: grew {(peak - baseline) / 2**20:.0f} MiB, bound {bound[name] / 2**20:.0f} MiB"
        )
    assert [name for name, _ in rows[1:]] == order


# ---- every accepted format has its content type; the body's real format decides
FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heic",
}


def test_every_image_type_the_issue_names_is_accepted():
    assert set(IMAGE_TYPES) == {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "image/bmp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "application/x-image",
        "application/octet-stream",
    }


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_by_its_own_type_or_another_gives_the_same_answer(loaded, fmt):
    decoding.register_heif()
    body = image_cases.encoded(Image.new("RGB", (120, 90), (200, 30, 30)), fmt)
    answers = [status_of(loaded, body, kind) for kind in (FORMATS[fmt], "application/octet-stream", "image/png")]
    assert all(status == 200 for status, _ in answers), answers
    assert answers[0][1] == answers[1][1] == answers[2][1]  # a mislabelled body is read by its real format


# ---- the decoder never lets a parser's exception through: mutated files of every accepted format
def seeds() -> list[bytes]:
    decoding.register_heif()
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[image_cases.ORIENTATION_TAG] = 6
    return [
        image_cases.encoded(photo, "JPEG", exif=exif),
        image_cases.encoded(photo, "PNG", exif=exif),
        image_cases.encoded(photo, "WEBP"),
        image_cases.encoded(photo.convert("P"), "GIF"),
        image_cases.encoded(photo, "BMP"),
        image_cases.encoded(photo, "TIFF", exif=exif),
        image_cases.encoded(photo, "HEIF"),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Bytes flipped, overwritten with extreme values, cut or repeated, mostly in the header (where
    parsers read sizes, offsets and counts)."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(min(len(data), 200 if rng.random() < 0.7 else len(data)))
        action = rng.random()
        if action < 0.4:
            data[where] = rng.randrange(256)
        elif action < 0.7:
            data[where : where + 4] = rng.choice([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\xff\xff\xff"])
        elif action < 0.85:
            del data[where:]
            data += b"\0"
        else:
            data[where:where] = data[where : where + rng.randint(1, 64)]
    return bytes(data)


def test_mutated_images_decode_or_raise_bad_image():
    """3,500 mutations: each either decodes to a crop or raises presets.BadImage; any other exception
    (struct.error, IndexError, ... from PIL's plugins) would have been a 500."""
    rng = random.Random(21)
    prep = decoding.eval_preprocessing(32)
    outcomes = {"decoded": 0, "bad image": 0}
    for seed in seeds():
        for _ in range(500):
            try:
                crop = decoding.eval_image(mutate(seed, rng), prep)
            except decoding.BadImage:
                outcomes["bad image"] += 1
            else:
                assert crop.shape == (3, 32, 32) and crop.dtype == np.uint8
                outcomes["decoded"] += 1
    assert outcomes["decoded"] > 100 and outcomes["bad image"] > 100, outcomes


def test_a_parser_error_of_another_type_is_a_bad_image_naming_it(monkeypatch):
    """What the fuzzing found: PIL's plugins raise more than OSError/ValueError on malformed files."""
    import struct

    def broken(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    monkeypatch.setattr(decoding.ImageOps, "exif_transpose", broken)
    with pytest.raises(decoding.BadImage, match="error: unpack requires"):
        decoding.eval_image(image_cases.png(Image.new("RGB", (8, 8))), decoding.eval_preprocessing(32))


# ---- the crop in source coordinates gives today's arrays


def test_the_box_crop_equals_resizing_the_whole_image_then_cropping():
    """The reference is what presets did before (resize everything, crop), written out here with PIL:
    at most one grey level apart (float rounding), on average under 0.1, for ordinary shapes."""

    def resize_then_crop(image, resize, crop):
        width, height = image.size
        scale = resize / min(width, height)
        size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
        left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
        whole = image.resize(size, Image.BILINEAR).crop((left, top, left + crop, top + crop))
        return np.asarray(whole, dtype=np.uint8).transpose(2, 0, 1)

    rng = np.random.default_rng(0)
    for width, height in [(500, 400), (400, 500), (333, 201), (640, 480), (300, 300), (1000, 60), (30, 20), (1, 1)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for size in (224, 64, 32):
            prep = decoding.eval_preprocessing(size)
            old = resize_then_crop(image, prep["resize"], prep["crop"]).astype(int)
            new = decoding.resize_center_crop(image, prep["resize"], prep["crop"]).astype(int)
            difference = np.abs(old - new)
            assert difference.max() <= 1 and difference.mean() < 0.3, (width, height, size)


def test_training_cache_and_eval_refuse_extreme_shapes_alike(tmp_path):
    Image.new("RGB", (1, 20000)).save(tmp_path / "thin.png")
    for decode in (
        lambda p: decoding.eval_image(p, decoding.eval_preprocessing(224)),
        lambda p: augmentation.decode_for_cache(p, 224),
    ):
        with pytest.raises(decoding.BadShape):
            decode(tmp_path / "thin.png")
    assert decoding.BadShape.kind == "aspect ratio over the limit"
    buffer = io.BytesIO()
    Image.new("RGB", (400, 20)).save(buffer, "PNG")  # exactly 20:1 is served
    assert augmentation.decode_for_cache(io.BytesIO(buffer.getvalue()), 224).shape == (3, 256, 256)
