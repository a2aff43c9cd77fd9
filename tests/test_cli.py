"""The CLI end to end: import -> extract -> index -> search, JSON output, one-line errors."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lookalike.cli import main
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.metrics import Metric, pairwise_distances


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace with 120 Fashion-MNIST items and pixels features."""
    root = tmp_path_factory.mktemp("cli") / "ws"
    assert main(["import", "fashion-mnist", str(BUNDLED_SAMPLE), "-w", str(root), "--limit", "120"]) == 0
    assert main(["extract", "--model", "pixels", "-w", str(root)]) == 0
    return root


def test_import_is_idempotent(ws, capsys):
    code, out, _ = run(capsys, "import", "fashion-mnist", BUNDLED_SAMPLE, "-w", ws, "--limit", "120")
    assert code == 0 and "imported 0 new and 120 existing" in out and "now has 120 items" in out


@pytest.mark.parametrize("metric", list(Metric))
def test_search_item_json_matches_brute_force(ws, capsys, metric, tmp_path):
    assert main(["index", "--model", "pixels", "--metric", metric.value, "-w", str(ws)]) == 0
    capsys.readouterr()
    assert main(["features", "export", "--model", "pixels", "-w", str(ws), "--out", str(tmp_path / "f.npz")]) == 0
    capsys.readouterr()
    data = np.load(tmp_path / "f.npz")
    ids, vectors = list(data["ids"]), data["vectors"]
    query = ids[7]
    code, out, _ = run(capsys, "search", "--item", query, "--model", "pixels", "--metric", metric.value,
                       "-k", 5, "-w", ws, "--json")
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"model", "metric", "query", "results"}
    assert result["model"] == "pixels" and result["metric"] == metric.value and result["query"]["item_id"] == query
    hits = result["results"]
    assert len(hits) == 5 and query not in [h["item_id"] for h in hits]
    assert set(hits[0]) == {"item_id", "distance", "category", "path"}
    ref = pairwise_distances(vectors[7:8], vectors, metric)[0]
    ref[7] = np.inf  # the query is excluded
    np.testing.assert_allclose([h["distance"] for h in hits], np.sort(ref)[:5], rtol=1e-4, atol=1e-3)
    for h in hits:
        assert ref[ids.index(h["item_id"])] == pytest.approx(h["distance"], rel=1e-4, abs=1e-3)
        assert Path(h["path"]).is_file() and h["category"]


