"""The web app through FastAPI's TestClient: every route, every bad input (a clear 4xx, never a 500)."""

from __future__ import annotations

import io
import json
import threading

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from lookalike.catalogue import import_catalogue
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.web import Settings, create_app
from lookalike.web.leaderboard import bradley_terry, duel_table, wilson_interval
from lookalike.votes import VoteStore
from lookalike.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("web") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=200, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    return ws


@pytest.fixture
def client(ws, tmp_path):
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'votes.sqlite'}", secret="test-secret",
                                  max_upload_bytes=200_000, vote_burst=1000, votes_per_second=1000,
                                  address_vote_burst=1000, pair_burst=1000, explore=0.0))
    with TestClient(app) as c:
        yield c


def png_bytes(size=(40, 30), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pages_and_assets_are_served_locally(client):
    for path in ("/", "/game", "/duel", "/leaderboard", "/map", "/static/app.js", "/static/style.css",
                 "/openapi.json"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert "pixels/l2" in client.get("/").text
    for path in ("/", "/game", "/duel", "/leaderboard", "/map", "/static/app.js"):
        text = client.get(path).text
        assert "://" not in text, f"{path} loads something from elsewhere"
    assert "/api/search" in client.get("/openapi.json").json()["paths"]
    assert "lookalike_session" in client.cookies


def test_search_by_upload_and_by_item(client, ws):
    response = client.post("/api/search", data={"system": "pixels/l1", "k": "5", "box": "0,0,20,20"},
                           files={"file": ("photo.jpg", png_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["system"] == "pixels/l1" and len(body["results"]) == 5 and body["query"]["box"] == [0, 0, 20, 20]
    first = body["results"][0]
    assert client.get(first["image_url"]).headers["content-type"] == "image/png"
    by_item = client.get("/api/search/item", params={"item_id": first["item_id"], "system": "pixels/hamming", "k": 3})
    assert by_item.status_code == 200
    assert first["item_id"] not in [r["item_id"] for r in by_item.json()["results"]]


def test_search_by_upload_finds_the_item_or_uses_the_whole_photo(client):
    photo = Image.new("RGB", (320, 240), (40, 90, 40))
    ImageDraw.Draw(photo).ellipse((40, 50, 150, 200), fill=(250, 240, 30))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    upload = {"file": ("photo.jpg", buffer.getvalue(), "image/jpeg")}
    body = client.post("/api/search", data={"system": "pixels/l2", "k": "3"}, files=upload).json()
    query = body["query"]
    assert query["box_source"] == "auto" and query["size"] == [320, 240] and query["candidates"]
    assert all(0 <= v <= 320 for c in query["candidates"] for v in c["box"]) and len(body["results"]) == 3
    body = client.post("/api/search", data={"system": "pixels/l2", "box": "none"}, files=upload).json()
    assert body["query"]["box"] is None and body["query"]["box_source"] == "none"
    for box, expected in (("1.5,1.5,2.5,2.5", [1.0, 1.0, 3.0, 3.0]), ("-50,10,100,900", [0, 10, 100, 240])):
        response = client.post("/api/search", data={"system": "pixels/l2", "box": box}, files=upload)
        assert response.status_code == 200, response.text  # was a 500 for the tiny box
        assert response.json()["query"]["box_source"] == "given"
        assert response.json()["query"]["box"] == pytest.approx(expected, abs=1.01)


def test_an_upload_to_a_model_with_a_photo_model_is_answered_by_it(tmp_path):
    from lookalike.extractors.combined import save_combined

    ws = Workspace(tmp_path / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=60, seed=0, image_dir=ws.images_dir)
    for model in ("pixels", "appearance"):
        extract_features(ws.catalogue, create_extractor(model), ws.feature_store(model), progress=False)
    save_combined(ws.models_dir, "asym", ["pixels", "appearance"], photo_model="pixels")
    extract_features(ws.catalogue, ws.create_extractor("asym"), ws.feature_store("asym"), progress=False,
                     part_stores=[ws.feature_store("pixels"), ws.feature_store("appearance")])
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'votes.sqlite'}", secret="test-secret"))
    upload = {"file": ("photo.png", png_bytes((60, 50), (30, 140, 200)), "image/png")}
    with TestClient(app) as client:
        routed = client.post("/api/search", data={"system": "asym/l2", "box": "none", "k": "5"}, files=upload).json()
        plain = client.post("/api/search", data={"system": "pixels/l2", "box": "none", "k": "5"}, files=upload).json()
        by_item = client.get("/api/search/item", params={"item_id": routed["results"][0]["item_id"],
                                                         "system": "asym/l2", "k": "5"}).json()
    assert routed["system"] == "asym/l2" and routed["query"]["searched_with"] == "pixels"
    assert routed["results"] == plain["results"] and "searched_with" not in plain["query"]
    assert by_item["system"] == "asym/l2" and len(by_item["results"]) == 5


@pytest.mark.parametrize("case, status, message", [
    ("not an image", 422, "not an image"),
    ("too large", 413, "larger than"),
    ("a bit too large", 413, "larger than"),
    ("empty", 422, "empty"),
    ("bad box", 422, "box"),
    ("unknown system", 422, "unknown system"),
    ("bad k", 422, "k must be"),
    ("bomb", 422, "bomb"),
])
def test_bad_uploads_get_a_clear_4xx(client, case, status, message):
    data, content = {"system": "pixels/l2"}, png_bytes()
    if case == "not an image":
        content = b"#!/bin/sh\necho pwned\n"
    elif case == "too large":
        content = b"\xff" * 300_000  # refused from its Content-Length, before parsing
    elif case == "a bit too large":
        content = b"\xff" * 210_000  # within the form allowance: refused after reading
    elif case == "empty":
        content = b""
    elif case == "bad box":
        data["box"] = "10,10,5"
    elif case == "unknown system":
        data["system"] = "resnet/cosine"
    elif case == "bad k":
        data["k"] = "0"
    elif case == "bomb":
        buffer = io.BytesIO()
        Image.new("1", (12_000, 12_000)).save(buffer, format="PNG")
        content = buffer.getvalue()
    response = client.post("/api/search", data=data, files={"file": ("x.png", content, "image/png")})
    assert response.status_code == status, response.text
    assert message in json.dumps(response.json()).lower()


def test_no_path_traversal_through_urls(client):
    for path in ("/items/..%2F..%2Fcatalogue.sqlite/image", "/items/../../etc/passwd/image",
                 "/static/../votes.sqlite", "/static/..%2F..%2Fweb-secret", "/api/map/..%2F..%2Fetc/atlas.png",
                 "/api/map/pixels"):
        response = client.get(path)
        assert response.status_code in (404, 409), (path, response.status_code)
        assert b"SQLite" not in response.content and b"root:" not in response.content


def test_game_round_trip_and_leaderboard(client):
    systems = set(client.get("/api/systems").json()["systems"])
    assert systems == {"pixels/l1", "pixels/l2", "pixels/hamming"}
    seen = []
    for n in range(12):
        pair = client.get("/api/game/pair").json()
        assert set(pair) == {"token", "query", "match"}  # the system is not revealed before the vote
        assert "pixels" not in json.dumps(pair["query"]) + json.dumps(pair["match"]).replace(pair["match"]["item_id"], "")
        verdict = "dope" if n % 3 else "nope"
        vote = client.post("/api/game/vote", json={"token": pair["token"], "verdict": verdict})
        assert vote.status_code == 200 and vote.json()["system"] in systems
        seen.append(vote.json()["system"])
    board = client.get("/api/leaderboard").json()
    assert sum(r["votes"] for r in board["approval"]) == 12 == board["votes"]
    for row in board["approval"]:
        assert row["ci_low"] <= row["rate"] <= row["ci_high"]
    rates = [r["rate"] for r in board["approval"] if r["votes"]]
    assert rates == sorted(rates, reverse=True)
    csv_lines = client.get("/api/votes.csv").text.strip().splitlines()
    assert len(csv_lines) == 13 and csv_lines[0].startswith("kind,pair_id")
    jsonl = [json.loads(line) for line in client.get("/api/votes.jsonl").text.splitlines()]
    assert len(jsonl) == 12 and {v["system"] for v in jsonl} == set(seen)


def test_exploration_pairs_teach_tastes_but_do_not_rank_systems(ws, tmp_path):
    import random

    random.seed(0)
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'votes.sqlite'}", secret="s", vote_burst=1000,
                                  votes_per_second=1000, address_vote_burst=1000, pair_burst=1000, explore=0.5,
                                  explore_depth=10))
    with TestClient(app) as client:
        for n in range(16):
            pair = client.get("/api/game/pair").json()
            client.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope" if n % 2 else "nope"})
        board = client.get("/api/leaderboard").json()
        verdicts, _ = app.state.lookalike.votes.judgements()
        top = [v for v in verdicts if v["match_rank"] == 1]
        assert 0 < len(top) < 16 and board["votes"] == 16 and max(v["match_rank"] for v in verdicts) <= 10
        assert sum(r["votes"] for r in board["approval"]) == len(top)  # the leaderboard ranks top matches only
        for v in verdicts:  # the match shown is the one at its recorded rank in that system's results
            shown = client.get("/api/search/item", params={"item_id": v["query_item"], "system": v["system"],
                                                           "k": v["match_rank"]}).json()["results"]
            assert shown[-1]["item_id"] == v["match_item"]
            assert v["features"] == ws.feature_store("pixels").manifest()["extractor_fingerprint"][:16]
    with pytest.raises(Exception, match="explore"):
        create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'v2.sqlite'}", secret="s", explore=1.5))


