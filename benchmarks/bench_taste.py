"""Learning from votes, measured: simulated players with hidden tastes play through the HTTP API.

For each player (``lookalike.taste.players``) a real server is started on 127.0.0.1 serving only the
base system; the player plays rounds with one session, and at each checkpoint (votes so far) its taste
is learned (``learn --session``, as the web app's "learn my taste" does). Approval (the share of top
matches the player likes) of the base and of the learned model is measured on held-out query items:
a seeded set, minus every item any vote showed so far. Prints a table; ``--out`` writes JSON and
``--plot`` the approval-vs-votes picture.

    python benchmarks/bench_taste.py -w WS --base efficientnet-lite0 --metric l2 \\
        --players shade,style,category,random --checkpoints 50,100,200,300,500,1000 \\
        --out docs/bench_taste.json --plot docs/results/taste_curves.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

from lookalike.search import SearchEngine
from lookalike.taste.learn import learn
from lookalike.taste.players import PLAYERS, approval, make_player, play
from lookalike.web import Settings, create_app
from lookalike.web.app import SESSION_COOKIE
from lookalike.web.loadtest import serve_in_thread
from lookalike.workspace import Workspace


def run_player(ws: Workspace, kind: str, base: str, metric: str, checkpoints: list[int], queries: list[str],
               db_dir: Path, explore: float, seed: int) -> dict:
    player = make_player(kind, ws, seed=seed)
    db_url = f"sqlite:///{db_dir / f'votes-{kind}.sqlite'}"
    settings = Settings(db_url=db_url, secret="bench", systems=[f"{base}/{metric}"], explore=explore,
                        votes_per_second=1e6, vote_burst=10**6, address_votes_per_minute=1e9,
                        address_vote_burst=10**6, pairs_per_second=1e6, pair_burst=10**6)
    app = create_app(ws, settings)
    engine = SearchEngine(ws)
    name = f"bench-taste-{kind}"
    rows, voted = [], []
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.get("/")
        session = app.state.lookalike.sessions.unsign(client.cookies[SESSION_COOKIE])
        for target in checkpoints:
            started = time.perf_counter()
            voted += play(client, player, target - len(voted))
            play_s = time.perf_counter() - started
            shown = {v["query"] for v in voted} | {v["match"] for v in voted}
            held = [q for q in queries if q not in shown]
            started = time.perf_counter()
            result = learn(ws, base, metric, name, sessions=[session], db_url=db_url, overwrite=True, personal=True,
                           seed=seed)
            learn_s = time.perf_counter() - started
            learned_metric = "l1" if metric == "l1" else "l2"
            row = {"player": kind, "votes": len(voted), "dope_share": sum(v["verdict"] == "dope" for v in voted) / len(voted),
                   "held_out_queries": len(held),
                   "approval_base": approval(engine, ws, player, base, metric, held),
                   "approval_learned": approval(engine, ws, player, name, learned_metric, held),
                   "kept_base": result.taste.is_base, "penalty": result.taste.penalty,
                   "heldout_accuracy": result.taste.scores["heldout_accuracy"],
                   "heldout_accuracy_base": result.taste.scores["heldout_accuracy[base]"],
                   "weights_by_group": {g: round(w, 4) for g, w in result.group_weights.items()},
                   "play_s": round(play_s, 2), "learn_s": round(learn_s, 2)}
            row["gain_points"] = 100 * (row["approval_learned"] - row["approval_base"])
            rows.append(row)
            print(f"{kind:<9} {row['votes']:>5} votes  approval base {row['approval_base']:.1%} -> learned "
                  f"{row['approval_learned']:.1%} ({row['gain_points']:+.1f} pts)  kept base: {row['kept_base']}  "
                  f"learn {learn_s:.1f} s", flush=True)
    app.state.lookalike.votes.close()
    return {"player": kind, "rows": rows}


def plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for n, result in enumerate(results):
        rows = result["rows"]
        colour = f"C{n}"
        ax.plot([0] + [r["votes"] for r in rows], [100 * rows[0]["approval_base"]] + [100 * r["approval_learned"] for r in rows],
                marker="o", color=colour, label=f"{result['player']}: learned")
        ax.plot([0] + [r["votes"] for r in rows], [100 * rows[0]["approval_base"]] + [100 * r["approval_base"] for r in rows],
                linestyle="--", color=colour, alpha=0.6, label=f"{result['player']}: base")
    ax.set_xlabel("votes by the player")
    ax.set_ylabel("approval of top matches on unseen items (%)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-w", "--workspace", required=True)
    parser.add_argument("--base", default="efficientnet-lite0")
    parser.add_argument("--metric", default="l2")
    parser.add_argument("--players", default=",".join(PLAYERS))
    parser.add_argument("--checkpoints", default="50,100,200,300,500,1000")
    parser.add_argument("--queries", type=int, default=1000, help="held-out query items (before removing seen ones)")
    parser.add_argument("--explore", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the learned models in the workspace")
    args = parser.parse_args()

    import random

    random.seed(args.seed)  # the game's choices of query, system and rank
    ws = Workspace(args.workspace)
    ids = ws.feature_store(args.base).ids()
    queries = random.Random(args.seed + 1).sample(ids, min(args.queries, len(ids)))
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    results = []
    with tempfile.TemporaryDirectory() as db_dir:
        for kind in args.players.split(","):
            results.append(run_player(ws, kind, args.base, args.metric, checkpoints, queries, Path(db_dir),
                                      args.explore, args.seed))
            if not args.keep:
                for folder in (ws.models_dir / f"bench-taste-{kind}", ws.features_dir(f"bench-taste-{kind}"),
                               ws.root / "indexes" / f"bench-taste-{kind}"):
                    shutil.rmtree(folder, ignore_errors=True)
    summary = {"workspace_items": len(ids), "base": f"{args.base}/{args.metric}", "explore": args.explore,
               "seed": args.seed, "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    if args.plot:
        plot(results, Path(args.plot), f"Simulated players on {args.base}/{args.metric}, {len(ids):,} items")


if __name__ == "__main__":
    main()
