"""Approximate vs exact indexes on real feature vectors: build time, memory, recall@10, latency, throughput.

Usage:
    python benchmarks/make_real_vectors.py --n 1001000 --out /data/lite0-1m.npy
    python benchmarks/bench_ann.py --vectors /data/lite0-1m.npy --n 1000000 --out docs/bench_ann.json

The first ``--n`` rows are indexed; the queries are ``--query-vectors`` (made the same way with another
seed: other augmented views of the same products, never indexed), else the last ``--queries`` rows of the
file. Each backend x metric runs in its own process, so its
peak RSS is its own. Ground truth is exact search (faiss, streamed in chunks), cached next to the vectors.
Recall is tie-aware (a result counts when its distance is within the true 10th distance). Single queries
use one thread (measured fastest on 2 cores), batches use every core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lookalike.index import create_index
from lookalike.index.quality import tie_aware_recall
from lookalike.metrics import Metric

DEFAULT_CONFIGS = "faiss-flat;faiss-ivf;faiss-ivf:nprobe=64;faiss-hnsw;faiss-hnsw:efSearch=128"


QUERY_FILE: Path | None = None  # --query-vectors


def load(path: Path, n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(path, mmap_mode="r")
    if QUERY_FILE is not None:
        q = np.load(QUERY_FILE, mmap_mode="r")
        if n > len(data) or queries > len(q):
            raise SystemExit(f"need {n:,} vectors and {queries:,} queries; the files have {len(data):,} and {len(q):,}")
        return data[:n], np.ascontiguousarray(q[:queries])
    if n + queries > len(data):
        raise SystemExit(f"{path} has {len(data):,} rows; --n {n:,} + --queries {queries:,} needs more")
    return data[:n], np.ascontiguousarray(data[len(data) - queries :])


def truth(path: Path, n: int, queries: int, metric: Metric, k: int = 10) -> np.ndarray:
    """Exact k-th nearest distances of every query (cached)."""
    tag = f"-{QUERY_FILE.stem}" if QUERY_FILE is not None else ""
    cache = path.with_name(f"{path.stem}.truth-{metric.value}-{n}-{queries}{tag}.npy")
    if cache.is_file():
        return np.load(cache)
    data, q = load(path, n, queries)
    best = np.full((len(q), 0), np.inf, np.float32)
    for start in range(0, n, 100_000):
        index = create_index("faiss-flat", data.shape[1], metric)
        index.add(np.asarray(data[start : start + 100_000]))
        d, _ = index.search(q, k)
        best = np.sort(np.concatenate([best, d], 1), 1)[:, :k]
    np.save(cache, best)
    return best


def run_one(path: Path, n: int, queries: int, backend: str, metric: Metric, params: dict, single: int) -> dict:
    data, q = load(path, n, queries)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    index = create_index(backend, data.shape[1], metric, **params)
    if not index.is_trained:  # a seeded sample of the size the backend asks for (IVF: 50 a cell)
        rows = np.sort(np.random.default_rng(0).choice(n, index.training_size(n), replace=False))
        index.train(np.asarray(data[rows]), total=n)
    for start in range(0, n, 65536):
        index.add(np.asarray(data[start : start + 65536]))
    build = time.perf_counter() - started
    os.environ["LOOKALIKE_FAISS_THREADS"] = str(os.cpu_count())
    started = time.perf_counter()
    found, _ = index.search(q, 10)
    batch_qps = len(q) / (time.perf_counter() - started)
    os.environ["LOOKALIKE_FAISS_THREADS"] = "1"
    times = []
    for row in q[:single]:
        t0 = time.perf_counter()
        index.search(row[None, :], 10)
        times.append((time.perf_counter() - t0) * 1000)
    return {"backend": backend, "metric": metric.value, "params": index.params, "n": n, "dim": int(data.shape[1]),
            "build_s": round(build, 2), "memory_mb": round(index.memory_bytes() / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1),
            "recall_at_10": round(tie_aware_recall(found, truth(path, n, queries, metric), 10), 4),
            "single_p50_ms": round(float(np.percentile(times, 50)), 3),
            "single_p99_ms": round(float(np.percentile(times, 99)), 3),
            "single_qps": round(1000 / float(np.mean(times)), 1), "batch_qps": round(batch_qps, 1)}


def parse_config(text: str) -> tuple[str, dict]:
    backend, _, params = text.partition(":")
    return backend.strip(), dict(p.split("=") for p in params.split(",") if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--query-vectors", type=Path, default=None,
                        help="queries from this file (make_real_vectors.py with another --seed)")
    parser.add_argument("--single", type=int, default=200, help="single queries timed (default 200)")
    parser.add_argument("--metrics", default="l2,l1,hamming")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="BACKEND[:NAME=V,...];... ")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_ann.json"))
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one run, JSON on stdout
    args = parser.parse_args()
    global QUERY_FILE
    QUERY_FILE = args.query_vectors
    if args.one is not None:
        backend, metric, params = json.loads(args.one)
        print(json.dumps(run_one(args.vectors, args.n, args.queries, backend, Metric.parse(metric), params,
                                 args.single)))
        return
    rows = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    for metric in Metric.parse_list(args.metrics):
        truth(args.vectors, args.n, args.queries, metric)  # cached before the timed runs
        for config in args.configs.split(";"):
            backend, params = parse_config(config)
            key = (backend, metric.value, args.n, json.dumps(params, sort_keys=True))
            rows = [r for r in rows if (r["backend"], r["metric"], r["n"], json.dumps(r.get("asked", {}),
                                                                                   sort_keys=True)) != key]
            extra = ["--query-vectors", str(args.query_vectors)] if args.query_vectors is not None else []
            child = subprocess.run([sys.executable, __file__, "--vectors", str(args.vectors), "--n", str(args.n),
                                    "--queries", str(args.queries), "--single", str(args.single), *extra,
                                    "--one", json.dumps([backend, metric.value, params])],
                                   capture_output=True, text=True, check=True)
            row = json.loads(child.stdout.strip().splitlines()[-1])
            row["asked"] = params
            rows.append(row)
            print(json.dumps(row), flush=True)
            args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                                            "vectors": str(args.vectors.name), "queries": args.queries,
                                            "query_vectors": args.query_vectors.name if args.query_vectors else None,
                                            "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
