"""``lookalike demo``: a Fashion-MNIST workspace, extracted, indexed and searched, in one command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .catalogue import FASHION_MNIST_DIR, import_catalogue
from .extractors import create_extractor
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
        result = extract_features(workspace.catalogue, create_extractor(model), workspace.feature_store(model))
        for line in result.lines():
            echo(line)

    echo("== 3. build L1 / L2 / Hamming indexes")
    engine = SearchEngine(workspace)
    for model in models:
        for metric in Metric:
            index = engine.build_index(model, metric)
            echo(f"{model:>20} {metric.value:>8}: {index.index.ntotal} items ({index.meta.backend})")

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
    echo(f"done. Try: lookalike search --item {queries[0]} --model {models[-1]} --metric hamming -k 5 "
         f"-w {workspace.root}")
    return {"import": summary, "searches": shown, "evaluation": report.to_dict()}
