"""A third, independent photo maker: what customers send from a phone, as none of the other makers draws it.

The training maker (:mod:`~lookalike.photos.synthesis`) draws clutter; the scene maker
(:mod:`~lookalike.photos.scene`) lays one item in a real photograph. Neither shows the item *among others of its
kind*, inside *an app's screenshot*, or *cut by the frame*, and neither writes a full-size phone JPEG stored
turned with an EXIF orientation tag. This maker does all four, with code of its own (it shares only the
catalogue item's mask and the scene maker's real photographs):

- ``rail``: the item hangs on a shop rail between 2-4 other catalogue items, closer to the camera, touching or
  overlapping its neighbours, under a wall light;
- ``screenshot``: a phone screenshot of a social post (status bar, avatar, name, the post's square picture of
  the item on a studio backdrop or a blurred photograph, icons and caption lines), light or dark mode;
- ``cut``: the item large on a wooden table, a knit or a wrinkled sheet, 8-30% of its catalogue image outside
  the frame on one or two sides (the item itself cut wherever it fills its image).

Then a phone camera: tone curve, white balance, brightness-dependent sensor noise, sharpening halos or a soft
lens, JPEG 60-95, at 1512x2016 or 2016x1512 (a fifth of the photos 3024x4032: decoded at reduced size), and 40%
stored turned (EXIF orientation 3, 6 or 8). For evaluation only (``lookalike photos make --style phone``); no
recipe trains on it. Boxes are in the upright photo's pixels and cover the item's visible part.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synthesis import Box, Photo, item_mask

KINDS = ("rail", "screenshot", "cut")
SIZES = ((1512, 2016), (2016, 1512))
LARGE = (3024, 4032)
#: fabric colours an item is dyed in (a third of items keep the catalogue's own tones)
FABRICS = ((28, 36, 64), (110, 24, 36), (86, 94, 48), (206, 190, 160), (24, 24, 26), (236, 234, 228),
           (178, 34, 34), (214, 160, 40), (70, 100, 150), (120, 82, 60), (150, 150, 156), (196, 120, 150))
#: EXIF orientation tags of photos stored turned, and the transpose that makes the stored pixels from upright
STORED_TURNED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def _fabric(item: Image.Image, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The item as ``(h, w, 3)`` floats in 0-1: dyed in a fabric colour, its own tones kept as shading."""
    arr = np.asarray(item.convert("RGB"), np.float32) / 255.0
    if rng.random() < 1 / 3:
        return arr
    grey = arr.mean(-1, keepdims=True)
    inside = grey[mask]
    lo, hi = (float(inside.min()), float(inside.max())) if inside.size else (0.0, 1.0)
    shading = (grey - lo) / max(hi - lo, 1e-3)
    colour = np.clip(np.array(FABRICS[int(rng.integers(len(FABRICS)))], np.float32) / 255 * rng.uniform(0.85, 1.15, 3), 0, 1)
    return np.clip(colour * (0.5 + 0.6 * shading), 0, 1)


