"""Extraction throughput: one process vs Dask LocalCluster with 1 and 2 workers, on the same cores.

A fresh workspace of N Fashion-MNIST items; each run extracts every item into its own store (cluster start-up
included, ONNX export cached beforehand so no run pays for it), and the vectors are checked equal.

    python benchmarks/bench_dask.py -n 2000 --model efficientnet-lite0 --out docs/bench_dask.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from lookalike.catalogue import import_catalogue
    from lookalike.catalogue.readers import FASHION_MNIST_DIR
    from lookalike.extractors import create_extractor
    from lookalike.features import extract_features
    from lookalike.workspace import Workspace

    ws = Workspace(Path(tempfile.mkdtemp(prefix="bench-dask-")) / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", FASHION_MNIST_DIR, limit=args.n, seed=0, image_dir=ws.images_dir)
    extractor = create_extractor(args.model)
    extractor.session()  # export the ONNX graph once, before any timing
    rows = []

    def run(label: str, dask: str | None) -> np.ndarray:
        store = ws.feature_store(f"{args.model}-{label.replace(' ', '-')}")
        started = time.perf_counter()
        summary = extract_features(ws.catalogue, create_extractor(args.model), store, progress=False, dask=dask,
                                   models_dir=ws.models_dir)
        seconds = time.perf_counter() - started
        row = {"run": label, "images": summary.computed, "seconds": round(seconds, 2),
               "images_per_s": round(summary.computed / seconds, 1), "cores": os.cpu_count()}
        print(json.dumps(row), flush=True)
        rows.append(row)
        ids, vectors = store.load()
        return vectors[np.argsort(ids)]

    reference = run("one process", None)
    for n in (int(w) for w in args.workers.split(",")):
        vectors = run(f"dask {n} workers", f"local:{n}")
        rows[-1]["max_abs_diff"] = float(np.abs(vectors - reference).max())
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "items": args.n, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
