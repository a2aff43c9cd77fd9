"""End to end in a real browser: Playwright driving Debian's chromium against a live local server.

Screenshots are saved under ``$LOOKALIKE_ARTIFACTS`` (default ``test-artifacts/``) for people to look at.
"""

from __future__ import annotations

import json

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

from lookalike.catalogue import import_catalogue
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.mapping import make_map
from lookalike.workspace import Workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def wait_until(page, expression: str, timeout: float = 30_000) -> None:
    """Poll a JS expression until it is truthy. Playwright's wait_for_function compiles its predicate with
    eval inside the page, which the app's Content-Security-Policy (no unsafe-eval) rightly refuses;
    page.evaluate runs through the DevTools protocol instead, so the pages stay under their real CSP."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        time.sleep(0.05)
ARTIFACTS = Path(os.environ.get("LOOKALIKE_ARTIFACTS", "test-artifacts"))

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (scripts/setup.sh installs it when run as root)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from lookalike.web import Settings, create_app

    ws = Workspace(tmp_path_factory.mktemp("browser") / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=200, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    make_map(ws, "pixels", sample=80, log=lambda _line: None)
    app = create_app(ws, Settings(secret="browser-test"))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}", ws, app
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "chromium is required in CI: install it with apt-get install chromium"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        # a script, style or image the Content-Security-Policy refuses is logged on the console: an error too
        pg.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
        pg.errors = errors
        yield pg
        browser.close()


def test_upload_a_photo_and_see_results(server, page, photo_paths):
    base, _ws, _app = server
    page.goto(base + "/")
    page.set_input_files("#file", str(photo_paths["chelsea"]))
    page.wait_for_selector(".result img", timeout=120_000)  # the first upload builds the localiser's graph
    assert page.locator(".result").count() == 12
    assert "matches under" in page.inner_text("#status")
    page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)
    first = page.locator(".result").first.get_attribute("data-item-id")
    page.locator(".result").first.click()  # clicking a result searches from it
    wait_until(page, "document.querySelector('#status').textContent.includes('matches for')")
    assert first in page.inner_text("#status")
    assert not page.errors


def test_the_item_found_in_a_photo_is_drawn_and_another_box_can_be_chosen(server, page, tmp_path):
    from PIL import Image, ImageDraw

    base, _ws, _app = server
    photo = Image.new("RGB", (480, 360), (40, 90, 40))
    draw = ImageDraw.Draw(photo)
    draw.ellipse((40, 50, 200, 300), fill=(250, 240, 30))
    draw.rectangle((300, 60, 440, 200), fill=(240, 40, 200))
    photo.save(tmp_path / "two-items.jpg")
    page.goto(base + "/")
    page.set_input_files("#file", str(tmp_path / "two-items.jpg"))
    wait_until(page, "document.querySelector('#status').textContent.includes('matches under')",
                           timeout=120_000)
    status = page.inner_text("#status")
    assert "the item found in the photo" in status or "no item was found" in status
    boxes = json.loads(page.get_attribute("#preview", "data-candidates") or "[]")
    if boxes:  # click inside the last box found: it is searched as the user's box
        x1, y1, x2, y2 = boxes[-1]
        canvas = page.locator("#preview").bounding_box()
        scale = canvas["width"] / 480
        page.mouse.click(canvas["x"] + (x1 + x2) / 2 * scale, canvas["y"] + (y1 + y2) / 2 * scale)
        wait_until(page, "document.querySelector('#status').textContent.includes('your box')")
        chosen = [int(v) for v in page.input_value("#box").split(",")]
        assert chosen == pytest.approx(boxes[-1], abs=1)
    canvas = page.locator("#preview").bounding_box()  # drag to draw a box
    page.mouse.move(canvas["x"] + 10, canvas["y"] + 10)
    page.mouse.down()
    page.mouse.move(canvas["x"] + 120, canvas["y"] + 100, steps=5)
    page.mouse.up()
    wait_until(page, "document.querySelector('#status').textContent.includes('your box')")
    page.screenshot(path=str(ARTIFACTS / "search-photo-boxes.png"), full_page=True)
    assert not page.errors


def test_ten_rounds_of_dope_or_nope_with_keys_and_buttons(server, page):
    base, _ws, app = server
    store = app.state.lookalike.votes
    app.state.lookalike.leaderboards.max_age = 0.0  # refit on every vote (default: at most every 5 s)
    before = store.count_votes()
    page.goto(base + "/game")
    wait_until(page, "document.querySelector('#card').dataset.pair")
    for n in range(10):
        shown = page.get_attribute("#card", "data-pair")
        if n % 4 == 0:
            page.keyboard.press("ArrowRight")
        elif n % 4 == 1:
            page.keyboard.press("ArrowLeft")
        elif n % 4 == 2:
            page.click("#dope")
        else:
            page.click("#nope")
        wait_until(page, f"document.querySelector('#count').textContent === '{n + 1}'")
        wait_until(page, f"document.querySelector('#card').dataset.pair !== {shown!r}")  # the next pair
        assert "that was pixels/" in page.inner_text("#reveal")  # revealed only after the vote
        if n == 4:
            page.screenshot(path=str(ARTIFACTS / "game.png"), full_page=True)
    assert store.count_votes() - before == 10
    page.goto(base + "/leaderboard")
    page.wait_for_selector("#approval tbody tr")
    rows = page.locator("#approval tbody tr")
    assert rows.count() == 3
    total = sum(int(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(3))
    # votes on items this address looked up in search (the earlier tests click results) are left out, and so
    # are votes on exploration pairs (a lower-ranked match: data for learning tastes)
    left_out = store.flag_counts().get("looked-up", 0)
    explored = sum(1 for v in store.judgements()[0] if v["match_rank"] > 1)
    assert total + left_out + explored == store.count_votes()
    if left_out:
        assert f"{left_out} looked-up" in page.inner_text("#left-out")
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)
    assert not page.errors


def test_head_to_head_and_map_pages(server, page):
    base, _ws, app = server
    page.goto(base + "/duel")
    wait_until(page, "document.querySelector('#b').src")
    page.keyboard.press("ArrowLeft")
    wait_until(page, "document.querySelector('#count').textContent === '1'")
    page.click("#pick-b")
    wait_until(page, "document.querySelector('#count').textContent === '2'")
    # both recorded; a duel is flagged (left out of the leaderboard) when its pair holds an item this address
    # looked up in search, which the earlier tests did: the pair is drawn at random
    votes = app.state.lookalike.votes
    assert len(votes.duel_outcomes()) + len(votes.duel_outcomes(flagged=True)) == 2
    assert set(votes.flag_counts()) <= {"looked-up"}
    page.goto(base + "/map")
    wait_until(page, "document.querySelector('#map-info').textContent.includes('trustworthiness')")
    page.mouse.wheel(0, -300)
    page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)
    assert not page.errors


def test_learn_my_taste_shows_progress_and_adds_mine(server, page):
    base, _ws, app = server
    state = app.state.lookalike
    state.settings.taste_votes = state.tastes.min_votes = 5  # this session voted on 10 pairs above
    page.goto(base + "/game")
    wait_until(page, "!document.querySelector('#learn-taste').disabled")
    assert "enough to learn your taste" in page.inner_text("#taste-status")
    page.click("#learn-taste")
    wait_until(page, "document.querySelector('#taste').dataset.state === 'ready'", timeout=120_000)
    assert "Your model is ready" in page.inner_text("#taste-status")
    page.screenshot(path=str(ARTIFACTS / "game-taste.png"), full_page=True)
    page.goto(base + "/")
    assert "mine" in [o.get_attribute("value") for o in page.locator("#system option").all()]
    assert not page.errors
