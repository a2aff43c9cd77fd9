"""A catalogue that changes: indexes keep their backend and parameters and are updated in place (new items
added, removed items taken out, changed images re-extracted), on every backend; the neighbours feed."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from lookalike.cli import main
from lookalike.errors import ItemNotFoundError
from lookalike.index import INDEXES, ItemIndex, list_indexes
from lookalike.index.quality import exact_neighbours
from lookalike.metrics import Metric
from lookalike.search import SearchEngine
from lookalike.updates import export_neighbours, read_item_ids, remove_items
from lookalike.workspace import Workspace

from .test_cli import BUNDLED_SAMPLE, run


def add_folder_items(folder, names: list[str], seed: int) -> None:
    """A few images in a folder catalogue (``folder/<category>/<name>.png``)."""
    rng = np.random.default_rng(seed)
    for name in names:
        category = "dark" if name.startswith("d") else "light"
        (folder / category).mkdir(parents=True, exist_ok=True)
        base = 40 if category == "dark" else 200
        pixels = np.clip(base + rng.normal(0, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / category / f"{name}.png")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A Fashion-MNIST workspace with pixels features: 300 items."""
    root = tmp_path_factory.mktemp("updates") / "ws"
    assert main(["import", "fashion-mnist", str(BUNDLED_SAMPLE), "-w", str(root), "--limit", "300"]) == 0
    assert main(["extract", "--model", "pixels", "-w", str(root)]) == 0
    return root


