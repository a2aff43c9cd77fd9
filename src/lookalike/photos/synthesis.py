"""Phone-like photos made from catalogue items: the item cut out, recoloured, rotated, scaled and put on
clutter, maybe beside a second item, then blurred, exposure-shifted, noised and JPEG-compressed.

Shops rarely have labelled customer photos on day one, so these stand in for them: to measure how a
model copes with photos (``lookalike photos make``), and as the photo side of street-to-shop training
(``lookalike train --recipe photos``). Every photo records the true box of its main item.

Item masks come from the catalogue image itself: pixels that differ from the image's border colour
(product shots on a plain background, as catalogues have).

Besides drawn clutter, a share of backgrounds (``PhotoStyle.photographs``) are crops of real photographs:
the sample images bundled with scikit-image (people, animals, buildings, brick, grass, gravel, text). The
training recipes use them so that the localiser and the features meet real textures and real objects
beside the item; :mod:`lookalike.photos.scene` (evaluation only) uses other photographs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PhotoStyle:
    """How wild the photos are. Every range is sampled uniformly per photo."""

    size: tuple[int, int] = (320, 320)  # (width, height) of the photo
    item_scale: tuple[float, float] = (0.35, 0.8)  # item's longer side / photo's shorter side
    tiny_item: float = 0.08  # share of photos whose item is small (0.15-0.3 of the side)
    rotation: float = 25.0  # degrees, either way
    perspective: float = 0.08  # corner jitter, share of the item's size
    recolour: float = 0.8  # share of photos whose item is tinted with a random colour
    invert: float = 0.1  # share of items whose brightness is inverted (dark item on a light scene)
    grey: float = 0.15  # share of photos made grey at the end
    second_item: float = 0.35  # share of photos with a smaller second item beside the main one
    occlusion: float = 0.2  # share of photos with an object over part of the item
    blur: tuple[float, float] = (0.0, 1.6)  # Gaussian radius in pixels
    exposure: tuple[float, float] = (0.65, 1.35)
    contrast: tuple[float, float] = (0.7, 1.3)
    noise: tuple[float, float] = (0.0, 12.0)  # pixel noise standard deviation (0-255)
    jpeg_quality: tuple[int, int] = (35, 92)
    photographs: float = 0.0  # share of backgrounds cut from real photographs (TRAINING_STYLE: 0.5)


# What the recipes train on (the localiser): half the backgrounds are real photographs.
TRAINING_STYLE = PhotoStyle(photographs=0.5)

# scikit-image's bundled sample photographs used as backgrounds (its synthetic test patterns left out).
PHOTOGRAPHS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
               "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png",
               "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg",
               "text.png")


@dataclass
class Photo:
    """A synthetic photo and the true box (x1, y1, x2, y2, in pixels) of its main item."""

    image: Image.Image
    box: Box
    second_box: Box | None = None
    mask: np.ndarray | None = None  # (height, width) bool: pixels of the main and the second item
    main_mask: np.ndarray | None = None  # (height, width) bool: pixels of the main item only
    orientation: int = 1  # the EXIF orientation tag to store it with (1: stored upright; image is upright)


def item_mask(img: Image.Image, threshold: float = 28.0) -> np.ndarray:
    """Boolean mask of the item: pixels far (in RGB) from the median border colour, with small holes closed."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    background = np.median(border, axis=0)
    distance = np.sqrt(((arr - background) ** 2).sum(-1))
    mask = Image.fromarray((distance > threshold).astype(np.uint8) * 255, "L")
    mask = mask.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3))  # close pinholes
    out = np.asarray(mask) > 127
    if out.sum() < 0.02 * out.size:  # nothing stands out: the whole image is the item
        out[:] = True
    return out


def _random_colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


