"""Image loading as users have them, and image writing."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from scalableface.errors import InputError, SfaceError
from scalableface.images import encode_image, load_rgb, save_image


def _gradient(width: int = 40, height: int = 30) -> np.ndarray:
    x = np.linspace(0, 255, width)
    y = np.linspace(0, 255, height)
    r = np.broadcast_to(x[None, :], (height, width))
    g = np.broadcast_to(y[:, None], (height, width))
    b = np.full((height, width), 90.0)
    return np.rint(np.stack([r, g, b], axis=2)).astype(np.uint8)


def _check_rgb(array: np.ndarray, shape) -> None:
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.uint8
    assert array.shape == tuple(shape) + (3,)
    assert array.flags["C_CONTIGUOUS"]


def _png_16bit_rgb(values: np.ndarray) -> bytes:
    """A 16-bit RGB PNG, written by hand (Pillow cannot write one)."""
    height, width, _ = values.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + values[row].astype(">u2").tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# --- formats and modes --------------------------------------------------------------


def test_rgb_png_path_and_bytes(tmp_path):
    image = _gradient()
    path = tmp_path / "rgb.png"
    Image.fromarray(image).save(path)
    for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes())):
        loaded = load_rgb(source)
        _check_rgb(loaded, (30, 40))
        np.testing.assert_array_equal(loaded, image)


def test_greyscale(tmp_path):
    grey = _gradient()[:, :, 0]
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    loaded = load_rgb(path)
    _check_rgb(loaded, grey.shape)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[:, :, channel], grey)


def test_bilevel(tmp_path):
    path = tmp_path / "bits.png"
    Image.fromarray(_gradient()[:, :, 0] > 128).convert("1").save(path)
    loaded = load_rgb(path)
    _check_rgb(loaded, (30, 40))
    assert set(np.unique(loaded)) <= {0, 255}


def test_palette(tmp_path):
    image = Image.fromarray(_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / "palette.png"
    image.save(path)
    loaded = load_rgb(path)
    _check_rgb(loaded, (30, 40))
    np.testing.assert_array_equal(loaded, np.asarray(image.convert("RGB")))


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * (254 * 3))
    image.paste(1, (0, 0, 4, 8))
    path = tmp_path / "transparent.png"
    image.save(path, transparency=0)
    loaded = load_rgb(path)
    np.testing.assert_array_equal(loaded[:, :4], np.broadcast_to([200, 10, 10], (8, 4, 3)))
    np.testing.assert_array_equal(loaded[:, 4:], np.full((8, 4, 3), 255))


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 200  # red under everything
    rgba[:, :2, 3] = 255  # opaque
    rgba[:, 2:4, 3] = 128  # half
    rgba[:, 4:, 3] = 0  # transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    loaded = load_rgb(path)
    _check_rgb(loaded, (4, 6))
    np.testing.assert_array_equal(loaded[:, :2], np.broadcast_to([200, 0, 0], (4, 2, 3)))
    half = 128 / 255
    expected = np.rint([200 * half + 255 * (1 - half), 255 * (1 - half), 255 * (1 - half)])
    np.testing.assert_array_equal(loaded[:, 2:4], np.broadcast_to(expected, (4, 2, 3)))
    np.testing.assert_array_equal(loaded[:, 4:], np.full((4, 2, 3), 255))


def test_greyscale_with_alpha(tmp_path):
    la = Image.merge("LA", [Image.new("L", (5, 5), 0), Image.new("L", (5, 5), 0)])
    path = tmp_path / "la.png"
    la.save(path)
    np.testing.assert_array_equal(load_rgb(path), np.full((5, 5, 3), 255))


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk(tmp_path, suffix):
    rgb = Image.fromarray(_gradient())
    path = tmp_path / f"cmyk{suffix}"
    rgb.convert("CMYK").save(path, **({"quality": 95} if suffix == ".jpg" else {}))
    assert Image.open(path).mode == "CMYK"
    loaded = load_rgb(path)
    _check_rgb(loaded, (30, 40))
    tolerance = 12 if suffix == ".jpg" else 1
    assert np.abs(loaded.astype(int) - _gradient().astype(int)).mean() < tolerance


def test_16bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(3, axis=0)
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    loaded = load_rgb(path)
    _check_rgb(loaded, (3, 4))
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(loaded[..., 0], loaded[..., 2])


def test_32bit_integer_mode_is_read_as_16bit_range():
    image = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32), "I")
    np.testing.assert_array_equal(load_rgb(image)[0, :, 1], [0, 4, 255])


def test_float_mode():
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    np.testing.assert_array_equal(load_rgb(image)[0, :, 0], [0, 128, 255])


def test_16bit_rgb_png(tmp_path):
    values = np.zeros((2, 3, 3), np.uint16)
    values[0, :, 0] = [0, 0x8000, 0xFFFF]
    values[1, :, 1] = [0x0101, 0x7F7F, 0xFEFE]
    path = tmp_path / "rgb16.png"
    path.write_bytes(_png_16bit_rgb(values))
    loaded = load_rgb(path)
    _check_rgb(loaded, (2, 3))
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(loaded[1, :, 1], [1, 127, 254])


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall as stored
    stored[:8, :8] = (255, 0, 0)  # red block at the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    loaded = load_rgb(path)
    _check_rgb(loaded, (40, 20))  # displayed upright: 20 wide, 40 tall
    # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
    assert loaded[:6, -6:, 0].mean() > 200 and loaded[:6, -6:, 1].mean() < 60
    assert loaded[:6, :6].mean() < 40


def test_animated_gif_gives_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = load_rgb(path)
    np.testing.assert_array_equal(loaded, np.broadcast_to([255, 0, 0], (6, 6, 3)))


def test_large_image(tmp_path):
    path = tmp_path / "large.png"
    Image.new("RGB", (3000, 2000), (10, 20, 30)).save(path)
    _check_rgb(load_rgb(path), (2000, 3000))


# --- errors ------------------------------------------------------------------------


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_gradient(200, 150)).save(buffer, "JPEG", quality=90)
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="truncated.jpg"):
        load_rgb(path)


def test_text_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(InputError, match="notes.jpg.*not an image"):
        load_rgb(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty.png.*empty"):
        load_rgb(path)
    with pytest.raises(InputError, match="empty"):
        load_rgb(b"")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="missing.png.*no such file"):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(InputError, match="directory"):
        load_rgb(tmp_path)


def test_garbage_bytes_name_the_source():
    with pytest.raises(InputError, match="<image bytes>"):
        load_rgb(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match="upload.png"):
        load_rgb(b"garbage", name="upload.png")


def test_decompression_bomb_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (100, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 > 2 x 1000
    with pytest.raises(InputError, match="bomb.png"):
        load_rgb(path)


# --- writing -----------------------------------------------------------------------


def test_encode_png_round_trip():
    image = _gradient()
    np.testing.assert_array_equal(load_rgb(encode_image(image, "PNG")), image)


@pytest.mark.parametrize("suffix, lossless", [(".png", True), (".webp", True), (".jpg", False), (".JPEG", False)])
def test_save_image_formats(tmp_path, suffix, lossless):
    image = _gradient()
    path = save_image(image, tmp_path / f"out{suffix}")
    expected_format = {".png": "PNG", ".webp": "WEBP", ".jpg": "JPEG", ".jpeg": "JPEG"}[suffix.lower()]
    assert Image.open(path).format == expected_format
    loaded = load_rgb(path)
    if lossless:
        np.testing.assert_array_equal(loaded, image)
    else:
        assert np.abs(loaded.astype(int) - image.astype(int)).mean() < 3


def test_save_image_greyscale(tmp_path):
    grey = _gradient()[:, :, 1]
    path = save_image(grey, tmp_path / "grey.png")
    np.testing.assert_array_equal(load_rgb(path)[:, :, 0], grey)


def test_save_image_unknown_suffix(tmp_path):
    with pytest.raises(SfaceError, match="suffix"):
        save_image(_gradient(), tmp_path / "out.gif")


def test_save_image_unwritable(tmp_path):
    with pytest.raises(SfaceError, match="cannot write"):
        save_image(_gradient(), tmp_path / "no_such_dir" / "out.png")
