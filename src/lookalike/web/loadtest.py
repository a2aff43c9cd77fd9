"""A load test for a running app: N concurrent Dope-or-Nope players for a bounded time.

Each player is its own anonymous session (cookie jar) looping *get pair -> vote*. The result
lists every vote the server accepted, so a caller can check that each was stored exactly once.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port of ``host`` in a background thread; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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


def play_honest(base_url: str, *, players: int, votes_each: int, seed: int = 0, think: float = 0.3,
                proxy_header: str = "X-Forwarded-For") -> int:
    """Honest players, each from an address of its own (through a trusted proxy header) with one session,
    ``think`` seconds a pair: dope when the match has the query's category, nope otherwise. Returns the votes
    accepted."""
    import httpx2 as httpx

    accepted = 0
    for n in range(players):
        headers = {proxy_header: f"10.{seed % 250}.{n // 250}.{n % 250 + 1}"}
        with httpx.Client(base_url=base_url, timeout=60, headers=headers) as client:
            for _ in range(votes_each):
                pair = client.get("/api/game/pair")
                if pair.status_code != 200:
                    continue
                body = pair.json()
                time.sleep(think)
                verdict = "dope" if body["query"]["category"] == body["match"]["category"] else "nope"
                accepted += client.post("/api/game/vote", json={"token": body["token"],
                                                               "verdict": verdict}).status_code == 200
    return accepted


@dataclass
class AttackResult:
    seconds: float
    attempts: int = 0
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    pinned: int = 0  # pairs whose hidden system the public search narrowed to one

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 1), "attempts": self.attempts, "accepted": self.accepted,
                "refused": self.refused, "system_pinned_to_one": self.pinned}


def steering_attack(base_url: str, target: str, *, seconds: float = 30.0, address: str = "198.51.100.66",
                    proxy_header: str = "X-Forwarded-For") -> AttackResult:
    """The attack of issue 15: for every vote a new session from one address; the pair's query is looked up in
    public search under every system, and the vote is dope when ``target`` could have made the shown match,
    nope otherwise."""
    import httpx2 as httpx

    result = AttackResult(seconds)
    stop = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=60, headers={proxy_header: address}) as client:
        systems = client.get("/api/systems").json()["systems"]
        while time.monotonic() < stop:
            client.cookies.clear()  # a new session per vote costs nothing
            result.attempts += 1
            pair = client.get("/api/game/pair")
            if pair.status_code != 200:
                result.refused[pair.status_code] = result.refused.get(pair.status_code, 0) + 1
                continue
            body = pair.json()
            candidates = [s for s in systems if client.get("/api/search/item", params={
                "item_id": body["query"]["item_id"], "system": s, "k": 1}).json()["results"][0]["item_id"]
                == body["match"]["item_id"]]
            result.pinned += len(candidates) == 1
            verdict = "dope" if target in candidates else "nope"
            vote = client.post("/api/game/vote", json={"token": body["token"], "verdict": verdict})
            if vote.status_code == 200:
                result.accepted += 1
            else:
                result.refused[vote.status_code] = result.refused.get(vote.status_code, 0) + 1
    return result


@dataclass
class MixedResult:
    seconds: float
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)  # route -> status -> count
    accepted: list[str] = field(default_factory=list)  # pair ids of accepted votes and duels
    trivial_ms: list[float] = field(default_factory=list)
    upload_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def server_errors(self) -> int:
        return sum(n for codes in self.statuses.values() for code, n in codes.items() if code >= 500 and code != 503)

    def summary(self) -> dict:
        pct = (lambda v, q: round(float(np.percentile(v, q)), 1) if v else None)
        return {"seconds": round(self.seconds, 1), "statuses": self.statuses, "accepted_votes": len(self.accepted),
                "server_errors_5xx": self.server_errors(), "client_errors": len(self.errors),
                "trivial_get_ms": {"count": len(self.trivial_ms), "p50": pct(self.trivial_ms, 50),
                                   "p95": pct(self.trivial_ms, 95), "max": pct(self.trivial_ms, 100)},
                "upload_ms": {"count": len(self.upload_ms), "p50": pct(self.upload_ms, 50),
                              "p95": pct(self.upload_ms, 95)}}


def run_mixed_load(base_url: str, *, seconds: float = 20.0, uploads: int = 4, players: int = 4, duelists: int = 2,
                   readers: int = 1, upload: bytes = b"", think: float = 0.5,
                   proxy_header: str = "X-Forwarded-For") -> MixedResult:
    """Uploads, game players, duelists and leaderboard readers at once (each its own address), while a
    trivial route is timed every 50 ms. Players and duelists look at a pair ``think`` seconds before voting
    (0: bots). A 503 (pool full) is an answer, not an error: the client waits Retry-After."""
    import httpx2 as httpx

    result = MixedResult(seconds)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def note(route: str, status: int) -> None:
        with lock:
            codes = result.statuses.setdefault(route, {})
            codes[status] = codes.get(status, 0) + 1

    def client(n: int) -> httpx.Client:
        return httpx.Client(base_url=base_url, timeout=120, headers={proxy_header: f"10.9.{n // 250}.{n % 250 + 1}"})

    def guarded(work):
        def run(n: int) -> None:
            with client(n) as c:
                while time.monotonic() < stop:
                    try:
                        work(c)
                    except Exception as exc:  # noqa: BLE001 - a load test counts failures, it does not stop
                        with lock:
                            result.errors.append(repr(exc))
        return run

    def do_upload(c) -> None:
        t0 = time.perf_counter()
        r = c.post("/api/search", files={"file": ("p.png", upload, "image/png")}, data={"box": "auto"})
        note("POST /api/search", r.status_code)
        if r.status_code == 200:
            with lock:
                result.upload_ms.append(1000 * (time.perf_counter() - t0))
        elif r.status_code == 503:
            time.sleep(float(r.headers.get("retry-after", "1")))

    def play(game: str, field: str, choices: list[str]):
        """One round of ``game`` (``game`` or ``duel``): get a pair, look at it, vote."""
        def round_(c) -> None:
            r = c.get(f"/api/{game}/pair")
            note(f"GET /api/{game}/pair", r.status_code)
            if r.status_code != 200:
                time.sleep(0.5)
                return
            token = r.json()["token"]
            time.sleep(think)
            v = c.post(f"/api/{game}/vote", json={"token": token, field: random.choice(choices)})
            note(f"POST /api/{game}/vote", v.status_code)
            if v.status_code == 200:
                with lock:
                    result.accepted.append(token.rsplit(".", 1)[0])
        return round_

    do_vote, do_duel = play("game", "verdict", ["dope", "nope"]), play("duel", "winner", ["a", "b"])

    def do_read(c) -> None:  # a person on the leaderboard page, reloading it every second
        note("GET /api/leaderboard", c.get("/api/leaderboard", params={"bootstrap": 200}).status_code)
        note("GET /api/leaderboard.svg", c.get("/api/leaderboard.svg").status_code)
        time.sleep(1.0)

    jobs = [(do_upload, uploads), (do_vote, players), (do_duel, duelists), (do_read, readers)]
    threads, n = [], 0
    for work, count in jobs:
        for _ in range(count if (work is not do_upload or upload) else 0):
            threads.append(threading.Thread(target=guarded(work), args=(n,)))
            n += 1
    for t in threads:
        t.start()
    with client(n) as c:
        time.sleep(0.5)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            r = c.get("/api/systems")
            note("GET /api/systems", r.status_code)
            result.trivial_ms.append(1000 * (time.perf_counter() - t0))
            time.sleep(0.05)
    for t in threads:
        t.join()
    return result
