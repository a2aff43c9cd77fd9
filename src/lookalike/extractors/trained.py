"""Models trained in a workspace (``lookalike train``): a backbone plus the new head's hidden layer.

They are opened by name inside their workspace (``Workspace.create_extractor``), so ``extract``,
``search``, ``evaluate`` and the web app use them like any pretrained extractor, through the same ONNX path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import WeightsNotFoundError
from .base import Extractor, ExtractorConfig, file_sha256
from .registry import create_extractor


class TrainedExtractor(Extractor):
    """``backbone -> (x - mean) / std -> Linear -> ReLU``: the hidden layer of a trained head."""

    def __init__(self, directory: str | Path, **_: object):
        self.directory = Path(directory)
        saved = json.loads((self.directory / "model.json").read_text())
        cfg = saved["config"]
        self.saved = saved
        self.backbone = create_extractor(cfg["backbone"], models_dir=self.directory.parent)
        self.finetuned = cfg["finetune_blocks"] > 0
        top = f", top {cfg['top_categories']} categories" if cfg["top_categories"] else ""
        super().__init__(ExtractorConfig(
            name=cfg["name"],
            architecture=f"{cfg['backbone']} + {'CNN + ' if cfg.get('head') == 'conv' else ''}dense {cfg['hidden']}"
                         " + softmax",
            layer=f"hidden layer ({cfg['hidden']} units, "
                  f"{'L2-normalised, CosFace' if cfg.get('loss') == 'cosface' else 'ReLU'}"
                  f"{', mean with the mirror image' if cfg.get('flip_tta') else ''})", dim=cfg["hidden"],
            preprocess=self.backbone.config.preprocess,
            weights=f"trained in this workspace on {len(saved['categories'])} categories{top} "
                    f"(best epoch {saved['best_epoch']}, {saved.get('selected_on', 'validation accuracy')} "
                    f"{saved['best_val_acc']:.1%})",
            license="same as the backbone and the catalogue",
            description=f"{cfg['backbone']} {'fine-tuned (' + str(cfg['finetune_blocks']) + ' blocks)' if self.finetuned else 'frozen'}"
                        f" + new {cfg['hidden']}-unit layer trained on the catalogue's categories",
            extra={"backbone": cfg["backbone"], "categories": saved["categories"]}))

    def weights_checksum(self) -> str:
        parts = [self.backbone.weights_checksum()]
        for name in ("head.pt", "backbone.pt") if self.finetuned else ("head.pt",):
            path = self.directory / name
            if not path.is_file():
                raise WeightsNotFoundError(f"{self.name}: {path} is missing; train it with: lookalike train "
                                           f"--backbone {self.saved['config']['backbone']} --name {self.name}")
            parts.append(file_sha256(path))
        return hashlib.sha256("/".join(parts).encode()).hexdigest()

    def head(self):
        """The trained head in eval mode (loaded once per extractor)."""
        if getattr(self, "_head", None) is None:
            self._head = self._load_head()
        return self._head

    def _load_head(self):
        import torch

        from ..training.heads import build_head
        from ..training.trainer import TrainConfig

        cfg = TrainConfig.from_saved(self.saved["config"])  # defaults for settings added since
        head = build_head(cfg.head, self.saved["in_dim"], cfg.hidden, len(self.saved["categories"]),
                          in_shape=self.backbone.feature_shape, conv_depth=cfg.conv_depth, loss=cfg.loss,
                          scale=cfg.scale, flip_average=cfg.flip_tta, conv_widths=cfg.conv_widths)
        head.load_state_dict(torch.load(self.directory / "head.pt", map_location="cpu", weights_only=True))
        return head.eval()

    def build_torch(self):
        import torch

        from ..training.heads import OnBackbone

        backbone = self.backbone.build_torch()
        if self.finetuned:
            backbone.load_state_dict(torch.load(self.directory / "backbone.pt", map_location="cpu", weights_only=True))
        return OnBackbone(backbone, self.head()).eval()

    def trainable_blocks(self, module):
        return self.backbone.trainable_blocks(module.backbone)

    @property
    def embeds_backbone_features(self) -> bool:
        """True when the vectors are a function of the frozen backbone's stored vectors."""
        return not self.finetuned

    def embed_backbone_features(self, vectors: np.ndarray) -> np.ndarray:
        """Backbone feature vectors -> this model's vectors (same function as the image path)."""
        import torch

        head = self.head()
        out = []
        with torch.no_grad():
            for start in range(0, len(vectors), 4096):
                out.append(head.embed(torch.from_numpy(np.ascontiguousarray(vectors[start : start + 4096]))).numpy())
        return np.concatenate(out) if out else np.empty((0, self.dim), np.float32)
