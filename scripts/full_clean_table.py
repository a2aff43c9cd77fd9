"""Top-1 same-category accuracy of every test item against every training item (the whole split).

Usage: python scripts/full_clean_table.py -w WS --models A,B [--metrics l2,hamming] [--split test]

``lookalike evaluate`` also computes P@k, R@k and mAP@R, which need each query's R nearest items (6,000
per query at this size) and take far longer; this measures top-1 alone, through the same
RetrievalEvaluator that training uses to choose its checkpoint.
"""

from __future__ import annotations

import argparse
import time

from lookalike.evaluation import RetrievalEvaluator
from lookalike.metrics import Metric
from lookalike.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--metrics", default="l2,hamming")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    items = {i.id: i for i in ws.catalogue.items()}
    print(f"{'model':<28}" + "".join(f"{m:>10}" for m in args.metrics.split(",")))
    for model in args.models.split(","):
        store = ws.feature_store(model)
        ids = set(store.load()[0].tolist())
        queries = sorted(i for i in ids if items[i].split == args.split)
        gallery = sorted(i for i in ids if items[i].split != args.split)
        cells = []
        for metric in Metric.parse_list(args.metrics):
            started = time.perf_counter()
            evaluator = RetrievalEvaluator(store.vectors_for(queries), [items[i].category for i in queries],
                                           store.vectors_for(gallery), gallery, [items[i].category for i in gallery],
                                           metric=metric, name=model)
            cells.append(f"{evaluator()['top1']:>9.2%} ")
            print(f"  ({model} {metric.value}: {len(queries)} queries x {len(gallery)} gallery items, "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)
        print(f"{model:<28}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