def _cutout(item: Image.Image, height: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The dyed item scaled to ``height`` pixels: colour ``(h, w, 3)`` and a soft alpha ``(h, w)``, both 0-1."""
    mask = item_mask(item)
    rgb = _fabric(item, mask, rng)
    scale = height / item.height
    size = (max(2, round(item.width * scale)), max(2, round(height)))
    big = Image.fromarray((rgb * 255).astype(np.uint8), "RGB").resize(size, Image.Resampling.BICUBIC)
    alpha = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize(size, Image.Resampling.BILINEAR)
    alpha = alpha.filter(ImageFilter.GaussianBlur(max(0.5, height / 400)))
    return np.asarray(big, np.float32) / 255, np.asarray(alpha, np.float32) / 255


def _paste(canvas: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int,
           masks: tuple[np.ndarray, ...] = ()) -> Box | None:
    """Alpha-blend ``rgb`` onto ``canvas`` (floats, in place) with its top-left at (x, y), clipped to the
    canvas; marks ``masks``; returns the visible part's box, or None when under 2 pixels of it show."""
    height, width = canvas.shape[:2]
    h, w = alpha.shape
    x1, y1, x2, y2 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    a = alpha[y1 - y : y2 - y, x1 - x : x2 - x, None]
    region = canvas[y1:y2, x1:x2]
    region *= 1 - a
    region += a * rgb[y1 - y : y2 - y, x1 - x : x2 - x]
    solid = a[..., 0] > 0.5
    for m in masks:
        m[y1:y2, x1:x2] |= solid
    ys, xs = np.nonzero(solid)
    if len(xs) == 0:
        return None
    box = (float(x1 + xs.min()), float(y1 + ys.min()), float(x1 + xs.max() + 1), float(y1 + ys.max() + 1))
    return box if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 else None


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """``(h, w)`` smooth noise in 0-1 (a coarse random grid, zoomed)."""
    grid = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8), "L")
    return np.asarray(grid.resize(size, Image.Resampling.BICUBIC), np.float32) / 255


