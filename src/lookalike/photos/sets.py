"""Query-photo sets: customer photos labelled with the product they show, as a CSV.

``path, category[, x1, y1, x2, y2][, item]`` with paths relative to the CSV. ``item`` is the catalogue id of
the exact item in the photo (for exact-item recall); the box, when given, is where the item is. A header
row naming these columns is optional; without one the columns are told apart by their count.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import CatalogueError, ConfigError
from .synthesis import Box, PhotoStyle, make_photo

COLUMNS = ("path", "category", "x1", "y1", "x2", "y2", "item")


@dataclass(frozen=True)
class QueryPhoto:
    path: Path
    category: str
    box: Box | None = None
    item: str | None = None


def read_query_photos(csv_path: str | Path) -> list[QueryPhoto]:
    """Read a query-photo CSV; every problem names its line."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ConfigError(f"--query-photos: no such file {csv_path}")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    if not rows:
        raise ConfigError(f"{csv_path}: no rows")
    header = [c.strip().lower() for c in rows[0]]
    if header[0] == "path":
        unknown = [c for c in header if c not in COLUMNS]
        if unknown or "category" not in header:
            raise ConfigError(f"{csv_path}: header {rows[0]} needs path, category and optionally x1, y1, x2, y2, "
                              f"item (unknown: {unknown})")
        if any(c in header for c in COLUMNS[2:6]) and not all(c in header for c in COLUMNS[2:6]):
            raise ConfigError(f"{csv_path}: a box needs all four columns x1, y1, x2, y2")
        names, body, first = header, rows[1:], 2
    else:
        layouts = {2: COLUMNS[:2], 3: ("path", "category", "item"), 6: COLUMNS[:6], 7: COLUMNS}
        if len(rows[0]) not in layouts:
            raise ConfigError(f"{csv_path}: expected path,category[,x1,y1,x2,y2][,item]; line 1 has {len(rows[0])} "
                              "columns")
        names, body, first = list(layouts[len(rows[0])]), rows, 1
    photos = []
    for line, row in enumerate(body, first):
        if len(row) != len(names):
            raise ConfigError(f"{csv_path}, line {line}: {len(row)} columns, expected {len(names)} ({', '.join(names)})")
        value = {n: c.strip() for n, c in zip(names, row)}
        if not value["path"] or not value["category"]:
            raise ConfigError(f"{csv_path}, line {line}: path and category must not be empty")
        box = None
        if "x1" in value and any(value[c] for c in COLUMNS[2:6]):
            try:
                box = tuple(float(value[c]) for c in COLUMNS[2:6])
            except ValueError:
                raise ConfigError(f"{csv_path}, line {line}: box {[value[c] for c in COLUMNS[2:6]]} is not four "
                                  "numbers") from None
            if not (np.isfinite(box).all() and box[2] > box[0] and box[3] > box[1]):
                raise ConfigError(f"{csv_path}, line {line}: box {box} needs x1 < x2 and y1 < y2")
        path = Path(value["path"])
        photos.append(QueryPhoto(path if path.is_absolute() else csv_path.parent / path, value["category"], box,
                                 value.get("item") or None))
    if not photos:
        raise ConfigError(f"{csv_path}: no photos listed")
    return photos


def write_query_photos(csv_path: str | Path, photos: list[QueryPhoto]) -> None:
    """Write a query-photo CSV with a header; paths relative to the CSV's folder when they are inside it."""
    csv_path = Path(csv_path)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for p in photos:
            try:
                path = str(Path(p.path).resolve().relative_to(csv_path.parent.resolve()))
            except ValueError:
                path = str(p.path)
            box = [f"{v:.1f}" for v in p.box] if p.box else ["", "", "", ""]
            writer.writerow([path, p.category, *box, p.item or ""])


MAKERS = ("clutter", "scene", "phone")  # the training photos' maker; two independent ones for evaluation only


def make_query_photos(workspace, out_dir: str | Path, *, count: int, split: str | None = "test",
                      items: list[str] | None = None, seed: int = 0, style: PhotoStyle = PhotoStyle(),
                      maker: str = "clutter", progress: bool | None = None) -> Path:
    """Make ``count`` synthetic phone photos of seeded catalogue items (of ``split``, or the listed ``items``)
    into ``out_dir`` with ``photos.csv`` (true boxes and item ids). Returns the CSV's path.

    ``maker``: ``clutter`` (:func:`~lookalike.photos.synthesis.make_photo`, what the photos recipe trains on,
    shaped by ``style``), ``scene`` (:func:`~lookalike.photos.scene.make_scene_photo`: real backgrounds,
    light and camera made by other code, to see whether a model copes with photos unlike its training ones)
    or ``phone`` (:func:`~lookalike.photos.phone.make_phone_photo`: the item on a rail among others, in an
    app's screenshot or cut by the frame, full-size phone JPEGs, some stored turned with an EXIF tag)."""
    if maker not in MAKERS:
        raise ConfigError(f"unknown photo maker {maker!r}; choose from {', '.join(MAKERS)}")
    catalogue = workspace.catalogue
    pool = (sorted(catalogue.get_many(items).values(), key=lambda it: it.id) if items is not None
            else sorted(catalogue.items(split=split), key=lambda it: it.id))
    if not pool:
        raise CatalogueError(f"no catalogue items to photograph (split {split!r}); splits: {catalogue.split_counts()}")
    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(count, len(pool)), replace=False)]
    out_dir = Path(out_dir)
    (out_dir / "photos").mkdir(parents=True, exist_ok=True)
    written = []
    for n, item in enumerate(tqdm(chosen, desc="photos", unit="photo", disable=progress is False or None)):
        photo = photo_of_item(item, catalogue, pool, rng, style, maker)
        path = out_dir / "photos" / f"{n:05d}.jpg"
        save_photo(photo, path)
        written.append(QueryPhoto(path, item.category, photo.box, item.id))
    csv_path = out_dir / "photos.csv"
    write_query_photos(csv_path, written)
    return csv_path


def save_photo(photo, path: Path) -> None:
    """Write a synthetic photo as a JPEG; one whose ``orientation`` is not 1 is stored turned, with that EXIF
    tag, as phones store them (readers that honour the tag show it upright, in the box's coordinates)."""
    if photo.orientation == 1:
        photo.image.save(path, quality=95)
        return
    from .phone import STORED_TURNED

    exif = Image.Exif()
    exif[0x0112] = photo.orientation
    photo.image.transpose(STORED_TURNED[photo.orientation]).save(path, quality=95, exif=exif)


def photo_of_item(item, catalogue, pool: list, rng: np.random.Generator, style: PhotoStyle = PhotoStyle(),
                  maker: str = "clutter"):
    """A synthetic photo of a catalogue item, maybe beside a random second item from ``pool``."""
    from ..images import load_image

    image = load_image(catalogue.resolve(item.path), item.box)
    other = pool[int(rng.integers(len(pool)))]
    second = load_image(catalogue.resolve(other.path), other.box) if other.id != item.id else None
    if maker == "phone":  # three neighbours for a rail or a post (drawn after the clutter makers' draws)
        from .phone import make_phone_photo

        others = [pool[int(rng.integers(len(pool)))] for _ in range(3)]
        neighbours = [second] if second is not None else []
        neighbours += [load_image(catalogue.resolve(o.path), o.box) for o in others if o.id != item.id]
        return make_phone_photo(image, rng, neighbours)
    if maker == "scene":
        from .scene import make_scene_photo

        return make_scene_photo(image, rng, second)
    return make_photo(image, rng, style, second)
