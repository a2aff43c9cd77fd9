"""Shared fixtures: offline settings, real photos, bad images, small workspaces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).parent / "data"
PHOTOS = DATA / "photos"


@pytest.fixture(scope="session", autouse=True)
def _offline_and_isolated(tmp_path_factory):
    """No test touches the network or the user's caches."""
    cache = tmp_path_factory.mktemp("lookalike-cache")
    saved = {k: os.environ.get(k) for k in ("LOOKALIKE_OFFLINE", "LOOKALIKE_CACHE_DIR", "TORCH_HOME",
                                            "LOOKALIKE_VGG16_WEIGHTS", "LOOKALIKE_WORKSPACE")}
    os.environ["LOOKALIKE_OFFLINE"] = "1"
    os.environ["LOOKALIKE_CACHE_DIR"] = str(cache)
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch-home"))
    os.environ.pop("LOOKALIKE_VGG16_WEIGHTS", None)
    os.environ.pop("LOOKALIKE_WORKSPACE", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def photo_paths() -> dict[str, Path]:
    """Real photos (CC0 / public domain, see tests/data/photos/LICENSE)."""
    return {p.stem: p for p in sorted(PHOTOS.glob("*.jpg"))}


def make_bad_images(folder: Path) -> dict[str, Path]:
    """Every kind of image a catalogue throws at us; names say what they are."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), "RGB")
    out: dict[str, Path] = {}

    def save(name, img, **kw):
        out[name.split(".")[0]] = folder / name
        img.save(folder / name, **kw)

    (folder / "zero.jpg").write_bytes(b"")
    out["zero"] = folder / "zero.jpg"
    (folder / "text.jpg").write_text("this is not an image\n")
    out["text"] = folder / "text.jpg"
    good = folder / "_good.jpg"
    base.save(good, quality=90)
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out["truncated"] = folder / "truncated.jpg"
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(300))
    out["corrupt"] = folder / "corrupt.png"
    good.unlink()
    # big enough to trip the decompression-bomb guard, tiny on disk
    save("bomb.png", Image.new("1", (10_000, 10_000)))
    save("cmyk.jpg", base.convert("CMYK"))
    save("gray16.png", Image.fromarray((rng.integers(0, 65535, (40, 60))).astype(np.uint16)))
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    save("palette.png", palette, transparency=0)
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    save("alpha.png", rgba)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    save("exif_rotated.jpg", base, exif=exif)
    return out


@pytest.fixture
def bad_images(tmp_path) -> dict[str, Path]:
    return make_bad_images(tmp_path / "bad")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for servers started by tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _registry_fixed():
    """Workspace models are resolved inside their workspace: no test module may change the registry."""
    from lookalike.extractors import EXTRACTORS

    before = EXTRACTORS.list()
    yield
    assert EXTRACTORS.list() == before, "a workspace model was registered globally"
