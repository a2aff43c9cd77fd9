"""Feature extractors: pretrained CNN layers (and a pixel baseline) behind a registry."""

from . import appearance, efficientnet, pixels, vgg  # noqa: F401 - registers the extractors
from .base import Extractor, ExtractorConfig, PreprocessConfig
from .registry import EXTRACTORS, create_extractor, is_builtin, list_extractors, register_extractor

__all__ = ["EXTRACTORS", "Extractor", "ExtractorConfig", "PreprocessConfig", "create_extractor",
           "is_builtin", "list_extractors", "register_extractor"]