def test_search_by_image_finds_the_same_item(ws, capsys):
    from lookalike.workspace import Workspace

    item = next(Workspace(ws).catalogue.items())
    path = Workspace(ws).catalogue.resolve(item.path)
    # the whole image (--box none) is the catalogue image itself: found at distance 0
    code, out, _ = run(capsys, "search", "--image", path, "--box", "none", "--model", "pixels", "--metric", "l2",
                       "-k", 3, "-w", ws, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["results"][0]["item_id"] == item.id and result["results"][0]["distance"] == pytest.approx(0, abs=1e-3)
    # by default the item is looked for first; the query says which box was searched
    code, out, _ = run(capsys, "search", "--image", path, "--model", "pixels", "-k", 3, "-w", ws, "--json")
    assert code == 0 and json.loads(out)["query"]["box_source"] in ("auto", "none")
    code, out, _ = run(capsys, "search", "--image", path, "--box", "0,0,14,28", "--model", "pixels", "-w", ws)
    assert code == 0 and "1." in out


def test_models_and_info(ws, capsys):
    code, out, _ = run(capsys, "models", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert code == 0 and {"pixels", "efficientnet-lite0", "vgg16-fc6"} <= set(names)
    code, out, _ = run(capsys, "models", "vgg16*")
    assert "vgg16-fc7" in out and "pixels" not in out
    code, out, _ = run(capsys, "info", "-w", ws, "--json")
    assert json.loads(out)["items"] == 120 and json.loads(out)["features"] == {"pixels": 120}


@pytest.mark.parametrize("args, message", [
    (["search", "--item", "nope", "--model", "pixels"], "item 'nope' is not in the catalogue"),
    (["search", "--item", "x", "--model", "resnet", "--metric", "l2"], "unknown model 'resnet'|item 'x'"),
    (["extract", "--model", "resnet"], "unknown model 'resnet'; choose one of: appearance, efficientnet-lite0"),
    (["search", "--image", "missing.jpg", "--model", "pixels"], "missing.jpg: no such file"),
    (["search", "--image", "IMG", "--model", "pixels", "--metric", "cosine"], "unknown metric 'cosine'; choose one"),
    (["search", "--image", "IMG", "--model", "pixels", "--box", "1,2,3"], "four numbers"),
    (["search", "--image", "IMG", "--model", "pixels", "-k", "0"], "k must be at least 1"),
    (["search", "--image", "IMG", "--model", "efficientnet-lite0"], "no features for 'efficientnet-lite0'"),
    (["import", "zip", "x"], "unknown catalogue reader 'zip'"),
    (["extract", "--model", "vgg16-fc6"], "vgg16-397923af.pth"),
])
def test_errors_are_one_line(ws, capsys, tmp_path, args, message):
    image = tmp_path / "img.png"
    shutil.copy(next((ws / "images").rglob("*.png")), image)
    args = [str(image) if a == "IMG" else a for a in args]
    code, out, err = run(capsys, *args, "-w", ws)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: ")
    assert re.search(message, lines[0]), lines[0]


def test_bad_image_query_exits_1(ws, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    proc = subprocess.run([sys.executable, "-m", "lookalike.cli", "search", "--image", str(bad), "--model", "pixels",
                           "-w", str(ws)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "bad.jpg" in proc.stderr and "Traceback" not in proc.stderr


def test_empty_catalogue_extract(tmp_path, capsys):
    code, _, err = run(capsys, "extract", "--model", "pixels", "-w", tmp_path / "empty")
    assert code == 1 and "catalogue in" in err and "is empty" in err


def test_demo_runs_end_to_end(tmp_path, capsys):
    code, out, _ = run(capsys, "demo", "-w", tmp_path / "demo", "--limit", 150, "--no-serve")
    assert code == 0
    for step in ("== 1. import 150", "== 2. extract", "== 3. build", "== 4. example searches", "== 5. evaluation",
                 "random pairs", "== 6. train the item localiser", "== 7. search by photo", "done. Try:"):
        assert step in out
    assert out.count("same category]") == 3 * 2 * 3 + 1  # 3 queries x 2 models x 3 metrics, and the photo
    assert "IoU" in out or "no item found" in out
    assert (tmp_path / "demo" / "demo-photo" / "search.png").is_file()
    assert (tmp_path / "demo" / "localiser" / "localiser.onnx").is_file()
    assert out.count("recall@10 1.000 vs exact") == 2 * 3  # exact indexes, measured
    assert "'similar items' feed: wrote the 5 nearest items of 150 items" in out
    assert len((tmp_path / "demo" / "demo-neighbours.jsonl").read_text().splitlines()) == 150


def test_evaluate_command(ws, capsys):
    code, out, _ = run(capsys, "evaluate", "--models", "pixels", "-w", ws, "--subset", 100, "--queries", 30, "--json")
    report = json.loads(out)
    assert code == 0 and report["gallery"] == 100 and report["queries"] == 30
    assert [r["metric"] for r in report["rows"]] == ["l1", "l2", "hamming"]
    code, _, err = run(capsys, "evaluate", "--models", "pixels", "-w", ws, "--subset", 10, "--queries", 30)
    assert code == 1 and "--queries 30 is larger than the subset of 10" in err


def test_train_extract_evaluate_report_map_commands(ws, capsys, tmp_path):
    code, out, _ = run(capsys, "train", "--backbone", "pixels", "--name", "cli-head", "--hidden", 32, "--epochs", 2,
                       "--batch-size", 32, "-w", ws)
    assert code == 0 and "epoch   2/2" in out and "best epoch" in out
    code, out, _ = run(capsys, "models", "-w", ws)
    assert code == 0 and "cli-head" in out and "trained in this workspace" in out
    code, out, _ = run(capsys, "extract", "--model", "cli-head", "-w", ws)
    assert code == 0 and "computed 120 vectors" in out
    code, out, _ = run(capsys, "evaluate", "--models", "pixels,cli-head", "-w", ws, "--protocol", "held-out",
                       "--subset", 80, "--queries", 10, "--report", tmp_path / "rep")
    assert code == 0 and "cli-head" in out and "wrote" in out
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"report.md", "report.json", "top1.png", "matches.png"}
    code, out, _ = run(capsys, "map", "--model", "cli-head", "--sample", 50, "-w", ws)
    assert code == 0 and "trustworthiness" in out
    code, _, err = run(capsys, "train", "--backbone", "pixels", "--name", "cli-head", "--hidden", 64, "-w", ws)
    assert code == 1 and "other settings" in err
    code, out, _ = run(capsys, "extract", "--model", "pixels", "--split", "test", "--limit", 5, "-w", ws)
    assert code == 0 and "computed 0 vectors" in out


def test_output_to_a_file_or_pipe_shows_line_by_line(monkeypatch):
    """A long job's progress must show when its output is redirected (block-buffered by default)."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="utf-8"))  # like a file: not line-buffered
    assert main(["models"]) == 0
    assert b"efficientnet-lite0" in raw.getvalue()  # written through without a flush
