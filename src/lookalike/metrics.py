"""Distance metrics: a str-backed Enum that knows its direction, and slow reference implementations.

All three are distances (smaller is closer). L2 is the true Euclidean distance, not its square.
Hamming compares sign-binarised codes: bit ``j`` is 1 when feature ``j`` is > 0.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from .errors import UnknownNameError


class Metric(str, Enum):
    """A distance between feature vectors."""

    L1 = "l1"
    L2 = "l2"
    HAMMING = "hamming"

    @property
    def smaller_is_closer(self) -> bool:
        return True  # all supported metrics are distances

    @property
    def description(self) -> str:
        return {"l1": "L1 (taxicab) distance", "l2": "L2 (Euclidean) distance, not squared",
                "hamming": "Hamming distance between sign-binarised codes (x > 0)"}[self.value]

    @classmethod
    def parse(cls, name: str | Metric) -> Metric:
        """``Metric`` from a name (case-insensitive); the error lists the valid names."""
        if isinstance(name, Metric):
            return name
        try:
            return cls(str(name).strip().lower())
        except ValueError:
            raise UnknownNameError("metric", str(name), [m.value for m in cls]) from None

    @classmethod
    def parse_list(cls, names: str) -> list[Metric]:
        """Metrics from a comma-separated list such as ``"l1,l2,hamming"``."""
        return [cls.parse(n) for n in names.split(",") if n.strip()]


def hamming_codes(vectors: np.ndarray) -> np.ndarray:
    """Sign-binarise float vectors into packed bits: ``np.packbits(x > 0)`` row by row (uint8)."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    return np.packbits(vectors > 0, axis=1)


def pairwise_distances(queries: np.ndarray, vectors: np.ndarray, metric: Metric | str) -> np.ndarray:
    """Reference ``(nq, n)`` distances computed plainly in float64 (for tests and brute force)."""
    metric = Metric.parse(metric)
    q = np.asarray(queries, np.float64)
    x = np.asarray(vectors, np.float64)
    if metric is Metric.L1:
        return np.abs(q[:, None, :] - x[None, :, :]).sum(-1)
    if metric is Metric.L2:
        sq = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * q @ x.T
        return np.sqrt(np.maximum(sq, 0.0))
    qc, xc = hamming_codes(q), hamming_codes(x)
    return np.bitwise_count(qc[:, None, :] ^ xc[None, :, :]).sum(-1).astype(np.float64)
