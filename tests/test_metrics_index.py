"""Distances against scipy, and every index backend against numpy brute force (tie-aware)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lookalike.errors import ConfigError, IndexMismatchError, UnknownNameError
from lookalike.index import ItemIndex, create_index, list_indexes
from lookalike.metrics import Metric, hamming_codes, pairwise_distances

METRICS = list(Metric)


def reference(queries, vectors, metric: Metric) -> np.ndarray:
    """Distances from scipy: cityblock, euclidean, and hamming on x > 0 (as a count of bits)."""
    if metric is Metric.L1:
        return cdist(queries, vectors, "cityblock")
    if metric is Metric.L2:
        return cdist(queries, vectors, "euclidean")
    return cdist(queries > 0, vectors > 0, "hamming") * queries.shape[1]


def check_knn_with_ties(ref_distances: np.ndarray, distances: np.ndarray, positions: np.ndarray, k: int):
    """Each result's distance is its true distance, results are sorted, and the k distances are the k smallest.

    Any order among equal distances is accepted (Hamming ties constantly).
    """
    for row, (d_row, p_row) in enumerate(zip(distances, positions)):
        n_valid = min(k, ref_distances.shape[1])
        assert (p_row[:n_valid] >= 0).all() and (p_row[n_valid:] == -1).all()
        assert len(set(p_row[:n_valid].tolist())) == n_valid, "duplicate results"
        true = ref_distances[row, p_row[:n_valid]]
        np.testing.assert_allclose(d_row[:n_valid], true, rtol=1e-4, atol=1e-3)
        assert np.all(np.diff(d_row[:n_valid]) >= -1e-3), "results not sorted nearest first"
        np.testing.assert_allclose(np.sort(ref_distances[row])[:n_valid], true, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    vectors = rng.normal(size=(700, 37)).astype(np.float32)
    vectors[::7] = vectors[1::7][: len(vectors[::7])]  # exact duplicates: distance ties for every metric
    queries = rng.normal(size=(25, 37)).astype(np.float32)
    return vectors, np.concatenate([queries, vectors[:5]])


@pytest.mark.parametrize("metric", METRICS)
def test_reference_distances_match_scipy(data, metric):
    vectors, queries = data
    np.testing.assert_allclose(pairwise_distances(queries, vectors, metric), reference(queries, vectors, metric),
                               rtol=1e-5, atol=1e-4)


def test_hamming_codes_are_packed_sign_bits():
    x = np.array([[0.5, -1, 0, 2, 3, -0.1, 1, 1, 7]], np.float32)
    assert hamming_codes(x).tolist() == [[0b10011011, 0b10000000]]


@pytest.mark.parametrize("backend", ["faiss-flat", "numpy-flat"])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_index_matches_brute_force(data, backend, metric, k):
    vectors, queries = data
    index = create_index(backend, vectors.shape[1], metric)
    index.add(vectors[:400])
    index.add(vectors[400:])
    distances, positions = index.search(queries, k)
    assert distances.dtype == np.float32 and positions.dtype == np.int64
    assert distances.shape == positions.shape == (len(queries), k)
    check_knn_with_ties(reference(queries, vectors, metric), distances, positions, k)
    if k > len(vectors):
        assert np.isinf(distances[:, len(vectors):]).all()


@pytest.mark.parametrize("metric", METRICS)
def test_single_query_and_threads(data, metric, monkeypatch):
    vectors, queries = data
    index = create_index("faiss-flat", vectors.shape[1], metric)
    index.add(vectors)
    for threads in ("1", "2"):
        monkeypatch.setenv("LOOKALIKE_FAISS_THREADS", threads)
        d, p = index.search(queries[0], 5)  # 1-D query accepted
        check_knn_with_ties(reference(queries[:1], vectors, metric), d, p, 5)


def test_index_errors_are_clear(data):
    vectors, _ = data
    index = create_index("faiss-flat", 37, "l2")
    with pytest.raises(IndexMismatchError, match="dimension 36.*37-d"):
        index.add(vectors[:, :36])
    index.add(vectors)
    with pytest.raises(IndexMismatchError, match="dimension 10"):
        index.search(np.zeros((1, 10), np.float32), 3)
    with pytest.raises(ConfigError, match="k must be at least 1"):
        index.search(vectors[:1], 0)
    for bad in (np.nan, np.inf, -np.inf):  # one bad number among finite ones, in the second query
        queries = np.zeros((2, 37), np.float32)
        queries[1, 5] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            index.search(queries, 3)
    queries = np.zeros((1, 37), np.float32)
    queries[0, :2] = np.inf, -np.inf  # they would cancel in a float sum, not in a check
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.search(queries, 3)
    huge = np.full((1, 37), np.finfo(np.float32).max, np.float32)  # finite: a float32 sum would overflow
    assert index.search(huge, 3)[1].shape == (1, 3)
    with pytest.raises(UnknownNameError, match="unknown metric 'cosine'; choose one of: hamming, l1, l2"):
        Metric.parse("cosine")
    with pytest.raises(UnknownNameError, match="unknown index backend 'annoy'.*faiss-flat"):
        create_index("annoy", 37, "l2")
    assert {"faiss-flat", "numpy-flat"} <= set(list_indexes())


def test_empty_index_pads(data):
    index = create_index("faiss-flat", 37, "l1")
    d, p = index.search(data[1][:2], 3)
    assert (p == -1).all() and np.isinf(d).all()


@pytest.mark.parametrize("backend", ["faiss-flat", "numpy-flat"])
@pytest.mark.parametrize("metric", METRICS)
def test_item_index_persists_and_refuses_other_models(tmp_path, data, backend, metric):
    vectors, queries = data
    ids = np.array([f"item-{i}" for i in range(len(vectors))])
    built = ItemIndex.build("model-a", metric, ids, vectors, backend=backend, fingerprint="abc")
    built.save(tmp_path / "idx")
    loaded = ItemIndex.load(tmp_path / "idx")
    assert loaded.meta == built.meta
    assert loaded.search(queries, 5, model="model-a") == built.search(queries, 5, model="model-a")
    with pytest.raises(IndexMismatchError, match="come from 'model-b'.*holds 'model-a'"):
        loaded.search(queries, 5, model="model-b")
    with pytest.raises(IndexMismatchError, match="dimension"):
        loaded.search(queries[:, :20], 5, model="model-a")


def test_item_index_excludes_the_query_item(data):
    vectors, _ = data
    ids = np.array([f"item-{i}" for i in range(len(vectors))])
    index = ItemIndex.build("m", "l2", ids, vectors)
    hits = index.search(vectors[3:4], 4, model="m", exclude=["item-3"])[0]
    assert len(hits) == 4 and "item-3" not in [h[0] for h in hits]
