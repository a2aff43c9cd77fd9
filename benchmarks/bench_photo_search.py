"""Latency of a search by photo, end to end: decode, find the item (localiser), embed the crop, search.

Usage: python benchmarks/bench_photo_search.py -w WS [--model efficientnet-lite0] [--metric l2]
                                              [--photos 60] [--size 320] [--box auto,none,given]

Photos are synthetic phone photos of the workspace's test items (``lookalike photos make``), passed as
JPEG bytes like an upload. Each search runs once to warm up, then ``--photos`` times; p50/p95/mean are
reported per box mode, with a breakdown for ``auto`` (localise vs embed + search). Writes
docs/bench_photo_search.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from lookalike.images import load_photo
    from lookalike.photos import make_query_photos, read_query_photos
    from lookalike.search import SearchEngine
    from lookalike.workspace import Workspace

    parser = argparse.ArgumentParser()
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--metric", default="l2")
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--size", type=int, default=320, help="photos are resized to this longer side")
    parser.add_argument("--box", default="auto,none,given")
    parser.add_argument("--out", default="docs/bench_photo_search.json")
    args = parser.parse_args()

    ws = Workspace(args.workspace)
    engine = SearchEngine(ws)
    engine.get_index(args.model, args.metric)  # built or loaded outside the timing, as the server does
    folder = Path(tempfile.mkdtemp())
    photos = read_query_photos(make_query_photos(ws, folder, count=args.photos, split="test", seed=123,
                                                 progress=False))
    uploads = []
    for p in photos:
        img, _, _ = load_photo(p.path)
        factor = args.size / max(img.size)
        img = img.resize((round(img.width * factor), round(img.height * factor)))
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        uploads.append((buffer.getvalue(), tuple(v * factor for v in p.box)))
    localiser = engine.localiser()
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "ort_threads": os.environ.get("LOOKALIKE_ORT_THREADS", "all cores")},
               "workspace_items": len(ws.catalogue), "model": args.model, "metric": args.metric,
               "photo_side": args.size, "photos": len(uploads), "localiser": localiser.description, "modes": {}}
    for mode in [m.strip() for m in args.box.split(",") if m.strip()]:
        timings = []
        engine.search_image(uploads[0][0], args.model, args.metric, 10, box=mode if mode != "given" else uploads[0][1])
        for data, box in uploads:
            started = time.perf_counter()
            engine.search_image(data, args.model, args.metric, 10, box=box if mode == "given" else mode)
            timings.append(time.perf_counter() - started)
        ms = np.array(timings) * 1000
        results["modes"][mode] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                                  "mean_ms": float(ms.mean())}
        print(f"{mode:>6}: p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
              f"mean {ms.mean():.1f} ms over {len(ms)} photos")
    localise = []
    for data, _ in uploads:
        img, _, _ = load_photo(data)
        started = time.perf_counter()
        localiser.locate(img)
        localise.append(time.perf_counter() - started)
    results["localise_only_p50_ms"] = float(np.percentile(np.array(localise) * 1000, 50))
    print(f"localiser alone: p50 {results['localise_only_p50_ms']:.1f} ms ({localiser.description})")
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
