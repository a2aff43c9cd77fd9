"""int8 vs float32 extraction speed on the same images (ONNX Runtime, this machine's cores).

Usage: python benchmarks/bench_int8.py -w WS [--model efficientnet-lite0] [--images 256] [--repeat 5]
                                       [--out docs/bench_int8.json]

``WS`` must hold ``MODEL-int8`` (``lookalike extract --model MODEL --precision int8 -w WS``). The images are
a seeded sample of the workspace's catalogue, decoded and preprocessed once; each repeat runs float then
int8 on the same batch (interleaved, so load changes hit both), and the median is reported, with the
cosine similarity of the two models' vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    from lookalike.catalogue.readers import sample
    from lookalike.images import load_image
    from lookalike.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", type=Path, required=True)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/bench_int8.json"))
    args = parser.parse_args()
    ws = Workspace(args.workspace)
    full, int8 = ws.create_extractor(args.model), ws.create_extractor(args.model + "-int8")
    items = sample(list(ws.catalogue.items()), args.images, 1)
    batch = np.stack([full.preprocess(load_image(ws.catalogue.resolve(i.path), i.box)) for i in items])
    full.embed_arrays(batch[:32]), int8.embed_arrays(batch[:32])  # sessions made, caches warm
    times = {"float32": [], "int8": []}
    for _ in range(args.repeat):
        for name, extractor in (("float32", full), ("int8", int8)):
            t0 = time.perf_counter()
            vectors = extractor.embed_arrays(batch)
            times[name].append(time.perf_counter() - t0)
            if name == "float32":
                a = vectors
            else:
                b = vectors
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    rates = {k: len(batch) / float(np.median(v)) for k, v in times.items()}
    out = {"model": args.model, "images": len(batch), "cpus": os.cpu_count(), "repeat": args.repeat,
           "images_per_s": {k: round(v, 1) for k, v in rates.items()},
           "speedup": round(rates["int8"] / rates["float32"], 2),
           "cosine_mean": round(float(cosine.mean()), 4), "cosine_min": round(float(cosine.min()), 4)}
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
