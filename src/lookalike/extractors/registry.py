"""The extractor registry: ``create_extractor(name)``, ``list_extractors(pattern)``.

The registry holds the built-in extractors only and is fixed once the package is imported. Models made
in a workspace (``train``, ``combine``, ``learn``, ``extract --precision int8``) are resolved by name
inside that workspace's models folder (``models_dir``), the way timm resolves ``hf-hub:`` names in
``create_model``: opening a workspace changes nothing process-wide.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UnknownNameError
from ..registry import Registry

if TYPE_CHECKING:
    from .base import Extractor

EXTRACTORS: Registry = Registry("model")


def register_extractor(name: str):
    """Decorator registering a built-in extractor factory (class or function) under ``name``."""
    return EXTRACTORS.register(name)


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a built-in extractor (a workspace model may not take its name)."""
    return name in EXTRACTORS


def create_extractor(name: str, *, weights: str | Path | None = None,
                     models_dir: str | Path | None = None) -> Extractor:
    """Build the built-in extractor ``name`` (``weights`` overrides where its weights come from), else the
    model saved in ``models_dir/name`` (a workspace's models folder)."""
    if is_builtin(name) or models_dir is None:
        return EXTRACTORS.create(name, weights=weights)
    from .workspace_models import is_workspace_model, open_workspace_model, workspace_model_names

    directory = Path(models_dir) / name
    if is_workspace_model(directory):
        return open_workspace_model(directory)
    raise UnknownNameError("model", name, [*EXTRACTORS.list(), *workspace_model_names(models_dir)])


def list_extractors(pattern: str = "*", *, models_dir: str | Path | None = None) -> list[str]:
    """Extractor names matching a glob, e.g. ``list_extractors("vgg16*")``: the built-in ones, and with
    ``models_dir`` the models saved there."""
    names = EXTRACTORS.list(pattern)
    if models_dir is not None:
        from .workspace_models import workspace_model_names

        names += [n for n in workspace_model_names(models_dir) if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names)
