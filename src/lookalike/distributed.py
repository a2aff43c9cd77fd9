"""Extraction on a Dask cluster: ``lookalike extract --model M --dask tcp://host:8786 | local:N``.

The catalogue's missing items are cut into chunks (one feature-store shard each) and sent to the
workers, which decode the images and run the model with ONNX Runtime; the client writes each returned
chunk through the feature store as one atomic shard as soon as it arrives. A worker that dies mid-way
loses only its chunk: Dask runs it again on another worker (``retries``), and a run that is stopped
resumes like any extraction (only the missing items are computed). Workers need the images at the
same paths (a shared folder) and the same Python environment; the vectors are the single-process ones.

``local:N`` starts a LocalCluster of N single-threaded worker processes bound to 127.0.0.1, each given
``cores / N`` ONNX Runtime threads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, ImageError

#: one ONNX Runtime session per worker process and model
_WORKER_EXTRACTORS: dict[tuple[str, str], Any] = {}


def _worker_extract(model: str, models_dir: str, jobs: list[tuple[str, str, tuple | None]], ort_threads: int,
                    batch_size: int) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """On a worker: ``(item id, image path, box)`` jobs -> (ids, vectors, skipped)."""
    if ort_threads:
        os.environ["LOOKALIKE_ORT_THREADS"] = str(ort_threads)
    from .extractors.registry import create_extractor
    from .images import load_image

    key = (model, models_dir)
    if key not in _WORKER_EXTRACTORS:
        _WORKER_EXTRACTORS[key] = create_extractor(model, models_dir=models_dir)
    extractor = _WORKER_EXTRACTORS[key]
    ids, vectors, skipped = [], [], []
    for start in range(0, len(jobs), batch_size):
        arrays = []
        for item_id, path, box in jobs[start : start + batch_size]:
            try:
                arrays.append(extractor.preprocess(load_image(Path(path), box)))
                ids.append(item_id)
            except ImageError as exc:
                skipped.append((item_id, str(exc)))
        if arrays:
            vectors.append(extractor.embed_arrays(np.stack(arrays)))
    return ids, (np.concatenate(vectors) if vectors else np.empty((0, extractor.dim), np.float32)), skipped


@dataclass
class Cluster:
    client: Any
    workers: int
    local: Any = None

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.close()


def connect_cluster(address: str) -> Cluster:
    """``tcp://host:port`` (a running scheduler) or ``local:N`` (a LocalCluster on 127.0.0.1)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--dask needs dask.distributed: pip install -e .[dask]") from None
    if address.startswith("local:"):
        try:
            n = int(address[len("local:"):])
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--dask local:N needs a number of workers N >= 1, got {address!r}")
        local = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=None, silence_logs=40)
        return Cluster(Client(local), n, local)
    if not address.startswith("tcp://"):
        raise ConfigError(f"--dask must be tcp://HOST:PORT (a Dask scheduler) or local:N, got {address!r}")
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    return Cluster(client, len(client.scheduler_info()["workers"]))


def extract_on_dask(catalogue, extractor, store, items, address: str, models_dir: Path, summary, *,
                    shard_size: int = 1024, batch_size: int = 32, retries: int = 3,
                    keys: dict[str, str] | None = None) -> None:
    """Compute ``items``' vectors on the cluster; each finished chunk becomes one shard of ``store``."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    cluster = connect_cluster(address)
    try:
        threads = max(1, (os.cpu_count() or 1) // max(cluster.workers, 1)) if cluster.local is not None else 0
        chunks = [items[s : s + shard_size] for s in range(0, len(items), shard_size)]
        futures = [cluster.client.submit(_worker_extract, extractor.name, str(models_dir),
                                         [(it.id, str(catalogue.resolve(it.path)), it.box) for it in chunk],
                                         threads, batch_size, retries=retries, pure=False)
                   for chunk in chunks]
        started = time.perf_counter()
        with tqdm(total=len(items), desc=f"extract {extractor.name} on {cluster.workers} Dask workers",
                  unit="img", disable=None) as bar:
            for future in as_completed(futures):
                ids, vectors, skipped = future.result()
                if ids:
                    store.append(extractor, ids, vectors, [(keys or {}).get(i) or "" for i in ids])
                summary.computed += len(ids)
                summary.skipped += skipped
                bar.update(len(ids) + len(skipped))
        summary.seconds = time.perf_counter() - started
    finally:
        cluster.close()
