"""Images the serving and training tests need: photos stored the way phones store them (pixels as
shot plus an EXIF Orientation tag, 1-8) and a decompression bomb."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

ORIENTATION_TAG = 0x0112


def stored_as(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for an upright scene under each EXIF orientation (the spec's table,
    written with numpy so the tests do not borrow PIL's own mapping)."""
    return {1: upright, 2: upright[:, ::-1], 3: upright[::-1, ::-1], 4: upright[::-1],
            5: upright.transpose(1, 0, 2), 6: np.rot90(upright, 1), 7: upright[::-1, ::-1].transpose(1, 0, 2),
            8: np.rot90(upright, -1)}[orientation]


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
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


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
    return ([("7 MB body", b"\xff" * (7 * 1024 * 1024), "image/jpeg", {413})] * 3
            + [("50,000 tiny PNGs", tiny_pngs_body(50_000), "application/json", {413})] * 3
            + [("400 MP header", bomb_png(), "image/png", {413})] * 3
            + [("56 MP RGBA", big_rgba, "image/png", {200, 503})] * 4
            + [("2 x 56 MP RGBA", b64_instances(big_rgba, big_rgba), "application/json", {200, 503})] * 2
            + [("PPM", ppm.getvalue(), "application/octet-stream", {415})] * 2)
