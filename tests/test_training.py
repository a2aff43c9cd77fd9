"""Transfer learning: a head on stored features, trained models as extractors, resume, divergence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lookalike.catalogue import Item, import_catalogue
from lookalike.cli import main
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import ConfigError, TrainingDivergedError
from lookalike.evaluation import evaluate
from lookalike.extractors import create_extractor, list_extractors
from lookalike.features import extract_features
from lookalike.training import TrainConfig, train
from lookalike.training import trainer as trainer_module
from lookalike.workspace import Workspace


def quiet(_line: str) -> None:
    pass


def make_workspace(path, limit=600) -> Workspace:
    ws = Workspace(path)
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=limit, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    return ws


def extract_from_backbone_store(ws, model, n=10):
    """Extract ``model``'s vectors from the pixels store; check the first ``n`` against its ONNX graph on
    the images. Returns the stored vectors."""
    from lookalike.images import load_image

    extract_features(ws.catalogue, model, ws.feature_store(model.name), progress=False,
                     backbone_store=ws.feature_store("pixels"))
    ids, from_store = ws.feature_store(model.name).load()
    images = [load_image(ws.catalogue.resolve(ws.catalogue.get(i).path)) for i in ids[:n]]
    np.testing.assert_allclose(model.embed(images), from_store[:n], rtol=1e-4, atol=1e-4)  # the ONNX graph
    return from_store


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("train") / "ws")


@pytest.fixture(scope="module")
def trained(ws):
    config = TrainConfig(backbone="pixels", name="pixels-head", hidden=64, epochs=4, batch_size=64, lr=3e-3)
    return train(ws, config, progress=False, log=quiet)


def test_head_learns_and_registers(ws, trained):
    assert trained.best_epoch >= 1 and len(trained.history) == 4
    assert trained.best_val_acc > 0.5, "10 Fashion-MNIST classes from pixels: far above chance (10%)"
    assert trained.train_items + trained.val_items == 500  # the test split is never used
    assert "pixels-head" in ws.list_models() and "pixels-head" not in list_extractors()  # the registry is fixed
    saved = json.loads((ws.models_dir / "pixels-head" / "model.json").read_text())
    assert saved["status"] == "trained" and len(saved["categories"]) == 10
    assert {"head.pt", "checkpoint.pt", "model.json"} <= {p.name for p in (ws.models_dir / "pixels-head").iterdir()}
    # a fresh process (new Workspace object) sees the model too
    assert "pixels-head" in Workspace(ws.root).list_models("pixels-*")


def test_trained_model_is_an_extractor_with_the_same_function_both_ways(ws, trained):
    model = ws.create_extractor("pixels-head")
    assert model.dim == 64 and model.config.preprocess == create_extractor("pixels").config.preprocess
    summary = extract_features(ws.catalogue, model, ws.feature_store("pixels-head"), progress=False,
                               backbone_store=ws.feature_store("pixels"))
    assert summary.computed == len(ws.catalogue)
    ids, from_store = ws.feature_store("pixels-head").load()
    # the ONNX graph (backbone + hidden layer) on the images gives the same vectors
    from lookalike.images import load_image

    sample = list(ids[:20])
    images = [load_image(ws.catalogue.resolve(ws.catalogue.get(i).path)) for i in sample]
    np.testing.assert_allclose(model.embed(images), from_store[:20], rtol=1e-4, atol=1e-4)
    assert (from_store >= 0).all()  # ReLU hidden layer
    report = evaluate(ws, ["pixels-head"], ["l2", "hamming"], protocol="held-out", subset=None, queries=100)
    assert all(row.top1 > 0.5 for row in report.rows)


def test_top_categories_variant(ws):
    config = TrainConfig(backbone="pixels", name="pixels-top3", hidden=32, top_categories=3, epochs=1, batch_size=64)
    result = train(ws, config, progress=False, log=quiet)
    counts = {}
    for item in ws.catalogue.items():
        if item.split != "test":
            counts[item.category] = counts.get(item.category, 0) + 1
    expected = sorted(sorted(counts, key=lambda c: (-counts[c], c))[:3])
    assert result.categories == expected
    assert result.train_items + result.val_items == sum(counts[c] for c in expected)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws", limit=300)
    config = TrainConfig(backbone="pixels", name="resumable", hidden=32, epochs=3, batch_size=64)
    straight = train(Workspace(tmp_path / "ws"), config.__class__(**{**config.__dict__, "name": "straight"}),
                     progress=False, log=quiet)
    calls = {"n": 0}
    batches_per_epoch = math.ceil(straight.train_items / 64)

    def interrupt_in_epoch_3(loss_fn, logits, y):
        calls["n"] += 1
        if calls["n"] > 2 * batches_per_epoch:
            raise KeyboardInterrupt
        return loss_fn(logits, y)

    monkeypatch.setattr(trainer_module, "_loss", interrupt_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(ws, config, progress=False, log=quiet)
    monkeypatch.undo()
    lines: list[str] = []
    resumed = train(ws, config, progress=False, log=lines.append)
    assert resumed.resumed_from == 2 and any("resuming after epoch 2" in line for line in lines)
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    a = torch.load(ws.models_dir / "resumable" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(ws.models_dir / "straight" / "checkpoint.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    again = train(ws, config, progress=False, log=lines.append)  # finished: nothing to do
    assert again.best_epoch == resumed.best_epoch and "already trained" in lines[-1]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    ws = make_workspace(tmp_path / "ws", limit=300)
    calls = {"n": 0}
    labelled = sum(1 for item in ws.catalogue.items() if item.split != "test")
    batches_per_epoch = math.ceil((labelled - round(labelled * 0.1)) / 64)

    def nan_in_epoch_2(loss_fn, logits, y):
        calls["n"] += 1
        loss = loss_fn(logits, y)
        return loss * float("nan") if calls["n"] > batches_per_epoch + 1 else loss

    monkeypatch.setattr(trainer_module, "_loss", nan_in_epoch_2)
    config = TrainConfig(backbone="pixels", name="diverges", hidden=32, epochs=3, batch_size=64)
    with pytest.raises(TrainingDivergedError, match="diverged in epoch 2.*last good checkpoint \\(epoch 1"):
        train(ws, config, progress=False, log=quiet)
    directory = ws.models_dir / "diverges"
    saved = json.loads((directory / "model.json").read_text())
    assert saved["status"] == "diverged" and saved["best_epoch"] == 1
    assert torch.load(directory / "checkpoint.pt", weights_only=False)["epoch"] == 1
    head = torch.load(directory / "head.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in head.values())


def test_bad_settings_get_one_clear_error(ws, trained):
    with pytest.raises(ConfigError, match="built-in"):
        train(ws, TrainConfig(backbone="pixels", name="efficientnet-lite0"), log=quiet)
    with pytest.raises(ConfigError, match="at least 2"):
        train(ws, TrainConfig(backbone="pixels", name="x", top_categories=1), log=quiet)
    with pytest.raises(ConfigError, match="other settings \\(hidden\\)"):
        train(ws, TrainConfig(backbone="pixels", name="pixels-head", hidden=65, epochs=4, batch_size=64, lr=3e-3),
              log=quiet)
    with pytest.raises(ConfigError, match="no blocks to fine-tune"):
        train(ws, TrainConfig(backbone="pixels", name="px-ft", finetune_blocks=1, epochs=1), log=quiet)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            train(ws, TrainConfig(backbone="pixels", name="px-cuda", epochs=1), device="cuda", log=quiet)


def test_one_category_catalogue(tmp_path, capsys):
    from PIL import Image

    ws = Workspace(tmp_path / "ws")
    for n in range(4):
        Image.new("RGB", (8, 8), (n * 40, 0, 0)).save(tmp_path / f"{n}.png")
    ws.catalogue.upsert([Item(str(n), str(tmp_path / f"{n}.png"), "lamp", "train") for n in range(4)])
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    assert main(["train", "--backbone", "pixels", "--name", "one", "-w", str(ws.root)]) == 1
    assert "at least two categories" in capsys.readouterr().err


def test_finetune_last_block_changes_only_that_block(tmp_path):
    ws = Workspace(tmp_path / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=24, seed=0, image_dir=ws.images_dir)
    config = TrainConfig(backbone="efficientnet-lite0", name="lite0-ft", hidden=16, epochs=1, batch_size=8,
                         lr=1e-2, finetune_blocks=1)
    result = train(ws, config, device="cpu", progress=False, log=quiet)
    assert result.best_epoch == 1
    model = ws.create_extractor("lite0-ft")
    tuned = model.build_torch().backbone.state_dict()
    original = create_extractor("efficientnet-lite0").build_torch().state_dict()
    changed = {k for k in original if not torch.equal(original[k], tuned[k])}
    assert changed and all(k.startswith(("net._conv_head", "net._bn1")) for k in changed), sorted(changed)[:5]
    from PIL import Image

    vectors = model.embed([Image.new("RGB", (28, 28), "white"), Image.new("RGB", (28, 28), "black")])
    assert vectors.shape == (2, 16) and np.isfinite(vectors).all()


def test_conv_head_with_augmentation_on_pixels(ws):
    config = TrainConfig(backbone="pixels", name="pixels-cnn", hidden=64, epochs=2, batch_size=64, head="conv",
                         augment=True, input_dropout=0.0)
    result = train(ws, config, progress=False, log=quiet)
    assert result.best_val_acc > 0.3
    model = ws.create_extractor("pixels-cnn")
    assert "CNN" in model.config.architecture
    extract_from_backbone_store(ws, model)
    with pytest.raises(ConfigError, match="image"):
        train(ws, TrainConfig(backbone="efficientnet-lite0", name="x-cnn", head="conv", epochs=1), log=quiet)


def test_cosface_conv_head_gives_unit_vectors_through_both_paths(ws):
    config = TrainConfig(backbone="pixels", name="pixels-cosface", hidden=48, epochs=4, batch_size=32, head="conv",
                         conv_depth=2, augment=True, input_dropout=0.0, label_smoothing=0.0, loss="cosface")
    result = train(ws, config, progress=False, log=quiet)
    assert result.best_val_acc > 0.3
    model = ws.create_extractor("pixels-cosface")
    assert "L2-normalised" in model.config.layer
    head = model.head()
    assert head.classifier.bias is None and sum(isinstance(m, torch.nn.Conv2d) for m in head.convs) == 6
    from_store = extract_from_backbone_store(ws, model)
    np.testing.assert_allclose(np.linalg.norm(from_store, axis=1), 1.0, atol=1e-5)


def test_flip_tta_gives_an_image_and_its_mirror_image_one_vector(ws):
    from PIL import ImageOps

    from lookalike.images import load_image

    ids = ws.feature_store("pixels").load()[0][:6]
    images = [load_image(ws.catalogue.resolve(ws.catalogue.get(i).path)) for i in ids]
    mirrored = [ImageOps.mirror(im) for im in images]
    vectors = {}
    for name, flip in [("pixels-flip", True), ("pixels-noflip", False)]:
        config = TrainConfig(backbone="pixels", name=name, hidden=32, epochs=1, batch_size=64, head="conv",
                             input_dropout=0.0, flip_tta=flip)
        train(ws, config, progress=False, log=quiet)
        model = ws.create_extractor(name)
        vectors[name] = model.embed(images), model.embed(mirrored)  # the ONNX graph
        assert ("mirror image" in model.config.layer) == flip
    own, mirror = vectors["pixels-flip"]
    np.testing.assert_allclose(own, mirror, atol=1e-5)
    assert np.abs(vectors["pixels-noflip"][0] - vectors["pixels-noflip"][1]).max() > 1e-3
    model = ws.create_extractor("pixels-flip")
    extract_features(ws.catalogue, model, ws.feature_store("pixels-flip"), progress=False,
                     backbone_store=ws.feature_store("pixels"))
    np.testing.assert_allclose(ws.feature_store("pixels-flip").vectors_for(list(ids)), own, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="--flip-tta"):
        TrainConfig(backbone="pixels", name="x", flip_tta=True).check()


def test_cosface_loss_subtracts_the_scaled_margin_at_the_target():
    config = TrainConfig(backbone="pixels", name="x", loss="cosface", margin=0.25, scale=10.0, label_smoothing=0.0)
    logits = torch.tensor([[5.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    y = torch.tensor([0, 2])
    expected = torch.nn.functional.cross_entropy(torch.tensor([[2.5, 2.0, -1.0], [0.5, 0.0, 0.5]]), y)
    assert float(trainer_module._training_loss(config)(logits, y)) == pytest.approx(float(expected))
    for bad, match in [({"loss": "triplet"}, "--loss"), ({"loss": "cosface", "margin": 1.5}, "--margin"),
                       ({"conv_depth": 0}, "--conv-depth")]:
        with pytest.raises(ConfigError, match=match):
            TrainConfig(backbone="pixels", name="x", **bad).check()


def test_augmentation_flips_and_shifts_images():
    shape = (1, 1, 8)
    x = torch.arange(8, dtype=torch.float32).reshape(1, 8).repeat(64, 1)
    flips = trainer_module._augment_images(x, shape, np.random.default_rng(0), shift=0)
    mirrored = [bool(torch.equal(row, x[0].flip(0))) for row in flips]
    assert all(m or torch.equal(row, x[0]) for m, row in zip(mirrored, flips))
    assert 10 < sum(mirrored) < 54  # about half
    shifted = trainer_module._augment_images(x, shape, np.random.default_rng(3), shift=2)
    assert set(shifted.unique().tolist()) <= set(range(8))
    assert any(not torch.equal(row, x[0]) and not torch.equal(row, x[0].flip(0)) for row in shifted)


def test_random_erasing_fills_one_rectangle_on_about_that_share_of_images():
    shape = (1, 16, 16)
    x = torch.full((400, 256), 5.0)
    x[:, 0] = 0.0
    x[:, 1] = 10.0  # value range 0..10 for the noise
    out = trainer_module._augment_images(x, shape, np.random.default_rng(0), shift=0, erase=0.5)
    flipped = trainer_module._augment_images(x, shape, np.random.default_rng(0), shift=0)  # the same flips
    changed = (out != flipped).reshape(400, 16, 16)
    erased = changed.flatten(1).any(1)
    assert 150 < int(erased.sum()) < 250  # about half the images
    for mask in changed[erased][:50]:  # the changed pixels lie in one rectangle of at most 40% of the image
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box <= 0.4 * 256 + 16 and mask.sum() >= 0.9 * box - 2
    assert out.min() >= 0 and out.max() <= 10
    assert torch.equal(flipped, trainer_module._augment_images(x, shape, np.random.default_rng(0), shift=0, erase=0.0))


def test_conv_widths_and_erasing_train_resume_and_extract_alike(ws):
    config = TrainConfig(backbone="pixels", name="pixels-cnn-wide", hidden=32, epochs=3, batch_size=64, lr=3e-3, head="conv",
                         conv_widths=(8, 16, 16, 32), augment=True, erase=0.5, input_dropout=0.0)
    result = train(ws, config, progress=False, log=quiet)
    assert result.best_val_acc > 0.2
    again = train(ws, config, progress=False, log=quiet)  # widths read back from model.json as a list
    assert again.best_epoch == result.best_epoch
    saved = json.loads((ws.models_dir / "pixels-cnn-wide" / "model.json").read_text())
    assert saved["config"]["conv_widths"] == [8, 16, 16, 32]
    model = ws.create_extractor("pixels-cnn-wide")
    extract_from_backbone_store(ws, model, n=8)
    with pytest.raises(ConfigError, match="other settings \\(conv_widths\\)"):
        train(ws, TrainConfig(**{**config.__dict__, "conv_widths": (8, 16)}), log=quiet)
    with pytest.raises(ConfigError, match="--augment"):
        train(ws, TrainConfig(backbone="pixels", name="x-erase", head="conv", erase=0.5), log=quiet)
    with pytest.raises(ConfigError, match="probability"):
        train(ws, TrainConfig(backbone="pixels", name="x-erase", head="conv", augment=True, erase=1.5), log=quiet)
    with pytest.raises(ConfigError, match="at most 5 stages"):
        train(ws, TrainConfig(backbone="pixels", name="x-deep", head="conv", conv_widths=(4,) * 6), log=quiet)


def test_init_seed_changes_the_weights_but_not_the_split(ws):
    def weights(name, **seeds):
        config = TrainConfig(backbone="pixels", name=name, hidden=16, epochs=1, batch_size=64, **seeds)
        train(ws, config, progress=False, log=quiet)
        split = trainer_module.choose_training_items(ws, config)[:2]
        return torch.load(ws.models_dir / name / "head.pt", weights_only=True), split

    default, split = weights("px-seed-default")
    same, same_split = weights("px-init-0", init_seed=0)
    other, other_split = weights("px-init-3", init_seed=3)
    assert split == same_split == other_split  # --seed alone draws the validation split
    assert all(torch.equal(default[k], same[k]) for k in default)  # no --init-seed means --init-seed = --seed
    assert not torch.equal(default["hidden.weight"], other["hidden.weight"])
    saved = json.loads((ws.models_dir / "px-init-3" / "model.json").read_text())["config"]
    assert TrainConfig.from_saved(saved).weights_seed == 3
    del saved["init_seed"]  # a model trained before --init-seed existed
    assert TrainConfig.from_saved(saved).weights_seed == 0


def test_init_seed_on_the_command_line(ws, capsys):
    assert main(["train", "-w", str(ws.root), "--backbone", "pixels", "--name", "px-cli-init", "--hidden", "8",
                 "--epochs", "1", "--init-seed", "7"]) == 0
    saved = json.loads((ws.models_dir / "px-cli-init" / "model.json").read_text())["config"]
    assert saved["seed"] == 0 and saved["init_seed"] == 7
