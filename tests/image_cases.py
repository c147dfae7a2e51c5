"""Images the serving and training tests need: photos stored the way phones store them (pixels as
shot plus an EXIF Orientation tag, 1-8) and a decompression bomb."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112


def stored_as(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for an upright scene under each EXIF orientation (the spec's table,
    written with numpy so the tests do not borrow PIL's own mapping)."""
    return {
        1: upright,
        2: upright[:, ::-1],
        3: upright[::-1, ::-1],
        4: upright[::-1],
        5: upright.transpose(1, 0, 2),
        6: np.rot90(upright, 1),
        7: upright[::-1, ::-1].transpose(1, 0, 2),
        8: np.rot90(upright, -1),
    }[orientation]


def with_orientation(pixels: np.ndarray, orientation: int, fmt: str) -> bytes:
    """`pixels` saved as PNG (an eXIf chunk, lossless) or JPEG (quality 95), tagged `orientation`."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    options = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, fmt, exif=exif, **options)
    return buffer.getvalue()


def rotated(image: bytes, orientation: int, fmt: str) -> bytes:
    """An upright image re-saved as a phone would store it under `orientation`."""
    upright = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    return with_orientation(stored_as(upright, orientation), orientation, fmt)


def bomb_png(side: int = 20000) -> bytes:
    """A valid PNG header claiming side x side pixels (400 MP by default) over a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


def encode(color, fmt="JPEG", size=(120, 90), mode="RGB") -> bytes:
    """A plain image of one colour."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt)
    return buffer.getvalue()


def noise_image(seed: int, fmt="JPEG") -> bytes:
    """A 100x70 photo-like image of random pixels: each seed its own picture."""
    array = np.random.default_rng(seed).integers(0, 256, (70, 100, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    """The first half of a JPEG: what an interrupted upload sends."""
    data = noise_image(7)
    return data[: len(data) // 2]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def b64_instances(*images: bytes) -> bytes:
    return json.dumps({"instances": [{"b64": base64.b64encode(i).decode()} for i in images]}).encode()


def tiny_pngs_body(count: int) -> bytes:
    """A JSON body of `count` 1x1 PNGs: 50,000 fit under 6 MB."""
    item = json.dumps({"b64": base64.b64encode(png(Image.new("RGB", (1, 1)))).decode()})
    return ('{"instances": [' + ", ".join([item] * count) + "]}").encode()


def attack() -> list[tuple[str, bytes, str, set[int]]]:
    """Requests no server may fall to, under the default limits: (name, body, content type, the
    statuses a hardened server may answer). The 56 MP images decode for real (7 bytes a pixel as
    RGBA), so several at once test the decode budget: each is served (200) or told the budget is
    busy (503)."""
    big_rgba = png(Image.new("RGBA", (7500, 7500), (10, 200, 30, 128)))
    ppm = io.BytesIO()
    Image.new("RGB", (32, 32)).save(ppm, "PPM")
    return (
        [("7 MB body", b"\xff" * (7 * 1024 * 1024), "image/jpeg", {413})] * 3
        + [("50,000 tiny PNGs", tiny_pngs_body(50_000), "application/json", {413})] * 3
        + [("400 MP header", bomb_png(), "image/png", {413})] * 3
        + [("56 MP RGBA", big_rgba, "image/png", {200, 503})] * 4
        + [("2 x 56 MP RGBA", b64_instances(big_rgba, big_rgba), "application/json", {200, 503})] * 2
        + [("PPM", ppm.getvalue(), "application/octet-stream", {415})] * 2
    )


@dataclass(frozen=True)
class Cheap:
    """A request that costs a client almost nothing to send: what the server must answer and what its
    decoding may cost (`pixels`: the source pixels it decodes, all its images together)."""

    name: str
    body: bytes
    content_type: str
    status: int
    attributes: str = ""
    pixels: int = 0


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def npy_header(shape: tuple, data: bytes = b"") -> bytes:
    """An .npy file whose header declares `shape` (float32) over `data`."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def flat(size: tuple[int, int], mode: str = "RGB", colour=(40, 120, 200)) -> Image.Image:
    return Image.new(mode, size, colour)


