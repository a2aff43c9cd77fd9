"""Validation retrieval: choose models without touching the test queries.

Queries are a trained model's validation items (held out of its training), the gallery is a seeded
sample of its training items; prints top-1 same-category accuracy under L1, L2 and Hamming for each
listed model (all must have vectors for those items). The split is the model's own, as in training;
other models trained with the same --seed (any --init-seed) on the same backbone items share it.

Usage: python scripts/validation_retrieval.py -w WS --split-of MODEL --models A,B [--queries 2000] [--gallery 10000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from lookalike.evaluation import RetrievalEvaluator
from lookalike.metrics import Metric
from lookalike.training.trainer import TrainConfig, training_split
from lookalike.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--split-of", required=True, help="trained model whose validation split gives the queries")
    parser.add_argument("--models", required=True)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--gallery", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ws = Workspace(args.workspace)
    saved = json.loads((ws.models_dir / args.split_of / "model.json").read_text())["config"]
    config = TrainConfig.from_saved(saved)
    models = args.models.split(",")
    train_ids, val_ids, _, labels = training_split(ws, config)
    rng = np.random.default_rng(args.seed)
    q = sorted(rng.choice(val_ids, min(args.queries, len(val_ids)), replace=False).tolist())
    g = sorted(rng.choice(train_ids, min(args.gallery, len(train_ids)), replace=False).tolist())
    print(f"{len(q)} validation queries of {args.split_of}, {len(g)} training items as the gallery")
    for m in models:  # the same evaluator object training uses to choose its checkpoint
        store = ws.feature_store(m)
        queries, gallery = store.vectors_for(q), store.vectors_for(g)
        scores = {metric.value: RetrievalEvaluator(queries, [labels[i] for i in q], gallery, g, [labels[i] for i in g],
                                                   metric=metric, name=m)()["top1"] for metric in Metric}
        print(f"{m:<28} " + "  ".join(f"{k} {v:.1%}" for k, v in scores.items()), flush=True)


if __name__ == "__main__":
    main()
