"""Catalogue readers and the SQLite catalogue: layouts, re-imports, bad records."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from lookalike.catalogue import (FASHION_MNIST_CLASSES, Catalogue, Item, import_catalogue, list_readers)
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import CatalogueError, ItemNotFoundError, UnknownNameError


@pytest.fixture
def catalogue(tmp_path):
    with Catalogue(tmp_path / "ws" / "catalogue.sqlite") as cat:
        yield cat


def make_folder_catalogue(root: Path, photo_paths) -> Path:
    for category, names in {"cats": ["chelsea"], "drinks": ["coffee"], "space": ["rocket", "astronaut"]}.items():
        (root / category).mkdir(parents=True)
        for name in names:
            shutil.copy(photo_paths[name], root / category / f"{name}.jpg")
    (root / "space" / "notes.txt").write_text("not an image")
    return root


def test_readers_are_registered():
    assert list_readers() == ["csv", "deepfashion", "deepfashion-inshop", "fashion-mnist", "folder"]
    with pytest.raises(UnknownNameError, match="unknown catalogue reader 'zip'; choose one of: csv, deepfashion"):
        import_catalogue(None, "zip", "x")


def test_folder_reader_and_reimport(tmp_path, catalogue, photo_paths):
    src = make_folder_catalogue(tmp_path / "shop", photo_paths)
    summary = import_catalogue(catalogue, "folder", src)
    assert (summary.added, summary.updated, len(catalogue)) == (4, 0, 4)
    assert summary.skipped == [("space/notes.txt", "not an image file type (.txt)")]
    assert catalogue.get("space/rocket.jpg").category == "space"
    again = import_catalogue(catalogue, "folder", src)
    assert (again.added, again.updated, len(catalogue)) == (0, 4, 4)
    assert catalogue.category_counts() == {"space": 2, "cats": 1, "drinks": 1}
    with pytest.raises(CatalogueError, match="not a folder"):
        import_catalogue(catalogue, "folder", tmp_path / "missing")


def test_csv_reader(tmp_path, catalogue, photo_paths):
    for name in ("chelsea", "coffee", "rocket"):
        shutil.copy(photo_paths[name], tmp_path / f"{name}.jpg")
    (tmp_path / "items.csv").write_text(
        "path,category,x1,y1,x2,y2,split,attributes\n"
        "chelsea.jpg,cat,10,10,100,100,train,striped|furry\n"
        "coffee.jpg,drink,,,,,test,\n"
        "rocket.jpg,space,5,5,1,1,train,\n"          # empty box
        "missing.jpg,space,,,,,,\n"                  # no file
        ",space,,,,,,\n")                            # no path
    summary = import_catalogue(catalogue, "csv", tmp_path / "items.csv")
    assert summary.added == 2 and len(summary.skipped) == 3
    reasons = " ".join(why for _, why in summary.skipped)
    assert "box needs x1 < x2" in reasons and "not found" in reasons and "empty path" in reasons
    cat = catalogue.get("chelsea.jpg")
    assert cat.box == (10, 10, 100, 100) and cat.split == "train" and cat.attributes == ("striped", "furry")
    assert catalogue.get("coffee.jpg").box is None
    (tmp_path / "bad.csv").write_text("file,label\nx.jpg,cat\n")
    with pytest.raises(CatalogueError, match="missing column.*category, path"):
        import_catalogue(catalogue, "csv", tmp_path / "bad.csv")


def _table(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{len(rows)}\n{header}\n" + "\n".join(rows) + "\n")


def test_deepfashion_reader(tmp_path, catalogue, photo_paths):
    root = tmp_path / "DeepFashion"
    images = {"img/Striped_Tee/img_00000001.jpg": "chelsea", "img/Striped_Tee/img_00000002.jpg": "coffee",
              "img/Maxi_Dress/img_00000001.jpg": "rocket"}
    for rel, photo in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo_paths[photo], root / rel)
    names = list(images)
    _table(root / "Anno/list_category_cloth.txt", "category_name  category_type",
           ["Anorak                       1", "Tee                          1", "Dress                        3"])
    _table(root / "Anno/list_category_img.txt", "image_name  category_label",
           [f"{names[0]}  2", f"{names[1]}  2", f"{names[2]}  3", "img/Gone/img_1.jpg  1"])
    _table(root / "Anno/list_bbox.txt", "image_name  x_1  y_1  x_2  y_2",
           [f"{names[0]}  10 20 120 150", f"{names[1]}  0 0 100 100", f"{names[2]}  5 5 200 160"])
    _table(root / "Eval/list_eval_partition.txt", "image_name  evaluation_status",
           [f"{names[0]}  train", f"{names[1]}  val", f"{names[2]}  test"])
    _table(root / "Anno/list_attr_cloth.txt", "attribute_name  attribute_type",
           ["a-line                       3", "floral print                 1", "striped                      1"])
    _table(root / "Anno/list_attr_img.txt", "image_name  attribute_labels",
           [f"{names[0]}  -1 -1  1", f"{names[1]}  -1  1  1", f"{names[2]}   1 -1 -1"])
    summary = import_catalogue(catalogue, "deepfashion", root)
    assert summary.added == 3 and summary.skipped == [("img/Gone/img_1.jpg", "image file not found")]
    tee = catalogue.get(names[0])
    assert (tee.category, tee.split, tee.box, tee.attributes) == ("Tee", "train", (10, 20, 120, 150), ("striped",))
    assert catalogue.get(names[1]).attributes == ("floral print", "striped")
    assert catalogue.get(names[2]).category == "Dress"
    assert catalogue.split_counts() == {"test": 1, "train": 1, "val": 1}
    with pytest.raises(CatalogueError, match="missing .*list_category_cloth.txt"):
        import_catalogue(catalogue, "deepfashion", tmp_path / "empty")


def test_deepfashion_inshop_reader(tmp_path, catalogue, photo_paths):
    root = tmp_path / "InShop"
    images = {"img/WOMEN/Dresses/id_00000002/02_1_front.jpg": "chelsea",
              "img/WOMEN/Dresses/id_00000002/02_2_side.jpg": "coffee",
              "img/MEN/Denim/id_00000080/01_1_front.jpg": "rocket"}
    for rel, photo in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo_paths[photo], root / rel)
    names = list(images)
    _table(root / "Eval/list_eval_partition.txt", "image_name item_id evaluation_status",
           [f"{names[0]}  id_00000002  query", f"{names[1]}  id_00000002  gallery",
            f"{names[2]}  id_00000080  train", "img/WOMEN/Dresses/id_9/gone.jpg  id_9  gallery", "short line"])
    _table(root / "Anno/list_bbox_inshop.txt", "image_name clothes_type pose_type x_1 y_1 x_2 y_2",
           [f"{names[0]}  1 1  10 20 120 150"])
    summary = import_catalogue(catalogue, "deepfashion-inshop", root)
    assert summary.added == 3 and len(summary.skipped) == 2
    front = catalogue.get(names[0])
    assert (front.category, front.split, front.product, front.box) == ("Dresses", "query", "id_00000002",
                                                                         (10, 20, 120, 150))
    assert catalogue.get(names[2]).product == "id_00000080" and catalogue.get(names[2]).box is None


def test_old_catalogue_files_are_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "catalogue.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE items (id TEXT PRIMARY KEY, path TEXT NOT NULL, category TEXT NOT NULL, split TEXT,
                    x1 REAL, y1 REAL, x2 REAL, y2 REAL, attributes TEXT NOT NULL DEFAULT '[]',
                    source TEXT NOT NULL DEFAULT '', added_at TEXT NOT NULL DEFAULT (datetime('now')))""")
    conn.execute("INSERT INTO items(id, path, category) VALUES ('a', 'a.png', 'lamp')")
    conn.commit()
    conn.close()
    with Catalogue(path) as cat:
        assert cat.get("a").product is None and cat.get("a").category == "lamp"
        cat.upsert([Item("b", "b.png", "lamp", product="p1")])
        assert cat.get("b").product == "p1"
    with Catalogue(path) as cat:  # reopening is a no-op
        assert len(cat) == 2