def cheap_requests() -> list[Cheap]:
    """Issue 21's matrix: shapes, formats, frames, modes, metadata chunks and parser inputs, each a few
    bytes to a few MB. Under a ResNet50's preprocessing (resize 256, crop 224) every one must be answered
    with `status` at a cost bounded by its source pixels (tests/unit/classifier/serving/test_cheap_requests.py, the
    integration suite's test_cheap_requests.py and benchmarks/preprocessing.py)."""
    from PIL import PngImagePlugin

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    gif_frames = [flat((64, 64), "P", i % 256) for i in range(2000)]
    tiff_pages = [flat((64, 64), "RGB", (i % 256, 0, 0)) for i in range(200)]
    text = PngImagePlugin.PngInfo()
    for i in range(60):  # 60 MB of text once inflated: under PIL's 64 MB MAX_TEXT_MEMORY
        text.add_text(f"comment{i}", "x" * 1_000_000, zip=True)
    one_big_text = PngImagePlugin.PngInfo()
    one_big_text.add_text("comment", "x" * 5_000_000, zip=True)  # over PIL's 1 MB MAX_TEXT_CHUNK
    exif = Image.Exif()
    exif[0x010E] = "x" * 4_000_000  # ImageDescription: a 4 MB eXIf chunk
    exif[ORIENTATION_TAG] = 6
    thin = png(flat((1, 20000)))
    return [
        Cheap("1x20000 PNG", thin, "image/png", 400),
        Cheap("20000x1 PNG", png(flat((20000, 1))), "image/png", 400),
        Cheap("2x60000 PNG", png(flat((2, 60000))), "image/png", 400),
        Cheap("64 x 1x20000 PNG in JSON", b64_instances(*[thin] * 64), "application/json", 400),
        Cheap("20x400 PNG (20:1, the limit)", png(flat((20, 400))), "image/png", 200, pixels=8_000),
        Cheap("8000x400 PNG (20:1)", png(flat((8000, 400))), "image/png", 200, pixels=3_200_000),
        Cheap(
            "64 x 2000x100 PNG in JSON",
            b64_instances(*[png(flat((2000, 100)))] * 64),
            "application/json",
            200,
            pixels=64 * 200_000,
        ),
        Cheap("1x1 PNG", png(flat((1, 1))), "image/png", 200, pixels=1),
        Cheap("7000x7000 palette PNG", png(flat((7000, 7000), "P", 3)), "image/png", 200, pixels=49_000_000),
        Cheap("7000x7000 1-bit PNG", png(flat((7000, 7000), "1", 1)), "image/png", 200, pixels=49_000_000),
        Cheap(
            "16-bit grey PNG",
            png(Image.fromarray(np.full((300, 400), 40000, np.uint16))),
            "image/png",
            200,
            pixels=120_000,
        ),
        Cheap(
            "2000-frame GIF",
            encoded(gif_frames[0], "GIF", save_all=True, append_images=gif_frames[1:]),
            "image/gif",
            200,
            pixels=4096,
        ),
        Cheap(
            "200-page TIFF",
            encoded(tiff_pages[0], "TIFF", save_all=True, append_images=tiff_pages[1:]),
            "image/tiff",
            200,
            pixels=4096,
        ),
        Cheap("PNG with 60 x 1 MB zTXt", encoded(photo, "PNG", pnginfo=text), "image/png", 200, pixels=120_000),
        Cheap("PNG with one 5 MB zTXt", encoded(photo, "PNG", pnginfo=one_big_text), "image/png", 400),
        Cheap("PNG with a 5 MB ICC profile", encoded(photo, "PNG", icc_profile=b"\0" * 5_000_000), "image/png", 400),
        Cheap("PNG with a 4 MB eXIf", encoded(photo, "PNG", exif=exif), "image/png", 200, pixels=120_000),
        Cheap("CMYK JPEG", encoded(photo.convert("CMYK"), "JPEG"), "image/jpeg", 200, pixels=120_000),
        Cheap("WebP as image/webp", encoded(photo, "WEBP"), "image/webp", 200, pixels=120_000),
        Cheap("BMP as image/bmp", encoded(photo, "BMP"), "image/bmp", 200, pixels=120_000),
        Cheap("PNG as image/jpeg", png(photo), "image/jpeg", 200, pixels=120_000),
        Cheap("deep JSON: [ x 100,000", b"[" * 100_000, "application/json", 400),
        Cheap('deep JSON: {"instances": [[[[...', b'{"instances": ' + b"[" * 100_000, "application/json", 400),
        Cheap("JSON integer of 5,000 digits", b'{"instances": ' + b"1" * 5000 + b"}", "application/json", 400),
        Cheap(".npy header declaring 12 GB", npy_header((20000, 3, 224, 224), b"\0" * 1000), "application/x-npy", 400),
        # "²" is a digit to str.isdigit() but not to int(), and latin-1 (what HTTP headers carry).
        Cheap("top_k of a superscript digit", png(photo), "image/png", 400, attributes="top_k=\u00b2"),
        Cheap("top_k of 5,000 digits", png(photo), "image/png", 400, attributes="top_k=" + "9" * 5000),
    ]
