"""How far can re-ranking a base's shortlist please a simulated player, if the weights were known?

``lookalike learn`` re-ranks the base's ``--shortlist`` nearest items by a weighted distance over
components (the base's distance, appearance groups). This script skips the votes: for each player and
each candidate distance (an appearance group, or another model's vectors in the workspace) it re-ranks
the shortlist by ``base + w * candidate`` (both scaled by their median) for a grid of ``w`` and reports
the best approval of the top match. That is an upper bound for what votes can teach a learner that
uses these features; ``any in shortlist`` bounds every re-ranker.

    python benchmarks/taste_ceiling.py -w WS --base efficientnet-lite0 --metric l2 \\
        --players shade,cut,style,category --models pixels,efficientnet-lite0-rmac --out docs/taste_ceiling.json
    python benchmarks/taste_ceiling.py -w WS --base efficientnet-lite0 --metric l2 --catalogue-category \
        --out docs/taste_ceiling_category.json
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from lookalike.extractors.appearance import group_slices
from lookalike.search import SearchEngine
from lookalike.taste.players import catalogue_look, make_player
from lookalike.workspace import Workspace

WEIGHTS = (0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--base", default="efficientnet-lite0")
    parser.add_argument("--metric", default="l2")
    parser.add_argument("--players", default="shade,cut,style,category")
    parser.add_argument("--models", default="", help="other extracted models whose distance is a candidate")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--shortlist", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--catalogue-category", action="store_true",
                        help="also offer the catalogue's own category labels (1 where the two items' categories "
                             "differ), alone and first before each appearance group")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    ws = Workspace(args.workspace)
    engine = SearchEngine(ws)
    ids = list(ws.feature_store(args.base).ids())
    queries = random.Random(args.seed).sample(ids, min(args.queries, len(ids)))
    found = engine.search_vectors(ws.feature_store(args.base).vectors_for(queries), args.base, args.metric,
                                  args.shortlist, exclude=queries)
    category = {item.id: item.category for item in ws.catalogue.get_many(queries).values()}
    involved = sorted({r.item_id for row in found for r in row} | set(queries))
    base = np.array([[r.distance for r in row] for row in found], np.float64)
    base /= np.median(base)

    appearance = ws.feature_store("appearance")
    sample = appearance.vectors_for(random.Random(args.seed + 1).sample(ids, min(5000, len(ids))))
    scale = sample.std(0) + 1e-6
    vectors = dict(zip(involved, appearance.vectors_for(involved) / scale))
    candidates: dict[str, np.ndarray] = {}
    for group, where in group_slices().items():
        candidates[f"appearance:{group}"] = np.array(
            [[((vectors[q][where] - vectors[r.item_id][where]) ** 2).sum() for r in row] for q, row in zip(queries, found)])
    for model in filter(None, args.models.split(",")):
        other = dict(zip(involved, ws.feature_store(model).vectors_for(involved)))
        candidates[model] = np.array([[np.linalg.norm(other[q] - other[r.item_id]) for r in row]
                                      for q, row in zip(queries, found)])

    if args.catalogue_category:  # what a "same category" component could add, alone or before a look
        candidates["catalogue category"] = np.array([[float(r.category != category[q]) for r in row]
                                                     for q, row in zip(queries, found)])
        for name in [n for n in candidates if n.startswith("appearance:")]:
            look_distance = candidates[name] / max(float(np.median(candidates[name])), 1e-12)
            candidates[f"category + {name}"] = 100 * candidates["catalogue category"] + look_distance
    look = catalogue_look(ws)
    rows = []
    for kind in args.players.split(","):
        player = make_player(kind, ws, seed=0)
        likes = np.array([[player.judge(q, category[q], r.item_id, r.category, look) for r in row]
                          for q, row in zip(queries, found)])
        top = np.arange(len(queries))
        row = {"player": kind, "base": float(likes[:, 0].mean()), "any_in_shortlist": float(likes.any(1).mean()),
               "best": {}}
        for name, distance in candidates.items():
            distance = distance / max(float(np.median(distance)), 1e-12)
            scores = {w: float(likes[top, (base + w * distance).argmin(1)].mean()) for w in WEIGHTS}
            w = max(scores, key=scores.get)
            row["best"][name] = {"weight": w, "approval": scores[w]}
        best = max(row["best"].items(), key=lambda kv: kv[1]["approval"])
        print(f"{kind:9s} base {row['base']:.1%}  any in top {args.shortlist}: {row['any_in_shortlist']:.1%}  "
              f"best re-ranking {best[1]['approval']:.1%} ({best[0]}, w={best[1]['weight']})", flush=True)
        for name, b in sorted(row["best"].items(), key=lambda kv: -kv[1]["approval"]):
            print(f"    {name:28s} {b['approval']:.1%} (w={b['weight']})")
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps({"base": f"{args.base}/{args.metric}", "queries": len(queries),
                                        "shortlist": args.shortlist, "weights": WEIGHTS,
                                        "catalogue_category": args.catalogue_category, "players": rows}, indent=1))


if __name__ == "__main__":
    main()
