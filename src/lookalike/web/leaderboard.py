"""Ranking search systems from people's votes: Wilson intervals and a Bradley-Terry fit."""

from __future__ import annotations

import html
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well-behaved for few votes and rates near 0 or 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Mathematically the interval always holds p (and reaches 1 at p = 1); rounding can miss it by an ulp.
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


@dataclass
class ApprovalRow:
    system: str
    votes: int
    dope: int
    rate: float
    ci_low: float
    ci_high: float


def approval_table(tallies: dict[str, tuple[int, int]], systems: list[str] | None = None) -> list[ApprovalRow]:
    """Systems ranked by approval rate (ties: the lower interval bound, then more votes)."""
    names = sorted(set(tallies) | set(systems or []))
    rows = []
    for name in names:
        dope, n = tallies.get(name, (0, 0))
        low, high = wilson_interval(dope, n)
        rows.append(ApprovalRow(name, n, dope, dope / n if n else 0.0, low, high))
    return sorted(rows, key=lambda r: (-r.rate, -r.ci_low, -r.votes, r.system))


def bradley_terry(outcomes: list[tuple[str, str, str]], systems: list[str] | None = None, *,
                  iterations: int = 200, prior: float = 0.5) -> dict[str, float]:
    """Bradley-Terry strengths (log scale, mean 0) by the MM algorithm (Hunter 2004).

    ``outcomes`` are ``(system_a, system_b, winner)`` with winner ``'a'`` or ``'b'``. A small prior
    (``prior`` virtual wins against every other system) keeps systems with no wins finite.
    """
    names = sorted({s for a, b, _ in outcomes for s in (a, b)} | set(systems or []))
    if not names:
        return {}
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    wins = np.zeros((k, k))
    for a, b, winner in outcomes:
        i, j = index[a], index[b]
        if winner == "a":
            wins[i, j] += 1
        else:
            wins[j, i] += 1
    wins += prior * (1 - np.eye(k)) / max(k - 1, 1)
    games = wins + wins.T
    p = np.ones(k)
    for _ in range(iterations):
        denom = (games / (p[:, None] + p[None, :])).sum(1)
        p = wins.sum(1) / np.maximum(denom, 1e-12)
        p /= np.exp(np.log(p).mean())
    logp = np.log(p)
    return {n: float(logp[index[n]]) for n in names}


@dataclass
class DuelRow:
    system: str
    strength: float
    ci_low: float
    ci_high: float
    duels: int
    wins: int


def duel_table(outcomes: list[tuple[str, str, str]], systems: list[str] | None = None, *, bootstrap: int = 200,
               seed: int = 0) -> list[DuelRow]:
    """Bradley-Terry ranking with 95% bootstrap intervals (duels resampled with replacement)."""
    strengths = bradley_terry(outcomes, systems)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {n: [] for n in strengths}
    if outcomes:
        for _ in range(bootstrap):
            picked = [outcomes[i] for i in rng.integers(len(outcomes), size=len(outcomes))]
            fit = bradley_terry(picked, list(strengths))
            for n, v in fit.items():
                samples[n].append(v)
    rows = []
    for name, value in strengths.items():
        duels = sum(1 for a, b, _ in outcomes if name in (a, b))
        wins = sum(1 for a, b, w in outcomes if (w == "a" and a == name) or (w == "b" and b == name))
        low, high = (np.percentile(samples[name], [2.5, 97.5]) if samples[name] else (value, value))
        rows.append(DuelRow(name, value, float(low), float(high), duels, wins))
    return sorted(rows, key=lambda r: (-r.strength, r.system))


def as_dicts(rows) -> list[dict]:
    return [asdict(r) for r in rows]


class LeaderboardCache:
    """The leaderboard, refit at most every ``max_age`` seconds while votes arrive (concurrent readers wait for
    one fit, later ones read it; its ``votes`` says how many it counts).

    Flagged votes (e.g. on items the voter looked up first) are left out, and their counts are shown.
    """

    def __init__(self, max_age: float = 5.0) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cache: dict[tuple, tuple[tuple, float, dict[str, Any]]] = {}  # key -> (revision, time, board)

    def get(self, store, systems: list[str], bootstrap: int) -> dict[str, Any]:
        import time

        key = (tuple(systems), bootstrap)
        with self._lock:  # one fit at a time; the others then read it
            revision = store.revision()
            cached = self._cache.get(key)
            if cached is not None and (cached[0] == revision or time.monotonic() - cached[1] < self.max_age):
                return cached[2]
            served = set(systems)  # one player's own taste model ("mine") is nobody else's business
            tallies = {s: t for s, t in store.tallies().items() if s in served}
            outcomes = [o for o in store.duel_outcomes() if o[0] in served and o[1] in served]
            board = {"approval": as_dicts(approval_table(tallies, systems)),
                     "duels": as_dicts(duel_table(outcomes, systems, bootstrap=bootstrap)),
                     "votes": store.count_votes(), "left_out": store.flag_counts(), "bootstrap": bootstrap}
            self._cache[key] = (revision, time.monotonic(), board)
            return board


def approval_svg(rows: list[dict[str, Any]], width: int = 640) -> str:
    """Each system's approval as a dot on its 95% Wilson interval, best first: an SVG drawn on the server."""
    left, right, row_h, top = 190, 60, 26, 30
    height = top + row_h * max(1, len(rows)) + 24
    scale = (width - left - right) / 100.0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="16" fill="#444">approval (dot) and its 95% interval (bar)</text>']
    for tick in range(0, 101, 25):
        x = left + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 20}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle" fill="#666">{tick}%</text>')
    for n, row in enumerate(rows):
        y = top + n * row_h + row_h / 2
        name = html.escape(str(row["system"]))
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{name}</text>')
        if row["votes"]:
            x1, x2, x = (left + 100 * row[k] * scale for k in ("ci_low", "ci_high", "rate"))
            out.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="#7aa6d8" '
                       f'stroke-width="6" stroke-linecap="round"/><circle cx="{x:.1f}" cy="{y:.1f}" r="5" '
                       f'fill="#1f5fa8"/><text x="{width - right + 6}" y="{y + 4:.1f}" fill="#444">'
                       f'{row["votes"]} votes</text>')
        else:
            out.append(f'<text x="{left}" y="{y + 4:.1f}" fill="#999">no votes yet</text>')
    out.append("</svg>")
    return "".join(out)
