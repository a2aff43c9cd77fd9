"""Search throughput per metric: faiss flat indexes vs numpy brute force, at several catalogue sizes.

Usage: python benchmarks/bench_search.py [--sizes 20000,1000000] [--dim 1280] [--out docs/bench_search.json]

Vectors are seeded random ReLU-like features (non-negative, L2-normalised, like the EfficientNet
extractor's output); queries are held-out vectors of the same distribution. Reports queries/s for
single queries (1 and all faiss threads) and for a batch of queries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from lookalike.index import create_index
from lookalike.metrics import Metric


def features(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        block = np.maximum(rng.standard_normal((min(100_000, n - start), dim), dtype=np.float32), 0)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(fn, repeat: int) -> float:
    """Seconds per call (median of ``repeat``) after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,1000000")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", default="docs/bench_search.json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        data = features(n, args.dim, rng)
        queries = features(args.batch, args.dim, rng)
        for metric in Metric:
            faiss_index = create_index("faiss-flat", args.dim, metric)
            t = time.perf_counter()
            faiss_index.add(data)
            build = time.perf_counter() - t
            row = {"n": n, "dim": args.dim, "metric": metric.value, "faiss_build_s": round(build, 3)}
            for threads in ("1", str(os.cpu_count())):
                os.environ["LOOKALIKE_FAISS_THREADS"] = threads
                per = timed(lambda: faiss_index.search(queries[:1], 10), repeat=5 if n > 100_000 else 50)
                row[f"faiss_single_qps_{threads}t"] = round(1 / per, 2)
            os.environ.pop("LOOKALIKE_FAISS_THREADS")
            per = timed(lambda: faiss_index.search(queries, 10), repeat=1 if n > 100_000 else 3)
            row["faiss_batch_qps"] = round(len(queries) / per, 1)
            del faiss_index
            np_index = create_index("numpy-flat", args.dim, metric)
            np_index.add(data)
            per = timed(lambda: np_index.search(queries[:1], 10), repeat=2 if n > 100_000 else 10)
            row["numpy_single_qps"] = round(1 / per, 3)
            del np_index
            rows.append(row)
            print(json.dumps(row), flush=True)
        del data
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                          "python": sys.version.split()[0]}, "rows": rows}
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
