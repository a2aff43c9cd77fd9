"""Int8 extraction: a model of its own, calibrated on the catalogue, close to the float model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.errors import ConfigError
from lookalike.extractors import create_extractor
from lookalike.workspace import Workspace

from .test_cli import BUNDLED_SAMPLE, run


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8") / "ws"
    assert main(["import", "fashion-mnist", str(BUNDLED_SAMPLE), "-w", str(root), "--limit", "80"]) == 0
    assert main(["extract", "--model", "efficientnet-lite0", "-w", str(root)]) == 0
    return root


def test_int8_extraction_is_a_model_of_its_own(ws, capsys, photo_paths):
    code, out, _ = run(capsys, "extract", "--model", "efficientnet-lite0", "--precision", "int8",
                       "--calibration-images", "32", "-w", ws)
    assert code == 0 and "quantised on 32 catalogue images" in out and "'efficientnet-lite0-int8'" in out
    workspace = Workspace(ws)
    saved = json.loads((ws / "models" / "efficientnet-lite0-int8" / "model.json").read_text())
    assert saved["kind"] == "quantized" and saved["calibration"]["images"] == 32
    ids = workspace.feature_store("efficientnet-lite0").ids()
    full = workspace.feature_store("efficientnet-lite0").vectors_for(ids)
    int8 = workspace.feature_store("efficientnet-lite0-int8").vectors_for(ids)
    cosine = (full * int8).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.mean() > 0.95 and not np.allclose(full, int8)  # close, and really int8
    extractor = workspace.create_extractor("efficientnet-lite0-int8")
    assert extractor.dim == 1280 and extractor.config.extra["precision"] == "int8"
    assert extractor.fingerprint() != create_extractor("efficientnet-lite0").fingerprint()
    # a photo is embedded by the same int8 graph at search time
    code, out, _ = run(capsys, "search", "--image", photo_paths[sorted(photo_paths)[0]], "--model",
                       "efficientnet-lite0-int8", "--box", "none", "-k", "3", "-w", ws, "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 3
    # a second run reuses the quantised graph and finds every vector stored
    code, out, _ = run(capsys, "extract", "--model", "efficientnet-lite0", "--precision", "int8", "-w", ws)
    assert code == 0 and "computed 0 vectors" in out


def test_int8_refuses_what_it_cannot_quantise(ws):
    from lookalike.extractors.quantized import quantize

    workspace = Workspace(ws)
    with pytest.raises(ConfigError, match="already int8"):
        quantize(workspace, "efficientnet-lite0-int8", overwrite=True)
    with pytest.raises(ConfigError, match="at least 1 image"):
        quantize(workspace, "pixels", images=0)