def test_votes_cannot_be_forged_replayed_or_stolen(client, ws, tmp_path):
    pair = client.get("/api/game/pair").json()
    token = pair["token"]
    assert client.post("/api/game/vote", json={"token": token + "x", "verdict": "dope"}).status_code == 403
    assert client.post("/api/game/vote", json={"token": "abc.def", "verdict": "dope"}).status_code == 403
    assert client.post("/api/game/vote", json={"token": token, "verdict": "maybe"}).status_code == 422
    assert client.post("/api/game/vote", json={"verdict": "dope"}).status_code == 422
    # another session (another browser) cannot use this session's pair
    app = client.app
    with TestClient(app) as other:
        other.get("/")
        assert other.post("/api/game/vote", json={"token": token, "verdict": "dope"}).status_code == 403
    assert client.post("/api/game/vote", json={"token": token, "verdict": "dope"}).status_code == 200
    again = client.post("/api/game/vote", json={"token": token, "verdict": "nope"})
    assert again.status_code == 409 and "already" in again.json()["detail"]
    # a duel token is not a game token
    duel = client.get("/api/duel/pair").json()
    assert client.post("/api/game/vote", json={"token": duel["token"], "verdict": "dope"}).status_code == 403
    # a forged cookie is replaced by a fresh session, which does not own the pair
    with TestClient(app, cookies={"lookalike_session": "attacker.0000"}) as forged:
        assert forged.post("/api/duel/vote", json={"token": duel["token"], "winner": "a"}).status_code == 403
    assert client.post("/api/duel/vote", json={"token": duel["token"], "winner": "a"}).status_code == 200


