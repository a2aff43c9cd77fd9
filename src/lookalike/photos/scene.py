"""A second, independent photo maker: the item in a real scene, lit and shot differently.

The training recipes learn from :func:`~lookalike.photos.synthesis.make_photo` (clutter drawn from shapes
and noise). A model that only copes with its own training photos would look good on photos made by the same
code, so this maker shares none of it: backgrounds are crops of real photographs, the item gets directional
light and a cast shadow, a tilted plane (stronger perspective), and the camera adds motion blur, a colour
cast, vignetting, chroma noise and a low-resolution sensor, at landscape or portrait sizes. It is for
evaluation only (``lookalike photos make --style scene``); no recipe trains on it.

The real photographs are the sample images that ship with scikit-learn and Matplotlib (both dependencies),
so nothing is downloaded.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synthesis import Photo, item_mask, photograph_crop

SIZES = ((480, 360), (360, 480), (400, 400), (640, 480))


@lru_cache(maxsize=1)
def scene_photographs() -> tuple[Image.Image, ...]:
    """The real photographs scenes are cut from (RGB)."""
    import matplotlib
    import sklearn.datasets

    folders = [Path(sklearn.datasets.__file__).parent / "images",
               Path(matplotlib.get_data_path()) / "sample_data"]
    paths = sorted(p for folder in folders for p in folder.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no sample photographs found in {', '.join(map(str, folders))}")
    return tuple(Image.open(p).convert("RGB") for p in paths)


def scene(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A background: a random crop of a real photograph, zoomed, maybe mirrored, turned and re-toned."""
    return photograph_crop(rng, size, scene_photographs())


