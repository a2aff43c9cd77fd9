"""``appearance``: what a person sees at a glance, as numbers a taste can weigh.

Deep features place items by what they are; a person's taste often turns on how they look: the
colour, how light or dark, the silhouette, plain or patterned. ``appearance`` describes an item's
foreground (told from the background by the colour of the image border) with named groups:

- ``colour``: mean R, G, B, saturation, and a hue histogram weighted by saturation (8 bins);
- ``brightness``: mean luma, its spread, the 10/50/90% quantiles and an 8-bin histogram;
- ``shape``: how much of the crop the item covers, its aspect ratio and fill, and how wide it is
  in 8 bands from top to bottom (and tall, left to right);
- ``texture``: edge strength and density inside the item;
- ``layout``: a 4 x 4 map of luma over the item's bounding box;
- ``silhouette``: a 6 x 6 map of how much of each cell of the bounding box the item fills (its cut).

It needs no weights and no network (numpy on a 64-pixel copy of the crop), so it is an extractor like
any other: ``lookalike extract --model appearance``. Learned tastes (``lookalike learn``) weigh its
groups against a deep model's distance.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from ..errors import ConfigError
from .base import Extractor, ExtractorConfig, PreprocessConfig
from .registry import register_extractor

#: Bumped whenever the descriptor changes: stored vectors of another version are stale.
VERSION = 2
SIZE = 64
HUE_BINS = 8
LUMA_BINS = 8
BANDS = 8
GRID = 4
SILHOUETTE = 6

#: ``(group, dimension names)`` in vector order.
GROUPS: list[tuple[str, list[str]]] = [
    ("colour", ["red", "green", "blue", "saturation"] + [f"hue{i}" for i in range(HUE_BINS)]),
    ("brightness", ["luma", "luma_std", "luma_q10", "luma_q50", "luma_q90"] + [f"luma_hist{i}" for i in range(LUMA_BINS)]),
    ("shape", ["coverage", "aspect", "fill"] + [f"width{i}" for i in range(BANDS)] + [f"height{i}" for i in range(BANDS)]),
    ("texture", ["edges", "edge_density"]),
    ("layout", [f"grid{i}" for i in range(GRID * GRID)]),
    ("silhouette", [f"cut{i}" for i in range(SILHOUETTE * SILHOUETTE)]),
]
NAMES: list[str] = [name for _, names in GROUPS for name in names]
DIM = len(NAMES)


def group_slices() -> dict[str, slice]:
    """Where each group lies in the vector."""
    out, start = {}, 0
    for group, names in GROUPS:
        out[group] = slice(start, start + len(names))
        start += len(names)
    return out


def describe(img: Image.Image) -> np.ndarray:
    """An RGB image (the item's crop) -> its ``DIM`` appearance numbers (float32)."""
    img = img.convert("RGB")
    aspect_full = np.log(max(img.width, 1) / max(img.height, 1))
    small = img.copy()
    small.thumbnail((SIZE, SIZE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, np.float32) / 255.0
    h, w, _ = rgb.shape
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    mask = np.abs(rgb - background).max(axis=2) > 0.12
    if mask.sum() < max(4, 0.02 * h * w):  # no clear background: the whole crop is the item
        mask = np.ones((h, w), bool)
    fg = rgb[mask]
    luma_img = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)
    luma = luma_img[mask]
    top, bottom = rgb.max(axis=2), rgb.min(axis=2)
    saturation_img = np.where(top > 1e-6, (top - bottom) / np.maximum(top, 1e-6), 0.0)
    saturation = saturation_img[mask]
    hue = _hue(fg)
    hue_hist = np.bincount(np.minimum((hue * HUE_BINS).astype(int), HUE_BINS - 1), weights=saturation,
                           minlength=HUE_BINS) / len(fg)
    luma_hist = np.bincount(np.minimum((luma * LUMA_BINS).astype(int), LUMA_BINS - 1), minlength=LUMA_BINS) / len(fg)
    colour = np.concatenate([fg.mean(0), [saturation.mean()], hue_hist])
    brightness = np.concatenate([[luma.mean(), luma.std()], np.quantile(luma, [0.1, 0.5, 0.9]), luma_hist])

    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = mask[r0:r1, c0:c1]
    bh, bw = box.shape
    aspect = np.log(bw / bh) + aspect_full - np.log(w / h)  # of the item in the original's proportions
    widths = [box[band].mean() if band.size else 0.0 for band in np.array_split(np.arange(bh), BANDS)]
    heights = [box[:, band].mean() if band.size else 0.0 for band in np.array_split(np.arange(bw), BANDS)]
    shape = np.concatenate([[mask.mean(), aspect, box.mean()], widths, heights])

    gy, gx = np.gradient(luma_img)
    grad = np.hypot(gx, gy)
    inner = grad[mask]
    texture = np.asarray([inner.mean(), (inner > 0.08).mean()])

    crop = np.where(box, luma_img[r0:r1, c0:c1], np.nan)
    layout = [np.nan_to_num(np.nanmean(crop[np.ix_(rb, cb)]) if rb.size and cb.size and not np.isnan(
        crop[np.ix_(rb, cb)]).all() else 0.0) for rb in np.array_split(np.arange(bh), GRID)
        for cb in np.array_split(np.arange(bw), GRID)]
    silhouette = [box[np.ix_(rb, cb)].mean() if rb.size and cb.size else 0.0
                  for rb in np.array_split(np.arange(bh), SILHOUETTE) for cb in np.array_split(np.arange(bw), SILHOUETTE)]
    return np.concatenate([colour, brightness, shape, texture, layout, silhouette]).astype(np.float32)


def _hue(rgb: np.ndarray) -> np.ndarray:
    """Hue in [0, 1) of ``(n, 3)`` RGB values (0 for greys)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    top, bottom = rgb.max(1), rgb.min(1)
    span = np.maximum(top - bottom, 1e-6)
    hue = np.where(top == r, (g - b) / span % 6, np.where(top == g, (b - r) / span + 2, (r - g) / span + 4))
    return np.where(top - bottom > 1e-6, hue / 6.0, 0.0) % 1.0


class AppearanceExtractor(Extractor):
    """Hand-made appearance numbers (colour, brightness, shape, texture, layout); no network."""

    def __init__(self, **_: object):
        super().__init__(ExtractorConfig(
            name="appearance", architecture="none (numpy statistics of the item's foreground)",
            layer=", ".join(f"{group} ({len(names)})" for group, names in GROUPS), dim=DIM,
            preprocess=PreprocessConfig(input_size=SIZE, resize="squash"),
            weights=f"none (descriptor version {VERSION})", license="Apache-2.0",
            description="colour, brightness, silhouette, texture and layout of the item: what a taste can weigh",
            extra={"groups": {group: len(names) for group, names in GROUPS}}))

    #: one flat row per image: ``describe``'s numbers (there is no tensor input)
    input_shape = (DIM,)

    def build_torch(self):
        raise ConfigError("appearance has no network: its numbers are computed in numpy")

    def weights_checksum(self) -> str:
        return hashlib.sha256(f"appearance-v{VERSION}".encode()).hexdigest()

    def preprocess(self, img: Image.Image) -> np.ndarray:
        return describe(img)

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(batch, np.float32).reshape(len(batch), DIM))


@register_extractor("appearance")
def appearance(**kwargs: object) -> AppearanceExtractor:
    return AppearanceExtractor(**kwargs)