def test_concurrent_votes_on_one_pair_count_once(client):
    pair = client.get("/api/game/pair").json()
    results = []

    def vote():
        results.append(client.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"}).status_code)

    threads = [threading.Thread(target=vote) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 7
    assert client.get("/api/leaderboard").json()["votes"] == 1


def test_rate_limit(ws, tmp_path):
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'v.sqlite'}", secret="s", vote_burst=3,
                                  votes_per_second=0.001))
    with TestClient(app) as c:
        codes = []
        for _ in range(5):
            pair = c.get("/api/game/pair").json()
            codes.append(c.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"}).status_code)
        assert codes == [200, 200, 200, 429, 429]


def test_cookieless_clients_are_limited_per_address(ws, tmp_path):
    """Issue 15: the limit was per session, and a new session costs nothing (60 of 60 votes accepted)."""
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'v.sqlite'}", secret="s", address_vote_burst=5,
                                  address_votes_per_minute=0.01, pair_burst=1000))
    with TestClient(app) as c:
        codes = []
        for _ in range(8):
            c.cookies.clear()  # a new session per vote
            pair = c.get("/api/game/pair").json()
            codes.append(c.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"}).status_code)
        assert codes == [200] * 5 + [429] * 3
        # another address (behind a trusted proxy) has its own budget
        app.state.lookalike.settings.proxy_header = "X-Forwarded-For"
        c.cookies.clear()
        headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
        pair = c.get("/api/game/pair", headers=headers).json()
        assert c.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"},
                      headers=headers).status_code == 200


