"""The index interface every backend implements: ``add(X)``, ``search(Q, k) -> (D, I)``, ``remove(P)``.

Vectors go in as float32 for every metric (a Hamming index binarises them itself). ``search``
returns float32 ``(nq, k)`` distances (L2 is the true Euclidean distance, not squared) and
int64 ``(nq, k)`` positions, nearest first, padded with ``inf`` / ``-1`` when ``k`` exceeds the count.

Each backend declares what it can do (``exact``, ``PARAMS``) instead of callers knowing backend names.
Removed vectors keep their positions (so positions stay aligned with item ids) and are never returned:
backends that can filter inside the search do so (``filters_removed``); for the others ``search``
asks for more results and drops the removed ones.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, IndexMismatchError
from ..metrics import Metric


def as_matrix(x: np.ndarray, dim: int | None = None, *, what: str = "vectors") -> np.ndarray:
    """C-contiguous float32 ``(n, d)``; a clear error for wrong shapes, dimensions and NaNs."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise IndexMismatchError(f"{what} have dimension {x.shape[1]}, but the index holds {dim}-d vectors")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return x


@dataclass(frozen=True)
class Param:
    """One setting of a backend: its default (``None``: chosen from the data when the index is trained)."""

    default: int | str | None
    help: str
    search_time: bool = False  # changes how it searches, not what it stores
    required: bool = False  # no default: the caller must give it (e.g. a vector layout)
    choices: tuple[str, ...] | None = None  # a word from these instead of a whole number
    text: bool = False  # any text (e.g. a database URL) instead of a whole number
    low: int = 1  # a whole number's smallest value
    high: int | None = None  # and its largest, where it has one


