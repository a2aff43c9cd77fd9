"""Extraction on Dask: the same vectors as one process, resumable when a worker dies (loopback only)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from lookalike.catalogue import import_catalogue
from lookalike.cli import main
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import ConfigError
from lookalike.extractors import create_extractor
from lookalike.features import ExtractSummary, extract_features
from lookalike.workspace import Workspace

distributed = pytest.importorskip("distributed", reason="pip install -e .[test] installs dask.distributed")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("dask") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=300, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("single"), progress=False)
    return ws


def vectors_by_id(store) -> dict[str, np.ndarray]:
    ids, vectors = store.load()
    return dict(zip(ids.tolist(), vectors))


def test_local_cluster_gives_the_single_process_vectors_and_resumes(ws, tmp_path, capsys):
    root = str(ws.root)
    items = [i.id for i in ws.catalogue.items()]
    assert main(["extract", "--model", "pixels", "--dask", "local:2", "--limit", "120", "-w", root]) == 0
    assert "computed 120 vectors" in capsys.readouterr().out
    assert main(["extract", "--model", "pixels", "--dask", "local:2", "-w", root]) == 0  # resumes: the rest only
    assert "computed 180 vectors" in capsys.readouterr().out
    single, on_dask = vectors_by_id(ws.feature_store("single")), vectors_by_id(ws.feature_store("pixels"))
    assert sorted(on_dask) == sorted(items)
    assert all(np.allclose(single[i], on_dask[i], atol=1e-6) for i in items)


def test_a_worker_killed_mid_way_loses_nothing(ws, tmp_path):
    from distributed import LocalCluster

    from lookalike.distributed import extract_on_dask

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    try:
        store = ws.feature_store("killed")
        extractor = create_extractor("pixels")
        summary = ExtractSummary("pixels")
        victim = next(iter(cluster.workers.values())).process.pid  # a worker's process (its nanny restarts it)
        killed = threading.Event()

        def kill_after_first_shard():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not store.exists():
                time.sleep(0.01)
            os.kill(victim, signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_after_first_shard)
        killer.start()
        extract_on_dask(ws.catalogue, extractor, store, list(ws.catalogue.items()), cluster.scheduler_address,
                        ws.models_dir, summary, shard_size=10, retries=3)
        killer.join()
        assert killed.is_set() and summary.computed == 300 and len(store) == 300
        single, again = vectors_by_id(ws.feature_store("single")), vectors_by_id(store)
        assert sorted(again) == sorted(single) and all(np.allclose(single[i], again[i], atol=1e-6) for i in single)
    finally:
        cluster.close()


def test_bad_cluster_addresses_get_one_line(ws, capsys):
    for address, message in (("local:0", "needs a number of workers"), ("udp://x", "must be tcp://HOST:PORT"),
                             ("tcp://127.0.0.1:1", "cannot reach the Dask scheduler at tcp://127.0.0.1:1")):
        assert main(["extract", "--model", "efficientnet-lite0", "--dask", address, "-w", str(ws.root)]) == 1
        assert message in capsys.readouterr().err
    with pytest.raises(ConfigError):
        from lookalike.distributed import connect_cluster

        connect_cluster("local:x")
