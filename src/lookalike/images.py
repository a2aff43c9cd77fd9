"""Safe image loading: every photo a shop or a phone produces becomes an RGB image, or an ImageError.

Handles EXIF rotation, CMYK, 16-bit, palette and alpha images, and refuses decompression bombs
before decoding them. Crops to a bounding box when one is given.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

try:  # HEIC / HEIF phone photos, when the optional pillow-heif package is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - optional
    pass

#: Largest image (in pixels) decoded; larger ones are refused as likely decompression bombs.
MAX_IMAGE_PIXELS = 64_000_000

Box = tuple[float, float, float, float]


#: Photos searched by upload are decoded so that their longer side is at most this (JPEG: at reduced DCT scale).
MAX_PHOTO_SIDE = 2048
#: the longest side of an item's thumbnail (the web app's images, what simulated players look at)
THUMB_MAX = 256


def load_image(
    source: str | Path | bytes,
    box: Sequence[float] | None = None,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int | None = None,
) -> Image.Image:
    """Decode an image file (or bytes) to an upright RGB ``PIL.Image``, cropped to ``box``.

    Args:
        source: path to an image file, or its bytes.
        box: optional ``(x1, y1, x2, y2)`` in pixels of the upright, full-size image.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).
        max_side: decode at reduced size so the longer side is at most this (see ``load_photo``).

    Raises:
        ImageError: unreadable, empty, corrupt or truncated file, not an image, too large, or bad box.
    """
    rgb, scale, _ = load_photo(source, max_pixels=max_pixels, max_side=max_side)
    if box is not None:
        if len(box) != 4:
            raise ImageError(f"{_name(source)}: a box needs 4 numbers x1,y1,x2,y2, got {len(box)}")
        rgb = crop_to_box(rgb, [float(v) * scale for v in box], name=_name(source))
    return rgb


def item_thumbnail(catalogue, item_id: str, *, full: bool = False) -> Image.Image:
    """A catalogue item's image cropped to its box and shrunk to ``THUMB_MAX`` (``full``: the whole image as
    is). Items are looked up by id, never by a path from outside."""
    item = catalogue.get(item_id)
    img = load_image(catalogue.resolve(item.path), None if full else item.box)
    if not full:
        img.thumbnail((THUMB_MAX, THUMB_MAX))
    return img


def _name(source: str | Path | bytes) -> str:
    return "<bytes>" if isinstance(source, bytes) else str(source)


def load_photo(source: str | Path | bytes, *, max_pixels: int = MAX_IMAGE_PIXELS,
               max_side: int | None = None) -> tuple[Image.Image, float, tuple[int, int]]:
    """Decode to an upright RGB image whose longer side is at most ``max_side`` (when given); also return the
    scale from the full-size image's pixels to the returned image's, and the full size (upright).

    A huge JPEG is decoded at a reduced DCT scale (Pillow's ``draft``), so it never takes full-size memory;
    other formats are decoded, then reduced.
    """
    name = _name(source)
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageError(f"{name}: empty file")
            fp: io.BytesIO | str | Path = io.BytesIO(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{name}: no such file")
            if path.stat().st_size == 0:
                raise ImageError(f"{name}: empty file (0 bytes)")
            fp = path
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"{name}: {width}x{height} pixels is over the limit of {max_pixels:,} "
                        "(possible decompression bomb)"
                    )
                if max_side is not None and max(width, height) > max_side and img.format == "JPEG":
                    img.draft("RGB", (max_side, max_side))  # DCT scaling: 1/2, 1/4 or 1/8 of the size
                img.load()
                if max_side is not None and max(img.size) >= 2 * max_side:  # other formats: shrink before
                    img = _reduced(img, max(img.size) // max_side)  # converting, so the copies stay small
                turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF: rotated by 90 degrees
                rgb = to_rgb(ImageOps.exif_transpose(img))
        upright_width = height if turned else width
        if max_side is not None and max(rgb.size) > max_side:
            factor = max_side / max(rgb.size)
            rgb = rgb.resize((max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))),
                             Image.Resampling.BILINEAR, reducing_gap=2.0)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: corrupt or truncated image ({exc})") from None
    full = (height, width) if turned else (width, height)
    return rgb, rgb.width / upright_width, full


def _reduced(img: Image.Image, factor: int) -> Image.Image:
    """``img`` shrunk by a whole ``factor`` (box filter; EXIF kept), or ``img`` for modes ``reduce`` lacks."""
    try:
        small = img.reduce(factor)
    except (ValueError, NotImplementedError):
        return img
    small.info.update(img.info)
    exif = img.getexif()
    if exif:
        small.getexif().update(exif)
    return small


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited onto white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def crop_to_box(img: Image.Image, box: Sequence[float], *, name: str = "image") -> Image.Image:
    """Crop to ``(x1, y1, x2, y2)``, clipped to the image; an empty or malformed box is an error."""
    if len(box) != 4:
        raise ImageError(f"{name}: a box needs 4 numbers x1,y1,x2,y2, got {len(box)}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise ImageError(f"{name}: box {tuple(box)} has a non-finite number")
    # whole pixels that the box touches, clipped to the image
    left, right = max(0, int(np.floor(x1))), min(img.width, int(np.ceil(x2)))
    top, bottom = max(0, int(np.floor(y1))), min(img.height, int(np.ceil(y2)))
    if x2 - x1 <= 0 or y2 - y1 <= 0 or right - left < 1 or bottom - top < 1:
        raise ImageError(
            f"{name}: box {tuple(box)} is empty inside the {img.width}x{img.height} image "
            "(expected x1 < x2, y1 < y2 in pixels, overlapping the image)"
        )
    return img.crop((left, top, right, bottom))


def parse_box(text: str) -> Box:
    """Parse ``"x1,y1,x2,y2"`` into a box tuple."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ImageError(f"box {text!r} is not four numbers x1,y1,x2,y2") from None
    if len(values) != 4:
        raise ImageError(f"box {text!r} is not four numbers x1,y1,x2,y2")
    return values  # type: ignore[return-value]
