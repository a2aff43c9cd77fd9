"""Nearest-neighbour indexes under L1, L2 and Hamming distance, behind a small array-shaped API."""

from . import faiss_backends, flat, pgvector, shortlist  # noqa: F401 - registers the backends
from .base import Param, VectorIndex
from .registry import INDEXES, create_index, list_indexes, register_index
from .store import IndexMeta, ItemIndex, SyncSummary, describe_backends, parse_params

__all__ = ["INDEXES", "IndexMeta", "ItemIndex", "Param", "SyncSummary", "VectorIndex", "create_index",
           "describe_backends", "list_indexes", "parse_params", "register_index"]
