"""Late fusion: a combined model joins its parts' normalised vectors, from stores or from images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.catalogue import import_catalogue
from lookalike.cli import main
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import ConfigError
from lookalike.extractors import create_extractor, list_extractors
from lookalike.extractors.combined import save_combined
from lookalike.features import extract_features
from lookalike.images import load_image
from lookalike.training import TrainConfig, train
from lookalike.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("combined") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=200, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    train(ws, TrainConfig(backbone="pixels", name="tiny-head", hidden=16, epochs=1, batch_size=64),
          progress=False, log=lambda _line: None)
    extract_features(ws.catalogue, ws.create_extractor("tiny-head"), ws.feature_store("tiny-head"), progress=False,
                     backbone_store=ws.feature_store("pixels"))
    return ws


def test_combined_vectors_are_the_weighted_normalised_parts(ws, capsys):
    assert main(["combine", "--models", "pixels,tiny-head", "--weights", "1,3", "--name", "both",
                 "-w", str(ws.root)]) == 0
    assert "both" in capsys.readouterr().out
    assert main(["extract", "--model", "both", "-w", str(ws.root)]) == 0
    assert "computed 200 vectors" in capsys.readouterr().out
    ids, both = ws.feature_store("both").load()
    pixels = ws.feature_store("pixels").vectors_for(ids.tolist())
    head = ws.feature_store("tiny-head").vectors_for(ids.tolist())
    assert both.shape == (len(ids), 3072 + 16)
    np.testing.assert_allclose(both[:, :3072], pixels / np.linalg.norm(pixels, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(both[:, 3072:], axis=1), np.sqrt(3.0), rtol=1e-5)
    np.testing.assert_allclose(both[:, 3072:] / np.sqrt(3.0), head / np.linalg.norm(head, axis=1, keepdims=True),
                               atol=1e-5)
    # an image goes through each part's own preprocessing and ONNX graph: the same vectors
    model = ws.create_extractor("both")
    images = [load_image(ws.catalogue.resolve(ws.catalogue.get(i).path)) for i in ids[:6]]
    np.testing.assert_allclose(model.embed(images), both[:6], atol=1e-4)
    assert model.embed([]).shape == (0, 3088)
    # several views of one query: each part's normalised vectors are averaged, normalised and weighted
    views = model.embed_views([images[:3], images[3:4]])
    part_means = [(v[:3] / np.linalg.norm(v[:3], axis=1, keepdims=True)).mean(0) for v in (pixels, head)]
    np.testing.assert_allclose(views[0, :3072], part_means[0] / np.linalg.norm(part_means[0]), atol=1e-5)
    np.testing.assert_allclose(views[0, 3072:], np.sqrt(3.0) * part_means[1] / np.linalg.norm(part_means[1]), atol=1e-4)
    np.testing.assert_allclose(views[1], both[3], atol=1e-4)
    # it is a model like the others: listed, searchable, survives reopening the workspace
    assert "both" in ws.list_models() and "both" not in list_extractors()
    assert main(["search", "--model", "both", "--metric", "l2", "--item", str(ids[0]), "-k", "3", "--json",
                 "-w", str(ws.root)]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found["results"]) == 3 and str(ids[0]) not in [r["item_id"] for r in found["results"]]
    assert Workspace(ws.root).create_extractor("both").fingerprint() == model.fingerprint()


def test_items_missing_from_a_part_are_computed_from_their_images(ws):
    sub = list(ws.catalogue.items())[:5]
    save_combined(ws.models_dir, "both-images", ["pixels", "tiny-head"])
    model = ws.create_extractor("both-images")
    empty = ws.root / "nowhere"
    summary = extract_features(ws.catalogue, model, ws.feature_store("both-images"), progress=False, items=sub,
                               part_stores=[ws.feature_store("pixels"), Workspace(empty).feature_store("tiny-head")])
    assert summary.computed == 5
    ids, vectors = ws.feature_store("both-images").load()
    expected = model.combine([ws.feature_store("pixels").vectors_for(ids.tolist()),
                              ws.feature_store("tiny-head").vectors_for(ids.tolist())])
    np.testing.assert_allclose(vectors, expected, atol=1e-4)


@pytest.mark.parametrize("models, weights, name, match", [
    (["pixels"], None, "x", "at least two"),
    (["pixels", "pixels"], None, "x", "twice"),
    (["pixels", "tiny-head"], [1.0], "x", "2 models"),
    (["pixels", "tiny-head"], [1.0, -1.0], "x", "positive"),
    (["pixels", "tiny-head"], None, "pixels", "one of the parts"),
    (["pixels", "tiny-head"], None, "efficientnet-lite0", "built-in"),
    (["pixels", "no-such-model"], None, "x", "no-such-model"),
    (["pixels", "tiny-head"], None, "a b", "--name"),
])
def test_bad_combinations_get_one_clear_error(ws, models, weights, name, match):
    with pytest.raises(ConfigError, match=match):
        save_combined(ws.models_dir, name, models, weights)


def test_an_existing_combination_is_kept_unless_overwritten(ws, capsys):
    save_combined(ws.models_dir, "keep", ["pixels", "tiny-head"])
    assert main(["combine", "--models", "pixels,tiny-head", "--name", "keep", "-w", str(ws.root)]) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert main(["combine", "--models", "pixels,tiny-head", "--weights", "1,x", "--name", "k2",
                 "-w", str(ws.root)]) != 0
    assert "--weights" in capsys.readouterr().err
    save_combined(ws.models_dir, "keep", ["tiny-head", "pixels"], overwrite=True)
    assert ws.create_extractor("keep").parts[0].name == "tiny-head"


def test_a_photo_model_answers_searches_by_photo_and_catalogue_items_use_every_part(ws, capsys):
    root = str(ws.root)
    assert main(["combine", "--models", "pixels,tiny-head", "--name", "asym", "--photo-model", "tiny-head",
                 "-w", root]) == 0
    capsys.readouterr()
    assert main(["extract", "--model", "asym", "-w", root]) == 0  # the photo model is kept in step
    out = capsys.readouterr().out
    assert "asym searches photos with tiny-head: extracting both" in out and "computed 200 vectors" in out
    item = sorted(ws.catalogue.ids())[3]
    photo = str(ws.catalogue.resolve(ws.catalogue.get(item).path))

    def search(*args):
        assert main(["search", "--image", photo, "--box", "none", "--json", "-w", root, *args]) == 0
        return json.loads(capsys.readouterr().out)

    routed, head = search("--model", "asym"), search("--model", "tiny-head")
    assert routed["model"] == "asym" and routed["query"]["searched_with"] == "tiny-head"
    assert routed["results"] == head["results"]  # the photo model's vectors and index
    as_catalogue = search("--model", "asym", "--query-kind", "catalogue")
    assert "searched_with" not in as_catalogue["query"]
    assert as_catalogue["results"][0]["item_id"] == item and as_catalogue["results"][0]["distance"] < 1e-6
    assert as_catalogue["results"] != head["results"]
    # a catalogue item is searched with every part
    assert main(["search", "--item", item, "--model", "asym", "-k", "3", "--json", "-w", root]) == 0
    by_item = json.loads(capsys.readouterr().out)
    assert "searched_with" not in by_item["query"]
    assert [r["item_id"] for r in by_item["results"]] == [r["item_id"] for r in as_catalogue["results"][1:4]]
    # an index built for the model is built alike for its photo model, which photo searches then use
    assert main(["index", "--model", "asym", "--metric", "l2", "--backend", "numpy-flat", "-w", root]) == 0
    assert "building both indexes" in capsys.readouterr().out
    from lookalike.index import ItemIndex

    for model in ("asym", "tiny-head"):
        assert ItemIndex.read_meta(ws.index_dir(model, "l2")).backend == "numpy-flat"
    assert search("--model", "asym")["results"] == head["results"]


@pytest.mark.parametrize("photo_model, match", [("self", "the model itself"), ("no-such-model", "no-such-model")])
def test_a_bad_photo_model_is_refused(ws, photo_model, match):
    with pytest.raises(ConfigError, match=match):
        save_combined(ws.models_dir, "self", ["pixels", "tiny-head"], photo_model=photo_model)
    assert not (ws.models_dir / "self").exists()
