"""Image decoding and transforms, named like torchvision's classification presets.

`eval_image` is THE evaluation preprocessing: the trainer's validation/test sets and the server
both call it, so the same image gives the same prediction in both. Training may use reduced-size
decoding and a decoded cache (`decode_for_cache`) because augmentation follows; evaluation never does.
Decoding gives numpy uint8 arrays, not tensors: the slim serving image (serve-cpu) has no torch.

What an image costs is bounded by its source pixels plus the output crop, never by its shape: the
centre crop is taken in source coordinates and only that region is resized (`resize_center_crop`),
and a shape more elongated than MAX_ASPECT_RATIO is refused at the header (`BadShape`), by the
server (400), the trainer (skipped and counted), the evaluation and batch transform alike.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Photos above this are refused as decompression bombs, checked on the header before any decoding
# (PIL's own check only warns from 89 MP and its warning filter is process-wide, not thread-safe).
MAX_PIXELS = 60_000_000
# What cameras, phones (HEIC is the iPhone's default) and the web produce. Anything else PIL can
# parse (PSD, ICO, EPS, FITS, ...) is refused by name: every extra parser is attack surface.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF")
# The media types that name them (a server accepts each; HEIC is HEIF's name for HEVC-coded images).
MEDIA_TYPES = {
    "JPEG": ("image/jpeg",),
    "PNG": ("image/png",),
    "WEBP": ("image/webp",),
    "GIF": ("image/gif",),
    "BMP": ("image/bmp",),
    "TIFF": ("image/tiff",),
    "HEIF": ("image/heif", "image/heic"),
}
# Longer side / shorter side. The eval crop is the centre square: at 20:1 it still holds 5% of the
# picture (a panorama's middle, a banner's); beyond, what the model would see says little of the
# image, and such shapes are what crafted requests use (a 1x20000 PNG weighs 166 bytes).
MAX_ASPECT_RATIO = 20
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image


class BadImage(ValueError):
    """Bytes or a file that do not decode to a whole image; the message says why, `kind` in a few
    words (what the trainer counts skipped files by)."""

    kind = "unreadable"

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        if kind:
            self.kind = kind


class UnsupportedFormat(BadImage):
    """An image in a format outside FORMATS (a server answers 415)."""

    kind = "unsupported format"


class TooManyPixels(BadImage):
    """An image whose header declares more pixels than allowed (a server answers 413)."""

    kind = "too many pixels"


class BadShape(BadImage):
    """An image more elongated than MAX_ASPECT_RATIO (a server answers 400)."""

    kind = "aspect ratio over the limit"


def eval_preprocessing(image_size: int) -> dict:
    """What metadata.json records: resize the shorter side, centre-crop, normalise."""
    return {
        "resize": int(round(image_size * 256 / 224)),
        "crop": image_size,
        "interpolation": "bilinear",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
    }


@functools.cache
def register_heif() -> None:
    """HEIC/HEIF through pillow-heif, registered on first use (no import-time side effects)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def _format_name(data) -> str | None:
    """The format PIL would read these bytes as, from the header only; None if none."""
    try:
        with Image.open(data) as image:
            return image.format
    except Exception:  # any parser's failure means "not an image we can name"
        return None


