"""Fitting a taste: non-negative weights on distance components, from verdicts and duels.

A learned distance is ``d(q, m) = sum_i u_i c_i(q, m)`` over components ``c_i >= 0`` (the base
model's distance, and per-dimension differences of appearance numbers and of the base's principal
directions), with every ``u_i >= 0`` so that ``d`` stays a distance a vector index can search.

- A verdict on ``(q, m)`` is a logistic outcome: ``P(dope) = sigmoid(a - d(q, m))``.
- A duel ``(q, winner, loser)`` is a preference: ``P(winner) = sigmoid(d(q, loser) - d(q, winner))``.

An L1 penalty on every weight but the base's keeps the taste at the base where the votes say nothing.
Its strength is chosen by cross-validation over *query items* (no query is in both the fitted and the
held-out votes), against the base alone (only ``u_0`` and ``a`` fitted): a taste is kept only when it
predicts held-out votes better than the base by more than the noise (one standard error of the
per-vote difference) and gets more of them right, also by more than the noise (``more_often_right``).
Otherwise the learned model *is* the base, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ..evaluation import Evaluator

#: the base distance's weight never falls below this (components are about 1 on random pairs)
MIN_BASE_WEIGHT = 1e-3
#: penalty strengths tried, strongest first (per vote, on the sum of the non-base weights)
PENALTIES = (0.3, 0.1, 0.03, 0.01, 0.003)


@dataclass
class VoteSet:
    """Verdicts and duels as component rows (``c`` arrays of shape ``(n, C)``)."""

    single: np.ndarray  # (n, C) components of (query, match)
    dope: np.ndarray  # (n,) 1 = dope, 0 = nope
    single_query: np.ndarray  # (n,) query item of each verdict (for grouped splits)
    winner: np.ndarray  # (m, C) components of (query, preferred match)
    loser: np.ndarray  # (m, C)
    duel_query: np.ndarray  # (m,)

    def __len__(self) -> int:
        return len(self.dope) + len(self.winner)

    @property
    def n_components(self) -> int:
        return self.single.shape[1] if len(self.single) else self.winner.shape[1]

    def take(self, single_rows: np.ndarray, duel_rows: np.ndarray) -> VoteSet:
        return VoteSet(self.single[single_rows], self.dope[single_rows], self.single_query[single_rows],
                       self.winner[duel_rows], self.loser[duel_rows], self.duel_query[duel_rows])


@dataclass
class Taste:
    """Fitted weights (``weights[0]`` is the base distance's) and the verdict threshold ``bias``."""

    weights: np.ndarray
    bias: float
    penalty: float | str | None  # None: the base alone ("rate": no distance, only while choosing)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def is_base(self) -> bool:
        return self.penalty is None


def _unpack(theta: np.ndarray) -> tuple[np.ndarray, float]:
    return theta[:-1], float(theta[-1])


def _design(votes: VoteSet) -> tuple[np.ndarray, np.ndarray]:
    """``(D, b)`` such that each vote's signed margin is ``D @ weights + b * bias`` (> 0: the taste predicts it).

    A verdict's margin is ``sign * (bias - c . w)`` (sign +1 for dope, -1 for nope); a duel's is
    ``(c_loser - c_winner) . w``."""
    sign = 2.0 * votes.dope - 1.0
    design = np.concatenate([-sign[:, None] * votes.single, votes.loser - votes.winner])
    return design, np.concatenate([sign, np.zeros(len(votes.winner))])


def _margins(votes: VoteSet, weights: np.ndarray, bias: float) -> np.ndarray:
    design, bias_column = _design(votes)
    return design @ weights + bias_column * bias


def per_vote_loss(votes: VoteSet, weights: np.ndarray, bias: float) -> np.ndarray:
    """Negative log-likelihood of each vote (verdicts first, then duels)."""
    return np.logaddexp(0.0, -_margins(votes, weights, bias))


def _objective(theta: np.ndarray, design: np.ndarray, bias_column: np.ndarray, penalty: float,
               free: np.ndarray) -> tuple[float, np.ndarray]:
    weights, bias = _unpack(theta * free)
    n = max(len(design), 1)
    margins = design @ weights + bias_column * bias
    slope = -_sigmoid(-margins) / n  # d loss / d margin
    loss = np.logaddexp(0.0, -margins).sum() / n + penalty * weights[1:].sum()
    grad_w = design.T @ slope
    grad_w[1:] += penalty
    return loss, np.concatenate([grad_w, [bias_column @ slope]]) * free


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_weights(votes: VoteSet, penalty: float | str | None) -> Taste:
    """Weights for one penalty strength (``None``: the base's weight and the bias only; ``"rate"``: the bias
    only, i.e. the dope rate, no distance at all)."""
    n_components = votes.n_components
    free = np.ones(n_components + 1)
    if penalty is None or penalty == "rate":
        free[1 if penalty is None else 0 : -1] = 0.0
    start = np.concatenate([[1.0], np.zeros(n_components - 1), [1.0]]) * free
    # the base keeps a (tiny) positive weight: its block of a learned vector must still rank the base's shortlist
    bounds = [(MIN_BASE_WEIGHT, None)] + [(0.0, None)] * (n_components - 1) + [(None, None)]
    strength = penalty if isinstance(penalty, float) else 0.0
    result = minimize(_objective, start, args=(*_design(votes), strength, free), jac=True, method="L-BFGS-B",
                      bounds=bounds, options={"maxiter": 500})
    weights, bias = _unpack(result.x * free)
    weights = np.maximum(weights, 0.0)
    weights[0] = max(weights[0], MIN_BASE_WEIGHT)
    return Taste(weights, bias, penalty)


def grouped_folds(votes: VoteSet, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (verdict rows, duel rows) held-out sets; every query item's votes fall in one fold."""
    queries = np.unique(np.concatenate([votes.single_query, votes.duel_query]))
    fold_of = dict(zip(queries.tolist(), np.random.default_rng(seed).permutation(len(queries)) % folds))
    single_fold = np.asarray([fold_of[q] for q in votes.single_query.tolist()], int)
    duel_fold = np.asarray([fold_of[q] for q in votes.duel_query.tolist()], int)
    return [(np.flatnonzero(single_fold == f), np.flatnonzero(duel_fold == f)) for f in range(folds)]


def learn_taste(votes: VoteSet, *, folds: int = 5, seed: int = 0,
                penalties: tuple[float, ...] = PENALTIES) -> Taste:
    """Choose the penalty on held-out votes (grouped cross-validation), then fit on every vote.

    The reference is the better of the base alone and no distance at all (the dope rate): a taste must
    predict held-out votes better than that by more than one standard error, with a weaker penalty chosen
    only when it also beats the stronger ones, and must get more held-out votes right than the base by more
    than the noise (``more_often_right``).
    Otherwise the result is the base (``weights = [1, 0, ...]``).
    ``scores`` holds each candidate's held-out loss per vote and the held-out accuracy of the choice and of
    the base.
    """
    evaluators = [(rows, VoteEvaluator(votes.take(*rows))) for rows in grouped_folds(votes, folds, seed)]
    candidates: list[float | str | None] = ["rate", None, *penalties]
    losses = {c: np.zeros(len(votes)) for c in candidates}
    correct = {c: np.zeros(len(votes)) for c in candidates}
    n_single = len(votes.dope)
    for (single_rows, duel_rows), evaluator in evaluators:
        if len(single_rows) + len(duel_rows) == 0:
            continue
        train = votes.take(np.setdiff1d(np.arange(n_single), single_rows),
                           np.setdiff1d(np.arange(len(votes.winner)), duel_rows))
        where = np.concatenate([single_rows, n_single + duel_rows])
        for c in candidates:
            taste = fit_weights(train, c)
            losses[c][where], correct[c][where] = evaluator.per_vote(taste)
    reference = min(("rate", None), key=lambda c: losses[c].mean())
    best = None
    for c in penalties:  # strongest first: a weaker penalty must beat a stronger one to be chosen
        gain = losses[reference] - losses[c]
        standard_error = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
        if gain.mean() > standard_error and (best is None or losses[c].mean() < losses[best].mean()):
            best = c
    if best is not None and not more_often_right(correct[best], correct[None]):
        best = None  # likelier but not more often right: chance, or a taste the base already has
    chosen = fit_weights(votes, best) if best is not None else None
    if chosen is None or chosen.weights[1:].sum() <= 1e-9:  # nothing beyond the base: rank as the base does
        chosen, best = Taste(np.eye(1, votes.n_components)[0], 0.0, None), None
    label = {"rate": "rate", None: "base"}
    chosen.scores = {f"heldout_loss[{label.get(c, c)}]": float(losses[c].mean()) for c in candidates}
    chosen.scores["heldout_accuracy"] = float(correct[best].mean())
    chosen.scores["heldout_accuracy[base]"] = float(correct[None].mean())
    return chosen


def more_often_right(taste_correct: np.ndarray, base_correct: np.ndarray) -> bool:
    """Whether a taste gets more held-out votes right than the base by more than the noise.

    Only the votes on which the two disagree count (McNemar): of ``n`` such votes, the taste must win
    ``b`` with ``b - (n - b) > sqrt(n)``, one standard error of that difference were the two equally good.
    """
    wins = int(np.sum((taste_correct > 0) & (base_correct == 0)))
    losses = int(np.sum((taste_correct == 0) & (base_correct > 0)))
    return wins - losses > np.sqrt(wins + losses)


class VoteEvaluator(Evaluator):
    """Scores a taste on fixed held-out votes: loss per vote (lower is better) and share predicted."""

    primary = "loss"
    greater_is_better = False

    def __init__(self, votes: VoteSet, name: str = "held-out votes"):
        self.votes = votes
        self.name = name

    def per_vote(self, taste: Taste) -> tuple[np.ndarray, np.ndarray]:
        return per_vote_loss(self.votes, taste.weights, taste.bias), _correct(self.votes, taste)

    def __call__(self, taste: Taste) -> dict[str, float]:
        loss, correct = self.per_vote(taste)
        return {"loss": float(loss.mean()) if len(loss) else float("nan"),
                "accuracy": float(correct.mean()) if len(correct) else float("nan")}


def _correct(votes: VoteSet, taste: Taste) -> np.ndarray:
    """1 where the taste predicts the vote (verdict on the right side of 1/2, duel winner nearer)."""
    return (_margins(votes, taste.weights, taste.bias) > 0).astype(float)
