"""The web app under a mixed load: large uploads, game players, duelists and leaderboard readers at once.

Usage: python benchmarks/bench_serving.py [-w WORKSPACE] [--model efficientnet-lite0] [--uploads 4]
                                          [--players 4] [--duelists 2] [--readers 1] [--seconds 30]
                                          [--workers N] [--out docs/bench_serving.json]

Starts the app on 127.0.0.1 (a workspace of the bundled Fashion-MNIST sample with ``pixels`` and ``--model``
features unless ``-w`` is given), with a trusted X-Forwarded-For so every simulated client has an address
of its own. Uploads are a 249 KB 8000x8000 RGBA PNG (the attack of issue 15). Meanwhile ``GET /api/systems``
is timed every 50 ms. Reports every route's status counts, 5xx (503 is the pool's "busy, retry" and is
counted apart), votes lost (accepted but not stored) and the trivial route's latency. Players and
duelists look at each pair ``--think`` seconds (default 0.5; 0: bots voting as fast as they can); a reader
reloads the leaderboard every second.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
from pathlib import Path

from PIL import Image


def big_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8000, 8000), (10, 200, 30, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def workspace(root: Path | None, models: list[str]):
    from lookalike.catalogue import import_catalogue
    from lookalike.demo import BUNDLED_SAMPLE
    from lookalike.extractors import create_extractor
    from lookalike.features import extract_features
    from lookalike.workspace import Workspace

    ws = Workspace(root or Path(tempfile.mkdtemp()) / "ws")
    if len(ws.catalogue) == 0:
        import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, image_dir=ws.images_dir)
    for model in models:
        extract_features(ws.catalogue, create_extractor(model), ws.feature_store(model), progress=False)
    return ws


def main() -> None:
    import sqlalchemy as sa

    from lookalike.web import Settings, create_app
    from lookalike.web.loadtest import run_mixed_load, serve_in_thread

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", type=Path, default=None)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--players", type=int, default=4)
    parser.add_argument("--duelists", type=int, default=2)
    parser.add_argument("--readers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=None,
                        help="the app's worker threads for photos (default: one per core but one)")
    parser.add_argument("--think", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("docs/bench_serving.json"))
    args = parser.parse_args()

    ws = workspace(args.workspace, ["pixels", args.model])
    pool = {"workers": args.workers} if args.workers else {}
    settings = Settings(secret="bench", proxy_header="X-Forwarded-For",
                        db_url=f"sqlite:///{Path(tempfile.mkdtemp()) / 'votes.sqlite'}", **pool)
    app = create_app(ws, settings)
    png = big_png()
    import httpx2 as httpx

    with serve_in_thread(app) as base:
        with httpx.Client(base_url=base, timeout=120) as client:  # warm-up: models, indexes, localiser loaded
            client.post("/api/search", files={"file": ("p.png", png, "image/png")},
                        data={"box": "auto", "system": f"{args.model}/l2"})
            for system in app.state.lookalike.systems:
                client.get("/api/search/item", params={"item_id": ws.catalogue.ids()[0], "system": system})
        result = run_mixed_load(base, seconds=args.seconds, uploads=args.uploads, players=args.players,
                                duelists=args.duelists, readers=args.readers, upload=png, think=args.think)
    store = app.state.lookalike.votes
    with store.engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.text("SELECT pair_id FROM votes UNION ALL SELECT pair_id FROM duels"))}
    out = {"cpus": os.cpu_count(), "workers": settings.workers, "queue": settings.queue,
           "light_workers": settings.light_workers, "think_s": args.think, "model": args.model,
           "upload": f"{len(png):,} bytes, 8000x8000 RGBA PNG", "clients": {
               "uploads": args.uploads, "players": args.players, "duelists": args.duelists, "readers": args.readers},
           **result.summary(), "votes_lost": len(set(result.accepted) - stored)}
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
