"""Every registered index backend, by a loop over the registry: exact ones equal brute force (ties allowed),
approximate ones reach a recall floor on real extractor features; removal and persistence for all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import ConfigError
from lookalike.index import INDEXES, create_index, list_indexes, parse_params
from lookalike.index.quality import tie_aware_recall
from lookalike.metrics import Metric, pairwise_distances

from .test_metrics_index import check_knn_with_ties

# general-purpose backends that need nothing outside this process (shortlist: test_taste.py; pgvector: test_pgvector.py)
BACKENDS = [b for b in list_indexes() if INDEXES.get(b).general
            and not any(p.required for p in INDEXES.get(b).PARAMS.values())]
METRICS = list(Metric)
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(900, 24)).astype(np.float32)
    vectors[::9] = vectors[1::9][: len(vectors[::9])]  # duplicates: ties for every metric
    return vectors, rng.normal(size=(30, 24)).astype(np.float32)


@pytest.fixture(scope="module")
def pixel_features():
    """The `pixels` extractor's vectors of 10,200 real Fashion-MNIST images (10,000 stored, 200 queries)."""
    from PIL import Image

    from lookalike.catalogue.readers import read_idx
    from lookalike.extractors import create_extractor

    assert FASHION.is_file(), "the Debian package dataset-fashion-mnist is part of the set-up (scripts/setup.sh)"
    images = read_idx(FASHION)[:10200]
    extractor = create_extractor("pixels")
    vectors = extractor.embed_arrays(np.stack([extractor.preprocess(Image.fromarray(a).convert("RGB"))
                                               for a in images]))
    return vectors[:10000], vectors[10000:]


