"""Extractors: registry, ONNX Runtime = torch, real ImageNet weights find a transformed copy of a photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from lookalike.errors import UnknownNameError, WeightsNotFoundError
from lookalike.extractors import create_extractor, list_extractors
from lookalike.extractors.networks import VGG16Features
from lookalike.images import load_image
from lookalike.metrics import Metric, pairwise_distances

OFFLINE_MODELS = ["pixels", "efficientnet-lite0", "efficientnet-lite2", "vgg16-pool5"]
PRETRAINED = ["efficientnet-lite0", "efficientnet-lite2", "vgg16-pool5"]


@pytest.fixture(scope="module")
def extractors():
    return {name: create_extractor(name) for name in OFFLINE_MODELS}


@pytest.fixture(scope="module")
def photos(photo_paths):
    return {name: load_image(path) for name, path in photo_paths.items()}


def test_registry_lists_and_names_choices():
    assert list_extractors() == ["appearance", "efficientnet-lite0", "efficientnet-lite0-gem", "efficientnet-lite0-rmac",
                                 "efficientnet-lite2", "pixels", "vgg16-fc6", "vgg16-fc7", "vgg16-pool5"]
    assert list_extractors("vgg16*") == ["vgg16-fc6", "vgg16-fc7", "vgg16-pool5"]
    with pytest.raises(UnknownNameError, match="unknown model 'resnet50'; choose one of: appearance, efficientnet-lite0"):
        create_extractor("resnet50")


@pytest.mark.parametrize("name, dim, size", [("pixels", 3072, 32), ("efficientnet-lite0", 1280, 224),
                                             ("efficientnet-lite2", 1280, 224), ("vgg16-pool5", 512, 224),
                                             ("vgg16-fc6", 4096, 224), ("vgg16-fc7", 4096, 224)])
def test_configs(name, dim, size):
    info = create_extractor(name).info()  # no weights needed to describe a model
    assert (info["dim"], info["input_size"]) == (dim, size)
    assert info["weights"]


@pytest.mark.parametrize("name", OFFLINE_MODELS)
def test_onnx_runtime_matches_torch(extractors, photos, name):
    extractor = extractors[name]
    batch = extractor.preprocess_batch([photos["chelsea"], photos["rocket"], photos["brick"]])
    ort_out = extractor.embed_arrays(batch)
    torch_out = extractor.embed_torch(batch)
    assert ort_out.shape == (3, extractor.dim) and ort_out.dtype == np.float32
    np.testing.assert_allclose(ort_out, torch_out, rtol=1e-3, atol=1e-3 * np.abs(torch_out).max())
    assert extractor.onnx_path().is_file()  # exported once, cached
    assert extractor.embed([]).shape == (0, extractor.dim)


@pytest.mark.parametrize("pooling", ["gem", "rmac"])
def test_clutter_robust_poolings_of_lite0(photos, pooling):
    """GeM and R-MAC pool the same map as Lite0: ONNX matches torch, vectors are unit length and differ from
    the average-pooled ones; the sign bits (Hamming codes) are the same, as ReLU activations make them."""
    from lookalike.extractors.networks import rmac

    extractor, plain = create_extractor(f"efficientnet-lite0-{pooling}"), create_extractor("efficientnet-lite0")
    assert extractor.fingerprint() != plain.fingerprint() and extractor.dim == 1280
    batch = extractor.preprocess_batch([photos["chelsea"], photos["rocket"]])
    out = extractor.embed_arrays(batch)
    np.testing.assert_allclose(out, extractor.embed_torch(batch), rtol=1e-3, atol=1e-3 * np.abs(out).max())
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, rtol=1e-5)
    average = plain.embed_arrays(batch)
    assert np.abs(out - average).max() > 1e-3
    np.testing.assert_array_equal(out > 0, average > 0)
    fmap = torch.arange(2 * 3 * 7 * 7, dtype=torch.float32).reshape(2, 3, 7, 7)
    assert rmac(fmap, scales=1).shape == (2, 3)  # the whole map only: its normalised max
    np.testing.assert_allclose(rmac(fmap, scales=1).numpy(), torch.nn.functional.normalize(fmap.amax((2, 3)),
                                                                                           dim=1).numpy())


def test_pixels_are_exact(extractors):
    img = Image.new("RGB", (64, 32), (255, 0, 0))  # letterboxed onto the mean colour
    vec = extractors["pixels"].embed([img])[0].reshape(3, 32, 32)
    assert vec[0, 16, 16] == pytest.approx(1.0) and vec[1, 16, 16] == pytest.approx(-1.0)
    assert vec[0, 0, 16] == pytest.approx(0.0, abs=0.01)  # padding row


def transformed_copies(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    return {"flipped": ImageOps.mirror(img),
            "cropped": img.crop((w // 10, h // 10, w - w // 10, h - h // 10)),
            "smaller": img.resize((w // 2, h // 2))}


@pytest.mark.parametrize("name, metric", [(name, metric) for name in PRETRAINED for metric in Metric])
def test_transformed_photo_finds_its_original(extractors, photos, name, metric):
    """Real weights: a flipped / cropped / resized copy of a photo is nearest to that photo."""
    extractor = extractors[name]
    names = sorted(photos)
    gallery = extractor.embed([photos[n] for n in names])
    for kind in ("flipped", "cropped", "smaller"):
        queries = extractor.embed([transformed_copies(photos[n])[kind] for n in names])
        nearest = pairwise_distances(queries, gallery, metric).argmin(axis=1)
        assert [names[i] for i in nearest] == names, f"{name} {metric.value} {kind}"


def _fake_torchvision_vgg16(path):
    """A checkpoint shaped like torchvision's vgg16 (random weights, float16 to keep it small)."""
    torch.manual_seed(0)
    module = VGG16Features("fc7")
    state = {k: v.half() for k, v in module.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(1000, 4096, dtype=torch.float16)
    state["classifier.6.bias"] = torch.zeros(1000, dtype=torch.float16)
    torch.save(state, path)
    return module


def test_vgg_fc_layers_without_weights_say_how_to_get_them():
    for layer in ("fc6", "fc7"):
        with pytest.raises(WeightsNotFoundError, match="vgg16-397923af.pth.*--weights PATH or set LOOKALIKE_VGG16"):
            create_extractor(f"vgg16-{layer}").weights_file()
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_extractor("vgg16-fc6", weights="/nonexistent/vgg16.pth").weights_file()


def test_vgg_fc_layers_load_a_torchvision_checkpoint(tmp_path, photos, monkeypatch):
    path = tmp_path / "vgg16-397923af.pth"
    reference = _fake_torchvision_vgg16(path).eval()
    fc7 = create_extractor("vgg16-fc7", weights=path)
    batch = fc7.preprocess_batch([photos["chelsea"], photos["coffee"]])
    out = fc7.embed_arrays(batch)
    assert out.shape == (2, 4096) and (out >= 0).all()  # after ReLU
    with torch.no_grad():
        expected = reference.half().float()(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
    monkeypatch.setenv("LOOKALIKE_VGG16_WEIGHTS", str(path))
    assert create_extractor("vgg16-fc6").weights_file() == path
    (tmp_path / "wrong.pth").write_bytes(b"")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(WeightsNotFoundError, match="not a torchvision VGG-16 checkpoint"):
        create_extractor("vgg16-fc6", weights=tmp_path / "wrong.pth").build_torch()



@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite2"])
def test_efficientnet_lite_keeps_relu6(name):
    """Lite models use ReLU6; Swish (the package's ``set_swish``) cost 20 points of retrieval accuracy."""
    module = create_extractor(name).build_torch()
    kinds = {type(m).__name__ for m in module.modules()}
    assert "ReLU6" in kinds
    assert not any("Swish" in k for k in kinds)


def test_workspace_models_are_resolved_inside_their_workspace(tmp_path):
    """Opening a workspace registers nothing process-wide (STYLE lesson 16): its models are found by name
    in its own models folder, and a name unknown there lists the built-in and the saved models."""
    from lookalike.errors import ConfigError
    from lookalike.extractors.combined import save_combined
    from lookalike.workspace import Workspace

    first, second = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    save_combined(first.models_dir, "mix", ["pixels", "efficientnet-lite0"])
    before = list_extractors()
    assert first.create_extractor("mix").parts[1].name == "efficientnet-lite0"
    assert "mix" in first.list_models("m*") and list_extractors() == before
    with pytest.raises(UnknownNameError, match="mix"):
        first.create_extractor("mixed")
    with pytest.raises(UnknownNameError, match="unknown model 'mix'"):
        second.create_extractor("mix")
    with pytest.raises(UnknownNameError):
        create_extractor("mix")  # no workspace: built-in models only
    with pytest.raises(ConfigError, match="built-in"):
        save_combined(first.models_dir, "pixels", ["efficientnet-lite0", "appearance"])


@pytest.mark.parametrize(("env", "expected"), [(None, "0"), ("0", "0"), ("1", "1")])
def test_onnx_runtime_threads_spin_only_when_asked(tmp_path, monkeypatch, env, expected):
    """Idle threads that spin hold the cores the next session needs (a photo: the localiser, then the model)."""
    import onnx
    from onnx import TensorProto, helper

    from lookalike.extractors.base import ort_session

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "relu.onnx")
    if env is None:
        monkeypatch.delenv("LOOKALIKE_ORT_SPIN", raising=False)
    else:
        monkeypatch.setenv("LOOKALIKE_ORT_SPIN", env)
    session = ort_session(tmp_path / "relu.onnx")
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == expected
    out = session.run(None, {"x": np.array([[-1, 2, -3, 4]], np.float32)})[0]
    np.testing.assert_array_equal(out, [[0, 2, 0, 4]])
