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
import torch

from lookalike.training.trainer import TrainConfig, training_split
from lookalike.workspace import Workspace


def nearest_hits(queries: torch.Tensor, gallery: torch.Tensor, yq: np.ndarray, yg: np.ndarray, p: int) -> float:
    """Share of queries whose nearest gallery vector (Minkowski ``p``) has the query's category."""
    nearest = torch.cat([torch.cdist(chunk, gallery, p=p).argmin(1) for chunk in queries.split(250)])
    return float((yg[nearest.numpy()] == yq).mean())


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
    yq, yg = np.array([labels[i] for i in q]), np.array([labels[i] for i in g])
    print(f"{len(q)} validation queries of {args.split_of}, {len(g)} training items as the gallery")
    for m in models:
        store = ws.feature_store(m)
        queries = torch.from_numpy(store.vectors_for(q).astype(np.float32))
        gallery = torch.from_numpy(store.vectors_for(g).astype(np.float32))
        scores = {"l1": nearest_hits(queries, gallery, yq, yg, 1), "l2": nearest_hits(queries, gallery, yq, yg, 2),
                  "hamming": nearest_hits((queries > 0).float(), (gallery > 0).float(), yq, yg, 1)}
        print(f"{m:<28} " + "  ".join(f"{k} {v:.1%}" for k, v in scores.items()), flush=True)


if __name__ == "__main__":
    main()
