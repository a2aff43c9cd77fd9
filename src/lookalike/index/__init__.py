"""Nearest-neighbour indexes under L1, L2 and Hamming distance, behind a small array-shaped API."""

from . import flat  # noqa: F401 - registers the backends
from .base import VectorIndex
from .registry import INDEXES, create_index, list_indexes, register_index
from .store import IndexMeta, ItemIndex

__all__ = ["INDEXES", "IndexMeta", "ItemIndex", "VectorIndex", "create_index", "list_indexes", "register_index"]
