"""A load test for a running app: N concurrent Dope-or-Nope players for a bounded time.

Each player is its own anonymous session (cookie jar) looping *get pair -> vote*. The result
lists every vote the server accepted, so a caller can check that each was stored exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    players: int
    seconds: float
    accepted: list[str] = field(default_factory=list)  # pair ids (from tokens) of accepted votes
    refused: dict[int, int] = field(default_factory=dict)  # HTTP status -> count
    errors: list[str] = field(default_factory=list)
    pair_latency_ms: list[float] = field(default_factory=list)
    vote_latency_ms: list[float] = field(default_factory=list)

    @property
    def votes_per_second(self) -> float:
        return len(self.accepted) / self.seconds if self.seconds else 0.0

    def p95(self, which: str = "vote") -> float:
        values = self.vote_latency_ms if which == "vote" else self.pair_latency_ms
        return float(np.percentile(values, 95)) if values else float("nan")

    def summary(self) -> dict:
        return {"players": self.players, "seconds": round(self.seconds, 1), "accepted_votes": len(self.accepted),
                "votes_per_second": round(self.votes_per_second, 1),
                "p50_vote_ms": round(float(np.percentile(self.vote_latency_ms, 50)), 1) if self.vote_latency_ms else None,
                "p95_vote_ms": round(self.p95("vote"), 1), "p95_pair_ms": round(self.p95("pair"), 1),
                "refused": self.refused, "errors": len(self.errors)}


def run_load(base_url: str, *, players: int = 8, seconds: float = 10.0, seed: int = 0) -> LoadResult:
    """Play for ``seconds`` with ``players`` concurrent sessions against ``base_url``."""
    import httpx2 as httpx

    result = LoadResult(players, seconds)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def player(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while time.monotonic() < stop:
                try:
                    t0 = time.perf_counter()
                    r = client.get("/api/game/pair")
                    t1 = time.perf_counter()
                    if r.status_code != 200:
                        with lock:
                            result.refused[r.status_code] = result.refused.get(r.status_code, 0) + 1
                        continue
                    token = r.json()["token"]
                    v = client.post("/api/game/vote", json={"token": token,
                                                            "verdict": rng.choice(["dope", "nope"])})
                    t2 = time.perf_counter()
                    with lock:
                        result.pair_latency_ms.append(1000 * (t1 - t0))
                        result.vote_latency_ms.append(1000 * (t2 - t1))
                        if v.status_code == 200:
                            result.accepted.append(token.rsplit(".", 1)[0])
                        else:
                            result.refused[v.status_code] = result.refused.get(v.status_code, 0) + 1
                except Exception as exc:  # noqa: BLE001 - a load test reports failures, it does not stop on them
                    with lock:
                        result.errors.append(repr(exc))

    started = time.monotonic()
    threads = [threading.Thread(target=player, args=(n,)) for n in range(players)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - started
    return result
