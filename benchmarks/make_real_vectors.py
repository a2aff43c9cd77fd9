"""Real feature vectors at scale for the index benchmarks: EfficientNet-Lite0 (ImageNet) over augmented
Fashion-MNIST images.

Usage: python benchmarks/make_real_vectors.py --n 1000000 --out /data/lite0-1m.npy [--size 64]

Each of the 70,000 Fashion-MNIST images appears ceil(n / 70,000) times, each time randomly turned, scaled,
shifted, mirrored, tinted and with other contrast (seeded), so the vectors are what a real network makes of
real images, with near-duplicates as in a real catalogue. Synthetic random vectors flatter ANN recall;
these do not. Lite0 runs at ``--size`` pixels (default 64: the 28-pixel images hold no more detail, and
it is 5x faster than 224 on 2 cores), global average pooled, L2-normalised: 1,280-d, like the
``efficientnet-lite0`` extractor. Writes a float32 ``.npy`` (memory-mapped, resumable: a
``.done`` file records the rows finished) and ``<out>.labels.npy`` (category numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image

from lookalike.catalogue.readers import read_idx
from lookalike.extractors import create_extractor

FASHION = Path("/usr/share/datasets/fashion-mnist")


def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    images = [read_idx(FASHION / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")]
    labels = [read_idx(FASHION / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")]
    return np.concatenate(images), np.concatenate(labels)


def augment(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """One random view of a 28x28 grey image as a ``size`` x ``size`` RGB uint8 array."""
    img = Image.fromarray(image)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    scale = rng.uniform(0.8, 1.15)
    img = img.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR,
                     translate=tuple(rng.uniform(-3, 3, 2)))
    img = img.resize((max(8, round(size * scale)),) * 2, Image.Resampling.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    grey = np.asarray(canvas, np.float32) / 255.0
    grey = np.clip((grey - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.1, 0.1), 0, 1)
    tint = rng.uniform(0.6, 1.0, 3)
    return (grey[..., None] * tint * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=4096)
    args = parser.parse_args()

    images, labels = fashion_mnist()
    extractor = create_extractor("efficientnet-lite0")
    pre = dataclasses.replace(extractor.config.preprocess, input_size=args.size)
    extractor.config = dataclasses.replace(extractor.config, preprocess=pre)
    mean = np.asarray(pre.mean, np.float32)
    std = np.asarray(pre.std, np.float32)
    done_file = args.out.with_name(args.out.name + ".done")
    meta = {"n": args.n, "size": args.size, "seed": args.seed, "chunk": args.chunk}
    if args.out.is_file() and done_file.is_file() and json.loads(done_file.read_text())["meta"] == meta:
        out = open_memmap(args.out, mode="r+")
        done = json.loads(done_file.read_text())["rows"]
    else:
        out = open_memmap(args.out, mode="w+", dtype=np.float32, shape=(args.n, 1280))
        done = 0
    order = np.random.default_rng(args.seed).permutation(np.resize(np.arange(len(images)), args.n))
    np.save(args.out.with_name(args.out.stem + ".labels.npy"), labels[order].astype(np.int8))
    started, first = time.perf_counter(), done
    for start in range(done, args.n, args.chunk):
        rows = order[start : start + args.chunk]
        rng = np.random.default_rng([args.seed, start])
        batch = np.stack([augment(images[r], rng, args.size) for r in rows]).astype(np.float32) / 255.0
        batch = ((batch - mean) / std).transpose(0, 3, 1, 2)
        out[start : start + len(rows)] = extractor.embed_arrays(batch)
        out.flush()
        done = start + len(rows)
        done_file.write_text(json.dumps({"meta": meta, "rows": done}))
        rate = (done - first) / (time.perf_counter() - started)
        print(f"{done:,}/{args.n:,} vectors, {rate:.0f}/s, {(args.n - done) / rate / 60:.1f} min left", flush=True)


if __name__ == "__main__":
    main()