def open_image(source: str | Path | bytes | BinaryIO, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read only the header: the format must be in FORMATS and width x height <= `max_pixels`.

    Nothing is decoded yet, so a server can refuse a request by its images' sizes before it
    spends any memory on pixels; `decode_rgb` does the rest.
    """
    register_heif()
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if _size(source) == 0:
            raise BadImage("empty file (0 bytes)", "empty file")
        image = Image.open(data, formats=FORMATS)
    except UnidentifiedImageError:
        if isinstance(data, io.BytesIO):
            data.seek(0)
        name = _format_name(data)
        if name:
            raise UnsupportedFormat(f"image format {name} is not accepted; send one of {', '.join(FORMATS)}") from None
        raise BadImage("not a readable image (no known image format)") from None
    except Image.DecompressionBombError:
        raise TooManyPixels(f"image is larger than {max_pixels:,} pixels") from None
    except (MemoryError, BadImage):
        raise
    except Exception as err:  # see _unreadable
        raise _unreadable(err) from None
    try:
        check_size(image.width, image.height, max_pixels)
    except BadImage:
        image.close()
        raise
    return image


def _size(source) -> int | None:
    """Bytes in `source` (bytes or a path; None for an open file object)."""
    if isinstance(source, bytes):
        return len(source)
    return Path(source).stat().st_size if isinstance(source, (str, Path)) else None


def check_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    """TooManyPixels or BadShape for a header's size: what any decode of it would cost is known here."""
    pixels = width * height
    if pixels > max_pixels:
        raise TooManyPixels(f"image is {width}x{height} = {pixels:,} pixels; the limit is {max_pixels:,}")
    if width < 1 or height < 1:
        raise BadImage(f"image is {width}x{height}: it has no pixels")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise BadShape(
            f"image is {width}x{height}, an aspect ratio of {ratio:,.1f}:1; the limit is "
            f"{MAX_ASPECT_RATIO}:1 (the centre crop would hold under "
            f"{100 / MAX_ASPECT_RATIO:.0f}% of it)"
        )


def _unreadable(err: Exception) -> BadImage:
    """BadImage for a parser's failure on these bytes. PIL's plugins say "not an image" with OSError,
    SyntaxError and ValueError, but malformed headers, EXIF and chunks also raise struct.error,
    IndexError, KeyError, TypeError, ZeroDivisionError... (tests/unit/classifier/serving/test_cheap_requests.py
    fuzzes them): whatever a parser raises on input bytes is the input's problem, never the server's 500."""
    if isinstance(err, FileNotFoundError):  # listed, then gone: a dangling symbolic link, a file deleted
        return BadImage(f"no such file ({err.strerror}; a dangling symbolic link?)", "missing file")
    if isinstance(err, IsADirectoryError):
        return BadImage("a folder, not an image file", "not a file")
    plain = isinstance(err, (OSError, SyntaxError, ValueError, EOFError))
    return BadImage(f"not a readable image ({err if plain else f'{type(err).__name__}: {err}'})")


def decode_rgb(image: Image.Image, draft_size: int | None = None) -> Image.Image:
    """Decode an opened image as RGB, upright: the EXIF orientation (phones write it) is applied.

    `draft_size` lets JPEG decode at 1/2, 1/4 or 1/8 scale while staying >= that size
    (training cache only); draft() must come before load(), exif_transpose after it.
    """
    try:
        if draft_size is not None:
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb(image)
    except MemoryError:
        raise
    except Exception as err:  # truncated or corrupt data, malformed EXIF: see _unreadable
        raise _unreadable(err) from None


def open_rgb(source: str | Path | bytes, draft_size: int | None = None) -> Image.Image:
    """Decode a whole image as RGB, upright; grayscale, CMYK, palette and alpha images are converted."""
    return decode_rgb(open_image(source), draft_size)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Transparent areas become white, not whatever colour the hidden pixels had.
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def crop_box(width: int, height: int, resize: int, crop: int) -> tuple[float, float, float, float]:
    """Where "shorter side to `resize`, then the centre `crop` x `crop`" lands in source coordinates.

    The geometry is that of resizing the whole image to (W', H') = (max(crop, round(W s)),
    max(crop, round(H s))), s = resize / min(W, H), then cropping at ((W'-crop)//2, (H'-crop)//2),
    mapped back through each axis's scale W'/W and H'/H."""
    scale = resize / min(width, height)
    size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    sx, sy = size[0] / width, size[1] / height
    return left / sx, top / sy, (left + crop) / sx, (top + crop) / sy


def resize_center_crop(image: Image.Image, resize: int, crop: int) -> np.ndarray:
    """Shorter side to `resize` (bilinear, antialiased), centre crop `crop`: uint8 (3, crop, crop).

    Only the crop's region of the source is resampled (PIL's `resize(box=...)`): the same sampling
    positions and filter support as resizing the whole image and cropping it, without the resized
    intermediate, whose size grows with the aspect ratio (a 1x20000 image would make 256x5,120,000)."""
    box = crop_box(*image.size, resize, crop)
    image = image.resize((crop, crop), Image.BILINEAR, box=box)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def eval_image(source: str | Path | bytes, preprocessing: dict) -> np.ndarray:
    """THE eval preprocessing up to normalisation: uint8 (3, crop, crop)."""
    return eval_decode(open_image(source), preprocessing)


def eval_decode(image: Image.Image, preprocessing: dict) -> np.ndarray:
    """`eval_image` for an image `open_image` already opened (the server checks sizes in between)."""
    return resize_center_crop(decode_rgb(image), preprocessing["resize"], preprocessing["crop"])
