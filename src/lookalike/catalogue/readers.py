"""Catalogue readers: turn a source on disk into catalogue items, one reader per layout.

Each reader is registered by name in ``READERS`` and is called as
``reader(source, limit=..., seed=..., image_dir=...) -> ReadResult``. Readers do not decode
images (that happens, safely, at extraction); they skip records they cannot use and say why.
"""

from __future__ import annotations

import csv
import gzip
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import CatalogueError
from ..registry import Registry
from .store import Item

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif"}

READERS: Registry = Registry("catalogue reader")


@dataclass
class ReadResult:
    """Items a reader produced, and the records it skipped with the reason."""

    items: list[Item] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def sample(records: Sequence, limit: int | None, seed: int) -> list:
    """Seeded random sample of at most ``limit`` records, in their original order.

    A larger limit with the same seed gives a superset of a smaller one.
    """
    if limit is None or limit >= len(records):
        return list(records)
    if limit < 0:
        raise CatalogueError(f"--limit must be >= 0, got {limit}")
    order = np.random.default_rng(seed).permutation(len(records))[:limit]
    return [records[i] for i in sorted(order)]


@READERS.register("folder")
def read_folder(source: Path, *, limit: int | None = None, seed: int = 0, **_: object) -> ReadResult:
    """One sub-folder per category: ``SOURCE/<category>/**/<image>``. Item id = relative path."""
    source = Path(source)
    if not source.is_dir():
        raise CatalogueError(f"{source}: not a folder (the folder reader wants SOURCE/<category>/<images>)")
    result = ReadResult()
    records = []
    for category_dir in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(category_dir.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            rel = path.relative_to(source).as_posix()
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                result.skipped.append((rel, f"not an image file type ({path.suffix or 'no suffix'})"))
                continue
            records.append((rel, path, category_dir.name))
    if not records and not result.skipped:
        raise CatalogueError(f"{source}: no category sub-folders with images found")
    for rel, path, category in sample(records, limit, seed):
        result.items.append(Item(id=rel, path=str(path), category=category))
    return result


@READERS.register("csv")
def read_csv(source: Path, *, limit: int | None = None, seed: int = 0, **_: object) -> ReadResult:
    """A manifest with columns ``path, category[, x1, y1, x2, y2][, split][, attributes][, id][, product]``.

    Paths are relative to the CSV's folder. ``attributes`` is ``a|b|c`` or a JSON list. Without an
    ``id`` column the path is the id. ``product`` groups photos of the same product (exact-item recall).
    """
    source = Path(source)
    if not source.is_file():
        raise CatalogueError(f"{source}: no such CSV file")
    with open(source, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = {"path", "category"} - set(columns)
        if missing:
            raise CatalogueError(
                f"{source}: missing column(s) {', '.join(sorted(missing))}; found {', '.join(columns) or 'none'} "
                "(expected path, category[, x1, y1, x2, y2][, split][, attributes][, id])"
            )
        box_columns = {"x1", "y1", "x2", "y2"}
        has_box = box_columns <= set(columns)
        if not has_box and box_columns & set(columns):
            raise CatalogueError(f"{source}: a box needs all four columns x1, y1, x2, y2")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    result = ReadResult()
    records = []
    for line, row in enumerate(rows, start=2):
        where = f"line {line}"
        if not row.get("path") or not row.get("category"):
            result.skipped.append((where, "empty path or category"))
            continue
        path = (source.parent / row["path"]).resolve()
        if not path.is_file():
            result.skipped.append((row["path"], f"{where}: image file not found"))
            continue
        box = None
        if has_box and any(row.get(c) for c in ("x1", "y1", "x2", "y2")):
            try:
                box = tuple(float(row[c]) for c in ("x1", "y1", "x2", "y2"))
            except ValueError:
                result.skipped.append((row["path"], f"{where}: box is not four numbers"))
                continue
            if not (box[2] > box[0] and box[3] > box[1]):
                result.skipped.append((row["path"], f"{where}: box needs x1 < x2 and y1 < y2"))
                continue
        attributes: tuple[str, ...] = ()
        raw = row.get("attributes", "")
        if raw:
            try:
                attributes = tuple(json.loads(raw)) if raw.startswith("[") else tuple(
                    a.strip() for a in raw.split("|") if a.strip())
            except json.JSONDecodeError:
                result.skipped.append((row["path"], f"{where}: attributes are not a JSON list"))
                continue
        records.append(Item(id=row.get("id") or row["path"], path=str(path), category=row["category"],
                            split=row.get("split") or None, box=box, attributes=attributes,
                            product=row.get("product") or None))
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise CatalogueError(f"{source}: duplicate item ids {dupes}; add an 'id' column")
    result.items = sample(records, limit, seed)
    return result


def _read_table(path: Path, ncols: int | None = None) -> list[list[str]]:
    """A DeepFashion annotation list: a count line, a header line, then whitespace-separated rows."""
    if not path.is_file():
        raise CatalogueError(f"DeepFashion layout: missing {path}")
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    rows = [line.split() for line in lines[2:] if line.strip()]
    if ncols is not None:
        rows = [r if len(r) == ncols else [" ".join(r[: len(r) - ncols + 1]), *r[len(r) - ncols + 1 :]] for r in rows]
    return rows


@READERS.register("deepfashion")
def read_deepfashion(source: Path, *, limit: int | None = None, seed: int = 0, **_: object) -> ReadResult:
    """DeepFashion "Category and Attribute Prediction Benchmark" layout.

    Reads ``Anno/list_category_cloth.txt``, ``Anno/list_category_img.txt``, ``Anno/list_bbox.txt``,
    ``Eval/list_eval_partition.txt`` and, when present, ``Anno/list_attr_cloth.txt`` +
    ``Anno/list_attr_img.txt`` (attributes labelled 1 are kept). Images are under ``SOURCE/img/``.
    """
    source = Path(source)
    anno = source / "Anno"
    categories = [r[0] for r in _read_table(anno / "list_category_cloth.txt", ncols=2)]
    labels = _read_table(anno / "list_category_img.txt")
    boxes = {r[0]: tuple(float(v) for v in r[1:5]) for r in _read_table(anno / "list_bbox.txt")}
    partition_file = source / "Eval" / "list_eval_partition.txt"
    splits = {r[0]: r[1] for r in _read_table(partition_file)} if partition_file.is_file() else {}
    attr_names: list[str] = []
    if (anno / "list_attr_cloth.txt").is_file():
        attr_names = [r[0] for r in _read_table(anno / "list_attr_cloth.txt", ncols=2)]

    result = ReadResult()
    chosen = sample(labels, limit, seed)
    wanted = {r[0] for r in chosen}
    attributes: dict[str, tuple[str, ...]] = {}
    if attr_names and (anno / "list_attr_img.txt").is_file():
        with open(anno / "list_attr_img.txt", encoding="utf-8") as fh:
            for n, line in enumerate(fh):
                if n < 2:
                    continue
                name, _, rest = line.partition(" ")
                if name in wanted:
                    flags = rest.split()
                    attributes[name] = tuple(a for a, f in zip(attr_names, flags) if f == "1")
    for row in chosen:
        if len(row) < 2:
            result.skipped.append((" ".join(row), "malformed category line"))
            continue
        name, label = row[0], row[1]
        try:
            category = categories[int(label) - 1]
        except (ValueError, IndexError):
            result.skipped.append((name, f"category label {label!r} is not in list_category_cloth.txt"))
            continue
        path = source / name
        if not path.is_file():
            result.skipped.append((name, "image file not found"))
            continue
        box = boxes.get(name)
        if box is not None and not (box[2] > box[0] and box[3] > box[1]):
            result.skipped.append((name, f"empty bounding box {box}"))
            continue
        result.items.append(Item(id=name, path=str(path), category=category, split=splits.get(name),
                                 box=box, attributes=attributes.get(name, ())))
    return result


@READERS.register("deepfashion-inshop")
def read_deepfashion_inshop(source: Path, *, limit: int | None = None, seed: int = 0, **_: object) -> ReadResult:
    """DeepFashion "In-shop Clothes Retrieval Benchmark" layout: the same product in several photos.

    Reads ``Eval/list_eval_partition.txt`` (image, item id, train/query/gallery) and, when present,
    ``Anno/list_bbox_inshop.txt``. The category is the clothes type folder
    (``img/WOMEN/Dresses/id_00000002/...`` -> ``Dresses``), the product is the item id and the split
    is ``train``, ``query`` or ``gallery``: evaluate with ``--protocol held-out --split query
    --gallery-split gallery`` for the benchmark's exact-item Recall@k.
    """
    source = Path(source)
    rows = _read_table(source / "Eval" / "list_eval_partition.txt")
    bbox_file = source / "Anno" / "list_bbox_inshop.txt"
    boxes = ({r[0]: tuple(float(v) for v in r[3:7]) for r in _read_table(bbox_file) if len(r) >= 7}
             if bbox_file.is_file() else {})
    result = ReadResult()
    for row in sample(rows, limit, seed):
        if len(row) < 3:
            result.skipped.append((" ".join(row), "malformed partition line (expected image, item id, status)"))
            continue
        name, product, status = row[0], row[1], row[2]
        parts = Path(name).parts
        path = source / name
        if len(parts) < 4:
            result.skipped.append((name, "path is not img/<GENDER>/<TYPE>/<ITEM>/<FILE>"))
            continue
        if not path.is_file():
            result.skipped.append((name, "image file not found"))
            continue
        box = boxes.get(name)
        if box is not None and not (box[2] > box[0] and box[3] > box[1]):
            box = None
        result.items.append(Item(id=name, path=str(path), category=parts[-3], split=status, box=box,
                                 product=product))
    return result


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FASHION_MNIST_FILES = {"train": "train", "test": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as used by (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise CatalogueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise CatalogueError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(shape))} values)")
    return body.reshape(shape)


def _idx_file(source: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (source / name).is_file():
            return source / name
    raise CatalogueError(
        f"{source}: no {stem}[.gz]; install the Debian package dataset-fashion-mnist "
        "(apt-get install dataset-fashion-mnist) or pass the folder with the IDX files"
    )


@READERS.register("fashion-mnist")
def read_fashion_mnist(source: Path | None = None, *, limit: int | None = None, seed: int = 0,
                       image_dir: Path | None = None, **_: object) -> ReadResult:
    """Fashion-MNIST IDX files (train and test splits), written out as PNG files.

    ``limit`` draws a seeded sample across both splits (proportional to their sizes). Images
    are written to ``image_dir/fashion-mnist/<split>/<index>.png`` once and reused.
    """
    from PIL import Image

    source = Path(source) if source else FASHION_MNIST_DIR
    if image_dir is None:
        raise CatalogueError("the fashion-mnist reader needs an image_dir to write images to")
    data = {}
    for split, stem in _FASHION_MNIST_FILES.items():
        images = read_idx(_idx_file(source, f"{stem}-images-idx3-ubyte"))
        labels = read_idx(_idx_file(source, f"{stem}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise CatalogueError(f"{source}: {split} has {len(images)} images but {len(labels)} labels")
        data[split] = (images, labels)
    records = [(split, i) for split, (images, _) in data.items() for i in range(len(images))]
    result = ReadResult()
    for split, i in tqdm(sample(records, limit, seed), desc="import fashion-mnist", unit="img", disable=None):
        images, labels = data[split]
        label = int(labels[i])
        if label >= len(FASHION_MNIST_CLASSES):
            result.skipped.append((f"{split}/{i}", f"label {label} is not a Fashion-MNIST class"))
            continue
        path = Path(image_dir) / "fashion-mnist" / split / f"{i:05d}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(images[i], "L").save(tmp)
            tmp.replace(path)
        result.items.append(Item(id=f"fashion-mnist/{split}/{i:05d}", path=str(path),
                                 category=FASHION_MNIST_CLASSES[label], split=split))
    return result
