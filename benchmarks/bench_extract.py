"""Extraction throughput per extractor: ONNX Runtime vs torch eager on the same model and batch.

Usage: python benchmarks/bench_extract.py [--models pixels,efficientnet-lite0,...] [--images 128] [--batch 32]

Images are Fashion-MNIST items from the bundled sample (decoded and preprocessed once, outside
the timing); "end-to-end" adds decoding + preprocessing, as `lookalike extract` does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lookalike.catalogue import Catalogue, import_catalogue
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.extractors import create_extractor
from lookalike.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="pixels,efficientnet-lite0,efficientnet-lite2,vgg16-pool5")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="docs/bench_extract.json")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp())
    cat = Catalogue(tmp / "c.sqlite")
    import_catalogue(cat, "fashion-mnist", BUNDLED_SAMPLE, limit=args.images, image_dir=tmp)
    paths = [cat.resolve(item.path) for item in cat.items()]
    rows = []
    for name in args.models.split(","):
        extractor = create_extractor(name)
        t = time.perf_counter()
        batch = extractor.preprocess_batch([load_image(p) for p in paths])
        decode_s = time.perf_counter() - t
        extractor.embed_arrays(batch[:2])  # export + session start, not timed
        module = extractor.build_torch().eval()
        extractor.embed_torch(batch[:2], module)

        def run(fn):
            t = time.perf_counter()
            for s in range(0, len(batch), args.batch):
                fn(batch[s : s + args.batch])
            return time.perf_counter() - t

        ort_s = run(extractor.embed_arrays)
        torch_s = run(lambda b: extractor.embed_torch(b, module))
        row = {"model": name, "dim": extractor.dim, "input": extractor.config.preprocess.input_size,
               "images": len(batch), "batch": args.batch,
               "onnxruntime_img_s": round(len(batch) / ort_s, 1), "torch_eager_img_s": round(len(batch) / torch_s, 1),
               "speedup": round(torch_s / ort_s, 2),
               "end_to_end_img_s": round(len(batch) / (ort_s + decode_s), 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0],
                          "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__},
              "rows": rows}
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
