"""Street-to-shop training data: backbone vectors of synthetic phone photos of catalogue items.

Each training item gets ``views`` photos (``photos.synthesis``: cut out, recoloured, rotated, on clutter,
blurred, JPEG), each cropped to a box near the item's true box, as a user or the localiser would draw it.
Their frozen-backbone vectors are computed once, in resumable chunks, and saved beside the model; the
catalogue side stays the clean catalogue image. Photos are drawn with a seed per (item, view), so a
resumed or repeated run makes the same ones.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

CHUNK = 1024  # items per saved chunk of view vectors


def _view_arrays(task: tuple) -> list[np.ndarray]:
    """Worker: the preprocessed input arrays of one item's photo views (runs in a separate process)."""
    from ..extractors import create_extractor
    from ..images import load_image
    from ..photos.synthesis import PhotoStyle, jitter_box, make_photo

    path, box, other_path, other_box, seeds, backbone, models_dir, photo_size, given_only, photographs = task
    key = (backbone, models_dir)
    extractor = _WORKER_CACHE.get(key) or _WORKER_CACHE.setdefault(key, create_extractor(backbone, models_dir=models_dir))
    item = load_image(path, box)
    second = load_image(other_path, other_box) if other_path else None
    arrays = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        photo = make_photo(item, rng, PhotoStyle(size=(photo_size, photo_size), photographs=photographs), second)
        if given_only:
            crop_box = photo.box
        elif rng.random() < 0.85:
            crop_box = jitter_box(photo.box, photo.image.size, rng, 0.15)
        else:  # a loose box, with more of the scene
            x1, y1, x2, y2 = photo.box
            grow = rng.uniform(0.2, 0.6)
            w, h = (x2 - x1) * grow / 2, (y2 - y1) * grow / 2
            crop_box = (max(0, x1 - w), max(0, y1 - h), min(photo_size, x2 + w), min(photo_size, y2 + h))
        crop = photo.image.crop(tuple(round(v) for v in crop_box))
        arrays.append(extractor.preprocess(crop).astype(np.float16))
    return arrays


_WORKER_CACHE: dict = {}


def photo_view_vectors(workspace, backbone, item_ids: list[str], views: int, seed: int, directory: Path, *,
                       prefix: str = "photo-views", photo_size: int = 256, given_only: bool = False,
                       photographs: float = 0.0, workers: int | None = None,
                       log: Callable[[str], None] = print) -> np.ndarray:
    """``(len(item_ids), views, dim)`` float32 backbone vectors of synthetic photos of the items
    (``photographs``: the share set in real photographs instead of drawn clutter).

    Saved in ``directory`` as ``{prefix}-NNNNN.npy`` chunks; chunks already there are reused (resume).
    """
    catalogue = workspace.catalogue
    items = catalogue.get_many(item_ids)
    directory.mkdir(parents=True, exist_ok=True)
    chunks = []
    workers = workers or max(1, min(2, multiprocessing.cpu_count()))
    todo = [start for start in range(0, len(item_ids), CHUNK)
            if not (directory / f"{prefix}-{start // CHUNK:05d}.npy").is_file()]
    if todo:
        log(f"{prefix}: {views} synthetic photo(s) of each of {len(item_ids)} items through {backbone.name} "
            f"({len(todo)} chunk(s) of {CHUNK} to make)")
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if todo else None
    try:
        bar = tqdm(total=len(todo) * CHUNK * views, desc=prefix, unit="photo", disable=None)
        for start in range(0, len(item_ids), CHUNK):
            path = directory / f"{prefix}-{start // CHUNK:05d}.npy"
            if path.is_file():
                chunks.append(np.load(path))
                continue
            tasks = []
            for n, item_id in enumerate(item_ids[start : start + CHUNK], start):
                item = items[item_id]
                other = items[item_ids[(n * 7919 + 13) % len(item_ids)]]  # a deterministic second item
                tasks.append((str(catalogue.resolve(item.path)), item.box,
                              str(catalogue.resolve(other.path)) if other.id != item.id else None, other.box,
                              [[seed, n, v] for v in range(views)], backbone.name, str(workspace.models_dir),
                              photo_size, given_only, photographs))
            vectors, pending = [], []
            for arrays in executor.map(_view_arrays, tasks, chunksize=8):
                pending += arrays
                if len(pending) >= 64:
                    vectors.append(backbone.embed_arrays(np.stack(pending).astype(np.float32)))
                    bar.update(len(pending))
                    pending = []
            if pending:
                vectors.append(backbone.embed_arrays(np.stack(pending).astype(np.float32)))
                bar.update(len(pending))
            chunk = np.concatenate(vectors).reshape(len(tasks), views, -1).astype(np.float16)
            tmp = directory / f".{prefix}-{start // CHUNK:05d}.tmp.npy"
            np.save(tmp, chunk)
            tmp.replace(path)
            chunks.append(chunk)
        bar.close()
    finally:
        if executor is not None:
            executor.shutdown()
    return np.concatenate(chunks).astype(np.float32) if chunks else np.empty((0, views, backbone.dim), np.float32)