def _write_idx(path: Path, array: np.ndarray) -> None:
    with gzip.open(path, "wb") as fh:
        fh.write(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def test_fashion_mnist_reader_limit_seed_and_reimport(tmp_path, catalogue):
    summary = import_catalogue(catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=100, seed=3,
                               image_dir=tmp_path / "images")
    assert summary.added == 100 and len(catalogue) == 100
    splits = catalogue.split_counts()
    assert set(splits) == {"train", "test"} and splits["train"] > splits["test"]
    assert set(catalogue.category_counts()) <= set(FASHION_MNIST_CLASSES)
    item = next(catalogue.items())
    assert catalogue.resolve(item.path).is_file()
    small = set(catalogue.ids())
    bigger = import_catalogue(catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=200, seed=3,
                              image_dir=tmp_path / "images")
    assert (bigger.added, bigger.updated, len(catalogue)) == (100, 100, 200)  # a superset, no duplicates
    assert small <= set(catalogue.ids())


def test_fashion_mnist_reader_errors(tmp_path, catalogue):
    with pytest.raises(CatalogueError, match="dataset-fashion-mnist"):
        import_catalogue(catalogue, "fashion-mnist", tmp_path, image_dir=tmp_path / "images")
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((3, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(2))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((1, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(1))
    with pytest.raises(CatalogueError, match="3 images but 2 labels"):
        import_catalogue(catalogue, "fashion-mnist", tmp_path, image_dir=tmp_path / "images")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_package(tmp_path, catalogue):
    summary = import_catalogue(catalogue, "fashion-mnist", None, limit=50, image_dir=tmp_path / "images")
    assert summary.added == 50 and summary.skipped == []


def test_item_lookup_errors(catalogue, tmp_path):
    catalogue.upsert([Item("a", str(tmp_path / "a.jpg"), "x")])
    with pytest.raises(ItemNotFoundError, match="item 'b' is not in the catalogue.*ids look like: a"):
        catalogue.get("b")
    with pytest.raises(CatalogueError, match="needs x1 < x2"):
        Item("c", "c.jpg", "x", box=(5, 5, 1, 1))