@pytest.fixture
def ws(base, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(base, root)
    return root


def exact_ids(workspace: Workspace, query_ids: list[str], metric: Metric, k: int) -> list[set[str]]:
    store = workspace.feature_store("pixels")
    distances, ids = exact_neighbours(store, store.vectors_for(query_ids), metric, k + 1)
    return [set(row[1:]) for row in ids]


# every backend that needs nothing outside this process (pgvector: tests/test_pgvector.py)
SELF_CONTAINED = [b for b in list_indexes() if INDEXES.get(b).general
                  and not any(p.required for p in INDEXES.get(b).PARAMS.values())]


@pytest.mark.parametrize("backend", SELF_CONTAINED)
def test_every_backend_updates_in_place(ws, tmp_path, capsys, backend):
    params = "nlist=4" if backend == "faiss-ivf" else None  # few cells, so the new items get a real place
    args = ["index", "--model", "pixels", "--backend", backend, "-w", ws, "--measure", "50"]
    code, out, _ = run(capsys, *args, *(["--param", params] if params else []))
    assert code == 0 and f"{backend} hamming" in out and "recall@10" in out
    metas = {m: ItemIndex.read_meta(ws / "indexes" / "pixels" / m.value) for m in Metric}

    # add: new items are imported and extracted; every index grows in place
    folder = tmp_path / "shop"
    add_folder_items(folder, ["d1", "d2", "l1"], seed=1)
    assert main(["import", "folder", str(folder), "-w", str(ws)]) == 0
    code, out, _ = run(capsys, "extract", "--model", "pixels", "-w", ws)
    assert code == 0 and out.count("+3 / -0 items") == 3, out

    # remove: two old items and one new one, everywhere
    workspace = Workspace(ws)
    old = [str(i) for i in workspace.feature_store("pixels").load()[0][:2]]
    code, out, _ = run(capsys, "remove", *old, "dark/d1.png", "-w", ws)
    assert code == 0 and out.count("+0 / -3 items") == 3, out
    assert "dark/d1.png" not in workspace.catalogue and old[0] not in workspace.catalogue

    # change: a re-imported image with other content is extracted again and replaced in the indexes
    add_folder_items(folder, ["l1"], seed=99)
    os.utime(folder / "light" / "l1.png", ns=(1, 1))  # another modification time too
    assert main(["import", "folder", str(folder), "-w", str(ws)]) == 0  # d1 comes back as well
    code, out, _ = run(capsys, "extract", "--model", "pixels", "-w", ws)
    assert code == 0 and "computed 2 vectors (1 of them for images that changed)" in out, out
    assert out.count("+2 / -1 items") == 3, out

    engine = SearchEngine(Workspace(ws))
    store = Workspace(ws).feature_store("pixels")
    live = set(store.load()[0].tolist())
    for metric in Metric:
        index = engine.get_index("pixels", metric)
        # identity kept: backend and parameters as built, never silently replaced
        assert index.meta.backend == backend and index.meta.params == metas[metric].params
        assert index.live_count == len(live) == 300 + 3 - 3 + 1  # d1 re-imported
        queries = ["light/l1.png", "dark/d1.png", *sorted(live)[:20]]
        hits = index.search(store.vectors_for(queries), 10, model="pixels", exclude=queries)
        assert all({i for i, _ in row} <= live for row in hits)  # nothing removed comes back
        assert not any(old[0] == i for row in hits for i, _ in row)
        if INDEXES.get(backend).exact:
            truth = exact_ids(Workspace(ws), queries, metric, 10)
            reference = exact_neighbours(store, store.vectors_for(queries), metric, 11)[0][:, 1:]
            np.testing.assert_allclose([[d for _, d in row] for row in hits], reference, rtol=1e-4, atol=1e-3)
            assert len(truth) == len(hits)


def test_search_and_evaluate_use_the_stored_backend(ws, capsys):
    assert run(capsys, "index", "--model", "pixels", "--metric", "l2", "--backend", "faiss-hnsw", "--param",
               "M=8,efSearch=20", "--measure", "0", "-w", ws)[0] == 0
    item = str(Workspace(ws).feature_store("pixels").load()[0][1])
    code, out, _ = run(capsys, "search", "--item", item, "--model", "pixels", "--metric", "l2", "-k", "3", "-w", ws,
                       "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 3
    meta = ItemIndex.read_meta(ws / "indexes" / "pixels" / "l2")
    assert meta.backend == "faiss-hnsw" and meta.params == {"M": 8, "efConstruction": 80, "efSearch": 20}
    # a rebuild without --backend keeps the backend and parameters
    assert run(capsys, "index", "--model", "pixels", "--metric", "l2", "--measure", "0", "-w", ws)[0] == 0
    assert ItemIndex.read_meta(ws / "indexes" / "pixels" / "l2") == meta
    code, out, _ = run(capsys, "evaluate", "--models", "pixels", "--metrics", "l1,l2", "--subset", "200",
                       "--queries", "50", "-w", ws, "--json")
    rows = {r["metric"]: r for r in json.loads(out)["rows"]}
    assert code == 0 and rows["l2"]["backend"] == "faiss-hnsw" and rows["l1"]["backend"] == "faiss-flat"


def test_neighbours_feed(ws, tmp_path, capsys):
    out_file = tmp_path / "feed" / "similar.jsonl"
    code, out, _ = run(capsys, "neighbours", "--model", "pixels", "--metric", "l1", "-k", "4", "--out", out_file,
                       "-w", ws, "--batch-size", "64")
    assert code == 0 and "of 300 items" in out
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    workspace = Workspace(ws)
    store = workspace.feature_store("pixels")
    assert [r["item_id"] for r in rows] == [str(i) for i in store.load()[0]]
    some = rows[:25]
    truth = exact_neighbours(store, store.vectors_for([r["item_id"] for r in some]), "l1", 5)[0][:, 1:]
    for row, true_d in zip(some, truth):
        assert set(row) == {"item_id", "neighbours"} and len(row["neighbours"]) == 4
        assert row["item_id"] not in [n["item_id"] for n in row["neighbours"]]
        np.testing.assert_allclose([n["distance"] for n in row["neighbours"]], true_d, rtol=1e-4, atol=1e-3)
    # --items: a CSV with an item_id column restricts the queries
    items = tmp_path / "items.csv"
    items.write_text("item_id,note\n" + "".join(f"{r['item_id']},x\n" for r in rows[5:8]))
    assert read_item_ids(items) == [r["item_id"] for r in rows[5:8]]
    code, out, _ = run(capsys, "neighbours", "--model", "pixels", "-k", "2", "--out", out_file, "--items", items,
                       "-w", ws)
    assert code == 0 and len(out_file.read_text().splitlines()) == 3
    with pytest.raises(ItemNotFoundError, match="'nope'.*nothing was written"):
        export_neighbours(workspace, "pixels", "l2", 3, tmp_path / "bad.jsonl", items=["nope"])
    assert not (tmp_path / "bad.jsonl").exists()


def test_remove_unknown_ids_changes_nothing(ws, capsys):
    workspace = Workspace(ws)
    before = len(workspace.catalogue), len(workspace.feature_store("pixels"))
    code, _, err = run(capsys, "remove", "fashion-mnist/train/00001", "no-such-item", "-w", ws)
    assert code == 1 and "'no-such-item'" in err and "nothing was removed" in err
    assert (len(workspace.catalogue), len(workspace.feature_store("pixels"))) == before
    with pytest.raises(Exception, match="no item ids"):
        remove_items(workspace, [])


def test_half_removed_index_is_compacted(ws):
    workspace = Workspace(ws)
    engine = SearchEngine(workspace, backend="faiss-flat")
    engine.get_index("pixels", "l2")
    ids = [str(i) for i in workspace.feature_store("pixels").load()[0]]
    summary = remove_items(workspace, ids[:200])
    assert summary.indexes["pixels/l2"] == "rebuilt"  # more than half would be holes: rebuilt compactly
    index = SearchEngine(workspace).get_index("pixels", "l2")
    assert index.index.ntotal == index.live_count == 100
