"""``lookalike map``: a 2-D t-SNE map of a seeded sample of the catalogue, with thumbnails.

Saved in ``WS/maps/<model>/``: ``map.json`` (points, categories, settings, trustworthiness),
``atlas.png`` (the sample's thumbnails in a grid, for the web page) and ``map.png`` (a static
picture for reports). Trustworthiness (scikit-learn) says how well the map keeps each item's
nearest neighbours: 1.0 is perfect, about 0.5 is random.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, FeatureStoreError, ImageError
from .workspace import Workspace

ATLAS_THUMB = 32


def map_dir(workspace: Workspace, model: str) -> Path:
    return workspace.root / "maps" / model


def map_file(workspace: Workspace, model: str, name: str) -> Path:
    path = map_dir(workspace, model) / name
    if model not in workspace.extracted_models() or not path.is_file():
        raise FeatureStoreError(f"no map for {model!r}; make one with: lookalike map --model {model}")
    return path


def list_maps(workspace: Workspace) -> list[str]:
    base = workspace.root / "maps"
    return sorted(p.parent.name for p in base.glob("*/map.json")) if base.is_dir() else []


def load_map(workspace: Workspace, model: str) -> dict[str, Any]:
    return json.loads(map_file(workspace, model, "map.json").read_text())


def make_map(workspace: Workspace, model: str, *, sample: int = 2000, seed: int = 0, perplexity: float = 30.0,
             metric: str = "euclidean", log=print) -> dict[str, Any]:
    """Compute, save and return the map of ``model`` over a seeded sample of ``sample`` items."""
    from sklearn.manifold import TSNE, trustworthiness

    if sample < 10:
        raise ConfigError(f"--sample must be at least 10, got {sample}")
    ids, vectors = workspace.feature_store(model).load()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(ids), size=min(sample, len(ids)), replace=False))
    if len(chosen) < 10:
        raise ConfigError(f"{model} has only {len(chosen)} vectors; a map needs at least 10")
    ids, x = ids[chosen], vectors[chosen].astype(np.float64)
    perplexity = min(perplexity, (len(ids) - 1) / 3)
    started = time.perf_counter()
    log(f"t-SNE of {len(ids)} {model} vectors ({x.shape[1]}-d, perplexity {perplexity:.0f})")
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, metric=metric,
              n_jobs=1).fit_transform(x)
    trust = float(trustworthiness(x, xy, n_neighbors=min(10, len(ids) // 2 - 1)))
    xy = (xy - xy.min(0)) / np.maximum(xy.max(0) - xy.min(0), 1e-9)  # 0..1 square
    items = workspace.catalogue.get_many(list(ids))
    categories = sorted({items[i].category for i in ids})
    out = map_dir(workspace, model)
    out.mkdir(parents=True, exist_ok=True)
    columns = _atlas(workspace, items, list(ids), out / "atlas.png")
    data = {"model": model, "sample": len(ids), "seed": seed, "perplexity": perplexity, "metric": metric,
            "trustworthiness": trust, "seconds": round(time.perf_counter() - started, 1),
            "categories": categories, "atlas": {"thumb": ATLAS_THUMB, "columns": columns},
            "points": [{"item_id": str(i), "x": round(float(a), 5), "y": round(float(b), 5),
                        "category": items[i].category} for i, (a, b) in zip(ids, xy)]}
    (out / "map.json").write_text(json.dumps(data))
    static_png(data, workspace, out / "map.png")
    log(f"saved {out}/map.json, atlas.png, map.png; trustworthiness {trust:.3f}")
    return data


def _atlas(workspace: Workspace, items: dict, ids: list[str], path: Path) -> int:
    from PIL import Image

    from .images import load_image

    columns = max(1, math.ceil(math.sqrt(len(ids))))
    rows = math.ceil(len(ids) / columns)
    atlas = Image.new("RGB", (columns * ATLAS_THUMB, rows * ATLAS_THUMB), "white")
    for n, item_id in enumerate(ids):
        item = items[item_id]
        try:
            img = load_image(workspace.catalogue.resolve(item.path), item.box)
        except ImageError:
            continue
        img.thumbnail((ATLAS_THUMB, ATLAS_THUMB))
        x, y = (n % columns) * ATLAS_THUMB, (n // columns) * ATLAS_THUMB
        atlas.paste(img, (x + (ATLAS_THUMB - img.width) // 2, y + (ATLAS_THUMB - img.height) // 2))
    atlas.save(path)
    return columns


def static_png(data: dict[str, Any], workspace: Workspace, path: Path, *, size: int = 1400) -> None:
    """The map as one picture: thumbnails at their points, framed in their category's colour."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from PIL import Image, ImageDraw, ImageOps

    atlas = Image.open(path.parent / "atlas.png")
    thumb, columns = data["atlas"]["thumb"], data["atlas"]["columns"]
    cmap = colormaps["tab10" if len(data["categories"]) <= 10 else "tab20"]
    colour = {c: tuple(int(255 * v) for v in cmap(n % cmap.N)[:3]) for n, c in enumerate(data["categories"])}
    legend_w = 220
    canvas = Image.new("RGB", (size + legend_w, size), "white")
    span = size - thumb - 8
    for n, point in enumerate(data["points"]):
        x, y = (n % columns) * thumb, (n // columns) * thumb
        tile = ImageOps.expand(atlas.crop((x, y, x + thumb, y + thumb)).resize((thumb - 4, thumb - 4)), 2,
                               fill=colour[point["category"]])
        canvas.paste(tile, (4 + int(point["x"] * span), 4 + int(point["y"] * span)))
    draw = ImageDraw.Draw(canvas)
    draw.text((size + 10, 10), f"{data['model']}: t-SNE of {data['sample']} items", fill="black")
    draw.text((size + 10, 28), f"trustworthiness {data['trustworthiness']:.3f}", fill="black")
    for n, c in enumerate(data["categories"]):
        draw.rectangle([size + 10, 56 + 20 * n, size + 24, 70 + 20 * n], fill=colour[c])
        draw.text((size + 30, 57 + 20 * n), c, fill="black")
    canvas.save(path)
