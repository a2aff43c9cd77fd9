"""``lookalike demo``: a Fashion-MNIST workspace, extracted, indexed and searched, in one command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .catalogue import FASHION_MNIST_DIR, import_catalogue
from .features import extract_features
from .metrics import Metric
from .search import SearchEngine
from .workspace import Workspace

BUNDLED_SAMPLE = Path(__file__).parent / "data" / "fashion-mnist-sample"
DEFAULT_MODELS = ("pixels", "efficientnet-lite0")


def fashion_mnist_source() -> tuple[Path, str]:
    """The Debian package's Fashion-MNIST if installed, else the bundled 600-image sample."""
    if (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        return FASHION_MNIST_DIR, "Fashion-MNIST (Debian package dataset-fashion-mnist)"
    return BUNDLED_SAMPLE, "the bundled 600-image Fashion-MNIST sample (dataset-fashion-mnist is not installed)"


def run_demo(workspace: Workspace, *, limit: int = 5000, seed: int = 0, models: tuple[str, ...] = DEFAULT_MODELS,
             examples: int = 3, k: int = 5, echo: Callable[[str], None] = print) -> dict:
    """Import, extract, index and search; prints as it goes and returns what it did."""
    source, described = fashion_mnist_source()
    echo(f"== 1. import {limit} items from {described} into {workspace.root}")
    summary = import_catalogue(workspace.catalogue, "fashion-mnist", source, limit=limit, seed=seed,
                               image_dir=workspace.images_dir)
    for line in summary.lines():
        echo(line)

    echo("== 2. extract feature vectors")
    for model in models:
        result = extract_features(workspace.catalogue, workspace.create_extractor(model), workspace.feature_store(model))
        for line in result.lines():
            echo(line)

    echo("== 3. build L1 / L2 / Hamming indexes, measured (recall@10 vs exact, latency, memory)")
    from .index.quality import measure_index

    engine = SearchEngine(workspace)
    for model in models:
        for metric in Metric:
            index = engine.build_index(model, metric)
            report = measure_index(index, workspace.feature_store(model), queries=200, single=50, seed=seed)
            echo(f"{model:>20} {report.line()}")
    from .updates import export_neighbours

    feed = export_neighbours(workspace, models[-1], Metric.L2, k, workspace.root / "demo-neighbours.jsonl",
                             engine=engine, progress=False)
    echo(f"'similar items' feed: {feed.line()}")

    echo(f"== 4. example searches: {examples} random catalogue items, their {k} nearest items per system")
    ids = workspace.catalogue.ids()
    rng = np.random.default_rng(seed)
    queries = [ids[i] for i in rng.choice(len(ids), size=min(examples, len(ids)), replace=False)]
    shown = []
    for item_id in queries:
        item = workspace.catalogue.get(item_id)
        echo(f"query {item_id} ({item.category})")
        for model in models:
            for metric in Metric:
                result = engine.search_item(item_id, model, metric, k)
                cats = ", ".join(f"{m.category} {m.distance:.3g}" for m in result.results)
                hits = sum(m.category == item.category for m in result.results)
                echo(f"  {model:>20} {metric.value:>8} [{hits}/{k} same category]: {cats}")
                shown.append(result.to_dict())
    from .evaluation import evaluate

    n_queries = min(1000, len(ids))
    echo(f"== 5. evaluation: is the nearest item of {n_queries} random items in the same category?")
    report = evaluate(workspace, list(models), list(Metric), subset=None, queries=n_queries, seed=seed)
    echo(report.table())
    photo = photo_search(workspace, engine, models[-1], seed=seed, k=k, echo=echo)
    echo(f"done. Try: lookalike search --item {queries[0]} --model {models[-1]} --metric hamming -k 5 "
         f"-w {workspace.root}")
    return {"import": summary, "searches": shown, "evaluation": report.to_dict(), "photo": photo}


def photo_search(workspace: Workspace, engine: SearchEngine, model: str, *, seed: int = 0, k: int = 5,
                 localiser_photos: int = 600, echo: Callable[[str], None] = print) -> dict:
    """A phone-like photo of a test item, searched with no box: the item is found, then searched.

    Trains the workspace's item localiser on ``localiser_photos`` synthetic photos of training items first,
    unless it has one. Writes ``WS/demo-photo/search.png``: the photo with the boxes, and the matches.
    """
    from .photos import box_iou, make_query_photos, read_query_photos
    from .photos.localise import TrainedLocaliser, train_localiser

    folder = workspace.root / "demo-photo"
    if not (workspace.root / "localiser" / TrainedLocaliser.META).is_file():
        train_ids = sorted(i.id for i in workspace.catalogue.items() if i.split != "test")
        cut = max(1, len(train_ids) // 10)
        echo(f"== 6. train the item localiser on {localiser_photos} synthetic photos of training items")
        meta = train_localiser(workspace, train_ids[cut:], train_ids[:cut], workspace.root / "localiser",
                               photos=localiser_photos, val_photos=100, epochs=15, seed=seed, log=lambda _l: None)
        echo(f"localiser: validation mean IoU {meta['best_val_mean_iou']:.2f} ({meta['seconds']:.0f} s)")
        engine._localiser = None
    split = "test" if any(True for _ in workspace.catalogue.items(split="test")) else None
    photo = read_query_photos(make_query_photos(workspace, folder, count=1, split=split, seed=seed + 1,
                                                progress=False))[0]
    result = engine.search_image(photo.path, model, "l2", k, box="auto")
    query = result.query
    echo(f"== 7. search by photo: {photo.path} shows a {photo.category} (true box "
         f"{[round(v) for v in photo.box]}); no box given")
    if query["box"] is None:
        echo("no item found: searched the whole photo")
    else:
        echo(f"item found at {[round(v) for v in query['box']]} (IoU {box_iou(tuple(query['box']), photo.box):.2f} "
             f"with the true box; {len(query['candidates'])} candidate box(es))")
    hits = sum(m.category == photo.category for m in result.results)
    echo(f"  {model} l2 [{hits}/{k} same category]: " + ", ".join(f"{m.category} {m.distance:.3g}"
                                                                  for m in result.results))
    picture = folder / "search.png"
    photo_search_picture(photo, result, picture)
    echo(f"picture: {picture}")
    return {"photo": str(photo.path), "true_box": list(photo.box), "result": result.to_dict(), "picture": str(picture)}


def photo_search_picture(photo, result, path: Path, thumb: int = 128) -> None:
    """The photo with the true box (green), the candidates (blue) and the box searched (yellow), then the matches."""
    from PIL import Image, ImageDraw, ImageOps

    from .images import load_image

    img = load_image(photo.path)
    draw = ImageDraw.Draw(img)
    draw.rectangle(photo.box, outline=(46, 160, 67), width=2)
    for c in result.query.get("candidates", []):
        draw.rectangle(c["box"], outline=(0, 150, 255), width=1)
    if result.query["box"]:
        draw.rectangle(result.query["box"], outline=(255, 196, 0), width=3)
    img.thumbnail((2 * thumb, 2 * thumb))
    sheet = Image.new("RGB", (img.width + 8 + len(result.results) * (thumb + 4), max(img.height, thumb)), "white")
    sheet.paste(img, (0, 0))
    for n, m in enumerate(result.results):
        match = load_image(m.path).resize((thumb - 8, thumb - 8))
        colour = (46, 160, 67) if m.category == photo.category else (207, 34, 46)
        sheet.paste(ImageOps.expand(match, border=4, fill=colour), (img.width + 8 + n * (thumb + 4), 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
