"""Evaluation speed and memory: 20,000 gallery items x 1,000 queries at 4,096 dimensions, L1 / L2 / Hamming.

Synthetic vectors (ReLU-like, 10 categories) in a temporary workspace, so only the evaluation is timed.

Usage: python benchmarks/bench_evaluate.py [--n 20000] [--queries 1000] [--dim 4096] [--out docs/bench_evaluate.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.catalogue import Item
from lookalike.evaluation import evaluate
from lookalike.extractors.base import Extractor, ExtractorConfig, PreprocessConfig
from lookalike.workspace import Workspace


class Synthetic(Extractor):
    def __init__(self, dim: int):
        super().__init__(ExtractorConfig("synthetic", "none", "none", dim, PreprocessConfig(8), "none"))

    def build_torch(self):
        raise RuntimeError("synthetic vectors are written to the store directly; there is no network")

    def weights_checksum(self) -> str:
        return hashlib.sha256(b"synthetic").hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "bench_evaluate.json")
    args = parser.parse_args()
    ws = Workspace(Path(tempfile.mkdtemp(prefix="lookalike-bench-eval-")) / "ws")
    rng = np.random.default_rng(0)
    cats = rng.integers(0, 10, size=args.n)
    centres = rng.normal(size=(10, args.dim)).astype(np.float32)
    ws.catalogue.upsert([Item(f"i{n}", "x.png", f"c{c}") for n, c in enumerate(cats)])
    store = ws.feature_store("synthetic")
    for start in range(0, args.n, 5000):
        block = np.maximum(centres[cats[start:start + 5000]] + rng.normal(scale=3, size=(len(cats[start:start + 5000]), args.dim)), 0)
        store.append(Synthetic(args.dim), [f"i{n}" for n in range(start, start + len(block))], block.astype(np.float32))
    rows = []
    for metric in ("l1", "l2", "hamming"):
        t0 = time.perf_counter()
        report = evaluate(ws, ["synthetic"], [metric], subset=args.n, queries=args.queries, seed=0)
        seconds = time.perf_counter() - t0
        rows.append({"metric": metric, "seconds": round(seconds, 2), "top1": round(report.rows[0].top1, 4)})
        print(rows[-1], flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"machine": {"cpus": os.cpu_count()}, "gallery": args.n, "queries": args.queries, "dim": args.dim,
           "vectors_mb": round(args.n * args.dim * 4 / 2**20), "peak_rss_mb": round(peak_mb), "rows": rows}
    args.out.write_text(json.dumps(out, indent=2))
    print(out)


if __name__ == "__main__":
    main()