def test_pairs_are_limited_and_expire(ws, tmp_path):
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'v.sqlite'}", secret="s", pair_burst=4,
                                  pairs_per_second=0.001))
    with TestClient(app) as c:
        codes = [c.get("/api/game/pair").status_code for _ in range(6)]
        assert codes == [200] * 4 + [429] * 2
        store = app.state.lookalike.votes
        assert store.count_pairs() == 4
        store.pair_ttl_s = 0.0
        assert store.purge_expired() == 4 and store.count_pairs() == 0


def test_duels_rank_with_bradley_terry(client):
    for n in range(10):
        duel = client.get("/api/duel/pair").json()
        assert set(duel) == {"token", "query", "a", "b"} and duel["a"]["item_id"] != duel["b"]["item_id"]
        r = client.post("/api/duel/vote", json={"token": duel["token"], "winner": "a" if n % 2 else "b"})
        assert r.status_code == 200 and r.json()["a"] != r.json()["b"]
    assert client.post("/api/duel/vote", json={"token": duel["token"], "winner": "c"}).status_code == 422
    rows = client.get("/api/leaderboard").json()["duels"]
    assert sum(r["duels"] for r in rows) == 20 and sum(r["wins"] for r in rows) == 10
    for row in rows:
        assert row["ci_low"] <= row["strength"] + 1e-9 and row["strength"] <= row["ci_high"] + 1e-9


def test_wilson_and_bradley_terry_against_known_values():
    low, high = wilson_interval(8, 10)  # textbook: 0.490 - 0.943
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # the interval holds the observed rate for every tally (CI once failed on 1.0 <= 0.9999999999999999)
    for n in range(1, 60):
        for k in range(n + 1):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0, (k, n)
    assert wilson_interval(4, 4)[1] == 1.0 and wilson_interval(0, 4)[0] == 0.0
    # A beats B 3:1 -> BT odds 3 (log 1.0986) without a prior
    strengths = bradley_terry([("A", "B", "a")] * 3 + [("A", "B", "b")], prior=0.0, iterations=500)
    assert strengths["A"] - strengths["B"] == pytest.approx(1.0986, abs=1e-3)
    rows = duel_table([("A", "B", "a")] * 8 + [("B", "C", "a")] * 8 + [("A", "C", "b")], bootstrap=50)
    assert [r.system for r in rows] == ["A", "B", "C"]


def test_vote_store_migrations_are_recorded_and_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'votes.sqlite'}"
    store = VoteStore(url)
    again = VoteStore(url)
    assert store.schema_version() == 4
    assert again.migrate() == []  # nothing left to apply
    store.close()
    again.close()
    with pytest.raises(Exception, match="database URL"):
        VoteStore("votes.sqlite")


