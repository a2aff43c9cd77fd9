"""The steering attack of issue 15, against the defence and without it.

Usage: python benchmarks/attack_steering.py [--players 24] [--votes-each 25] [--seconds 30]
                                            [--out docs/bench_attack.json]

A workspace of the bundled Fashion-MNIST sample with ``pixels`` and ``efficientnet-lite0`` features (6
systems). Honest players (each its own address, through a trusted X-Forwarded-For) vote dope exactly when
the match has the query's category. Then the attacker plays for ``--seconds`` from one address, a new
session per vote, looking every pair's query up in public search under every system and voting dope when
the target (the last-ranked system) could have made the match. Run twice on fresh vote stores: with the
defaults (per-address limits, looked-up votes left out) and with every defence off. Reports each system's
rank and approval before and after, and whether any rank changed or any approval moved by more than its
interval's half-width.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def board(base: str) -> dict:
    import httpx2 as httpx

    data = httpx.get(f"{base}/api/leaderboard", params={"bootstrap": 0}, timeout=60).json()
    return {"rows": {r["system"]: {"rank": n + 1, "rate": r["rate"], "half_width": (r["ci_high"] - r["ci_low"]) / 2,
                                   "votes": r["votes"]} for n, r in enumerate(data["approval"])},
            "left_out": data["left_out"]}


def compare(before: dict, after: dict) -> dict:
    moved = {s: round(after["rows"][s]["rate"] - r["rate"], 4) for s, r in before["rows"].items()}
    return {"rank_changes": {s: [r["rank"], after["rows"][s]["rank"]] for s, r in before["rows"].items()
                             if r["rank"] != after["rows"][s]["rank"]},
            "approval_change": moved,
            "beyond_half_width": [s for s, r in before["rows"].items() if abs(moved[s]) > r["half_width"]]}


def main() -> None:
    from lookalike.catalogue import import_catalogue
    from lookalike.demo import BUNDLED_SAMPLE
    from lookalike.extractors import create_extractor
    from lookalike.features import extract_features
    from lookalike.web import Settings, create_app
    from lookalike.web.loadtest import play_honest, serve_in_thread, steering_attack
    from lookalike.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=24)
    parser.add_argument("--votes-each", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("docs/bench_attack.json"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    ws = Workspace(root / "ws")
    import_catalogue(ws.catalogue, "fashion-mnist", BUNDLED_SAMPLE, image_dir=ws.images_dir)
    for model in ("pixels", "efficientnet-lite0"):
        extract_features(ws.catalogue, create_extractor(model), ws.feature_store(model), progress=False)
    results = {}
    for name, settings in (
            ("defence on (defaults)", Settings(db_url=f"sqlite:///{root / 'on.sqlite'}", secret="x",
                                               proxy_header="X-Forwarded-For")),
            ("defence off", Settings(db_url=f"sqlite:///{root / 'off.sqlite'}", secret="x",
                                     proxy_header="X-Forwarded-For", flag_lookups=False,
                                     address_votes_per_minute=1e9, address_vote_burst=10**9, pair_burst=10**9,
                                     vote_burst=10**9))):
        with serve_in_thread(create_app(ws, settings)) as base:
            honest = play_honest(base, players=args.players, votes_each=args.votes_each)
            before = board(base)
            target = max(before["rows"], key=lambda s: before["rows"][s]["rank"])
            attack = steering_attack(base, target, seconds=args.seconds)
            after = board(base)
        results[name] = {"honest_votes": honest, "target": target, "attack": attack.summary(),
                         "before": before, "after": after, **compare(before, after)}
        print(name, json.dumps({k: v for k, v in results[name].items() if k not in ("before", "after")}), flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
