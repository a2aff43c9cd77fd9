"""Lookalike: visual item search.

Point it at a product catalogue, give it a photo, get the products that look like it.

The pipeline, one sub-package a stage::

    catalogue  (readers -> SQLite catalogue of items)
        -> extractors (pretrained / retrained CNNs, run through ONNX Runtime)
        -> features   (feature store: aligned vectors + manifest per extractor)
        -> index      (L1 / L2 / Hamming nearest-neighbour indexes)
        -> search     (query by catalogue item or by photo)
"""

__version__ = "0.1.0"
