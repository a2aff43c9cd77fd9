"""The components a taste weighs, and the vectors that make the weighted distance searchable.

For a base model searched under ``metric``, the components of an item pair ``(q, m)`` are:

- ``base``: the base's own distance (normalised by its median on the voted pairs);
- ``direction k``: the difference along the base's ``k``-th principal direction;
- ``appearance j``: the difference in the ``j``-th appearance number (standardised on the catalogue);
- ``partition j, q``: 1 when the two items lie on different sides of the catalogue's ``q`` quantile of
  appearance number ``j`` (quartiles), else 0. A taste shaped like a partition (boxy or fitted, one of a
  few styles) turns on which side of a line an item falls, which no weighting of differences expresses:
  nearby items on both sides of it differ little.
- ``category``: 1 when the two items' catalogue categories differ, else 0 (the shop's own labels, which
  players see too: a taste that asks for the same kind of item is bounded by the base's category accuracy
  without it). An uploaded photo has no category: its block is zero, the same distance to every item, so
  it changes no ranking of a photo search; evaluations hide a catalogue query's own label the same way.

Under L2 (and Hamming, whose codes are compared as +-1 vectors) a component is a squared
difference, under L1 an absolute one (a partition component is the same 0 or 1 under both). Either
way ``sum_i w_i c_i(q, m)`` is exactly the L2 (L1) distance between ``embed(q)`` and ``embed(m)``, so a
learned taste is a model like any other: its vectors go into the usual indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..metrics import Metric
from ..extractors.appearance import GROUPS, NAMES

#: principal directions of the base offered to a taste
DIRECTIONS = 16
#: catalogue quantiles of each appearance number whose sides a taste can weigh
QUANTILES = (0.25, 0.5, 0.75)


def component_groups(directions: int = DIRECTIONS, quantiles: int = len(QUANTILES),
                     category: bool = False) -> dict[str, list[int]]:
    """Component positions by group: ``base``, ``directions``, each appearance group, ``partition`` (the sides
    of ``quantiles`` quantiles of each appearance number), and ``category`` when the space has one."""
    out = {"base": [0], "directions": list(range(1, 1 + directions))}
    start = 1 + directions
    for group, names in GROUPS:
        out[group] = list(range(start, start + len(names)))
        start += len(names)
    out["partition"] = list(range(start, start + quantiles * len(NAMES)))
    if category:
        out["category"] = [start + quantiles * len(NAMES)]
    return out


@dataclass
class PairSpace:
    """Everything needed to turn (base vector, appearance numbers) into components or learned vectors."""

    metric: Metric  # the base's metric
    base_scale: float  # typical base distance on voted pairs
    directions: np.ndarray  # (K, D) principal directions of the base vectors
    direction_scales: np.ndarray  # (K,) typical difference along each direction
    appearance_mean: np.ndarray  # (A,)
    appearance_std: np.ndarray  # (A,)
    thresholds: np.ndarray | None = None  # (Q, A) standardised appearance quantiles (None: no partitions)
    categories: tuple[str, ...] = ()  # the catalogue's categories (empty: no category component)

    def __post_init__(self) -> None:
        if self.thresholds is None:
            self.thresholds = np.zeros((0, len(self.appearance_mean)))
        self.categories = tuple(self.categories)

    @property
    def learned_metric(self) -> Metric:
        """The metric a learned model is searched with: L1 for an L1 base, L2 otherwise."""
        return Metric.L1 if self.metric is Metric.L1 else Metric.L2

    @property
    def size(self) -> int:
        """Number of components."""
        return 1 + len(self.directions) + len(self.appearance_mean) + self.thresholds.size + bool(self.categories)

    def vector_dim(self, base_dim: int) -> int:
        """Dimensions of a learned vector: the base's, one per other component, one per category."""
        return base_dim + self.size - 1 - bool(self.categories) + len(self.categories)

    def category_codes(self, categories) -> np.ndarray:
        """Positions of ``categories`` (names, None for unknown) in the space's list; -1 where unknown."""
        position = {c: i for i, c in enumerate(self.categories)}
        return np.asarray([position.get(c, -1) if c is not None else -1 for c in categories], np.int64)

    @classmethod
    def fit(cls, metric: Metric, base_sample: np.ndarray, appearance_sample: np.ndarray,
            directions: int = DIRECTIONS, seed: int = 0, categories: tuple[str, ...] = ()) -> PairSpace:
        """Directions and scales from a sample of the catalogue's vectors (rows of both arrays: same items);
        ``categories``: the catalogue's, for the category component (none: no such component)."""
        base = np.asarray(base_sample, np.float64)
        centred = base - base.mean(0)
        _, _, vt = np.linalg.svd(centred[: min(len(centred), 20_000)], full_matrices=False)
        k = min(directions, vt.shape[0])
        dirs = np.zeros((directions, base.shape[1]))
        dirs[:k] = vt[:k]
        space = cls(metric, 1.0, dirs, np.ones(directions), appearance_sample.mean(0).astype(np.float64),
                    np.maximum(appearance_sample.std(0), 1e-6).astype(np.float64), categories=tuple(categories))
        space.thresholds = np.quantile(space._standard(appearance_sample), QUANTILES, axis=0)
        space.thresholds = space.thresholds.reshape(len(QUANTILES), -1)
        rng = np.random.default_rng(seed)
        a, b = rng.integers(0, len(base), (2, min(len(base), 4000)))
        raw = space._raw(base[a], base[b])
        space.base_scale = float(max(np.median(raw[:, 0]), 1e-12))
        space.direction_scales = np.maximum(np.median(raw[:, 1 : 1 + directions], axis=0), 1e-12)
        return space

    def _diff(self, x: np.ndarray) -> np.ndarray:
        return x * x if self.metric is not Metric.L1 else np.abs(x)

    def _raw(self, base_q: np.ndarray, base_m: np.ndarray) -> np.ndarray:
        if self.metric is Metric.HAMMING:
            d0 = ((base_q > 0) != (base_m > 0)).sum(1).astype(np.float64)
        elif self.metric is Metric.L1:
            d0 = np.abs(base_q - base_m).sum(1)
        else:
            d0 = ((base_q - base_m) ** 2).sum(1)
        along = (np.asarray(base_q, np.float64) - base_m) @ self.directions.T
        return np.concatenate([d0[:, None], self._diff(along)], axis=1)

    def _standard(self, appearance: np.ndarray) -> np.ndarray:
        """Appearance numbers standardised on the catalogue."""
        return (np.asarray(appearance, np.float64) - self.appearance_mean) / self.appearance_std

    def _sides(self, standard: np.ndarray) -> np.ndarray:
        """``(n, Q * A)``: 1 where an item's standardised appearance number lies above a threshold, else 0."""
        return (standard[:, None, :] > self.thresholds[None]).reshape(len(standard), -1).astype(np.float64)

    def components(self, base_q: np.ndarray, base_m: np.ndarray, app_q: np.ndarray, app_m: np.ndarray,
                   cat_q=None, cat_m=None) -> np.ndarray:
        """``(n, size)`` components of n item pairs (rows of the arrays; ``cat_q``, ``cat_m``: the items'
        category codes, ``category_codes``; -1 or None where unknown)."""
        raw = self._raw(np.asarray(base_q, np.float64), np.asarray(base_m, np.float64))
        raw[:, 0] /= self.base_scale
        raw[:, 1:] /= self.direction_scales
        app = self._diff((np.asarray(app_q, np.float64) - app_m) / self.appearance_std)
        apart = np.abs(self._sides(self._standard(app_q)) - self._sides(self._standard(app_m)))
        parts = [raw, app, apart]
        if self.categories:
            n = len(raw)
            q = np.full(n, -1) if cat_q is None else np.asarray(cat_q)
            m = np.full(n, -1) if cat_m is None else np.asarray(cat_m)
            parts.append(((q != m) & (q >= 0) & (m >= 0)).astype(np.float64)[:, None])
        return np.concatenate(parts, axis=1)

    def embed(self, base: np.ndarray, appearance: np.ndarray, weights: np.ndarray, categories=None) -> np.ndarray:
        """Vectors whose ``learned_metric`` distance is ``sum_i weights_i * components_i`` (``categories``: the
        items' category codes; unknown, or None for all, leaves the category block zero)."""
        base = np.asarray(base, np.float32)
        k = len(self.directions)
        scale = np.sqrt if self.metric is not Metric.L1 else (lambda x: x)
        w = np.asarray(weights, np.float64)
        if self.metric is Metric.HAMMING:  # |s_q - s_m|^2 = 4 x Hamming for s = +-1
            head = np.where(base > 0, 1.0, -1.0) * scale(w[0] / (4 * self.base_scale))
        else:
            head = base * scale(w[0] / self.base_scale)
        along = (base.astype(np.float64) @ self.directions.T) * scale(w[1 : 1 + k] / self.direction_scales)
        a = len(self.appearance_mean)
        standard = self._standard(appearance)
        app = standard * scale(w[1 + k : 1 + k + a])
        n_sides = self.thresholds.size
        sides = self._sides(standard) * scale(w[1 + k + a : 1 + k + a + n_sides])  # 0/1 apart: |difference| = its square
        blocks = [head, along, app, sides]
        if self.categories:
            blocks.append(self.category_block(np.full(len(base), -1) if categories is None else categories, w))
        return np.ascontiguousarray(np.concatenate(blocks, axis=1), np.float32)

    def category_block(self, codes, weights: np.ndarray) -> np.ndarray:
        """``(n, C)``: the one-hot of each item's category code x s, so that two categories are the category
        weight apart (2 s^2 under L2, 2 s under L1); zero where the code is -1 (unknown)."""
        codes = np.asarray(codes, np.int64)
        w = float(weights[-1]) / 2
        onehot = np.zeros((len(codes), len(self.categories)))
        known = np.flatnonzero(codes >= 0)
        onehot[known, codes[known]] = np.sqrt(w) if self.metric is not Metric.L1 else w
        return onehot

    def hide_categories(self, vectors: np.ndarray, base_dim: int) -> np.ndarray:
        """``vectors`` (learned) with their category block zeroed: as a photo, whose category is unknown."""
        if not self.categories:
            return vectors
        out = np.array(vectors, np.float32, copy=True)
        out[:, self.vector_dim(base_dim) - len(self.categories) :] = 0.0
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"directions": self.directions, "direction_scales": self.direction_scales,
                "appearance_mean": self.appearance_mean, "appearance_std": self.appearance_std,
                "base_scale": np.asarray([self.base_scale]), "partition_thresholds": self.thresholds,
                "categories": np.asarray(self.categories, dtype=str)}

    @classmethod
    def from_arrays(cls, metric: Metric, arrays: dict[str, np.ndarray]) -> PairSpace:
        categories = tuple(str(c) for c in arrays["categories"]) if "categories" in arrays else ()  # none before
        return cls(metric, float(arrays["base_scale"][0]), arrays["directions"], arrays["direction_scales"],
                   arrays["appearance_mean"], arrays["appearance_std"], arrays.get("partition_thresholds"), categories)
