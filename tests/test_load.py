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
