"""Load test (slow): concurrent players against a live server; every accepted vote stored exactly once."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from tests.test_browser import server  # noqa: F401 - the live-server fixture

pytestmark = pytest.mark.slow


def test_concurrent_players_votes_stored_exactly_once(server):  # noqa: F811
    from lookalike.web.loadtest import run_load

    base, _ws, app = server
    store = app.state.lookalike.votes
    before = store.count_votes()
    players = int(os.environ.get("LOOKALIKE_LOAD_PLAYERS", "16"))
    seconds = float(os.environ.get("LOOKALIKE_LOAD_SECONDS", "20"))
    result = run_load(base, players=players, seconds=seconds)
    print(result.summary())
    assert not result.errors, result.errors[:3]
    assert len(result.accepted) > 0
    with store.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT pair_id FROM votes"))]
    assert len(stored) - before == len(result.accepted)
    assert set(result.accepted) <= set(stored)
    assert len(set(stored)) == len(stored)  # exactly once
    assert set(result.refused) <= {429}  # only the rate limit may refuse an honest player


def test_mixed_load_no_5xx_no_lost_votes(tmp_path):
    """Uploads of a huge PNG, players, duelists and leaderboard readers at once: no 5xx, every accepted vote
    stored once, and the trivial route answered throughout (its latency is a benchmark: bench_serving.py)."""
    import io

    from PIL import Image

    from lookalike.catalogue import import_catalogue
    from lookalike.demo import BUNDLED_SAMPLE
    from lookalike.extractors import create_extractor
    from lookalike.features import extract_features
    from lookalike.web import Settings, create_app
    from lookalike.web.loadtest import run_mixed_load, serve_in_thread
    from lookalike.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=200, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    app = create_app(ws, Settings(secret="load", proxy_header="X-Forwarded-For", workers=2, queue=2))
    buffer = io.BytesIO()
    Image.new("RGBA", (4000, 4000), (10, 200, 30, 128)).save(buffer, "PNG")
    with serve_in_thread(app) as base:
        result = run_mixed_load(base, seconds=15, uploads=3, players=3, duelists=2, readers=1,
                                upload=buffer.getvalue())
    print(result.summary())
    assert not result.errors, result.errors[:3]
    assert result.server_errors() == 0, result.statuses
    assert result.accepted and result.statuses["POST /api/search"].get(200, 0) > 0
    assert len(result.trivial_ms) > 50  # the trivial route kept answering
    with app.state.lookalike.votes.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT pair_id FROM votes UNION ALL SELECT pair_id FROM duels"))]
    assert set(result.accepted) <= set(stored) and len(stored) == len(set(stored))
