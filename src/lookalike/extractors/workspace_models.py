"""Models saved in a workspace's ``models/NAME/model.json``, opened by name (see ``create_extractor``).

A trained head (``lookalike train``), a combined model (``combine``), a learned taste (``learn``) and an
int8 copy (``extract --precision int8``) each have a ``kind`` in their model.json; a trained head counts
once it has a best epoch. A saved model never shadows a built-in extractor of the same name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import Extractor
from .registry import is_builtin


def _saved(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / "model.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _usable(saved: dict[str, Any] | None) -> bool:
    from .combined import KIND
    from .learned import KIND as LEARNED
    from .quantized import KIND as QUANTIZED

    if not saved or not isinstance(saved.get("config"), dict):
        return False
    return saved.get("kind") in (KIND, QUANTIZED, LEARNED) or saved.get("best_epoch", 0) >= 1


def is_workspace_model(directory: str | Path) -> bool:
    """Whether ``directory`` (``models/NAME``) holds a usable saved model not named like a built-in one."""
    directory = Path(directory)
    return not is_builtin(directory.name) and _usable(_saved(directory))


def workspace_model_names(models_dir: str | Path) -> list[str]:
    """Names of the usable models saved in ``models_dir`` (built-in names excluded)."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(path.parent.name for path in models_dir.glob("*/model.json") if is_workspace_model(path.parent))


def open_workspace_model(directory: str | Path) -> Extractor:
    """The extractor saved in ``directory`` (its parts are resolved in the same models folder)."""
    from .combined import KIND, CombinedExtractor
    from .learned import KIND as LEARNED
    from .learned import LearnedExtractor
    from .quantized import KIND as QUANTIZED
    from .quantized import QuantizedExtractor
    from .trained import TrainedExtractor

    directory = Path(directory)
    kind = (_saved(directory) or {}).get("kind")
    opener = {KIND: CombinedExtractor, LEARNED: LearnedExtractor, QUANTIZED: QuantizedExtractor}.get(kind,
                                                                                                      TrainedExtractor)
    return opener(directory)
