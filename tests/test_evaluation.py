"""Evaluation protocol: exact against brute force, seeded, baseline, and clear errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from lookalike.catalogue import Item, import_catalogue
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import ConfigError
from lookalike.evaluation import evaluate
from lookalike.extractors import create_extractor
from lookalike.extractors.base import Extractor, ExtractorConfig, PreprocessConfig
from lookalike.features import extract_features
from lookalike.metrics import Metric, pairwise_distances
from lookalike.workspace import Workspace


class FakeExtractor(Extractor):
    """Vectors are written directly to the store; this only describes them."""

    def __init__(self, dim: int):
        super().__init__(ExtractorConfig("fake", "fake", "fake", dim, PreprocessConfig(8), "none"))

    def build_torch(self):
        raise AssertionError("not used")

    def weights_checksum(self) -> str:
        return hashlib.sha256(b"fake").hexdigest()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("eval") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=300, seed=1, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"))
    return ws


@pytest.mark.parametrize("metric", [Metric.L1, Metric.L2])
def test_subset_protocol_matches_brute_force(ws, metric):
    report = evaluate(ws, ["pixels"], [metric], subset=None, queries=300, seed=0)
    ids, vectors = ws.feature_store("pixels").load()
    cats = np.array([ws.catalogue.get(i).category for i in ids])
    d = pairwise_distances(vectors, vectors, metric)
    np.fill_diagonal(d, np.inf)
    expected_top1 = float(np.mean(cats[d.argmin(1)] == cats))
    order = np.argsort(d, axis=1, kind="stable")[:, :5]
    expected_p5 = float(np.mean(cats[order] == cats[:, None]))
    row = report.rows[0]
    assert row.top1 == pytest.approx(expected_top1)
    assert row.precision_at[5] == pytest.approx(expected_p5)
    assert 0 <= row.map_at_r <= 1 and set(row.per_category_top1) == set(cats)
    assert report.gallery == report.queries == 300


def test_seeded_and_table(ws):
    a = evaluate(ws, ["pixels"], list(Metric), subset=200, queries=50, seed=3)
    b = evaluate(ws, ["pixels"], list(Metric), subset=200, queries=50, seed=3)
    assert a.to_dict() == b.to_dict()
    table = a.table()
    assert "random pairs" in table and "pixels" in table and "hamming" in table and "subset protocol" in table
    assert 0.0 < a.baseline_expected < 0.3  # 10 balanced-ish classes
    assert all(r.top1 > a.baseline_top1 for r in a.rows)


def test_held_out_protocol(ws):
    report = evaluate(ws, ["pixels"], ["l2"], subset=None, queries=20, protocol="held-out", split="test")
    n_test = sum(1 for i in ws.catalogue.items() if i.split == "test")
    assert report.gallery == len(ws.catalogue) - n_test and report.queries == 20


def test_perfectly_separated_categories_score_100(tmp_path):
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(0)
    items, vectors = [], []
    for c in range(4):
        for j in range(25):
            items.append(Item(f"c{c}-{j}", str(tmp_path / "x.png"), f"cat{c}"))
            vectors.append(np.where(np.eye(4)[c] > 0, 100 + rng.normal(size=4), -1 - np.abs(rng.normal(size=4))))
    ws.catalogue.upsert(items)
    ws.feature_store("fake").append(FakeExtractor(4), [i.id for i in items], np.array(vectors))
    report = evaluate(ws, ["fake"], list(Metric), subset=None, queries=100)
    for row in report.rows:
        assert row.top1 == 1.0 and row.map_at_r == 1.0 and row.recall_at[10] == pytest.approx(10 / 24)


def test_bad_parameters(ws, tmp_path):
    with pytest.raises(ConfigError, match="--queries 500 is larger than the subset of 300"):
        evaluate(ws, ["pixels"], ["l2"], subset=None, queries=500)
    with pytest.raises(ConfigError, match="no items in split 'val'"):
        evaluate(ws, ["pixels"], ["l2"], protocol="held-out", split="val", queries=5)
    with pytest.raises(ConfigError, match="unknown metric|choose one of"):
        evaluate(ws, ["pixels"], ["cosine"])
    one = Workspace(tmp_path / "one")
    one.catalogue.upsert([Item(f"i{j}", "x.png", "only") for j in range(5)])
    one.feature_store("fake").append(FakeExtractor(2), [f"i{j}" for j in range(5)], np.ones((5, 2)))
    with pytest.raises(ConfigError, match="single category"):
        evaluate(one, ["fake"], ["l2"], queries=2)


def test_exact_item_recall_matches_brute_force(tmp_path):
    """In-shop style: queries from 'query', gallery from 'gallery'; a hit is the same product in the top k."""
    ws = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(1)
    items, vectors = [], []
    for p in range(40):
        base = rng.normal(size=8)
        for n, split in enumerate(["query", "gallery", "gallery"]):
            if split == "gallery" and n == 2 and p % 4 == 0:
                split = "train"  # some products have one gallery photo, others two
            items.append(Item(f"p{p}-{n}", "x.png", f"cat{p % 3}", split, product=f"p{p}"))
            vectors.append(base + rng.normal(scale=1.2, size=8))
    for j in range(10):  # distractors without product ids
        items.append(Item(f"d{j}", "x.png", "cat0", "gallery"))
        vectors.append(rng.normal(size=8))
    ws.catalogue.upsert(items)
    ws.feature_store("fake").append(FakeExtractor(8), [i.id for i in items], np.array(vectors))
    report = evaluate(ws, ["fake"], ["l2"], subset=None, queries=40, protocol="held-out", split="query",
                      gallery_split="gallery")
    gallery = [i for i in items if i.split == "gallery"]
    queries = [i for i in items if i.split == "query"]
    g = np.array([vectors[items.index(i)] for i in gallery])
    q = np.array([vectors[items.index(i)] for i in queries])
    order = np.argsort(pairwise_distances(q, g, Metric.L2), axis=1, kind="stable")
    products = np.array([i.product or "" for i in gallery])
    for k in (1, 5, 10):
        expected = np.mean([(products[order[n, :k]] == queries[n].product).any() for n in range(len(queries))])
        assert report.rows[0].item_recall_at[k] == pytest.approx(expected)
    assert report.item_queries == 40 and report.gallery == len(gallery)
    assert 0 < report.rows[0].item_recall_at[1] < report.rows[0].item_recall_at[10] <= 1
    assert "exact-item Recall@k" in report.table()


def test_report_files(ws, tmp_path):
    from PIL import Image

    from lookalike.report import write_report

    report = evaluate(ws, ["pixels"], list(Metric), subset=200, queries=50, seed=0, examples=3, example_k=4)
    assert len(report.examples["queries"]) == 3
    assert all(len(m) == 4 for rows in report.examples["matches"].values() for m in rows)
    files = write_report(report, ws, tmp_path / "report", command="lookalike evaluate ...")
    names = {f.name for f in files}
    assert names == {"report.md", "report.json", "top1.png", "matches.png"}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| random pairs |" in md and "| pixels |" in md and "subset" in md and "![matches](matches.png)" in md
    assert json.loads((tmp_path / "report" / "report.json").read_text())["queries"] == 50
    with Image.open(tmp_path / "report" / "matches.png") as grid:
        assert grid.width >= 5 * 96 and grid.height >= 3 * 96  # 3 queries x 1 model, query + 4 matches
    with Image.open(tmp_path / "report" / "top1.png") as chart:
        assert chart.width > 300