def _lit(item: Image.Image, mask: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The item as a dyed fabric under directional light: a base colour scaled by its own shading, then a
    light gradient across it."""
    arr = np.asarray(item.convert("RGB"), np.float32) / 255.0
    light = arr.mean(-1, keepdims=True)
    inside = light[mask]
    if inside.size and inside.max() > inside.min():
        light = (light - inside.min()) / (inside.max() - inside.min())
    if rng.random() < 0.75:  # dyed: a colour that keeps the item's own pattern as shading
        dye = rng.uniform(0.15, 1.0, 3)
        arr = np.clip(light, 0, 1) * dye * rng.uniform(0.6, 1.0) + rng.uniform(0.0, 0.15)
    h, w = light.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (xx / max(w - 1, 1) - 0.5) * np.cos(angle) + (yy / max(h - 1, 1) - 0.5) * np.sin(angle)
    shade = 1.0 + rng.uniform(0.2, 0.7) * ramp
    return Image.fromarray((np.clip(arr * shade[..., None], 0, 1) * 255).astype(np.uint8), "RGB")


def _tilted(img: Image.Image, alpha: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """The item on a plane seen at an angle: one side shortened (a keystone), then turned."""
    w, h = img.size
    k = rng.uniform(0.05, 0.25)
    if rng.random() < 0.5:  # top or bottom edge shortened
        dx = k * w
        quad = (dx, 0, 0, h, w, h, w - dx, 0) if rng.random() < 0.5 else (0, 0, dx, h, w - dx, h, w, 0)
    else:
        dy = k * h
        quad = (0, dy, 0, h - dy, w, h, w, 0) if rng.random() < 0.5 else (0, 0, 0, h, w, h - dy, w, dy)
    img = img.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    alpha = alpha.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    angle = rng.uniform(-35, 35)
    return (img.rotate(angle, Image.Resampling.BICUBIC, expand=True),
            alpha.rotate(angle, Image.Resampling.BILINEAR, expand=True))


def _motion_blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A shaken hand: the mean of a few shifted copies along one direction."""
    steps = int(rng.integers(3, 8))
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(2, 7)
    arr = np.asarray(img, np.float32)
    out = np.zeros_like(arr)
    for t in np.linspace(-0.5, 0.5, steps):
        dx, dy = round(t * length * np.cos(angle)), round(t * length * np.sin(angle))
        out += np.roll(arr, (dy, dx), axis=(0, 1))
    return Image.fromarray((out / steps).astype(np.uint8), "RGB")


def make_scene_photo(item: Image.Image, rng: np.random.Generator, second: Image.Image | None = None) -> Photo:
    """A photo of ``item`` (an RGB catalogue image cropped to its box) lying in a real scene."""
    size = SIZES[int(rng.integers(len(SIZES)))]
    width, height = size
    canvas = scene(rng, size)
    where = Image.new("L", size, 0)
    short = min(size)

    def place(img: Image.Image, side: float, centre: tuple[float, float]):
        mask = item_mask(img)
        scale = side / max(img.size)
        w, h = max(2, round(img.width * scale)), max(2, round(img.height * scale))
        rgb = _lit(img, mask, rng).resize((w, h), Image.Resampling.LANCZOS)
        alpha = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((w, h), Image.Resampling.BILINEAR)
        alpha = alpha.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))  # soft cut-out edge
        rgb, alpha = _tilted(rgb, alpha, rng)
        x, y = round(centre[0] - rgb.width / 2), round(centre[1] - rgb.height / 2)
        offset = np.round(rng.uniform(2, 10, 2) * rng.choice([-1, 1], 2)).astype(int)  # cast shadow
        shadow = alpha.filter(ImageFilter.GaussianBlur(rng.uniform(3, 8))).point(lambda v: int(v * 0.55))
        canvas.paste((0, 0, 0), (x + int(offset[0]), y + int(offset[1])), shadow)
        canvas.paste(rgb, (x, y), alpha)
        where.paste(255, (x, y), alpha)
        ys, xs = np.nonzero(np.asarray(alpha) > 127)
        if len(xs) == 0:
            return None
        x1, y1 = max(0, x + xs.min()), max(0, y + ys.min())
        x2, y2 = min(width, x + xs.max() + 1), min(height, y + ys.max() + 1)
        return (float(x1), float(y1), float(x2), float(y2)) if x2 - x1 >= 2 and y2 - y1 >= 2 else None

    side = rng.uniform(0.3, 0.75) * short
    centre = (rng.uniform(side / 2, width - side / 2), rng.uniform(side / 2, height - side / 2))
    second_box = None
    if second is not None and rng.random() < 0.4:  # another product in the same shot, further back
        s_side = side * rng.uniform(0.5, 0.8)
        second_box = place(second, s_side, (rng.uniform(0, width), rng.uniform(0, height)))
    box = place(item, side, centre) or (0.0, 0.0, float(width), float(height))
    if rng.random() < 0.25:  # a real-world object over a corner of the item: a patch of another photograph
        x1, y1, x2, y2 = box
        ow, oh = int((x2 - x1) * rng.uniform(0.2, 0.4)), int((y2 - y1) * rng.uniform(0.2, 0.4))
        if ow > 2 and oh > 2:
            patch = scene(rng, (ow, oh))
            corner = (int(rng.choice([x1 - ow / 3, x2 - 2 * ow / 3])), int(rng.choice([y1 - oh / 3, y2 - 2 * oh / 3])))
            patch_mask = Image.new("L", (ow, oh), 0)
            ImageDraw.Draw(patch_mask).ellipse((0, 0, ow - 1, oh - 1), fill=255)
            canvas.paste(patch, corner, patch_mask)
    photo = canvas
    if rng.random() < 0.6:
        photo = _motion_blur(photo, rng)
    cast = rng.uniform(0.8, 1.2, 3)  # white balance off
    arr = np.asarray(photo, np.float32) * cast
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) / 0.5
    arr *= (1 - rng.uniform(0.0, 0.5) * r2)[..., None]  # vignetting
    arr += rng.normal(0, rng.uniform(0, 6), (height // 2, width // 2, 3)).repeat(2, 0).repeat(2, 1)[:height, :width]
    photo = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.5:  # a low-resolution sensor or a digital zoom
        factor = rng.uniform(0.35, 0.7)
        small = (max(8, round(width * factor)), max(8, round(height * factor)))
        photo = photo.resize(small, Image.Resampling.BILINEAR).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=int(rng.integers(30, 85)))
    buffer.seek(0)
    return Photo(Image.open(buffer).convert("RGB"), box, second_box, np.asarray(where) > 127)