def _wall(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A painted wall under a light from above: a muted colour, brighter at the top, faintly uneven."""
    height = size[1]
    colour = rng.uniform(0.35, 0.9, 3) * rng.uniform(0.7, 1.0) + rng.uniform(0, 0.1)
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    light = 1.15 - rng.uniform(0.2, 0.5) * yy
    return np.clip(colour * light * (0.92 + 0.16 * _smooth_noise(rng, size, 6))[..., None], 0, 1)


def _surface(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """What a flat-laid item lies on: wood grain, a knit, or a wrinkled sheet."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(size)
    kind = int(rng.integers(3))
    if kind == 0:  # wood: planks of wavy grain
        warp = _smooth_noise(rng, size, 5) * rng.uniform(3, 8)
        grain = 0.5 + 0.5 * np.sin((yy * rng.uniform(40, 90) + warp) * np.pi)
        planks = (np.floor(xx * rng.uniform(3, 6)) % 2) * 0.06
        base = np.array([0.55, 0.36, 0.2]) * rng.uniform(0.6, 1.3)
        tone = 0.75 + 0.25 * grain - planks
    elif kind == 1:  # a knit: fine ribs, one colour
        ribs = 0.5 + 0.5 * np.sin(xx * rng.uniform(250, 400) * np.pi)
        base = rng.uniform(0.2, 0.9, 3)
        tone = 0.85 + 0.15 * ribs
    else:  # a sheet: soft wrinkles
        base = np.full(3, rng.uniform(0.7, 0.95)) * rng.uniform(0.9, 1.05, 3)
        tone = 0.8 + 0.25 * _smooth_noise(rng, size, 9)
    return np.clip(base * tone[..., None], 0, 1).astype(np.float32)


def _rail(item: Image.Image, others: list[Image.Image], rng: np.random.Generator, size: tuple[int, int]):
    """The item on a shop rail between others, nearer the camera, overlapping or touching them."""
    width, height = size
    canvas = _wall(rng, size)
    rail_y = int(height * rng.uniform(0.08, 0.18))
    canvas[rail_y : rail_y + max(3, height // 150)] = rng.uniform(0.05, 0.6)
    neighbours = others[: int(rng.integers(2, 5))]
    target = len(neighbours) // 2 if rng.random() < 0.7 else int(rng.integers(len(neighbours) + 1))
    pieces = neighbours[:target] + [item] + neighbours[target:]
    base = height * rng.uniform(0.38, 0.55)
    cut = [_cutout(p, base * (rng.uniform(1.05, 1.25) if i == target else rng.uniform(0.85, 1.0)), rng)
           for i, p in enumerate(pieces)]
    gaps = [a.shape[1] * rng.uniform(-0.2, 0.08) for _, a in cut]  # overlapping or apart
    left = [0.0]
    for (_, a), gap in zip(cut[:-1], gaps):
        left.append(left[-1] + a.shape[1] + gap)
    shift = width * rng.uniform(0.4, 0.6) - (left[target] + cut[target][1].shape[1] / 2)  # the item mid-frame
    masks = (np.zeros((height, width), bool), np.zeros((height, width), bool))
    line = max(2, width // 400)
    box = None
    for i in [i for i in range(len(cut)) if i != target] + [target]:  # the nearest last, in front
        rgb, alpha = cut[i]
        x, y = round(left[i] + shift), rail_y + int(height * rng.uniform(0.03, 0.06))
        hook = x + alpha.shape[1] // 2
        if 0 <= hook < width:  # the hanger's hook from the rail
            canvas[rail_y : y + 4, max(0, hook - line) : hook + line] = 0.15
        placed = _paste(canvas, rgb, alpha, x, y, masks if i == target else masks[:1])
        if i == target:
            box = placed
    return canvas, box, masks


def _screenshot(item: Image.Image, others: list[Image.Image], rng: np.random.Generator):
    """A phone screenshot of a social post whose picture shows the item."""
    from .scene import scene_photographs
    from .synthesis import photograph_crop

    width, height = 1080, 2340
    dark = rng.random() < 0.3
    ui, ink = ((18, 18, 20), (230, 230, 230)) if dark else ((255, 255, 255), (30, 30, 30))
    page = Image.new("RGB", (width, height), ui)
    draw = ImageDraw.Draw(page)
    grey = tuple(int(v * 0.55 + u * 0.45) for v, u in zip(ink, ui))
    draw.rectangle((60, 40, 200, 75), fill=grey)  # status bar: the time, the battery
    draw.rectangle((900, 45, 1010, 72), outline=ink, width=4)
    top = 140
    draw.ellipse((40, top, 140, top + 100), fill=tuple(int(v) for v in rng.integers(60, 220, 3)))  # avatar
    draw.rectangle((170, top + 20, 170 + int(rng.integers(180, 420)), top + 48), fill=ink)  # name
    draw.rectangle((170, top + 62, 170 + int(rng.integers(120, 300)), top + 84), fill=grey)
    post_top = top + 130
    post = (width, width if rng.random() < 0.6 else int(width * 1.25))
    if rng.random() < 0.5:  # a studio backdrop
        backdrop = np.clip(rng.uniform(0.5, 1.0, 3) * (1.05 - 0.25 * np.linspace(0, 1, post[1])[:, None, None]), 0, 1)
        picture = np.broadcast_to(backdrop, (post[1], post[0], 3)).astype(np.float32).copy()
    else:  # a street or room, out of focus
        blurred = photograph_crop(rng, post, scene_photographs()).filter(ImageFilter.GaussianBlur(rng.uniform(4, 12)))
        picture = np.asarray(blurred, np.float32) / 255
    masks = (np.zeros((height, width), bool), np.zeros((height, width), bool))
    post_masks = (np.zeros(picture.shape[:2], bool), np.zeros(picture.shape[:2], bool))
    if others and rng.random() < 0.3:  # a second product further back
        rgb, alpha = _cutout(others[0], post[1] * rng.uniform(0.3, 0.45), rng)
        _paste(picture, rgb, alpha, int(rng.uniform(-0.2, 0.8) * post[0]), int(rng.uniform(0.0, 0.6) * post[1]), post_masks[:1])
    rgb, alpha = _cutout(item, post[1] * rng.uniform(0.5, 0.85), rng)
    x = int((post[0] - alpha.shape[1]) * rng.uniform(0.2, 0.8))
    y = int((post[1] - alpha.shape[0]) * rng.uniform(0.2, 0.8))
    box = _paste(picture, rgb, alpha, x, y, post_masks)
    page.paste(Image.fromarray((picture * 255).astype(np.uint8), "RGB"), (0, post_top))
    for m, pm in zip(masks, post_masks):
        m[post_top : post_top + post[1]] = pm
    icons = post_top + post[1] + 30
    for k in range(3):  # like, comment, share
        draw.ellipse((40 + k * 110, icons, 110 + k * 110, icons + 70), outline=ink, width=6)
    y = icons + 120
    for _ in range(int(rng.integers(2, 6))):  # caption lines of words
        x = 40
        while x < width - 200:
            w = int(rng.integers(40, 180))
            draw.rectangle((x, y, x + w, y + 26), fill=ink if rng.random() < 0.8 else (40, 110, 200))
            x += w + 20
        y += 48
    canvas = np.asarray(page, np.float32) / 255
    if box is not None:
        box = (box[0], box[1] + post_top, box[2], box[3] + post_top)
    return canvas, box, masks


def _cut(item: Image.Image, rng: np.random.Generator, size: tuple[int, int]):
    """The item laid flat, so large that 8-30% of its image lies outside the frame on one or two sides."""
    width, height = size
    canvas = _surface(rng, size)
    rgb, alpha = _cutout(item, min(size) * rng.uniform(0.8, 1.2), rng)
    h, w = alpha.shape
    x, y = (width - w) // 2, (height - h) // 2
    for axis in rng.choice(2, size=int(rng.integers(1, 3)), replace=False):
        out = rng.uniform(0.08, 0.3) * rng.choice([-1, 1])
        if axis == 0:
            x = round(-w * out) if out > 0 else round(width - w * (1 + out))
        else:
            y = round(-h * out) if out > 0 else round(height - h * (1 + out))
    shadow = Image.fromarray((alpha * 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(min(size) / 80))
    offset = int(min(size) * rng.uniform(0.005, 0.02))
    _paste(canvas, np.zeros((h, w, 3), np.float32), np.asarray(shadow, np.float32) / 255 * 0.4, x + offset, y + offset)
    masks = (np.zeros((height, width), bool), np.zeros((height, width), bool))
    return canvas, _paste(canvas, rgb, alpha, x, y, masks), masks


def _camera(canvas: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A phone camera: tone curve, white balance, sensor noise, sharpening or a soft lens, JPEG."""
    height, width = canvas.shape[:2]
    arr = np.clip(canvas, 0, 1) ** rng.uniform(0.8, 1.25)
    warm = rng.uniform(-0.12, 0.12)
    arr = arr * np.array([1 + warm, 1.0, 1 - warm], np.float32)
    noise = rng.normal(0, 1, (height // 2, width // 2, 1)).astype(np.float32).repeat(2, 0).repeat(2, 1)
    arr = arr + noise[:height, :width] * rng.uniform(0.005, 0.03) * np.sqrt(np.clip(arr, 0.01, 1))
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.UnsharpMask(radius=max(2, width // 600), percent=int(rng.integers(80, 220)), threshold=2))
    elif rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0) * width / 1512))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=int(rng.integers(60, 96)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_phone_photo(item: Image.Image, rng: np.random.Generator, others: Sequence[Image.Image] = ()) -> Photo:
    """A phone photo of ``item`` (an RGB catalogue image cropped to its box), with ``others`` (catalogue items)
    as its neighbours on a rail or in a post. ``Photo.orientation`` says how it is to be stored (EXIF tag)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    size = LARGE if rng.random() < 0.2 else SIZES[int(rng.integers(len(SIZES)))]
    if kind == "rail":
        if size[0] > size[1] and rng.random() < 0.5:
            size = size[::-1]
        canvas, box, masks = _rail(item, list(others), rng, size)
    elif kind == "screenshot":
        canvas, box, masks = _screenshot(item, list(others), rng)
    else:
        canvas, box, masks = _cut(item, rng, size)
    image = _camera(canvas, rng)
    if box is None:  # never a wrong box: the whole photo
        box = (0.0, 0.0, float(image.width), float(image.height))
    orientation = int(rng.choice(list(STORED_TURNED))) if rng.random() < 0.4 else 1
    return Photo(image, box, None, masks[0], masks[1], orientation=orientation)
