"""Ranking search systems from people's votes: Wilson intervals and a Bradley-Terry fit."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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