@lru_cache(maxsize=1)
def training_photographs() -> tuple[Image.Image, ...]:
    """The real photographs backgrounds are cut from (RGB): scikit-image's bundled sample images."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-image is needed for photograph backgrounds: pip install scikit-image")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    found = [folder / name for name in PHOTOGRAPHS if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError(f"no sample photographs in {folder}")
    return tuple(Image.open(p).convert("RGB") for p in found)


def photograph_crop(rng: np.random.Generator, size: tuple[int, int],
                    photographs: tuple[Image.Image, ...]) -> Image.Image:
    """A random crop of one of ``photographs``, zoomed to ``size``, maybe mirrored or turned, re-toned."""
    src = photographs[int(rng.integers(len(photographs)))]
    if rng.random() < 0.5:
        src = ImageOps.mirror(src)
    if rng.random() < 0.25:
        src = src.rotate(float(rng.choice([90, 180, 270])), expand=True)
    side = rng.uniform(0.3, 1.0) * min(src.size)
    aspect = size[0] / size[1]
    cw, ch = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
    cw, ch = min(cw, src.width), min(ch, src.height)
    x, y = rng.uniform(0, src.width - cw), rng.uniform(0, src.height - ch)
    img = src.resize(size, Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.4, 1.5))
    return ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.3))


def background(rng: np.random.Generator, size: tuple[int, int], photographs: float = 0.0) -> Image.Image:
    """A cluttered scene: smooth colour noise, stripes, a gradient, shapes, or a mix; with probability
    ``photographs``, a crop of a real photograph instead (plus the same clutter)."""
    width, height = size
    kind = 5 if photographs and rng.random() < photographs else rng.integers(5)
    if kind == 0:  # smooth colour blobs
        cells = rng.integers(2, 9)
        small = rng.integers(0, 256, (cells, cells, 3)).astype(np.uint8)
        img = Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC)
    elif kind == 1:  # fine texture (fabric, gravel, carpet)
        cells = rng.integers(16, 80)
        base = np.asarray(_random_colour(rng), np.float32)
        tex = rng.normal(0, rng.uniform(15, 60), (cells, cells, 1)) + base
        img = Image.fromarray(np.clip(tex, 0, 255).astype(np.uint8), "RGB").resize(size, Image.Resampling.BILINEAR)
    elif kind == 2:  # stripes or checks
        a, b = np.asarray(_random_colour(rng), np.float32), np.asarray(_random_colour(rng), np.float32)
        period = rng.uniform(8, 60)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        if rng.random() < 0.4:
            wave = wave * np.sin((xx * -np.sin(angle) + yy * np.cos(angle)) * 2 * np.pi / period)
        t = (wave > 0).astype(np.float32)[..., None]
        img = Image.fromarray((a * t + b * (1 - t)).astype(np.uint8), "RGB")
    elif kind == 3:  # gradient, like a wall under a lamp
        a, b = np.asarray(_random_colour(rng), np.float32), np.asarray(_random_colour(rng), np.float32)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = (yy / max(1, height - 1) if rng.random() < 0.5 else xx / max(1, width - 1))[..., None]
        img = Image.fromarray((a * (1 - t) + b * t).astype(np.uint8), "RGB")
    elif kind == 4:  # flat with a little noise
        img = Image.new("RGB", size, _random_colour(rng))
    else:  # a real photograph
        img = photograph_crop(rng, size, training_photographs())
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 14 if kind < 5 else 4))):  # clutter: objects, edges, lines
        x1, y1 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        w, h = rng.uniform(0.05, 0.5) * width, rng.uniform(0.05, 0.5) * height
        shape = rng.integers(3)
        colour = _random_colour(rng)
        if shape == 0:
            draw.rectangle((x1, y1, x1 + w, y1 + h), fill=colour)
        elif shape == 1:
            draw.ellipse((x1, y1, x1 + w, y1 + h), fill=colour)
        else:
            draw.line((x1, y1, x1 + w, y1 + h), fill=colour, width=int(rng.integers(1, 8)))
    return img


def _tinted(item: Image.Image, mask: np.ndarray, rng: np.random.Generator, style: PhotoStyle) -> Image.Image:
    """The item's own colours, or its brightness times a random colour (maybe inverted)."""
    arr = np.asarray(item.convert("RGB"), dtype=np.float32)
    if rng.random() < style.recolour:
        light = arr.mean(-1, keepdims=True) / 255.0
        values = light[mask]
        if values.size and values.max() > values.min():  # stretch the item's own range to 0..1
            light = (light - values.min()) / (values.max() - values.min())
        if rng.random() < style.invert:
            light = 1 - light
        dark, bright = np.asarray(_random_colour(rng, 0, 120), np.float32), np.asarray(_random_colour(rng, 80),
                                                                                       np.float32)
        arr = dark + (bright - dark) * np.clip(light, 0, 1)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _place(canvas: Image.Image, item: Image.Image, mask: np.ndarray, side: float, centre: tuple[float, float],
           rng: np.random.Generator, style: PhotoStyle, where: tuple[Image.Image, ...] = ()) -> Box | None:
    """Paste the transformed item with its mask (also into each of ``where``, masks of the canvas' items);
    return its box in the canvas (None if it fell outside)."""
    scale = side / max(item.size)
    w, h = max(2, round(item.width * scale)), max(2, round(item.height * scale))
    rgb = item.resize((w, h), Image.Resampling.BICUBIC)
    alpha = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((w, h), Image.Resampling.BILINEAR)
    jitter = style.perspective * np.array([w, h] * 4) * rng.uniform(-1, 1, 8)
    quad = np.array([0, 0, 0, h, w, h, w, 0], np.float64) + jitter
    rgb = rgb.transform((w, h), Image.Transform.QUAD, tuple(quad), Image.Resampling.BICUBIC)
    alpha = alpha.transform((w, h), Image.Transform.QUAD, tuple(quad), Image.Resampling.BILINEAR)
    angle = rng.uniform(-style.rotation, style.rotation)
    rgb = rgb.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    alpha = alpha.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    x, y = round(centre[0] - rgb.width / 2), round(centre[1] - rgb.height / 2)
    canvas.paste(rgb, (x, y), alpha)
    for target in where:
        target.paste(255, (x, y), alpha)
    ys, xs = np.nonzero(np.asarray(alpha) > 127)
    if len(xs) == 0:
        return None
    x1, y1 = max(0, x + xs.min()), max(0, y + ys.min())
    x2, y2 = min(canvas.width, x + xs.max() + 1), min(canvas.height, y + ys.max() + 1)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return (float(x1), float(y1), float(x2), float(y2))