def test_a_version_2_vote_store_keeps_its_votes_when_migrated(tmp_path, monkeypatch):
    from lookalike import votes as votes_module

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    monkeypatch.setattr(votes_module, "MIGRATIONS", [m for m in votes_module.MIGRATIONS if m[0] <= 2])
    old = VoteStore(url)
    with old.engine.begin() as conn:  # a pair and its vote as version 2 wrote them
        import sqlalchemy as sa

        conn.execute(sa.text("INSERT INTO pairs (id, kind, session, query_item, system_a, match_a, issued_at, used_at) "
                             "VALUES ('p1', 'single', 's1', 'q', 'pixels/l2', 'm', 1.0, 1.0)"))
        conn.execute(sa.text("INSERT INTO votes VALUES ('p1', 1.0, 's1', 'pixels/l2', 'q', 'm', 'dope')"))
    old.close()
    monkeypatch.undo()
    store = VoteStore(url)
    assert store.schema_version() == 4
    assert store.tallies() == {"pixels/l2": (1, 1)} and store.flag_counts() == {}
    verdicts, duels = store.judgements()
    assert [(v["query_item"], v["match_item"], v["verdict"], v["match_rank"]) for v in verdicts] == [("q", "m", "dope",
                                                                                                      None)]
    store.close()


def test_map_route(ws, client):
    from lookalike.mapping import make_map

    data = make_map(ws, "pixels", sample=60, seed=0, log=lambda _line: None)
    assert 0.5 < data["trustworthiness"] <= 1 and len(data["points"]) == 60
    body = client.get("/api/map/pixels").json()
    assert body["model"] == "pixels" and len(body["points"]) == 60
    assert client.get("/api/map/pixels/atlas.png").headers["content-type"] == "image/png"
    assert (ws.root / "maps" / "pixels" / "map.png").is_file()
    assert "pixels" in client.get("/map").text


def test_empty_workspace_answers_409_not_500(tmp_path):
    empty = Workspace(tmp_path / "empty")
    with TestClient(create_app(empty, Settings(secret="s"))) as c:
        assert c.get("/").status_code == 200
        for response in (c.get("/api/game/pair"), c.get("/api/duel/pair"),
                         c.post("/api/search", files={"file": ("x.png", png_bytes(), "image/png")}),
                         c.get("/api/search/item", params={"item_id": "x"})):
            assert response.status_code == 409 and "extract" in response.json()["detail"]


def test_the_app_script_parses():
    """A syntax error in app.js breaks every page silently; node, where installed, catches it."""
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = Path(__file__).parents[1] / "src" / "lookalike" / "web" / "static" / "app.js"
    result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_searches_run_in_a_bounded_pool_off_the_event_loop(ws, tmp_path):
    """While every worker is busy and the queue is full, other routes still answer and one more search gets
    503 with Retry-After at once; the held searches then finish normally. No global lock."""
    import time

    import httpx2 as httpx

    from lookalike.web.loadtest import serve_in_thread

    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'votes.sqlite'}", secret="pool", workers=1,
                                  queue=1))
    engine = app.state.lookalike.engine
    release, entered = threading.Event(), threading.Semaphore(0)
    real = engine.search_image

    def held_search(*args, **kwargs):
        entered.release()
        assert release.wait(30)
        return real(*args, **kwargs)

    engine.search_image = held_search
    with serve_in_thread(app) as base:
        try:
            results: dict[int, httpx.Response] = {}

            def search(n: int) -> None:
                results[n] = httpx.post(f"{base}/api/search", files={"file": ("p.png", png_bytes(), "image/png")},
                                        data={"box": "none"}, timeout=60)

            first = threading.Thread(target=search, args=(1,))
            first.start()
            assert entered.acquire(timeout=20)  # the only worker is held
            second = threading.Thread(target=search, args=(2,))
            second.start()
            deadline = time.time() + 10
            while app.state.lookalike.pool.busy < 2 and time.time() < deadline:
                time.sleep(0.02)
            assert app.state.lookalike.pool.busy == 2  # one running, one queued
            refused = httpx.post(f"{base}/api/search", files={"file": ("p.png", png_bytes(), "image/png")}, timeout=10)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
            assert "busy" in refused.json()["detail"]
            assert httpx.get(f"{base}/api/systems", timeout=5).status_code == 200  # not behind the searches
            assert httpx.get(f"{base}/api/leaderboard?bootstrap=0", timeout=5).status_code == 200
            release.set()
            first.join(30)
            second.join(30)
            assert results[1].status_code == results[2].status_code == 200
            assert len(results[1].json()["results"]) == 12
        finally:
            release.set()


