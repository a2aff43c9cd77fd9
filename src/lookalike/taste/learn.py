"""``lookalike learn``: a new model from the Dope-or-Nope verdicts recorded for a base system.

Votes are read, never edited. Each verdict on ``(query, match)`` and each duel ``(query, winner,
loser)`` becomes component rows (``PairSpace``); ``learn_taste`` fits the weights and chooses how far
to move from the base on held-out votes. The model is saved like any other (``WS/models/NAME``), its
vectors are built from the base's and ``appearance``'s stores, and its ``model.json`` records what it
learned from: vote counts, hashed session ids, the time range and the base.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FeatureStoreError
from ..metrics import Metric
from ..votes import VoteStore
from ..workspace import Workspace
from .fit import Taste, VoteSet, learn_taste
from .space import PairSpace, component_groups

#: base matches a learned model re-ranks (the game's exploration shows ranks 1..30)
SHORTLIST = 30
#: fewest votes ``learn`` accepts by default (the web app's "learn my taste" uses the same)
MIN_VOTES = 50


def session_hash(session: str) -> str:
    """What a model records of a player: a hash, never the session id."""
    return hashlib.sha256(session.encode()).hexdigest()[:16]


def default_db_url(ws: Workspace) -> str:
    return f"sqlite:///{(ws.root / 'votes.sqlite').absolute()}"


@dataclass
class LearnResult:
    name: str
    directory: Path
    base_system: str
    taste: Taste
    verdicts: int
    duels: int
    left_out: dict[str, int] = field(default_factory=dict)
    group_weights: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        scores = self.taste.scores
        out = [f"{self.name}: learned from {self.verdicts} verdicts and {self.duels} duels on top of "
               f"{self.base_system}"]
        out += [f"  left out {n} votes: {why}" for why, n in self.left_out.items() if n]
        chosen = "base" if self.taste.is_base else self.taste.penalty
        out.append(f"  held-out votes (5-fold, by query item): loss {scores[f'heldout_loss[{chosen}]']:.3f} vs base "
                   f"{scores['heldout_loss[base]']:.3f}; predicted {scores['heldout_accuracy']:.1%} vs base "
                   f"{scores['heldout_accuracy[base]']:.1%}")
        if self.taste.is_base:
            out.append("  the votes predict nothing the base does not: the model ranks as the base does")
        else:
            shares = ", ".join(f"{g} {w:.0%}" for g, w in sorted(self.group_weights.items(), key=lambda x: -x[1]) if w >= 0.005)
            out.append(f"  what it weighs (share of the distance on voted pairs): {shares}")
        return out


def learn(ws: Workspace, base: str, metric: str | Metric, name: str, *, sessions: list[str] | None = None,
          db_url: str | None = None, all_systems: bool = False, min_votes: int = MIN_VOTES,
          include_flagged: bool = False, overwrite: bool = False, personal: bool | None = None,
          progress: Callable[[str, float], None] | None = None, seed: int = 0,
          shortlist: int = SHORTLIST) -> LearnResult:
    """Learn ``name`` from the votes on ``base/metric`` (``all_systems``: from every verdict, whichever system
    showed the pair: a verdict is about two items). ``progress(stage, fraction)`` is called along the way."""
    from ..extractors.combined import check_new_model
    from ..extractors.registry import create_extractor
    from ..features import extract_features

    report = progress or (lambda _stage, _fraction: None)
    metric = Metric.parse(metric)
    system = f"{base}/{metric.value}"
    directory = check_new_model(ws.models_dir, name, [base, "appearance"], overwrite=overwrite)
    base_extractor = ws.create_extractor(base)
    base_store = ws.feature_store(base)
    base_store.manifest()  # no features: a clear error naming the extract command
    if min_votes < 2 or shortlist < 1:
        raise ConfigError(f"--min-votes must be at least 2 and --shortlist at least 1, got {min_votes} and {shortlist}")

    store = VoteStore(db_url or default_db_url(ws))
    try:
        verdicts, duels = store.judgements(systems=None if all_systems else [system], sessions=sessions,
                                           include_flagged=include_flagged)
        if sessions:
            known = {v["session"] for v in verdicts} | {d["session"] for d in duels}
            for session in sessions:
                if session not in known:
                    everywhere = store.judgements(sessions=[session], include_flagged=True)
                    where = "" if all_systems or not any(everywhere) else f" on {system} (it voted on other systems: " \
                                                                           "pass --all-systems to learn from those)"
                    raise ConfigError(f"unknown session {session!r}: no votes recorded for it{where}")
    finally:
        store.close()
    if not verdicts and not duels:
        raise ConfigError(f"no votes for {system} in this vote store" + (" from these sessions" if sessions else "")
                          + "; play Dope or Nope with it (lookalike serve) or pass --all-systems")

    left_out: Counter = Counter()
    fingerprint = base_store.manifest().get("extractor_fingerprint", "")[:16]
    current = set(base_store.ids())

    def usable(row: dict[str, Any], items: list[str]) -> bool:
        shown = [s for s in (row.get("system"), row.get("system_a"), row.get("system_b")) if s]
        features = (row.get("features") or "").split(",")
        if fingerprint and any(s == system and i < len(features) and features[i] and features[i] != fingerprint
                               for i, s in enumerate(shown)):
            left_out[f"cast on matches of older {base} features (re-extracted since)"] += 1
            return False
        if not all(i in current for i in items):
            left_out[f"an item no longer has {base} features (removed)"] += 1
            return False
        return True

    verdicts = [v for v in verdicts if usable(v, [v["query_item"], v["match_item"]])]
    duels = [d for d in duels if usable(d, [d["query_item"], d["match_a"], d["match_b"]])]
    if len(verdicts) + len(duels) < min_votes:
        why = "; ".join(f"{n} {reason}" for reason, n in left_out.items())
        raise ConfigError(f"too few votes for {system}: {len(verdicts) + len(duels)} usable"
                          + (f" ({why})" if why else "") + f", at least {min_votes} are needed (--min-votes)")

    report("appearance", 0.1)
    appearance = create_extractor("appearance")
    app_store = ws.feature_store("appearance")
    try:
        app_store.check_compatible(appearance)
    except FeatureStoreError:  # made by another version of the descriptor: computed again (no weights involved)
        app_store.clear()
    items = [it for it in ws.catalogue.items() if it.id in current]  # what the learned model gets vectors for
    if not app_store.exists() or not current <= app_store.stored_ids():
        extract_features(ws.catalogue, appearance, app_store, progress=None, items=items)
    report("components", 0.5)
    rng = np.random.default_rng(seed)
    ids = sorted(current & app_store.stored_ids())
    sample = sorted(rng.choice(len(ids), min(len(ids), 20_000), replace=False).tolist())
    sample_ids = [ids[i] for i in sample]
    category_of = {it.id: it.category for it in items}
    space = PairSpace.fit(metric, base_store.vectors_for(sample_ids), app_store.vectors_for(sample_ids), seed=seed,
                          categories=tuple(sorted(set(category_of.values()))))
    votes = _vote_set(space, base_store, app_store, verdicts, duels, category_of)
    report("fitting", 0.6)
    taste = learn_taste(votes, seed=seed)

    report("saving", 0.8)
    sessions_seen = sorted({session_hash(r["session"]) for r in verdicts + duels})
    times = [r["voted_at"] for r in verdicts + duels]
    saved = {"kind": "learned", "config": {"name": name, "base": base, "base_metric": metric.value},
             "weights": taste.weights.tolist(), "bias": taste.bias, "penalty": taste.penalty, "is_base": taste.is_base,
             "selected_on": "held-out votes: 5-fold cross-validation grouped by query item",
             "scores": taste.scores, "personal": bool(sessions) if personal is None else personal,
             "index": {"backend": "shortlist", "params": {"base_dim": base_extractor.dim, "shortlist": shortlist}},
             "learned_from": {"base_model": base, "base_metric": metric.value, "base_features": fingerprint,
                              "votes": len(verdicts) + len(duels), "verdicts": len(verdicts), "duels": len(duels),
                              "dope": sum(v["verdict"] == "dope" for v in verdicts),
                              "explored": sum((v["match_rank"] or 1) > 1 for v in verdicts),
                              "systems": "every system" if all_systems else [system],
                              "sessions": sessions_seen, "session_count": len(sessions_seen),
                              "time_range": [_iso(min(times)), _iso(max(times))],
                              "left_out": dict(left_out), "flagged_included": include_flagged},
             "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _save(directory, saved, space)
    shutil.rmtree(ws.root / "indexes" / name, ignore_errors=True)  # a model learned again gets new indexes
    from ..extractors.learned import LearnedExtractor

    learned = LearnedExtractor(directory)
    report("vectors", 0.85)
    out = ws.feature_store(name)
    extract_features(ws.catalogue, learned, out, overwrite=True, progress=None, part_stores=[base_store, app_store],
                     items=items)
    report("done", 1.0)
    share = _group_shares(votes, taste.weights, space)
    return LearnResult(name, directory, system, taste, len(verdicts), len(duels), dict(left_out), share)


def _vote_set(space: PairSpace, base_store, app_store, verdicts: list[dict], duels: list[dict],
              category_of: dict[str, str]) -> VoteSet:
    def comps(queries: list[str], matches: list[str]) -> np.ndarray:
        if not queries:
            return np.zeros((0, space.size))
        return space.components(base_store.vectors_for(queries), base_store.vectors_for(matches),
                                app_store.vectors_for(queries), app_store.vectors_for(matches),
                                space.category_codes([category_of.get(i) for i in queries]),
                                space.category_codes([category_of.get(i) for i in matches]))

    single = comps([v["query_item"] for v in verdicts], [v["match_item"] for v in verdicts])
    winners = [d["match_a"] if d["winner"] == "a" else d["match_b"] for d in duels]
    losers = [d["match_b"] if d["winner"] == "a" else d["match_a"] for d in duels]
    queries = [d["query_item"] for d in duels]
    return VoteSet(single, np.asarray([v["verdict"] == "dope" for v in verdicts], float),
                   np.asarray([v["query_item"] for v in verdicts], object), comps(queries, winners),
                   comps(queries, losers), np.asarray(queries, object))


def _group_shares(votes: VoteSet, weights: np.ndarray, space: PairSpace) -> dict[str, float]:
    """Each group's share of the learned distance, summed over the voted pairs."""
    rows = np.concatenate([votes.single, votes.winner, votes.loser]) * weights
    total = max(rows.sum(), 1e-12)
    groups = component_groups(len(space.directions), len(space.thresholds), bool(space.categories))
    return {group: float(rows[:, positions].sum() / total) for group, positions in groups.items()}


def _save(directory: Path, saved: dict[str, Any], space: PairSpace) -> None:
    """Write the model folder whole, then swap it in (an interrupted run leaves the old one or nothing)."""
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.savez(tmp / "space.npz", **space.to_arrays())
    (tmp / "model.json").write_text(json.dumps(saved, indent=2))
    if directory.exists():
        shutil.rmtree(directory)
    tmp.replace(directory)


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
