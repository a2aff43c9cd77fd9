"""Write the small Fashion-MNIST sample bundled with Lookalike (used when the Debian package is absent).

Usage: python scripts/make_fashion_mnist_sample.py [/usr/share/datasets/fashion-mnist]
Takes the first 50 images of each class from train and 10 per class from test (seeded, deterministic).
"""

import gzip
import struct
import sys
from pathlib import Path

import numpy as np

from lookalike.catalogue.readers import read_idx

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
DST = Path(__file__).resolve().parent.parent / "src/lookalike/data/fashion-mnist-sample"


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


for stem, per_class in (("train", 50), ("t10k", 10)):
    images = read_idx(SRC / f"{stem}-images-idx3-ubyte.gz")
    labels = read_idx(SRC / f"{stem}-labels-idx1-ubyte.gz")
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
    write_idx(DST / f"{stem}-images-idx3-ubyte.gz", images[keep])
    write_idx(DST / f"{stem}-labels-idx1-ubyte.gz", labels[keep])
    print(stem, len(keep))
