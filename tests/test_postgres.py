"""The vote store and the app on a real PostgreSQL server (a throwaway cluster started by the test)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from tests.conftest import free_port

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))

pytestmark = pytest.mark.skipif(not INITDB and not os.environ.get("CI"),
                                reason="PostgreSQL is not installed (scripts/setup.sh installs it when run as root)")


@pytest.fixture(scope="module")
def postgres_url():
    assert INITDB, "PostgreSQL is required in CI: apt-get install postgresql"
    bindir = Path(INITDB[-1]).parent
    data = Path(tempfile.mkdtemp(prefix="lookalike-pg-"))
    run_as = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-U", "lookalike", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://lookalike@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_vote_store_on_postgres(postgres_url):
    from lookalike.votes import VoteError, VoteStore

    store = VoteStore(postgres_url)
    again = VoteStore(postgres_url)
    assert store.schema_version() == 4 and again.migrate() == []
    again.close()
    pair = store.issue("single", "s1", "item-1", "pixels/l2", "item-2")
    with pytest.raises(VoteError, match="not issued to your session"):
        store.vote(pair.id, "s2", "dope")
    results = []

    def vote():
        try:
            store.vote(pair.id, "s1", "dope")
            results.append("ok")
        except VoteError as exc:
            results.append(exc.status)

    threads = [threading.Thread(target=vote) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == sorted(["ok"] + [409] * 7, key=str)
    assert store.tallies() == {"pixels/l2": (1, 1)}
    duel = store.issue("duel", "s1", "item-1", "a/l1", "x", "b/l1", "y")
    store.duel(duel.id, "s1", "b")
    assert store.duel_outcomes() == [("a/l1", "b/l1", "b")]
    assert store.export_csv().count("\n") == 3 and len(store.export_jsonl().splitlines()) == 2
    store.close()


def test_app_with_postgres(postgres_url, tmp_path):
    from fastapi.testclient import TestClient

    from lookalike.catalogue import import_catalogue
    from lookalike.demo import BUNDLED_SAMPLE
    from lookalike.extractors import create_extractor
    from lookalike.features import extract_features
    from lookalike.web import Settings, create_app
    from lookalike.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, limit=60, seed=0, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    app = create_app(ws, Settings(db_url=postgres_url, secret="pg"))
    app.state.lookalike.leaderboards.max_age = 0.0  # refit on every new vote (default: at most every 5 s)
    with TestClient(app) as client:
        before = client.get("/api/leaderboard").json()["votes"]
        for _ in range(3):
            pair = client.get("/api/game/pair").json()
            assert client.post("/api/game/vote", json={"token": pair["token"], "verdict": "nope"}).status_code == 200
        assert client.get("/api/leaderboard").json()["votes"] == before + 3


def test_a_server_without_pgvector_gets_one_line(postgres_url):
    """Debian's PostgreSQL has no pgvector package: the pgvector backend says so, and creates nothing."""
    from lookalike.errors import ConfigError
    from lookalike.index import create_index

    with pytest.raises(ConfigError, match="pgvector is not installed on this server"):
        create_index("pgvector", 8, "l2", db=postgres_url, table="never_made")
