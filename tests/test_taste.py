"""Learning from votes: appearance numbers, fitting a taste, ``lookalike learn``, simulated players, "mine"."""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from lookalike.catalogue import import_catalogue
from lookalike.cli import main
from lookalike.extractors import create_extractor
from lookalike.extractors.appearance import DIM, NAMES, describe
from lookalike.features import extract_features
from lookalike.metrics import Metric
from lookalike.search import SearchEngine
from lookalike.taste.fit import PENALTIES, VoteSet, fit_weights, learn_taste, more_often_right
from lookalike.taste.learn import learn, session_hash
from lookalike.taste.players import approval, make_player, play, unseen_queries
from lookalike.taste.space import PairSpace
from lookalike.votes import VoteStore
from lookalike.web import Settings, create_app
from lookalike.web.app import SESSION_COOKIE
from lookalike.workspace import Workspace

FASHION = Path("/usr/share/datasets/fashion-mnist")
FAST = dict(votes_per_second=1e6, vote_burst=10**6, address_votes_per_minute=1e9, address_vote_burst=10**6,
            pairs_per_second=1e6, pair_burst=10**6)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    assert (FASHION / "train-images-idx3-ubyte.gz").is_file(), \
        "the Debian package dataset-fashion-mnist is part of the set-up (scripts/setup.sh)"
    ws = Workspace(tmp_path_factory.mktemp("taste") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", FASHION, limit=3000, seed=0, image_dir=ws.images_dir)
    for model in ("pixels", "appearance"):
        extract_features(ws.catalogue, create_extractor(model), ws.feature_store(model), progress=False)
    return ws


# -- appearance ---------------------------------------------------------------------------------------------------
def test_appearance_numbers_say_colour_brightness_and_shape():
    def item(colour, size, canvas=(64, 64), background=(255, 255, 255)):
        img = Image.new("RGB", canvas, background)
        img.paste(Image.new("RGB", size, colour), ((canvas[0] - size[0]) // 2, (canvas[1] - size[1]) // 2))
        return describe(img)

    at = {n: i for i, n in enumerate(NAMES)}
    dark, light = item((40, 40, 40), (30, 30)), item((200, 200, 200), (30, 30))
    assert dark.shape == (DIM,) and dark[at["luma"]] < 0.2 < 0.7 < light[at["luma"]]
    red, blue = item((220, 20, 20), (30, 30)), item((20, 20, 220), (30, 30))
    assert red[at["red"]] > 0.8 > 0.2 > red[at["blue"]] and red[at["saturation"]] > 0.8 and dark[at["saturation"]] < 0.05
    assert red[at["hue0"]] > 0.5 and blue[at["hue5"]] + blue[at["hue4"]] > 0.5  # red near hue 0, blue near 2/3
    wide, tall = item((0, 0, 0), (50, 16)), item((0, 0, 0), (16, 50))
    assert wide[at["aspect"]] > 0.5 > -0.5 > tall[at["aspect"]]
    assert item((0, 0, 0), (60, 60))[at["coverage"]] > 0.8 > 0.3 > item((0, 0, 0), (20, 20))[at["coverage"]]
    assert np.isfinite(describe(Image.new("RGB", (5, 3), (9, 9, 9)))).all()  # a flat image: the crop is the item


# -- fitting --------------------------------------------------------------------------------------------------------
def _votes(n: int, rule, seed: int = 0, size: int = 6) -> VoteSet:
    rng = np.random.default_rng(seed)
    comps = rng.exponential(1.0, (n, size))
    dope = np.asarray([rule(c, rng) for c in comps], float)
    return VoteSet(comps, dope, rng.integers(0, n // 2, n).astype(str).astype(object),
                   np.zeros((0, size)), np.zeros((0, size)), np.zeros(0, object))


def test_a_consistent_taste_is_found_and_a_random_one_keeps_the_base():
    taste = learn_taste(_votes(400, lambda c, rng: c[0] + 3 * c[3] < 2.5))
    assert not taste.is_base and taste.weights.argmax() == 3 and taste.weights[3] > 2 * taste.weights[1:3].max()
    assert taste.scores["heldout_accuracy"] > taste.scores["heldout_accuracy[base]"] + 0.1
    noise = learn_taste(_votes(400, lambda c, rng: rng.random() < 0.5, seed=1))
    assert noise.is_base and (noise.weights[1:] == 0).all()  # the votes say nothing: nothing but the base


def test_a_taste_likelier_but_not_more_often_right_keeps_the_base():
    # component 3 moves P(dope) between 0.9 and about 0.6, never below 1/2: it makes held-out votes likelier
    # but predicts the same verdict (dope) as the base does, so ranking by it is not what the votes ask for
    votes = _votes(4000, lambda c, rng: rng.random() < 0.9 - 0.1 * min(c[3], 3.0), seed=2)
    taste = learn_taste(votes)
    assert taste.scores["heldout_loss[base]"] - min(taste.scores[f"heldout_loss[{p}]"] for p in PENALTIES) > 0.005
    assert taste.is_base


def test_more_often_right_means_beyond_the_noise_of_the_votes_the_two_disagree_on():
    base = np.zeros(100)
    def taste(wins, losses):  # right where the base is wrong on `wins` votes, wrong where it is right on `losses`
        base[:] = 0
        base[50 : 50 + losses] = 1
        out = np.zeros(100)
        out[:wins] = 1
        return out, base.copy()

    assert more_often_right(*taste(12, 2))  # 10 > sqrt(14)
    assert not more_often_right(*taste(6, 4))  # 2 more right of 10 disagreements: chance
    assert not more_often_right(*taste(1, 0))  # one vote: 1 is not above sqrt(1)
    assert more_often_right(*taste(2, 0))  # 2 > sqrt(2)
    assert not more_often_right(*taste(0, 0)) and not more_often_right(*taste(3, 5))


def test_duels_are_preferences():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(1.0, (300, 4)), rng.exponential(1.0, (300, 4))
    a_wins = a[:, 2] < b[:, 2]  # the player prefers the match nearer along component 2
    winner, loser = np.where(a_wins[:, None], a, b), np.where(a_wins[:, None], b, a)
    votes = VoteSet(np.zeros((0, 4)), np.zeros(0), np.zeros(0, object), winner, loser,
                    np.arange(300).astype(str).astype(object))
    taste = fit_weights(votes, 0.01)
    assert taste.weights.argmax() == 2


@pytest.mark.parametrize("metric", list(Metric))
def test_learned_vectors_realise_the_weighted_distance_exactly(metric):
    rng = np.random.default_rng(0)
    base, app = rng.normal(size=(50, 12)).astype(np.float32), rng.normal(size=(50, DIM)).astype(np.float32)
    space = PairSpace.fit(metric, base, app, directions=4)
    weights = rng.exponential(1.0, space.size)
    vectors = space.embed(base, app, weights).astype(np.float64)
    comps = space.components(base[:25], base[25:], app[:25], app[25:])
    diff = vectors[:25] - vectors[25:]
    realised = np.abs(diff).sum(1) if metric is Metric.L1 else (diff ** 2).sum(1)
    assert np.allclose(realised, comps @ weights, rtol=1e-4)
    sides = comps[:, 1 + 4 + DIM :]  # which side of each appearance quartile: 0 (same) or 1 (apart)
    assert sides.shape[1] == 3 * DIM and set(np.unique(sides)) == {0.0, 1.0}
    # a model learned before partitions were offered loads and embeds as it did
    old = {k: v for k, v in space.to_arrays().items() if k != "partition_thresholds"}
    earlier = PairSpace.from_arrays(metric, old)
    assert earlier.size == 1 + 4 + DIM and earlier.embed(base, app, weights[: earlier.size]).shape == (50, 12 + 4 + DIM)


@pytest.mark.parametrize("metric", list(Metric))
def test_the_catalogue_category_is_a_component_and_an_unknown_one_changes_no_ranking(metric):
    rng = np.random.default_rng(1)
    base, app = rng.normal(size=(60, 12)).astype(np.float32), rng.normal(size=(60, DIM)).astype(np.float32)
    space = PairSpace.fit(metric, base, app, directions=4, categories=("Bag", "Coat", "Dress"))
    assert space.size == 1 + 4 + DIM + 3 * DIM + 1 and space.vector_dim(12) == 12 + 4 + DIM + 3 * DIM + 3
    codes = space.category_codes(["Coat", "Bag", None, "Hat"] * 15)
    assert codes[:4].tolist() == [1, 0, -1, -1]  # unknown: no category, or one the space never saw
    weights = rng.exponential(1.0, space.size)
    weights[-1] = 5.0
    vectors = space.embed(base, app, weights, codes).astype(np.float64)
    comps = space.components(base[:30], base[30:], app[:30], app[30:], codes[:30], codes[30:])
    known = (codes[:30] >= 0) & (codes[30:] >= 0)
    assert np.array_equal(comps[:, -1], ((codes[:30] != codes[30:]) & known).astype(float))
    diff = vectors[:30] - vectors[30:]
    realised = np.abs(diff).sum(1) if space.learned_metric is Metric.L1 else (diff ** 2).sum(1)
    assert np.allclose(realised[known], (comps @ weights)[known], rtol=1e-4)
    # a photo: no category, so its block is zero and every catalogue item is as far from it on that block
    photo = space.embed(base[:1], app[:1], weights)
    hidden = space.hide_categories(vectors[:1], 12)
    assert np.allclose(photo, hidden) and np.allclose(hidden[0, -3:], 0)
    block = vectors[:, -3:][codes >= 0]
    apart = np.abs(block).sum(1) if space.learned_metric is Metric.L1 else (block ** 2).sum(1)
    assert np.allclose(apart, apart[0])  # the same for every item with a category: no ranking changes
    # saved and loaded with its categories; a space saved before categories has none
    again = PairSpace.from_arrays(metric, space.to_arrays())
    assert again.categories == ("Bag", "Coat", "Dress") and np.allclose(again.embed(base, app, weights, codes), vectors)
    old = {k: v for k, v in space.to_arrays().items() if k != "categories"}
    assert PairSpace.from_arrays(metric, old).categories == ()


@pytest.mark.parametrize("metric", [Metric.L1, Metric.L2])
def test_the_shortlist_index_reranks_the_base_neighbours_and_persists(tmp_path, metric):
    from lookalike.index import create_index
    from lookalike.metrics import pairwise_distances

    rng = np.random.default_rng(0)
    base, extra = rng.normal(size=(400, 8)).astype(np.float32), rng.normal(size=(400, 3)).astype(np.float32)
    vectors = np.concatenate([2.0 * base, extra], axis=1)  # a scaled base block, then taste components
    index = create_index("shortlist", 11, metric, base_dim=8, shortlist=20)
    index.add(vectors[:300])
    index.add(vectors[300:])
    distances, positions = index.search(vectors[:5], 4)
    for q in range(5):  # the base's 20 nearest, ordered by the whole vector's distance
        shortlist = np.argsort(pairwise_distances(base[[q]], base, metric)[0], kind="stable")[:20]
        whole = pairwise_distances(vectors[[q]], vectors[shortlist], metric)[0]
        assert positions[q].tolist() == shortlist[np.argsort(whole, kind="stable")[:4]].tolist()
        assert np.allclose(distances[q], np.sort(whole)[:4], rtol=1e-5, atol=1e-5)
    index.remove([int(positions[0, 0])])
    index.save(tmp_path)
    again = type(index).load(tmp_path, 11, metric, {"base_dim": 8, "shortlist": 20})
    assert int(positions[0, 0]) not in again.search(vectors[:1], 4)[1][0]
    with pytest.raises(Exception, match="base_dim"):
        create_index("shortlist", 11, metric)
    with pytest.raises(Exception, match="L1 or L2"):
        create_index("shortlist", 11, Metric.HAMMING, base_dim=8)


# -- lookalike learn ------------------------------------------------------------------------------------------------
def _fake_votes(ws, url: str, n: int, session: str = "s1", system: str = "pixels/l2", features: str | None = None,
                seed: int = 0) -> None:
    """Votes as the game records them: dope when the match is as light as the query (a shade taste)."""
    store = VoteStore(url)
    ids = ws.feature_store("pixels").ids()
    light = dict(zip(ids, ws.feature_store("appearance").vectors_for(ids)[:, NAMES.index("luma")]))
    rng = random.Random(seed)
    fingerprint = features or ws.feature_store("pixels").manifest()["extractor_fingerprint"][:16]
    for _ in range(n):
        q, m = rng.sample(ids, 2)
        pair = store.issue("single", session, q, system, m, match_rank=rng.randint(1, 30), features=fingerprint)
        store.vote(pair.id, session, "dope" if abs(light[q] - light[m]) < 0.08 else "nope")
    store.close()


def test_learn_bad_input_gets_one_clear_message(ws, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'votes.sqlite'}"
    args = ["learn", "--base", "pixels", "--metric", "l2", "--name", "mytaste", "-w", str(ws.root), "--db", url]
    assert main(args) == 1
    assert "no votes for pixels/l2" in capsys.readouterr().err
    _fake_votes(ws, url, 20)
    assert main(args) == 1
    assert "too few votes for pixels/l2: 20 usable, at least 50 are needed" in capsys.readouterr().err
    assert main(args + ["--session", "nobody"]) == 1
    assert "unknown session 'nobody'" in capsys.readouterr().err
    _fake_votes(ws, url, 40, features="0123456789abcdef", seed=1)  # cast before the features were re-extracted
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "20 usable (40 cast on matches of older pixels features (re-extracted since))" in err
    assert main(args[:4] + ["hamming"] + args[5:]) == 1
    assert "no votes for pixels/hamming" in capsys.readouterr().err
    assert main(["learn", "--base", "nonesuch", "--name", "x", "-w", str(ws.root), "--db", url]) == 1
    assert "unknown model 'nonesuch'" in capsys.readouterr().err
    assert not (ws.models_dir / "mytaste").exists()  # nothing half-written


def test_learn_makes_a_model_like_any_other_and_never_edits_votes(ws, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'votes.sqlite'}"
    _fake_votes(ws, url, 150, session="alice")
    _fake_votes(ws, url, 60, session="bob", seed=3)
    before = VoteStore(url).export_jsonl()
    code = main(["learn", "--base", "pixels", "--name", "shade-taste", "-w", str(ws.root), "--db", url,
                 "--session", "alice"])
    out = capsys.readouterr().out
    assert code == 0 and "learned from 150 verdicts and 0 duels on top of pixels/l2" in out
    assert VoteStore(url).export_jsonl() == before
    saved = json.loads((ws.models_dir / "shade-taste" / "model.json").read_text())
    learned = saved["learned_from"]
    assert saved["kind"] == "learned" and saved["personal"] and not saved["is_base"]
    assert learned["votes"] == 150 and learned["sessions"] == [session_hash("alice")] and "alice" not in json.dumps(saved)
    assert learned["base_model"] == "pixels" and learned["time_range"][0] <= learned["time_range"][1]
    assert saved["selected_on"].startswith("held-out votes")
    assert len(ws.feature_store("shade-taste")) == len(ws.catalogue)
    # registered like any model: search, neighbours and evaluate use it
    item = ws.feature_store("pixels").ids()[0]
    assert main(["search", "--model", "shade-taste", "--metric", "l2", "--item", item, "-k", "3", "-w", str(ws.root)]) == 0
    assert main(["neighbours", "--model", "shade-taste", "--metric", "l2", "-k", "2", "-w", str(ws.root),
                 "--out", str(tmp_path / "n.jsonl")]) == 0
    assert len((tmp_path / "n.jsonl").read_text().splitlines()) == len(ws.catalogue)
    capsys.readouterr()
    assert main(["evaluate", "--models", "pixels,shade-taste", "--queries", "200", "--json", "-w", str(ws.root)]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    # a learned model is evaluated under its own metric only, through its shortlist index
    assert {(r["model"], r["metric"]) for r in rows if r["model"] == "shade-taste"} == {("shade-taste", "l2")}
    assert [r["backend"] for r in rows if r["model"] == "shade-taste"] == ["shortlist"]
    # what it learned is about shade: its matches are nearer in lightness than the base's
    engine = SearchEngine(ws)
    light = dict(zip(ws.feature_store("pixels").ids(), ws.feature_store("appearance").load()[1][:, NAMES.index("luma")]))
    queries = ws.feature_store("pixels").ids()[:300]

    def gap(model):
        return np.mean([abs(light[q] - light[engine.search_item(q, model, "l2", 1).results[0].item_id])
                        for q in queries])

    assert gap("shade-taste") < 0.7 * gap("pixels")


def test_a_learned_category_helps_catalogue_queries_and_never_an_evaluation(ws, tmp_path, capsys):
    from lookalike.extractors.learned import LearnedExtractor
    from lookalike.images import load_image

    url = f"sqlite:///{tmp_path / 'votes.sqlite'}"
    _fake_votes(ws, url, 150, session="carol")
    learn(ws, "pixels", "l2", "cat-taste", sessions=["carol"], db_url=url)
    directory = ws.models_dir / "cat-taste"
    saved = json.loads((directory / "model.json").read_text())
    saved["weights"][-1] = 1e4  # a taste that cares for the category above all
    (directory / "model.json").write_text(json.dumps(saved))
    learned = LearnedExtractor(directory)
    assert learned.uses_labels and learned.space.categories == tuple(sorted({i.category for i in ws.catalogue.items()}))
    extract_features(ws.catalogue, learned, ws.feature_store("cat-taste"), overwrite=True,
                     part_stores=[ws.feature_store("pixels"), ws.feature_store("appearance")])
    # a catalogue item's vector carries its category; an image alone does not
    items = list(ws.catalogue.items())
    item = items[0]
    stored = ws.feature_store("cat-taste").vectors_for([item.id])[0]
    block = stored[-len(learned.space.categories):]
    assert block.argmax() == learned.space.categories.index(item.category) and np.count_nonzero(block) == 1
    image = learned.embed([load_image(ws.catalogue.resolve(item.path), item.box)])[0]
    assert not image[-len(learned.space.categories):].any()
    # searched from a catalogue item, the category decides: the top match is of the query's category whenever
    # the base's shortlist (30 nearest) holds one
    engine = SearchEngine(ws)
    queries = items[:60]
    top = [engine.search_item(q.id, "cat-taste", "l2", 1).results[0].category == q.category for q in queries]
    reachable = [any(r.category == q.category for r in engine.search_item(q.id, "pixels", "l2", 30).results)
                 for q in queries]
    base_top = [engine.search_item(q.id, "pixels", "l2", 1).results[0].category == q.category for q in queries]
    assert top == reachable and sum(top) > sum(base_top)
    # an evaluation hides the query's own label: the category's weight changes nothing there
    def evaluated(category_weight: float) -> float:
        saved["weights"][-1] = category_weight
        (directory / "model.json").write_text(json.dumps(saved))
        extract_features(ws.catalogue, LearnedExtractor(directory), ws.feature_store("cat-taste"), overwrite=True,
                         part_stores=[ws.feature_store("pixels"), ws.feature_store("appearance")])
        capsys.readouterr()
        assert main(["evaluate", "--models", "cat-taste", "--queries", "200", "--json", "-w", str(ws.root)]) == 0
        return json.loads(capsys.readouterr().out)["rows"][0]["top1"]

    assert evaluated(1e4) == evaluated(0.0) < 0.95


# -- simulated players through the HTTP API --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["shade", "cut", "random"])
def test_a_simulated_player_teaches_its_taste_or_nothing(ws, tmp_path, kind):
    """300 votes through the HTTP API, then approval of top matches on items the player never voted on."""
    random.seed(0)
    url = f"sqlite:///{tmp_path / 'votes.sqlite'}"
    app = create_app(ws, Settings(db_url=url, secret="s", systems=["pixels/l2"], **FAST))
    player = make_player(kind, ws)
    with TestClient(app) as client:
        voted = play(client, player, 300)
        session = app.state.lookalike.sessions.unsign(client.cookies[SESSION_COOKIE])
    started = time.perf_counter()
    result = learn(ws, "pixels", "l2", f"sim-{kind}", sessions=[session], db_url=url, personal=True)
    print(f"{kind}: learned in {time.perf_counter() - started:.1f} s")
    held = unseen_queries(ws, "pixels", voted, 600)
    engine = SearchEngine(ws)
    base, learned = (approval(engine, ws, player, model, "l2", held) for model in ("pixels", f"sim-{kind}"))
    print(f"{kind}: approval {base:.1%} -> {learned:.1%} on {len(held)} unseen items")
    if kind == "random":
        assert result.taste.is_base and abs(learned - base) <= 0.03
    else:
        assert learned - base >= 0.15


# -- "learn my taste" in the web app ------------------------------------------------------------------------------------
def test_a_player_learns_their_taste_and_only_they_see_mine(ws, tmp_path):
    random.seed(1)
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'votes.sqlite'}", secret="s", systems=["pixels/l2", "pixels/l1"],
                        taste_votes=60, taste_base="pixels/l2", **FAST)
    app = create_app(ws, settings)
    with TestClient(app) as alice, TestClient(app) as bob:
        status = alice.get("/api/taste").json()
        assert status == {**status, "votes": 0, "needed": 60, "state": "none", "system": None}
        early = alice.post("/api/taste/learn")
        assert early.status_code == 409 and "you have 0, 60 are needed" in early.json()["detail"]
        play(alice, make_player("shade"), 60)
        assert alice.post("/api/taste/learn").status_code == 202
        deadline = time.monotonic() + 120
        while (status := alice.get("/api/taste").json())["state"] not in ("ready", "failed"):
            assert 0 <= status["progress"] <= 1 and time.monotonic() < deadline
            time.sleep(0.2)
        assert status["state"] == "ready" and status["system"] == "mine", status
        assert "mine" in alice.get("/api/systems").json()["systems"]
        item = ws.feature_store("pixels").ids()[5]
        found = alice.get("/api/search/item", params={"item_id": item, "system": "mine", "k": 3})
        assert found.status_code == 200 and found.json()["system"].startswith("taste-")
        photo = io.BytesIO()
        Image.new("RGB", (60, 80), (30, 30, 30)).save(photo, format="PNG")
        upload = alice.post("/api/search", data={"system": "mine", "k": "4", "box": "none"},
                            files={"file": ("p.png", photo.getvalue(), "image/png")})
        assert upload.status_code == 200 and len(upload.json()["results"]) == 4
        # nobody else sees it
        assert "mine" not in bob.get("/api/systems").json()["systems"]
        other = bob.get("/api/search/item", params={"item_id": item, "system": "mine"})
        assert other.status_code == 409 and "no taste model" in other.json()["detail"]
        # half of Alice's pairs now come from her model; the public leaderboard leaves it out
        systems = {alice.post("/api/game/vote", json={"token": alice.get("/api/game/pair").json()["token"],
                                                      "verdict": "dope"}).json()["system"] for _ in range(20)}
        assert any(s.startswith("taste-") for s in systems)
        board = alice.get("/api/leaderboard").json()
        assert {r["system"] for r in board["approval"]} == {"pixels/l2", "pixels/l1"}
        assert not any(s.startswith("taste-") for s in app.state.lookalike.systems)
    # after a restart her model is found again, and still hers alone
    again = create_app(ws, settings)
    assert not any(s.startswith("taste-") for s in again.state.lookalike.systems)
    assert len([j for j in again.state.lookalike.tastes._jobs.values() if j.state == "ready"]) >= 1


def test_the_default_taste_base_is_a_deep_model_not_appearance(ws, tmp_path):
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'v.sqlite'}", secret="s"))
    state = app.state.lookalike
    assert state.systems[0].startswith("appearance/")  # served, sorted first
    assert state.tastes.base_system == "pixels/l1"