def test_the_registry_has_exact_and_approximate_backends():
    assert {"faiss-flat", "numpy-flat", "faiss-ivf", "faiss-hnsw"} <= set(BACKENDS)
    assert {b for b in BACKENDS if INDEXES.get(b).exact} >= {"faiss-flat", "numpy-flat"}
    assert {b for b in BACKENDS if not INDEXES.get(b).exact} >= {"faiss-ivf", "faiss-hnsw"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_backend_finds_the_nearest(random_data, backend, metric):
    vectors, queries = random_data
    index = create_index(backend, vectors.shape[1], metric)
    index.train(vectors)
    index.add(vectors[:500])
    index.add(vectors[500:])
    distances, positions = index.search(queries, 10)
    assert distances.shape == positions.shape == (len(queries), 10)
    reference = pairwise_distances(queries, vectors, metric)
    if INDEXES.get(backend).exact:
        check_knn_with_ties(reference, distances, positions, 10)
    else:
        found = np.take_along_axis(reference, np.maximum(positions, 0), 1)
        np.testing.assert_allclose(distances[positions >= 0], found[positions >= 0], rtol=1e-4, atol=1e-3)
        assert tie_aware_recall(distances, np.sort(reference, 1), 10) >= 0.9


@pytest.mark.parametrize("backend", [b for b in BACKENDS if not INDEXES.get(b).exact])
@pytest.mark.parametrize("metric", METRICS)
def test_approximate_backends_reach_the_recall_floor_on_real_features(pixel_features, backend, metric):
    gallery, queries = pixel_features
    exact = create_index("faiss-flat", gallery.shape[1], metric)
    exact.add(gallery)
    truth, _ = exact.search(queries, 10)
    index = create_index(backend, gallery.shape[1], metric)  # default parameters
    index.train(gallery)
    index.add(gallery)
    found, positions = index.search(queries, 10)
    assert (positions >= 0).all()
    assert tie_aware_recall(found, truth, 10) >= 0.95


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_backend_removes_and_persists(tmp_path, random_data, backend, metric):
    vectors, queries = random_data
    index = create_index(backend, vectors.shape[1], metric)
    index.add(vectors)
    _, before = index.search(queries, 5)
    gone = np.unique(before[:, 0])  # every query's nearest
    index.remove(gone)
    assert index.nlive == len(vectors) - len(gone)
    distances, positions = index.search(queries, 20)
    assert not np.isin(positions, gone).any()
    kept = np.setdiff1d(np.arange(len(vectors)), gone)
    if INDEXES.get(backend).exact:  # the nearest of what is left, in the original positions
        reference = pairwise_distances(queries, vectors, metric)
        reference[:, gone] = np.inf
        check_knn_with_ties(reference[:, kept], distances, np.searchsorted(kept, positions), 20)
    index.save(tmp_path / "idx")
    loaded = INDEXES.get(backend).load(tmp_path / "idx", vectors.shape[1], metric, index.params)
    assert loaded.params == index.params
    np.testing.assert_array_equal(loaded.removed, gone)
    d2, p2 = loaded.search(queries, 20)
    np.testing.assert_array_equal(p2, positions)
    np.testing.assert_allclose(d2, distances)
    with pytest.raises(IndexError, match="not in an index"):
        index.remove([len(vectors) + 3])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_a_removed_neighbourhood_still_gives_k_live_results(random_data, backend, metric):
    """The 60 nearest of each query removed: more than a backend that filters after the search first asks for,
    so it must ask again."""
    vectors, queries = random_data
    queries = queries[:3]
    index = create_index(backend, vectors.shape[1], metric)
    index.add(vectors)
    reference = pairwise_distances(queries, vectors, metric)
    gone = np.unique(np.argsort(reference, 1, kind="stable")[:, :60])
    index.remove(gone)
    distances, positions = index.search(queries, 10)
    assert (positions >= 0).all() and not np.isin(positions, gone).any()
    if INDEXES.get(backend).exact:
        kept = np.setdiff1d(np.arange(len(vectors)), gone)
        check_knn_with_ties(reference[:, kept], distances, np.searchsorted(kept, positions), 10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_neighbours_than_items_are_padded(backend):
    index = create_index(backend, 8, "l2")
    index.add(np.eye(8, dtype=np.float32))
    index.remove([0, 1])
    distances, positions = index.search(np.ones((2, 8), np.float32), 10)
    assert (positions[:, :6] >= 0).all() and (positions[:, 6:] == -1).all() and np.isinf(distances[:, 6:]).all()


def test_parameters_are_checked_with_one_clear_line():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) ef for index backend 'faiss-hnsw'; its "
                                          r"parameters: M .*efConstruction .*efSearch"):
        create_index("faiss-hnsw", 8, "l2", ef=3)
    with pytest.raises(ConfigError, match="unknown parameter.*faiss-flat.*its parameters: none"):
        create_index("faiss-flat", 8, "l2", nprobe=3)
    with pytest.raises(ConfigError, match="nprobe must be a whole number"):
        create_index("faiss-ivf", 8, "l2", nprobe="many")
    with pytest.raises(ConfigError, match="M must be at least 1"):
        create_index("faiss-hnsw", 8, "l2", M=0)
    assert parse_params("M=8, efSearch=16") == {"M": "8", "efSearch": "16"}
    assert create_index("faiss-hnsw", 8, "l2", **parse_params("M=8")).params == {
        "M": 8, "efConstruction": 80, "efSearch": 64}
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_params("M8")
    with pytest.raises(ConfigError, match="nlist=50 needs at least 50 training vectors"):
        create_index("faiss-ivf", 8, "l2", nlist=50).add(np.eye(8, dtype=np.float32))
    with pytest.raises(ConfigError, match="train_per_cell must lie in 39..256"):
        create_index("faiss-ivf", 8, "hamming", train_per_cell=20)


def test_ivf_training_sample_follows_train_per_cell():
    assert create_index("faiss-ivf", 8, "l2", nlist=4000).training_size(1_000_000) == 200_000  # 50 a cell
    assert create_index("faiss-ivf", 8, "l2", nlist=4000, train_per_cell=256).training_size(1_000_000) == 1_000_000
    assert create_index("faiss-ivf", 8, "l2", nlist=2000, train_per_cell=256).training_size(1_000_000) == 512_000
    assert create_index("faiss-ivf", 8, "l2", nlist=100).training_size(50_000) == 50_000  # all there are
    assert create_index("faiss-ivf", 8, "l2", nlist=100).training_size(1_000_000) == 100_000  # the floor
