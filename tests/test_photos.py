"""Photos from the wild: synthetic photos, query-photo CSVs, localisers, photo evaluation, the photos recipe."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike.catalogue import import_catalogue
from lookalike.cli import main
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.errors import ConfigError, ImageError
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.images import crop_to_box, load_image
from lookalike.photos import (ActivationLocaliser, PhotoStyle, QueryPhoto, box_iou, item_mask, make_photo,
                              make_query_photos, read_query_photos, write_query_photos)
from lookalike.photos.localise import Detection, Localiser, pad_box
from lookalike.training.recipes import WEIGHT_CANDIDATES, choose_clean_share, choose_part_weights
from lookalike.training.trainer import (TrainConfig, fresh_validation_photo_items, training_split,
                                        validation_photo_items)
from lookalike.workspace import Workspace


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """240 Fashion-MNIST items with pixels and EfficientNet-Lite0 features."""
    ws = Workspace(tmp_path_factory.mktemp("photos") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=240, seed=0, image_dir=ws.images_dir)
    for model in ("pixels", "efficientnet-lite0"):
        extract_features(ws.catalogue, create_extractor(model), ws.feature_store(model), progress=False)
    return ws


@pytest.fixture(scope="module")
def photo_csv(ws, tmp_path_factory):
    return make_query_photos(ws, tmp_path_factory.mktemp("query-photos"), count=12, split="test", seed=3,
                             progress=False)


def shirt() -> Image.Image:
    """A light item on a black background, like a Fashion-MNIST image."""
    img = Image.new("RGB", (28, 28), (0, 0, 0))
    ImageDraw.Draw(img).rectangle((6, 4, 21, 25), fill=(200, 200, 200))
    return img


# -- synthesis ------------------------------------------------------------------------------------
def test_item_mask_is_what_differs_from_the_border():
    mask = item_mask(shirt())
    assert mask[4:26, 6:22].all() and not mask[:, :5].any() and not mask[:3].any()
    flat = Image.new("RGB", (20, 20), (90, 90, 90))
    assert item_mask(flat).all()  # nothing stands out: the whole image is the item


def test_photo_box_holds_the_item_and_the_seed_repeats_it():
    style = PhotoStyle(size=(200, 160), second_item=1.0, occlusion=0.0)
    a = make_photo(shirt(), np.random.default_rng(5), style, second=shirt())
    b = make_photo(shirt(), np.random.default_rng(5), style, second=shirt())
    assert a.image.size == (200, 160) and a.box == b.box
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
    x1, y1, x2, y2 = a.box
    assert 0 <= x1 < x2 <= 200 and 0 <= y1 < y2 <= 160
    assert a.mask.shape == (160, 200) and a.mask[int(y1):int(y2), int(x1):int(x2)].mean() > 0.3
    assert a.mask.mean() < 0.9  # the scene is not all item
    assert a.second_box is not None or a.mask.sum() > 0


def test_the_main_item_mask_is_the_main_item_only():
    style = PhotoStyle(size=(200, 160), second_item=1.0, occlusion=0.0)
    for seed in range(6):
        photo = make_photo(shirt(), np.random.default_rng(seed), style, second=shirt())
        main = photo.main_mask
        assert main.shape == photo.mask.shape and main.any()
        assert not (main & ~photo.mask).any()  # part of the all-items mask
        rows, cols = np.nonzero(main)  # and exactly the main item's box
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == photo.box
        if photo.second_box is not None and box_iou(photo.second_box, photo.box) < 0.2:
            x1, y1, x2, y2 = (round(v) for v in photo.second_box)
            assert photo.mask[y1:y2, x1:x2].any() and not main[y1:y2, x1:x2].all()


def test_photograph_backgrounds_are_real_photographs_and_off_by_default():
    from lookalike.photos.synthesis import TRAINING_STYLE, background, training_photographs

    assert len(training_photographs()) >= 10 and TRAINING_STYLE.photographs > 0 == PhotoStyle().photographs
    img = np.asarray(background(np.random.default_rng(1), (120, 90), photographs=1.0), np.float32)
    assert img.shape == (90, 120, 3) and img.std() > 5  # a textured crop, not a flat colour
    # off (the default): no draw is spent on it, so seeded photo sets made before it came are unchanged
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    np.testing.assert_array_equal(np.asarray(background(a, (64, 64))), np.asarray(background(b, (64, 64), 0.0)))
    assert a.random() == b.random()


def test_scene_photos_hold_the_item_in_a_real_scene():
    from lookalike.photos.scene import SIZES, make_scene_photo

    for seed in range(6):
        a = make_scene_photo(shirt(), np.random.default_rng(seed), second=shirt())
        b = make_scene_photo(shirt(), np.random.default_rng(seed), second=shirt())
        assert a.image.size in SIZES and a.box == b.box
        np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
        x1, y1, x2, y2 = a.box
        assert 0 <= x1 < x2 <= a.image.width and 0 <= y1 < y2 <= a.image.height
        assert a.mask[int(y1):int(y2), int(x1):int(x2)].mean() > 0.2 and a.mask.mean() < 0.8


def test_phone_photos_show_the_item_among_others_in_screenshots_and_cut_by_the_frame(monkeypatch):
    from lookalike.photos import phone

    seen = {}
    real = {kind: getattr(phone, f"_{kind}") for kind in phone.KINDS}
    for kind in phone.KINDS:  # record which kind each seed drew
        monkeypatch.setattr(phone, f"_{kind}", lambda *a, _k=kind, **kw: seen.setdefault("last", []).append(_k)
                            or real[_k](*a, **kw))
    monkeypatch.setattr(phone, "LARGE", (600, 800))  # small photos: the test's time
    monkeypatch.setattr(phone, "SIZES", ((300, 400), (400, 300)))
    kinds, orientations = set(), set()
    for seed in range(12):
        a = phone.make_phone_photo(shirt(), np.random.default_rng(seed), [shirt(), shirt(), shirt()])
        b = phone.make_phone_photo(shirt(), np.random.default_rng(seed), [shirt(), shirt(), shirt()])
        np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))  # seeded
        kind = seen["last"][-1]
        kinds.add(kind)
        orientations.add(a.orientation)
        x1, y1, x2, y2 = a.box
        assert a.box == b.box and 0 <= x1 < x2 <= a.image.width and 0 <= y1 < y2 <= a.image.height
        assert a.main_mask.shape == (a.image.height, a.image.width)
        inside = a.main_mask[int(y1):int(y2), int(x1):int(x2)]
        assert inside.mean() > 0.3 and a.main_mask.sum() == inside.sum()  # the box holds the item's visible part
        if kind == "rail":  # its neighbours are items too, outside the item's own mask
            assert (a.mask & ~a.main_mask).any()
        if kind == "screenshot":
            assert a.image.size == (1080, 2340)
    assert kinds == set(phone.KINDS) and orientations - {1} and 1 in orientations
    filled = Image.new("RGB", (28, 28), (200, 60, 60))  # an item that fills its image: cut wherever it lies out
    for seed in range(6):
        _, (x1, y1, x2, y2), _ = real["cut"](filled, np.random.default_rng(seed), (300, 400))
        assert x1 == 0 or y1 == 0 or x2 == 300 or y2 == 400


def test_a_photo_stored_turned_reads_upright_in_its_boxs_coordinates(tmp_path):
    from lookalike.images import load_photo
    from lookalike.photos.sets import save_photo
    from lookalike.photos.synthesis import Photo

    upright = Image.new("RGB", (60, 40), (20, 20, 20))
    ImageDraw.Draw(upright).rectangle((40, 5, 55, 30), fill=(250, 250, 250))  # the item, right of centre
    for orientation in (1, 3, 6, 8):
        path = tmp_path / f"o{orientation}.jpg"
        save_photo(Photo(upright, (40, 5, 56, 31), orientation=orientation), path)
        with Image.open(path) as stored:
            assert stored.getexif().get(0x0112, 1) == orientation
            assert stored.size == ((40, 60) if orientation in (6, 8) else (60, 40))
        img, scale, full = load_photo(path)
        assert img.size == full == (60, 40) and scale == 1.0
        crop = np.asarray(img.crop((40, 5, 56, 31))).mean()
        assert crop > 200 and np.asarray(img.crop((0, 0, 30, 40))).mean() < 40


def test_make_scene_photos_cli_and_unknown_maker(ws, tmp_path, capsys):
    code, out, _ = run(capsys, "photos", "make", "-w", ws.root, "--out", tmp_path / "scene", "--count", 3,
                       "--style", "scene")
    assert code == 0 and "(scene)" in out
    photos = read_query_photos(tmp_path / "scene" / "photos.csv")
    assert len(photos) == 3 and all(p.box and p.item and p.path.is_file() for p in photos)
    # the phone maker through the CLI: full-size photos, boxes in the upright photo's pixels
    code, out, _ = run(capsys, "photos", "make", "-w", ws.root, "--out", tmp_path / "phone", "--count", 2,
                       "--style", "phone", "--seed", 3)
    assert code == 0 and "(phone)" in out
    from lookalike.images import load_photo

    for photo in read_query_photos(tmp_path / "phone" / "photos.csv"):
        _, _, (width, height) = load_photo(photo.path)
        x1, y1, x2, y2 = photo.box
        assert max(width, height) >= 1512 and 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    with pytest.raises(ConfigError, match="unknown photo maker 'street'; choose from clutter, scene, phone"):
        make_query_photos(ws, tmp_path / "x", count=1, maker="street")
    from lookalike.cli import PHOTO_MAKERS
    from lookalike.photos.sets import MAKERS

    assert PHOTO_MAKERS == MAKERS  # the CLI names them without importing the photos package


# -- boxes ---------------------------------------------------------------------------------------
def test_box_helpers():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0
    assert pad_box((10, 10, 20, 20), (100, 100), 0.1) == pytest.approx((9, 9, 21, 21))
    assert pad_box((0, 0, 4, 4), (100, 100), 0.0, min_side=12) == pytest.approx((0, 0, 8, 8))  # tiny: widened


def test_crop_boxes_are_whole_pixels_clipped_to_the_image():
    img = Image.new("RGB", (40, 30))
    assert crop_to_box(img, (1.5, 1.5, 2.5, 2.5)).size == (2, 2)  # was a 0-pixel crop and a 500
    assert crop_to_box(img, (1.5, 0, 2.5, 200)).size == (2, 30)
    assert crop_to_box(img, (-10, -10, 20, 20)).size == (20, 20)  # partly outside: clipped
    with pytest.raises(ImageError, match="empty inside the 40x30 image"):
        crop_to_box(img, (50, 50, 60, 60))
    with pytest.raises(ImageError, match="empty"):
        crop_to_box(img, (5, 5, 5, 9))


class _FixedMap(Localiser):
    """A localiser whose probability map is given: tests the map -> boxes step exactly."""

    def __init__(self, prob: np.ndarray, **kwargs):
        super().__init__(input_size=prob.shape[0] * 16, **kwargs)
        self.prob = prob

    def _letterbox(self, img):
        scale = self.input_size / max(img.size)
        w, h = round(img.width * scale), round(img.height * scale)
        return None, scale, (self.input_size - w) // 2, (self.input_size - h) // 2

    def _probability(self, batch):
        return self.prob


class _MainAndAnyMaps(_FixedMap):
    """A localiser with a main-item map beside its any-item map."""

    def __init__(self, prob: np.ndarray, main: np.ndarray, **kwargs):
        super().__init__(prob, **kwargs)
        self.main = main

    def _maps(self, batch):
        return self.prob, self.main


def test_a_main_item_map_ranks_the_items():
    anything = np.zeros((20, 20), np.float32)
    anything[2:14, 2:12] = 0.9  # a large item (a bag behind the shoe, say) ...
    anything[14:19, 13:19] = 0.9  # ... and the item the photo is of
    photo = Image.new("RGB", (320, 320))
    plain = _FixedMap(anything).locate(photo)
    assert box_iou(plain[0].box, (32, 32, 192, 224)) > 0.8  # without a main map: the largest first
    main = np.zeros((20, 20), np.float32)
    main[15:19, 13:19] = 0.7
    main[5, 5] = 0.2  # a little doubt about the other
    found = _MainAndAnyMaps(anything, main).locate(photo)
    assert [d.box for d in found] == [plain[1].box, plain[0].box]  # same boxes, the main item first
    assert found[0].score > 0.8 > 0.2 > found[1].score > 0  # shares of the main map
    # no main item anywhere: the any-item order
    assert [d.box for d in _MainAndAnyMaps(anything, np.zeros_like(main)).locate(photo)] == [d.box for d in plain]


def _one_item_map(cells: tuple[int, int, int, int]) -> np.ndarray:
    prob = np.zeros((20, 20), np.float32)
    r1, r2, c1, c2 = cells
    prob[r1:r2, c1:c2] = 0.9
    return prob


def _busy(size=(320, 320), seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_a_large_item_on_a_plain_backdrop_is_a_product_shot_searched_whole():
    plain = Image.new("RGB", (320, 320), (250, 250, 250))
    ImageDraw.Draw(plain).rectangle((64, 48, 256, 272), fill=(30, 60, 200))
    localiser = _FixedMap(_one_item_map((3, 17, 4, 16)))  # the item's cells: 48..272 x 64..256 pixels
    box, source, found = localiser.choose(plain)
    assert source == "auto" and box == (0, 0, 320, 320) and len(found) == 1
    views, box2, _, _ = localiser.views(plain)
    assert box2 == box and len(views) == 1 and views[0].size == (320, 320)
    # the same item on a busy backdrop is cut out, as crops at several margins (the smallest is its box)
    views, box, source, _ = localiser.views(_busy())
    assert source == "auto" and box != (0, 0, 320, 320)
    assert len(views) == len(localiser.view_margins) == 3
    assert views[0].size == (192, 224) and views[0].size < views[-1].size
    # the same large item off-centre (a close-up, cut by the frame) is cut out: not framed like a catalogue image
    off = Image.new("RGB", (320, 320), (250, 250, 250))
    ImageDraw.Draw(off).rectangle((0, 48, 192, 272), fill=(30, 60, 200))
    shifted = _FixedMap(_one_item_map((3, 17, 0, 12)))  # 48..272 x 0..192: its centre 64 px left of the photo's
    box, source, _ = shifted.choose(off)
    assert source == "auto" and box != (0, 0, 320, 320) and len(shifted.views(off)[0]) == 3
    # a small item on a plain backdrop is cut out too (a photo of a thing on a table, not a product shot)
    small = _FixedMap(_one_item_map((8, 11, 8, 11)))
    assert small.choose(plain)[0] != (0, 0, 320, 320) and len(small.views(plain)[0]) == 3
    # nothing found: the whole photo, source none
    empty = _FixedMap(np.zeros((20, 20), np.float32))
    assert empty.choose(plain)[:2] == (None, "none")
    views, box, source, _ = empty.views(plain)
    assert (box, source) == (None, "none") and [v.size for v in views] == [(320, 320)]


def test_the_views_of_a_query_are_averaged():
    from lookalike.extractors.base import group_means

    assert np.allclose(group_means(np.arange(12, dtype=np.float32).reshape(6, 2), [1, 3, 2]),
                       [[0, 1], [4, 5], [9, 10]])
    with pytest.raises(ValueError, match="at least one image"):
        group_means(np.zeros((2, 2)), [2, 0])
    extractor = create_extractor("pixels")
    a, b = Image.new("RGB", (28, 28), (10, 10, 10)), _busy((28, 28))
    mean = extractor.embed_views([[a, b], [b]])
    assert mean.shape == (2, extractor.dim)
    assert np.allclose(mean, [extractor.embed([a, b]).mean(0), extractor.embed([b])[0]], atol=1e-5)


def test_scda_finds_a_bright_item_on_a_plain_photo():
    photo = Image.new("RGB", (320, 240), (40, 90, 40))
    ImageDraw.Draw(photo).ellipse((40, 50, 150, 200), fill=(250, 240, 30))
    found = ActivationLocaliser().locate(photo)
    assert found and all(isinstance(d, Detection) for d in found)
    assert box_iou(found[0].box, (40, 50, 150, 200)) > 0.3


# -- query-photo CSVs ----------------------------------------------------------------------------
def test_query_photo_csv_round_trip_and_layouts(tmp_path):
    photos = [QueryPhoto(tmp_path / "a.jpg", "Dress", (1, 2, 30, 40), "item-1"), QueryPhoto(tmp_path / "b.jpg", "Bag")]
    write_query_photos(tmp_path / "q.csv", photos)
    assert read_query_photos(tmp_path / "q.csv") == photos
    (tmp_path / "plain.csv").write_text("a.jpg,Dress\nb.jpg,Bag\n")
    assert [p.category for p in read_query_photos(tmp_path / "plain.csv")] == ["Dress", "Bag"]
    (tmp_path / "box.csv").write_text("a.jpg,Dress,1,2,30,40\n")
    assert read_query_photos(tmp_path / "box.csv")[0].box == (1, 2, 30, 40)


@pytest.mark.parametrize("text, message", [
    ("", "no rows"),
    ("a.jpg,Dress,1,2\n", "expected path,category"),
    ("path,category,colour\na.jpg,Dress,red\n", "unknown"),
    ("path,category,x1,y1\na.jpg,Dress,1,2\n", "all four columns"),
    ("path,category,x1,y1,x2,y2\na.jpg,Dress,5,5,1,1\n", "line 2: box .* needs x1 < x2"),
    ("path,category,x1,y1,x2,y2\na.jpg,Dress,a,b,c,d\n", "line 2: box .* not four numbers"),
    ("path,category\na.jpg,Dress,extra\n", "line 2: 3 columns"),
    ("path,category\n,Dress\n", "must not be empty"),
])
def test_bad_query_photo_csv_says_what_and_where(tmp_path, text, message):
    (tmp_path / "q.csv").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_query_photos(tmp_path / "q.csv")


def test_made_photos_are_listed_with_true_boxes_and_items(ws, photo_csv):
    photos = read_query_photos(photo_csv)
    assert len(photos) == 12 and all(p.path.is_file() and p.box and p.item for p in photos)
    for p in photos:
        item = ws.catalogue.get(p.item)
        assert item.split == "test" and item.category == p.category
        img = load_image(p.path)
        assert 0 <= p.box[0] < p.box[2] <= img.width and 0 <= p.box[1] < p.box[3] <= img.height


# -- search and evaluation -------------------------------------------------------------------------
def test_search_photo_auto_box_json(ws, photo_csv, capsys):
    photo = read_query_photos(photo_csv)[0]
    code, out, _ = run(capsys, "search", "--image", photo.path, "--model", "efficientnet-lite0", "-k", 3,
                       "-w", ws.root, "--json")
    assert code == 0
    query = json.loads(out)["query"]
    assert query["box_source"] in ("auto", "none") and len(json.loads(out)["results"]) == 3
    if query["box_source"] == "auto":
        assert query["box"] and query["candidates"]
    code, out, _ = run(capsys, "search", "--image", photo.path, "--box", "none", "--model", "pixels", "-w", ws.root,
                       "--json")
    assert json.loads(out)["query"]["box"] is None and json.loads(out)["query"]["box_source"] == "none"
    code, out, _ = run(capsys, "search", "--image", photo.path, "--box=-20,-20,5000,100", "--model", "pixels",
                       "-w", ws.root, "--json")
    query = json.loads(out)["query"]
    assert query["box_source"] == "given" and query["box"] == [0, 0, 320, 100]  # clipped to the photo


def test_a_photo_with_no_item_falls_back_to_the_whole_photo(ws, tmp_path, capsys, monkeypatch):
    from lookalike.photos import localise

    monkeypatch.setattr(localise, "workspace_localiser", lambda _ws: _FixedMap(np.zeros((20, 20), np.float32)))
    path = tmp_path / "flat.png"
    Image.new("RGB", (120, 90), (128, 128, 128)).save(path)
    code, out, err = run(capsys, "search", "--image", path, "--model", "pixels", "-w", ws.root, "--json")
    query = json.loads(out)["query"]
    assert code == 0 and query["box"] is None and query["box_source"] == "none"
    code, out, err = run(capsys, "search", "--image", path, "--model", "pixels", "-w", ws.root)
    assert code == 0 and "no item found in the photo: searched the whole photo" in err


def test_evaluate_query_photos_json_rows(ws, photo_csv, capsys):
    code, out, _ = run(capsys, "evaluate", "--models", "pixels,efficientnet-lite0", "--metrics", "l2,hamming",
                       "--query-photos", photo_csv, "--protocol", "held-out", "--subset", 100, "-w", ws.root,
                       "--json")
    assert code == 0
    report = json.loads(out)
    rows = report["rows"]
    assert len(rows) == 2 * 2 * 3
    for row in rows:
        assert {"model", "metric", "box", "top1", "item_recall@1", "item_recall@10"} <= set(row)
        assert 0 <= row["top1"] <= 1 and 0 <= row["item_recall@1"] <= row["item_recall@10"] <= 1
    assert {r["box"] for r in rows} == {"given", "auto", "none"}
    iou = report["photos"]["localiser_iou"]
    assert iou["photos"] == 12 and 0 <= iou["mean_iou"] <= 1


def test_photo_evaluation_matches_a_brute_force_search(ws, photo_csv):
    """Top-1 and item recall of the given-box rows, recomputed by hand with numpy."""
    from lookalike.photos.evaluation import evaluate_photos

    report = evaluate_photos(ws, ["efficientnet-lite0"], ["l2"], photo_csv, boxes=["given"], subset=100, progress=False)
    row = report.rows[0]
    photos = read_query_photos(photo_csv)
    extractor = create_extractor("efficientnet-lite0")
    queries = extractor.embed([load_image(p.path, p.box) for p in photos])
    items = {i.id: i for i in ws.catalogue.items()}
    rng = np.random.default_rng(0)
    from lookalike.evaluation import _choose

    pool = [i for i in ws.feature_store("efficientnet-lite0").load()[0].tolist() if items[i].split != "test"]
    gallery = sorted(set(_choose(rng, pool, 100)) | {p.item for p in photos})
    vectors = ws.feature_store("efficientnet-lite0").vectors_for(gallery)
    d = ((queries[:, None, :] - vectors[None]) ** 2).sum(-1)
    order = np.argsort(d, axis=1)
    top1 = np.mean([items[gallery[o[0]]].category == p.category for o, p in zip(order, photos)])
    recall10 = np.mean([p.item in [gallery[j] for j in o[:10]] for o, p in zip(order, photos)])
    assert report.gallery == len(gallery)
    assert row.top1 == pytest.approx(top1) and row.item_recall_at[10] == pytest.approx(recall10)


def test_a_model_with_a_photo_model_is_scored_with_it_on_photos(ws, photo_csv):
    """Photos are searched with the photo model a combined model names, as ``search --image`` does."""
    from lookalike.extractors.combined import save_combined
    from lookalike.photos.evaluation import evaluate_photos

    save_combined(ws.models_dir, "asym", ["pixels", "efficientnet-lite0"], photo_model="efficientnet-lite0",
                  overwrite=True)
    extract_features(ws.catalogue, ws.create_extractor("asym"), ws.feature_store("asym"), progress=False,
                     part_stores=[ws.feature_store("pixels"), ws.feature_store("efficientnet-lite0")])
    report = evaluate_photos(ws, ["asym", "efficientnet-lite0"], ["l2", "hamming"], photo_csv, boxes=["given", "none"],
                             subset=100, progress=False)
    assert report.photos["searched_with"] == {"asym": "efficientnet-lite0"}
    rows = {(r.model, r.metric, r.box): r for r in report.rows}
    for metric in ("l2", "hamming"):
        for box in ("given", "none"):
            routed, photo = rows[("asym", metric, box)], rows[("efficientnet-lite0", metric, box)]
            assert (routed.top1, routed.item_recall_at) == (photo.top1, photo.item_recall_at)


@pytest.mark.parametrize("args, message", [
    (["--box", "given,sideways"], "--box: choose any of given, auto, none"),
    (["--box", "auto"], "use it with --query-photos"),
])
def test_bad_photo_evaluation_settings(ws, photo_csv, capsys, args, message):
    extra = [] if "use it with" in message else ["--query-photos", photo_csv]
    code, _, err = run(capsys, "evaluate", "--models", "pixels", "-w", ws.root, *extra, *args)
    assert code == 1 and message in err


def test_query_photos_naming_unknown_items_are_refused(ws, tmp_path, capsys):
    Image.new("RGB", (40, 40)).save(tmp_path / "a.jpg")
    (tmp_path / "q.csv").write_text("path,category,item\na.jpg,Dress,no-such-item\n")
    code, _, err = run(capsys, "evaluate", "--models", "pixels", "--query-photos", tmp_path / "q.csv", "-w", ws.root)
    assert code == 1 and "not in the catalogue" in err


# -- training ------------------------------------------------------------------------------------
def test_photos_recipe_trains_three_heads_two_combinations_and_a_localiser(ws, capsys, monkeypatch):
    monkeypatch.setattr("lookalike.training.recipes.MAX_CLEAN_QUERIES", 7)  # a sample of the validation items
    monkeypatch.setattr("lookalike.training.recipes.CLEAN_SHARES", (1.0,))  # the clean part joins (the choice: below)
    code, out, err = run(capsys, "train", "--recipe", "photos", "--name", "photo-model", "--epochs", 2,
                         "--photo-views", 1, "--val-photos", 10, "--hidden", 32, "--localiser-photos", 30,
                         "-w", ws.root)
    assert code == 0, err
    assert "localiser: validation mean IoU" in out and "photo-model-lite0: best epoch" in out
    assert "photo-model-pixels: best epoch" in out and "validation photo score" in out
    assert "photo-model-clean: best epoch" in out and "clean part's share 1: clean validation top-1 l2" in out
    for part, backbone, head, views in (("photo-model-lite0", "efficientnet-lite0-rmac", "mlp", 1),
                                        ("photo-model-pixels", "pixels", "conv", 1),
                                        ("photo-model-clean", "pixels", "conv", 0)):
        saved = json.loads((ws.root / "models" / part / "model.json").read_text())
        config = saved["config"]
        assert config["recipe"] == "photos" and config["backbone"] == backbone and config["head"] == head
        assert config["photo_views"] == views and config["epochs"] == 2 and len(saved["history"]) == 2
        assert config["hidden"] == 32
    # the catalogue model joins all three parts and names the photo parts' join as its photo model
    catalogue_model = json.loads((ws.root / "models" / "photo-model" / "model.json").read_text())
    assert catalogue_model["config"]["models"] == ["photo-model-lite0", "photo-model-pixels", "photo-model-clean"]
    assert catalogue_model["config"]["photo_model"] == "photo-model-photos"
    share = catalogue_model["weights_selection"]["clean_share"]
    assert [r["share"] for r in share["candidates"]] == [1.0] and share["clean_queries"] == 7
    for r in share["candidates"]:
        assert set(r["clean_top1"]) == {"l2", "l1", "hamming"}
        assert r["score"] == pytest.approx(np.mean(list(r["clean_top1"].values())))
    combined = json.loads((ws.root / "models" / "photo-model-photos" / "model.json").read_text())
    assert combined["config"]["models"] == ["photo-model-lite0", "photo-model-pixels"]
    assert "photo_model" not in combined["config"]
    photo_weights = combined["config"]["weights"]
    assert catalogue_model["config"]["weights"] == [*photo_weights, sum(photo_weights)]
    # the parts' weights were chosen on validation data: the best-scoring candidate, first on ties
    selection = combined["weights_selection"]
    rows = selection["candidates"]
    assert [r["weights"] for r in rows] == [list(w) for w in WEIGHT_CANDIDATES] and selection["photos"] == 20
    assert selection["clean_queries"] == 7 and "fresh validation photos" in selection["chosen_on"]
    # scored on fresh photos, of other validation items than the 10 whose photos chose the epochs (while any remain)
    parts = [TrainConfig.from_saved(json.loads((ws.root / "models" / p / "model.json").read_text())["config"])
             for p in combined["config"]["models"]]
    train_ids, val_ids, _, _ = training_split(Workspace(ws.root), parts[0])
    epoch_items = set(validation_photo_items(parts[0], train_ids, val_ids)[0])
    choice_items = fresh_validation_photo_items(parts[0], val_ids, 20, epoch_items)
    assert len(epoch_items) == 10 and len(set(choice_items)) == min(20, len(val_ids))
    assert len(epoch_items & set(choice_items)) == max(0, len(choice_items) + 10 - len(val_ids))
    for part in combined["config"]["models"]:
        names = {f.name.split("-0")[0] for f in (ws.root / "models" / part).glob("*-photos-*.npy")}
        assert names == {"val-photos", "choice-photos"}
    for r in rows:
        assert 0 <= r["clean_top1"] <= 1 and 0 <= r["photo_top1"] <= 1
        assert r["score"] == pytest.approx((r["clean_top1"] + (r["photo_top1"] + r["photo_item_recall@10"]) / 2) / 2)
    best = max(r["score"] for r in rows)
    assert combined["config"]["weights"] == next(r["weights"] for r in rows if r["score"] == best)
    assert "parts' weights 1:4: clean validation top-1" in out and "chosen on validation data" in out
    # parts whose validation photos differ (another seed) cannot be compared: they keep 1:1
    kept = choose_part_weights(Workspace(ws.root), [parts[0], replace(parts[1], seed=parts[1].seed + 1)], [], [], {},
                               log=quiet)
    assert kept == ([1.0, 1.0], None)
    assert (ws.root / "localiser" / "localiser.onnx").is_file()
    # the model is ready to search, and an extractor like any other: store path == image path
    ws2 = Workspace(ws.root)
    model = ws2.create_extractor("photo-model")
    ids, stored = ws2.feature_store("photo-model").load()
    assert len(ids) == len(ws2.catalogue)
    images = [load_image(ws2.catalogue.resolve(ws2.catalogue.get(i).path)) for i in ids[:5]]
    np.testing.assert_allclose(model.embed(images), stored[:5], rtol=1e-4, atol=1e-4)
    # the trained localiser is now the workspace's
    from lookalike.photos.localise import TrainedLocaliser, workspace_localiser

    localiser = workspace_localiser(ws2)
    assert isinstance(localiser, TrainedLocaliser)
    photo = read_query_photos(make_query_photos(ws2, ws.root / "more-photos", count=1, split="test", seed=9,
                                                progress=False))[0]
    assert all(0 <= d.score <= 1 for d in localiser.locate(load_image(photo.path)))
    # it maps any item and the main item; a localiser saved before main-item maps reads its one map
    assert localiser.meta["outputs"] == ["probability", "main"]
    batch = localiser._letterbox(load_image(photo.path))[0]
    anything, main = localiser._maps(batch)
    assert anything.shape == main.shape and not np.array_equal(anything, main)
    localiser.meta = {k: v for k, v in localiser.meta.items() if k != "outputs"}
    older = localiser._maps(batch)
    assert older[1] is None and np.array_equal(older[0], anything)
    code, out, err = run(capsys, "search", "--image", photo.path, "--model", "photo-model", "-w", ws.root, "--json")
    assert code == 0, err
    query = json.loads(out)["query"]
    assert query["box_source"] in ("auto", "none") and query["searched_with"] == "photo-model-photos"
    # the clean part's share is the best-scoring candidate, the first on ties; 0 leaves the clean part out
    parts = [TrainConfig.from_saved(json.loads((ws.root / "models" / p / "model.json").read_text())["config"])
             for p in catalogue_model["config"]["models"]]
    train_ids, val_ids, _, labels = training_split(ws2, parts[0])
    chosen, selection = choose_clean_share(ws2, parts[:2], photo_weights, parts[2], train_ids, val_ids, labels,
                                           shares=(0.0, 0.5, 1.0, 1.0), log=quiet)
    scores = [r["score"] for r in selection["candidates"]]
    assert len(scores) == 4 and scores[2] == scores[3] and chosen == selection["candidates"][scores.index(max(scores))]["share"]
    assert choose_clean_share(ws2, parts[:2], photo_weights, parts[2], train_ids, val_ids, labels, shares=(0.0,),
                              log=quiet)[0] == 0.0


def test_a_recipe_on_a_given_backbone_trains_one_head(ws, capsys):
    code, out, err = run(capsys, "train", "--recipe", "photos", "--backbone", "efficientnet-lite0", "--name",
                         "photo-one", "--epochs", 1, "--photo-views", 1, "--val-photos", 10, "--hidden", 16, "-w",
                         ws.root)
    assert code == 0, err
    assert "photo-one: best epoch 1" in out and "training the item localiser" not in out  # the workspace has one
    saved = json.loads((ws.root / "models" / "photo-one" / "model.json").read_text())
    assert saved["config"]["backbone"] == "efficientnet-lite0" and saved["config"]["hidden"] == 16


def test_photo_views_in_real_photographs_differ_from_drawn_clutter(ws, tmp_path):
    from lookalike.training.photo_views import photo_view_vectors

    backbone = create_extractor("pixels")
    ids = sorted(ws.catalogue.ids())[:3]
    drawn = photo_view_vectors(ws, backbone, ids, 2, 0, tmp_path / "a", workers=1, log=quiet)
    again = photo_view_vectors(ws, backbone, ids, 2, 0, tmp_path / "b", workers=1, log=quiet)
    real = photo_view_vectors(ws, backbone, ids, 2, 0, tmp_path / "c", photographs=1.0, workers=1, log=quiet)
    assert drawn.shape == real.shape == (3, 2, backbone.dim)
    np.testing.assert_array_equal(drawn, again)  # seeded per (item, view)
    assert not np.allclose(drawn, real)


def test_photo_view_settings_are_checked(ws):
    from lookalike.training import TrainConfig

    with pytest.raises(ConfigError, match="--photo-views trains a head on a frozen backbone"):
        TrainConfig(backbone="pixels", name="x", photo_views=2, head="conv", augment=True).check()
    with pytest.raises(ConfigError, match="--photo-views trains a head on a frozen backbone"):
        TrainConfig(backbone="efficientnet-lite0", name="x", photo_views=2, finetune_blocks=1).check()
    with pytest.raises(ConfigError, match="--val-photos must be >= 1"):
        TrainConfig(backbone="pixels", name="x", photo_views=2, val_photos=0).check()
    with pytest.raises(ConfigError, match="--real-backgrounds is a share from 0 to 1, got 1.5"):
        TrainConfig(backbone="pixels", name="x", photo_views=2, real_backgrounds=1.5).check()
    from lookalike.training.recipes import recipe_config

    with pytest.raises(ConfigError, match="unknown recipe 'studio'; choose one of: photos"):
        recipe_config("studio", "x")
    assert recipe_config("photos", "x", backbone="pixels", epochs=3).head == "conv"
    assert recipe_config("photos", "x").backbone == "efficientnet-lite0-rmac"


def test_huge_photos_are_decoded_at_reduced_size_and_boxes_stay_in_full_size_pixels(ws, tmp_path, capsys):
    from lookalike.images import MAX_PHOTO_SIDE, load_photo

    big = Image.new("RGB", (6000, 4000), (30, 120, 60))
    ImageDraw.Draw(big).rectangle((1000, 1000, 3000, 3000), fill=(240, 240, 240))
    big.save(tmp_path / "big.jpg", quality=80)
    img, scale, full = load_photo(tmp_path / "big.jpg", max_side=MAX_PHOTO_SIDE)
    assert full == (6000, 4000)
    assert max(img.size) <= MAX_PHOTO_SIDE and scale == pytest.approx(img.width / 6000)
    assert load_image(tmp_path / "big.jpg", (1000, 1000, 3000, 3000), max_side=1000).size == pytest.approx(
        (333, 333), abs=2)
    code, out, err = run(capsys, "search", "--image", tmp_path / "big.jpg", "--box", "1000,1000,3000,3000",
                         "--model", "pixels", "-w", ws.root, "--json")
    assert code == 0, err
    query = json.loads(out)["query"]
    assert query["size"] == [6000, 4000] and query["box"] == pytest.approx([1000, 1000, 3000, 3000], abs=4)
    code, out, err = run(capsys, "search", "--image", tmp_path / "big.jpg", "--model", "pixels", "-w", ws.root,
                         "--json")
    query = json.loads(out)["query"]
    assert code == 0 and all(0 <= v <= 6000 for c in query["candidates"] for v in c["box"])


def test_exif_rotated_photo_keeps_its_scale():
    from lookalike.images import load_photo

    from io import BytesIO

    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = BytesIO()
    Image.new("RGB", (3000, 1000)).save(buffer, "JPEG", exif=exif)
    img, scale, full = load_photo(buffer.getvalue(), max_side=500)
    assert full == (1000, 3000)
    assert img.size[1] > img.size[0] and max(img.size) <= 500 and scale == pytest.approx(img.width / 1000, rel=0.01)