class VectorIndex(ABC):
    """Exact or approximate nearest-neighbour index over float vectors under one metric."""

    backend: ClassVar[str] = ""
    exact: ClassVar[bool] = True  # results equal brute force (up to ties)
    filters_removed: ClassVar[bool] = False  # removed positions are skipped inside the search
    general: ClassVar[bool] = True  # any vectors under any metric (False: a particular vector layout, e.g. shortlist)
    PARAMS: ClassVar[dict[str, Param]] = {}

    def __init__(self, dim: int, metric: Metric | str, **params: Any):
        if dim <= 0:
            raise ConfigError(f"dim must be positive, got {dim}")
        self.dim = int(dim)
        self.metric = Metric.parse(metric)
        self.params = self.check_params(params)
        self._removed = np.zeros(0, np.int64)  # sorted positions

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in; unknown names or non-positive values are one clear error."""
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            choices = ", ".join(f"{n} ({p.help})" for n, p in cls.PARAMS.items()) or "none"
            raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} for index backend {cls.backend!r}; "
                              f"its parameters: {choices}")
        out = {name: p.default for name, p in cls.PARAMS.items()}
        missing = [name for name, p in cls.PARAMS.items() if p.required and params.get(name) is None]
        if missing:
            raise ConfigError(f"index backend {cls.backend!r} needs {', '.join(missing)}: "
                              + "; ".join(f"{n} ({cls.PARAMS[n].help})" for n in missing))
        for name, value in params.items():
            if value is None:
                continue
            spec = cls.PARAMS[name]
            if spec.text:
                out[name] = str(value)
                continue
            if spec.choices is not None:
                if str(value) not in spec.choices:
                    raise ConfigError(f"index parameter {name} must be one of {', '.join(spec.choices)}, got {value!r}")
                out[name] = str(value)
                continue
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(f"index parameter {name} must be a whole number, got {value!r}") from None
            if spec.high is not None and not spec.low <= value <= spec.high:
                raise ConfigError(f"index parameter {name} must lie in {spec.low}..{spec.high} ({spec.help}), "
                                  f"got {value}")
            if value < spec.low:
                raise ConfigError(f"index parameter {name} must be at least {spec.low}, got {value}")
            out[name] = value
        return out

    # -- what a backend implements -------------------------------------------------------------
    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of vectors added (removed ones included: positions never move)."""

    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """New ``(n, k)`` float32 distances and int64 positions (-1 where none was found); ``search`` writes
        into them."""

    @abstractmethod
    def _save(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def _load(cls, directory: Path, dim: int, metric: Metric, params: dict[str, Any]) -> VectorIndex: ...

    @property
    def is_trained(self) -> bool:
        """False while a backend still needs ``train`` (e.g. IVF's coarse centroids) before ``add``."""
        return True

    def _train(self, vectors: np.ndarray, total: int) -> None:  # noqa: B027 - most backends need no training
        """Learn the backend's structure from a sample of ``total`` vectors (backends that need it override)."""

    def training_size(self, total: int) -> int:
        """How many vectors (of ``total`` to come) ``train`` wants as its sample (0: no training)."""
        return 0

    # -- the public API ------------------------------------------------------------------------
    def train(self, vectors: np.ndarray, total: int | None = None) -> None:
        """Learn from a representative sample of the ``total`` vectors to come before the first ``add`` (a
        no-op for exact backends); ``training_size(total)`` says how large a sample it wants."""
        if not self.is_trained:
            vectors = as_matrix(vectors, self.dim)
            self._train(vectors, max(total or 0, len(vectors)))

    def add(self, vectors: np.ndarray) -> None:
        """Append vectors; they get positions ``ntotal .. ntotal + n - 1``. An untrained index trains on them."""
        vectors = as_matrix(vectors, self.dim)
        if not self.is_trained:
            self._train(vectors, len(vectors))
        self._add(vectors)

    @property
    def removed(self) -> np.ndarray:
        """Positions removed so far (sorted)."""
        return self._removed

    def live_positions(self) -> np.ndarray:
        """Positions a search can return (sorted)."""
        return np.setdiff1d(np.arange(self.ntotal), self._removed)

    @property
    def nlive(self) -> int:
        """Vectors a search can return."""
        return self.ntotal - len(self._removed)

    def remove(self, positions: np.ndarray | list[int]) -> None:
        """Never return these positions again (they keep their place; unknown positions are an error)."""
        positions = np.unique(np.asarray(positions, np.int64))
        bad = positions[(positions < 0) | (positions >= self.ntotal)]
        if len(bad):
            raise IndexError(f"positions {bad[:5].tolist()} are not in an index of {self.ntotal} vectors")
        self._removed = np.union1d(self._removed, positions)
        self._removed_changed()

    def _removed_changed(self) -> None:  # noqa: B027 - backends that filter in the search rebuild their filter
        """Called after ``remove``: backends with ``filters_removed`` refresh their filter."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query: ``(distances, positions)``."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        queries = as_matrix(queries, self.dim, what="query vectors")
        n_found = min(k, self.nlive)
        if not (n_found and len(queries)):
            return np.full((len(queries), k), np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        if self.filters_removed or not len(self._removed):
            d, i = self._search(queries, n_found)
        else:
            d, i = self._search_past_removed(queries, n_found)
        if n_found < k:  # fewer live vectors than asked: pad
            d = np.concatenate([d, np.full((len(queries), k - n_found), np.inf, np.float32)], 1)
            i = np.concatenate([i, np.full((len(queries), k - n_found), -1, np.int64)], 1)
        if i.min() < 0:  # approximate indexes may find fewer than asked
            d[i < 0] = np.inf
        return d, i

    def _is_removed(self, positions: np.ndarray) -> np.ndarray:
        """Which ``positions`` were removed: a binary search in the sorted removed list (``np.isin`` hashed the
        whole list on every call: 26 ms a query with 100,000 removed)."""
        at = np.minimum(np.searchsorted(self._removed, positions), len(self._removed) - 1)
        return self._removed[at] == positions

    def _search_past_removed(self, queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """For backends that cannot skip removed positions inside the search: ask for more results than ``n``
        (twice what the removed share suggests), drop the removed ones, and ask again with four times as many
        for the queries still short, until each has ``n`` or the index has no more to give.

        Asking for ``n`` plus every removed position instead made a query of a million-item binary IVF with
        1,000 removed items three times slower (0.75 vs 0.24 ms), and with 100,000 removed 30 times (7.3 ms).
        """
        live_share = self.nlive / self.ntotal
        fetch = min(self.ntotal, 2 * math.ceil(n / live_share) + 8)
        out_d = np.full((len(queries), n), np.inf, np.float32)
        out_i = np.full((len(queries), n), -1, np.int64)
        todo = np.arange(len(queries))
        while len(todo):
            d, i = self._search(queries[todo], fetch)
            keep = (i >= 0) & ~self._is_removed(i)
            order = np.argsort(~keep, axis=1, kind="stable")[:, :n]  # kept ones first, in rank order
            got = np.take_along_axis(keep, order, 1)
            out_d[todo] = np.where(got, np.take_along_axis(d, order, 1), np.inf)
            out_i[todo] = np.where(got, np.take_along_axis(i, order, 1), -1)
            # short of n, and the index gave all it was asked for (no -1): more may come with a larger fetch
            short = (keep.sum(1) < n) & (i[:, -1] >= 0)
            if fetch >= self.ntotal or not short.any():
                break
            todo, fetch = todo[short], min(self.ntotal, 4 * fetch)
        return out_d, out_i

    def save(self, directory: Path) -> None:
        """Write the index (and its removed positions) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        self._save(directory)
        tmp = directory / "removed.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, self._removed)
        tmp.replace(directory / "removed.npy")

    @classmethod
    def load(cls, directory: Path, dim: int, metric: Metric | str, params: dict[str, Any] | None = None
             ) -> VectorIndex:
        """Read an index written by ``save``."""
        index = cls._load(directory, dim, Metric.parse(metric), cls.check_params(params or {}))
        if (directory / "removed.npy").is_file():
            index._removed = np.load(directory / "removed.npy")
            index._removed_changed()
        return index

    def memory_bytes(self) -> int:
        """Approximate bytes the index holds in memory (its serialised size where the backend knows it)."""
        return 0
