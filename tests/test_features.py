"""Feature store and extraction: bad images skipped and named, resumable, refuses mixing extractors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lookalike.catalogue import Item, import_catalogue
from lookalike.errors import FeatureStoreError, ItemNotFoundError
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.images import load_image
from lookalike.workspace import Workspace

from .conftest import make_bad_images


@pytest.fixture
def workspace(tmp_path):
    ws = Workspace(tmp_path / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=60, seed=0, image_dir=ws.images_dir)
    yield ws
    ws.close()


def test_extract_skips_bad_images_and_names_them(tmp_path, workspace):
    bad = make_bad_images(tmp_path / "bad")
    workspace.catalogue.upsert([Item(f"bad/{name}", str(path), "junk") for name, path in bad.items()])
    pixels = create_extractor("pixels")
    summary = extract_features(workspace.catalogue, pixels, workspace.feature_store("pixels"), batch_size=16)
    unreadable = {"bad/zero", "bad/text", "bad/truncated", "bad/corrupt", "bad/bomb"}
    assert {item_id for item_id, _ in summary.skipped} == unreadable
    assert summary.computed == 60 + len(bad) - len(unreadable) == summary.total
    text = "\n".join(summary.lines())
    assert "skipped 5 unreadable" in text and "bad/bomb: " in text


def test_vectors_are_aligned_with_ids_and_boxes_are_applied(tmp_path, workspace, photo_paths):
    shutil.copy(photo_paths["chelsea"], tmp_path / "cat.jpg")
    box = (30.0, 20.0, 150.0, 140.0)
    workspace.catalogue.upsert([Item("cat-boxed", str(tmp_path / "cat.jpg"), "cat", box=box)])
    pixels = create_extractor("pixels")
    store = workspace.feature_store("pixels")
    extract_features(workspace.catalogue, pixels, store)
    ids, vectors = store.load()
    assert len(ids) == len(set(ids)) == len(workspace.catalogue) == len(vectors)
    for item_id in (ids[0], ids[-1], "cat-boxed"):
        item = workspace.catalogue.get(item_id)
        expected = pixels.embed([load_image(workspace.catalogue.resolve(item.path), item.box)])[0]
        np.testing.assert_allclose(store.vectors_for([item_id])[0], expected, atol=1e-6)
    manifest = store.manifest()
    assert manifest["extractor"]["name"] == "pixels" and manifest["dim"] == 3072 == vectors.shape[1]
    assert manifest["count"] == len(ids) and manifest["preprocessing"]["input_size"] == 32
    assert len(manifest["weights_sha256"]) == 64


def test_interrupted_extraction_resumes(workspace, monkeypatch):
    pixels = create_extractor("pixels")
    store = workspace.feature_store("pixels")
    real_embed = pixels.embed_arrays
    calls = {"n": 0}

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 3:  # dies during the second shard
            raise KeyboardInterrupt
        return real_embed(batch)

    monkeypatch.setattr(pixels, "embed_arrays", flaky)
    with pytest.raises(KeyboardInterrupt):
        extract_features(workspace.catalogue, pixels, store, batch_size=10, shard_size=20)
    assert len(store) == 20  # the finished shard is kept
    monkeypatch.setattr(pixels, "embed_arrays", real_embed)
    summary = extract_features(workspace.catalogue, pixels, store, batch_size=10, shard_size=20)
    assert (summary.already, summary.computed, summary.total) == (20, 40, 60)
    again = extract_features(workspace.catalogue, pixels, store)
    assert again.computed == 0 and again.total == 60
    ids, _ = store.load()
    assert sorted(ids) == workspace.catalogue.ids()


def test_one_writer_at_a_time(workspace):
    """Two extractions into one store at once named the same items twice (found when a training run's own
    extraction met a manual one); the second writer is refused with a clear error and nothing changes."""
    from lookalike.features import FeatureStore

    pixels = create_extractor("pixels")
    store = workspace.feature_store("pixels")
    extract_features(workspace.catalogue, pixels, store, items=list(workspace.catalogue.items())[:20])
    other = FeatureStore(store.directory)  # as another process would open it
    with other.writing():
        with pytest.raises(FeatureStoreError, match="another process is writing"):
            extract_features(workspace.catalogue, pixels, store)
        with pytest.raises(FeatureStoreError, match="another process is writing"):
            store.remove(store.ids()[:2])
        with other.writing():  # re-entrant for its holder
            pass
    assert len(store) == 20 and len(set(store.ids())) == 20
    summary = extract_features(workspace.catalogue, pixels, store)  # free again
    assert summary.computed == 40 and sorted(store.ids()) == workspace.catalogue.ids()


def test_store_refuses_another_extractor_and_export(tmp_path, workspace):
    store = workspace.feature_store("pixels")
    extract_features(workspace.catalogue, create_extractor("pixels"), store)
    with pytest.raises(FeatureStoreError, match="made by pixels.*--overwrite"):
        store.check_compatible(create_extractor("vgg16-pool5"))
    count = store.export_npz(tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as data:
        assert count == 60 and data["ids"].dtype.kind == "U" and data["vectors"].dtype == np.float32
        np.testing.assert_array_equal(data["vectors"], store.load()[1])
    with pytest.raises(ItemNotFoundError, match="no pixels features for item"):
        store.vectors_for(["nope"])
    with pytest.raises(FeatureStoreError, match="run: lookalike extract --model vgg16-pool5"):
        workspace.feature_store("vgg16-pool5").load()
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["lookalike_version"]
