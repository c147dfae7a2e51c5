"""Image decoding and transforms, named like torchvision's classification presets.

`eval_image` is THE evaluation preprocessing: the trainer's validation/test sets and the server
both call it, so the same image gives the same prediction in both. Training may use reduced-size
decoding and a decoded cache (`decode_for_cache`) because augmentation follows; evaluation never does.
Decoding gives numpy uint8 arrays, not tensors: the slim serving image (serve-cpu) has no torch.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

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
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image


class BadImage(ValueError):
    """Bytes or a file that do not decode to a whole image; the message says why."""


class UnsupportedFormat(BadImage):
    """An image in a format outside FORMATS (a server answers 415)."""


class TooManyPixels(BadImage):
    """An image whose header declares more pixels than allowed (a server answers 413)."""


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
def _register_heif() -> None:
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


def open_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read only the header: the format must be in FORMATS and width x height <= `max_pixels`.

    Nothing is decoded yet, so a server can refuse a request by its images' sizes before it
    spends any memory on pixels; `decode_rgb` does the rest.
    """
    _register_heif()
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = Image.open(data, formats=FORMATS)
    except UnidentifiedImageError:
        if isinstance(data, io.BytesIO):
            data.seek(0)
        name = _format_name(data)
        if name:
            raise UnsupportedFormat(f"image format {name} is not accepted; send one of "
                                    f"{', '.join(FORMATS)}") from None
        raise BadImage("not a readable image (no known image format)") from None
    except Image.DecompressionBombError:
        raise TooManyPixels(f"image is larger than {max_pixels:,} pixels") from None
    except (OSError, SyntaxError, ValueError) as err:  # PIL's ways of saying "not an image"
        raise BadImage(f"not a readable image ({err})") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise TooManyPixels(f"image is {image.width}x{image.height} = {pixels:,} pixels; the limit is "
                            f"{max_pixels:,}")
    return image


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
    except (OSError, SyntaxError, ValueError, EOFError) as err:  # truncated or corrupt data
        raise BadImage(f"not a readable image ({err})") from None
    return _to_rgb(image)


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


def resize_center_crop(image: Image.Image, resize: int, crop: int) -> np.ndarray:
    """Shorter side to `resize` (bilinear, antialiased), centre crop `crop`: uint8 (3, crop, crop)."""
    width, height = image.size
    scale = resize / min(width, height)
    size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def eval_image(source: str | Path | bytes, preprocessing: dict) -> np.ndarray:
    """THE eval preprocessing up to normalisation: uint8 (3, crop, crop)."""
    return eval_decode(open_image(source), preprocessing)


def eval_decode(image: Image.Image, preprocessing: dict) -> np.ndarray:
    """`eval_image` for an image `open_image` already opened (the server checks sizes in between)."""
    return resize_center_crop(decode_rgb(image), preprocessing["resize"], preprocessing["crop"])


def cache_side(image_size: int) -> int:
    """Side of the cached square training image: the eval resize, so crops see the same scale."""
    return eval_preprocessing(image_size)["resize"]


def decode_for_cache(path: str | Path, image_size: int) -> np.ndarray:
    """Training-only decode: reduced-size JPEG decoding, then a square uint8 (3, S, S)."""
    side = cache_side(image_size)
    return resize_center_crop(open_rgb(path, draft_size=side), side, side)


def train_transform(image_size: int, augment: str):
    """Augmentation on uint8 tensors (cheap next to decoding): RRC + flip (+ TrivialAugmentWide)."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    if augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    return v2.Compose(steps)
