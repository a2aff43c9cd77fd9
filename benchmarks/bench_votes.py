"""Dope-or-Nope under load: N concurrent players against a local server (uvicorn, SQLite WAL or PostgreSQL).

Each player is an anonymous session looping *get pair -> vote*; the per-session rate limit is raised
so the server, not the limit, is measured. Checks that every accepted vote is stored exactly once.

Usage: python benchmarks/bench_votes.py [--players 1,8,32] [--seconds 20] [--db URL] [--out docs/bench_votes.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import sqlalchemy as sa

from lookalike.catalogue import import_catalogue
from lookalike.demo import BUNDLED_SAMPLE
from lookalike.extractors import create_extractor
from lookalike.features import extract_features
from lookalike.web import Settings, create_app
from lookalike.web.loadtest import run_load, serve_in_thread
from lookalike.workspace import Workspace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--players", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--db", default=None, help="votes database URL (default: SQLite in the workspace)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "bench_votes.json")
    args = parser.parse_args()

    ws = Workspace(Path(tempfile.mkdtemp(prefix="lookalike-bench-votes-")) / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, image_dir=ws.images_dir)
    extract_features(ws.catalogue, create_extractor("pixels"), ws.feature_store("pixels"), progress=False)
    app = create_app(ws, Settings(db_url=args.db, secret="bench", votes_per_second=1e6, vote_burst=10**6,
                                  address_vote_burst=10**9, pair_burst=10**9))  # one address: limits off
    store = app.state.lookalike.votes
    rows = []
    with serve_in_thread(app) as base:
        for players in [int(p) for p in args.players.split(",")]:
            before = store.count_votes()
            result = run_load(base, players=players, seconds=args.seconds)
            with store.engine.connect() as conn:
                stored = [r[0] for r in conn.execute(sa.text("SELECT pair_id FROM votes"))]
            exactly_once = (len(stored) - before == len(result.accepted) and set(result.accepted) <= set(stored)
                            and len(set(stored)) == len(stored))
            row = {**result.summary(), "stored_exactly_once": exactly_once}
            print(row, flush=True)
            rows.append(row)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "db": "sqlite (WAL)" if args.db is None else args.db.split("://")[0], "server": "uvicorn, 1 process",
           "catalogue": len(ws.catalogue), "systems": app.state.lookalike.systems, "rows": rows}
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