def test_pool_settings_are_checked(ws, tmp_path):
    from lookalike.errors import ConfigError

    with pytest.raises(ConfigError, match="workers must be at least 1"):
        create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'v.sqlite'}", secret="x", workers=0))


def test_a_huge_png_is_decoded_reduced():
    from lookalike.images import MAX_PHOTO_SIDE, load_photo

    buffer = io.BytesIO()
    Image.new("RGBA", (6000, 3000), (10, 200, 30, 128)).save(buffer, format="PNG")
    img, scale, full = load_photo(buffer.getvalue(), max_side=MAX_PHOTO_SIDE)
    assert full == (6000, 3000) and max(img.size) <= MAX_PHOTO_SIDE and img.mode == "RGB"
    assert scale == pytest.approx(img.width / 6000)
    assert img.getpixel((5, 5)) == pytest.approx((133, 228, 143), abs=2)  # alpha composited on white


@pytest.mark.parametrize("cookie", ["x.é", "é", "\u00e9.\u00e9" * 3, "abc." + "é" * 32, ".", "a" * 5000])
def test_any_session_cookie_starts_a_session_never_a_500(client, cookie):
    """Issue 15: a non-ASCII session cookie gave a 500 on every route."""
    client.cookies.clear()
    response = client.get("/api/systems", headers={"Cookie": f"lookalike_session={cookie}".encode()})  # UTF-8 bytes
    assert response.status_code == 200
    assert "lookalike_session" in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("token", ["\ud800.abc", "é.é", "x." + "é" * 32, "abc." + "0" * 31 + "\u0660", "", "."])
@pytest.mark.parametrize("route, field, value", [("/api/game/vote", "verdict", "dope"),
                                                ("/api/duel/vote", "winner", "a")])
def test_forged_tokens_of_any_text_are_403_never_500(client, token, route, field, value):
    """Issue 15: a vote token with a non-ASCII signature or a lone surrogate gave a 500 on both vote routes."""
    body = json.dumps({"token": token, field: value}, ensure_ascii=True)  # "\ud800" travels as an escape
    response = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("route", ["/api/game/vote", "/api/duel/vote", "/api/search", "/api/systems"])
