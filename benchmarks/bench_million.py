"""A million items on one machine, end to end: a workspace of 1,000,000 real Lite0 vectors, its indexes, an
uploaded photo searched through the whole stack, incremental updates, and the neighbours feed.

Usage:
    python benchmarks/make_real_vectors.py --n 1001000 --out /data/lite0-1m.npy
    python benchmarks/bench_million.py --vectors /data/lite0-1m.npy -w /data/ws1m --photos dev-photos/photos.csv \\
        [--localiser WS/localiser] [--backends faiss-flat,faiss-hnsw] [--out docs/bench_million.json]

The workspace's catalogue holds 1,000,000 items (ids ``aug/NNNNNNN``, category from Fashion-MNIST) and its
``efficientnet-lite0`` store the vectors, written shard by shard. Honesty note: those vectors were made
at 64 px input (make_real_vectors.py) while a searched photo is embedded at 224 px, so the matches of a
photo are not meaningful here; the cost of every step is (decoding, localising, embedding, searching a
million items, looking up the results). Each phase runs in its own process; its peak RSS is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CATEGORIES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
              "Ankle boot"]
MODEL = "efficientnet-lite0"


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def build_workspace(vectors: Path, root: Path, n: int) -> dict:
    """Catalogue rows and feature-store shards for the first ``n`` vectors (streamed, never loaded whole)."""
    from lookalike.catalogue import Item
    from lookalike.extractors import create_extractor
    from lookalike.workspace import Workspace

    ws = Workspace(root)
    data = np.load(vectors, mmap_mode="r")
    labels = np.load(vectors.with_name(vectors.stem + ".labels.npy"), mmap_mode="r")
    started = time.perf_counter()
    placeholder = root / "images" / "placeholder.png"
    placeholder.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.new("RGB", (28, 28)).save(placeholder)
    if len(ws.catalogue) < n:
        for start in range(len(ws.catalogue), n, 50_000):
            stop = min(n, start + 50_000)
            ws.catalogue.upsert([Item(f"aug/{i:07d}", str(placeholder), CATEGORIES[int(labels[i])], "train")
                                 for i in range(start, stop)], source="bench")
    catalogue_s = time.perf_counter() - started
    store = ws.feature_store(MODEL)
    extractor = create_extractor(MODEL)
    started = time.perf_counter()
    have = len(store)
    for start in range(have, n, 65536):
        stop = min(n, start + 65536)
        store.append(extractor, [f"aug/{i:07d}" for i in range(start, stop)], np.asarray(data[start:stop]))
    return {"items": n, "catalogue_s": round(catalogue_s, 1), "store_s": round(time.perf_counter() - started, 1),
            "store_gb": round(sum(p.stat().st_size for p in store.directory.glob("*.npy")) / 1e9, 2),
            "peak_rss_mb": peak_rss_mb()}


def build_index(root: Path, backend: str, metric: str, params: dict) -> dict:
    from lookalike.index.quality import measure_index
    from lookalike.search import SearchEngine
    from lookalike.workspace import Workspace

    ws = Workspace(root)
    started = time.perf_counter()
    index = SearchEngine(ws).build_index(MODEL, metric, backend=backend, params=params)
    build = time.perf_counter() - started
    report = measure_index(index, ws.feature_store(MODEL), build_seconds=build, queries=200, single=100)
    return {**report.to_dict(), "peak_rss_mb": peak_rss_mb()}


def photo_search(root: Path, metric: str, photos: list[str], k: int = 10) -> dict:
    """Every photo searched as an upload is (bytes in, auto box, Lite0, the stored index, results looked up)."""
    from lookalike.search import SearchEngine
    from lookalike.workspace import Workspace

    engine = SearchEngine(Workspace(root))
    blobs = [Path(p).read_bytes() for p in photos]
    engine.search_image(blobs[0], MODEL, metric, k, box="auto")  # warm-up: index, model, localiser loaded
    times = []
    for blob in blobs:
        t0 = time.perf_counter()
        result = engine.search_image(blob, MODEL, metric, k, box="auto")
        times.append(1000 * (time.perf_counter() - t0))
        assert len(result.results) == k
    return {"metric": metric, "backend": engine.get_index(MODEL, metric).meta.backend, "photos": len(times),
            "p50_ms": round(float(np.percentile(times, 50)), 1), "p95_ms": round(float(np.percentile(times, 95)), 1),
            "peak_rss_mb": peak_rss_mb()}


def updates(root: Path, vectors: Path, n: int, metric: str, added: int, removed: int) -> dict:
    """Add ``added`` new items (one shard) and remove ``removed``, each synced into the stored index in place."""
    from lookalike.catalogue import Item
    from lookalike.extractors import create_extractor
    from lookalike.search import SearchEngine
    from lookalike.updates import remove_items
    from lookalike.workspace import Workspace

    ws = Workspace(root)
    data = np.load(vectors, mmap_mode="r")
    engine = SearchEngine(ws)
    engine.get_index(MODEL, metric)
    new_ids = [f"aug/{i:07d}" for i in range(n, n + added)]
    ws.catalogue.upsert([Item(i, str(root / "images" / "placeholder.png"), "Bag", "train") for i in new_ids])
    ws.feature_store(MODEL).append(create_extractor(MODEL), new_ids, np.asarray(data[n : n + added]))
    started = time.perf_counter()
    sync = engine.update_indexes(MODEL)
    add_s = time.perf_counter() - started
    started = time.perf_counter()
    summary = remove_items(ws, new_ids[:removed] + [f"aug/{i:07d}" for i in range(removed)])
    remove_s = time.perf_counter() - started
    return {"metric": metric, "added": added, "add_sync_s": round(add_s, 2), "add_sync": str(sync.get(metric)),
            "removed": 2 * removed, "remove_s": round(remove_s, 2), "remove_sync": summary.indexes,
            "peak_rss_mb": peak_rss_mb()}


def neighbours(root: Path, metric: str, items: int) -> dict:
    from lookalike.updates import export_neighbours
    from lookalike.workspace import Workspace

    ws = Workspace(root)
    ids = ws.feature_store(MODEL).ids()[:items]
    started = time.perf_counter()
    summary = export_neighbours(ws, MODEL, metric, 10, root / "neighbours.jsonl", items=ids, progress=False)
    seconds = time.perf_counter() - started
    return {"metric": metric, "items": summary.items, "seconds": round(seconds, 1),
            "items_per_s": round(summary.items / seconds, 1), "backend": summary.backend, "peak_rss_mb": peak_rss_mb()}


PHASES = {"workspace": build_workspace, "index": build_index, "photo": photo_search, "updates": updates,
          "neighbours": neighbours}


def child(phase: str, *args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", json.dumps([phase, [str(a) if isinstance(a, Path)
                                                                               else a for a in args]])],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(phase, json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path)
    parser.add_argument("-w", "--workspace", type=Path)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--photos", type=Path, help="a photos.csv (lookalike photos make) to search with")
    parser.add_argument("--count", type=int, default=100, help="photos searched (default 100)")
    parser.add_argument("--localiser", type=Path, default=None, help="a trained WS/localiser folder to copy in")
    parser.add_argument("--indexes", default="faiss-flat:hamming;faiss-hnsw:hamming",
                        help="BACKEND:METRIC[:NAME=V,...];... to build and measure")
    parser.add_argument("--out", type=Path, default=Path("docs/bench_million.json"))
    args = parser.parse_args()
    if args.phase is not None:
        phase, phase_args = json.loads(args.phase)
        types = {"workspace": (Path, Path, int), "index": (Path, str, str, dict), "photo": (Path, str, list),
                 "updates": (Path, Path, int, str, int, int), "neighbours": (Path, str, int)}[phase]
        print(json.dumps(PHASES[phase](*[t(a) if t is not dict and t is not list else a
                                          for t, a in zip(types, phase_args)])))
        return
    from lookalike.photos.sets import read_query_photos

    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update({"cpus": os.cpu_count(), "n": args.n, "vectors": args.vectors.name})
    result["workspace"] = child("workspace", args.vectors, args.workspace, args.n)
    if args.localiser is not None and not (args.workspace / "localiser").is_dir():
        shutil.copytree(args.localiser, args.workspace / "localiser")
    photos = [str(p.path) for p in read_query_photos(args.photos)][: args.count]
    result.setdefault("indexes", [])
    result.setdefault("photo_search", [])
    for spec in args.indexes.split(";"):
        backend, metric, *rest = spec.split(":")
        params = dict(p.split("=") for p in rest[0].split(",")) if rest else {}
        row = child("index", args.workspace, backend, metric, params)
        result["indexes"] = [r for r in result["indexes"] if (r["backend"], r["metric"]) != (backend, metric)]
        result["indexes"].append(row)
        photo = child("photo", args.workspace, metric, photos)
        result["photo_search"] = [r for r in result["photo_search"]
                                  if (r["backend"], r["metric"]) != (photo["backend"], metric)] + [photo]
        args.out.write_text(json.dumps(result, indent=1))
    metric = args.indexes.split(";")[-1].split(":")[1]
    result["neighbours"] = child("neighbours", args.workspace, metric, 20_000)
    result["updates"] = child("updates", args.workspace, args.vectors, args.n, metric, 1000, 500)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