def make_photo(item: Image.Image, rng: np.random.Generator, style: PhotoStyle = PhotoStyle(),
               second: Image.Image | None = None) -> Photo:
    """A phone-like photo of ``item`` (an RGB catalogue image, already cropped to its box).

    ``second``, when given, may appear as a smaller second item (with probability ``style.second_item``).
    """
    width, height = style.size
    canvas = background(rng, style.size, style.photographs)
    short = min(width, height)
    if rng.random() < style.tiny_item:
        side = rng.uniform(0.15, 0.3) * short
    else:
        side = rng.uniform(*style.item_scale) * short
    margin = side / 2
    centre = (rng.uniform(margin, max(margin + 1, width - margin)), rng.uniform(margin, max(margin + 1, height - margin)))
    second_box = None
    where, main_where = Image.new("L", style.size, 0), Image.new("L", style.size, 0)
    if second is not None and rng.random() < style.second_item:  # behind the main item, off to one side
        s_side = side * rng.uniform(0.4, 0.75)
        s_centre = (rng.uniform(0, width), rng.uniform(0, height))
        second_box = _place(canvas, _tinted(second, item_mask(second), rng, style), item_mask(second), s_side,
                            s_centre, rng, style, (where,))
    mask = item_mask(item)
    box = _place(canvas, _tinted(item, mask, rng, style), mask, side, centre, rng, style, (where, main_where))
    if box is None:  # cannot happen with the centre inside the canvas, but never return a wrong box
        box = (0.0, 0.0, float(width), float(height))
    if rng.random() < style.occlusion:  # a hand, a strap, another object over part of the item
        x1, y1, x2, y2 = box
        ow, oh = (x2 - x1) * rng.uniform(0.15, 0.4), (y2 - y1) * rng.uniform(0.15, 0.4)
        ox, oy = rng.uniform(x1 - ow / 2, x2 - ow / 2), rng.uniform(y1 - oh / 2, y2 - oh / 2)
        shape = ImageDraw.Draw(canvas).ellipse if rng.random() < 0.5 else ImageDraw.Draw(canvas).rectangle
        shape((ox, oy, ox + ow, oy + oh), fill=_random_colour(rng))
    photo = canvas
    radius = rng.uniform(*style.blur)
    if radius > 0.2:
        photo = photo.filter(ImageFilter.GaussianBlur(radius))
    photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(*style.exposure))
    photo = ImageEnhance.Contrast(photo).enhance(rng.uniform(*style.contrast))
    sigma = rng.uniform(*style.noise)
    if sigma > 0.5:
        arr = np.asarray(photo, np.float32) + rng.normal(0, sigma, (height, width, 3))
        photo = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < style.grey:
        photo = ImageOps.grayscale(photo).convert("RGB")
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=int(rng.integers(*style.jpeg_quality)))
    buffer.seek(0)
    return Photo(Image.open(buffer).convert("RGB"), box, second_box, np.asarray(where) > 127,
                 np.asarray(main_where) > 127)


def jitter_box(box: Box, size: tuple[int, int], rng: np.random.Generator, amount: float = 0.12) -> Box:
    """A box as a person (or a localiser) might draw it: each side moved by up to ``amount`` of the box's size."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    dx = rng.uniform(-amount, amount, 2) * w
    dy = rng.uniform(-amount, amount, 2) * h
    nx1, nx2 = max(0.0, x1 + dx[0]), min(float(size[0]), x2 + dx[1])
    ny1, ny2 = max(0.0, y1 + dy[0]), min(float(size[1]), y2 + dy[1])
    if nx2 - nx1 < 2 or ny2 - ny1 < 2:
        return box
    return (nx1, ny1, nx2, ny2)