def test_every_body_is_limited_before_it_is_read(client, route):
    """Issue 15: a 200 MB vote body was read and parsed; now every route refuses from Content-Length."""
    limit = 16 * 1024 if route != "/api/search" else 200_000 + 64 * 1024
    response = client.post(route, content=b"{" + b" " * (limit + 10) + b"}",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_a_chunked_body_is_cut_off_at_the_limit(client):
    """A body without Content-Length is counted as it arrives and refused once past the limit."""
    def chunks():
        for _ in range(100):
            yield b" " * 4096  # 400 KB, no Content-Length

    response = client.post("/api/game/vote", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_security_headers_and_no_inline_script(client):
    import re

    for path in ["/", "/game", "/duel", "/leaderboard", "/map", "/api/systems"]:
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        if path != "/api/systems":
            scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
            assert all('src="/static/' in attrs or 'type="application/json"' in attrs for attrs, _ in scripts)
            data = next(body for attrs, body in scripts if 'type="application/json"' in attrs)
            assert json.loads(data)["page"] == ({"/": "search"}.get(path) or path.strip("/"))
    assert client.get("/docs").status_code == 404  # Swagger UI would come from a CDN
    assert client.get("/openapi.json").status_code == 200


def test_session_responses_are_private(client, ws):
    client.cookies.clear()
    item = ws.catalogue.ids()[0]
    response = client.get(f"/items/{item}/image")
    assert response.status_code == 200 and "set-cookie" in response.headers
    assert response.headers["cache-control"].startswith("private")


def test_public_exports_hide_session_ids(ws, tmp_path):
    app = create_app(ws, Settings(db_url=f"sqlite:///{tmp_path / 'votes.sqlite'}", secret="s", admin_token="t0k"))
    with TestClient(app) as c:
        pair = c.get("/api/game/pair").json()
        assert c.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"}).status_code == 200
        session = app.state.lookalike.sessions.unsign(c.cookies["lookalike_session"])
        public = [json.loads(line) for line in c.get("/api/votes.jsonl").text.splitlines()]
        assert len(public) == 1 and public[0]["session"] != session and session not in c.get("/api/votes.csv").text
        assert len(public[0]["session"]) == 12
        assert c.get("/api/admin/votes.jsonl").status_code == 403
        assert c.get("/api/admin/votes.jsonl", headers={"Authorization": "Bearer wrong"}).status_code == 403
        full = c.get("/api/admin/votes.jsonl", headers={"Authorization": "Bearer t0k"})
        assert full.status_code == 200 and json.loads(full.text.splitlines()[0])["session"] == session


def test_votes_on_items_looked_up_first_are_left_out_and_counted(client):
    """The steering attack looks a pair's query up in public search to learn its system: such votes are
    flagged, kept in the data and left out of the published leaderboard, with their count shown."""
    client.cookies.clear()
    honest = client.get("/api/game/pair").json()
    assert client.post("/api/game/vote", json={"token": honest["token"], "verdict": "nope"}).status_code == 200
    client.cookies.clear()  # a new session, same address
    pair = client.get("/api/game/pair").json()
    for system in client.get("/api/systems").json()["systems"]:
        client.get("/api/search/item", params={"item_id": pair["query"]["item_id"], "system": system, "k": 1})
    assert client.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"}).status_code == 200
    board = client.get("/api/leaderboard", params={"bootstrap": 0}).json()
    assert board["left_out"] == {"looked-up": 1}
    assert sum(r["votes"] for r in board["approval"]) == 1 and sum(r["dope"] for r in board["approval"]) == 0
    flags = [json.loads(line)["flag"] for line in client.get("/api/votes.jsonl").text.splitlines()]
    assert sorted(flags, key=str) == [None, "looked-up"]


def test_leaderboard_is_cached_bounded_and_drawn(client):
    assert client.get("/api/leaderboard", params={"bootstrap": 5000}).status_code == 422
    first = client.get("/api/leaderboard", params={"bootstrap": 50}).json()
    cache = client.app.state.lookalike.leaderboards
    assert client.get("/api/leaderboard", params={"bootstrap": 50}).json() == first and len(cache._cache) == 1
    pair = client.get("/api/game/pair").json()
    client.post("/api/game/vote", json={"token": pair["token"], "verdict": "dope"})
    # refit at most every max_age seconds while votes arrive
    assert client.get("/api/leaderboard", params={"bootstrap": 50}).json()["votes"] == first["votes"]
    cache.max_age = 0.0
    assert client.get("/api/leaderboard", params={"bootstrap": 50}).json()["votes"] == first["votes"] + 1
    svg = client.get("/api/leaderboard.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "pixels/l2" in svg.text and "<circle" in svg.text
