"""Every kind of image a shop or phone produces: decoded to upright RGB, or a clear ImageError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.errors import ImageError
from lookalike.images import crop_to_box, load_image, parse_box


@pytest.mark.parametrize("name, message", [
    ("zero", "empty file"),
    ("text", "not an image"),
    ("truncated", "corrupt or truncated"),
    ("corrupt", "not an image|corrupt"),
    ("bomb", "decompression bomb"),
])
def test_unreadable_images_raise_clear_errors(bad_images, name, message):
    with pytest.raises(ImageError, match=message):
        load_image(bad_images[name])


@pytest.mark.parametrize("name", ["cmyk", "gray16", "palette", "alpha", "exif_rotated"])
def test_odd_modes_become_rgb(bad_images, name):
    img = load_image(bad_images[name])
    assert img.mode == "RGB"
    assert np.asarray(img).std() > 0  # content survived


def test_exif_rotation_is_applied(bad_images):
    assert load_image(bad_images["exif_rotated"]).size == (40, 60)  # stored 60x40, displayed rotated


def test_alpha_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255


def test_16bit_keeps_contrast(tmp_path):
    arr = np.zeros((4, 4), np.uint16)
    arr[:, 2:] = 65535
    Image.fromarray(arr).save(tmp_path / "g16.png")
    out = np.asarray(load_image(tmp_path / "g16.png"))
    assert out[:, :2].max() == 0 and out[:, 2:].min() == 255


def test_missing_file_and_bytes(tmp_path, photo_paths):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    assert load_image(photo_paths["chelsea"].read_bytes()).size == (256, 170)


def test_crop_to_box(photo_paths):
    img = load_image(photo_paths["chelsea"], box=(10, 20, 110, 70))
    assert img.size == (100, 50)
    clipped = crop_to_box(Image.new("RGB", (50, 50)), (-10, -10, 500, 30))
    assert clipped.size == (50, 30)
    with pytest.raises(ImageError, match="box .* is empty"):
        crop_to_box(Image.new("RGB", (50, 50)), (60, 60, 80, 80))
    with pytest.raises(ImageError, match="box .* is empty"):
        crop_to_box(Image.new("RGB", (50, 50)), (30, 10, 20, 40))


def test_parse_box():
    assert parse_box("1, 2,3,4.5") == (1.0, 2.0, 3.0, 4.5)
    for bad in ("1,2,3", "a,b,c,d", ""):
        with pytest.raises(ImageError, match="four numbers"):
            parse_box(bad)
