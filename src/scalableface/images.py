"""Reading and writing images as users have them.

``load_rgb`` turns whatever Pillow can open into an ``H x W x 3`` uint8 RGB array:

* the EXIF orientation tag is applied, so the array looks the way a photo viewer shows it;
* greyscale, bilevel, palette, CMYK, YCbCr, LAB and HSV images become plain RGB;
* images with transparency (RGBA, LA, PA, palette or greyscale/RGB with a tRNS colour)
  are composited on white. Dropping alpha instead would expose whatever colour happens
  to be stored under fully transparent pixels (often black, sometimes leftovers of an
  edit), which a viewer never shows and which confuses the face detector; white is what
  most viewers and browsers put behind a transparent image;
* 16-bit greyscale (``I;16*``) and 32-bit integer (``I``) images are scaled down from the
  16-bit range (value / 257, rounded), not clipped at 255; float (``F``) images are read
  as 0..1 when their maximum is at most 1, else as 0..255;
* multi-frame files (GIF, TIFF, ...) give their first frame.

Every failure a user can cause (missing, empty, truncated, corrupt or non-image file, a
decompression bomb) raises ``InputError`` naming the file.
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .errors import InputError, SfaceError
from .files import read_path

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image]

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def _source_name(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<image bytes>"
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<image>"
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else repr(source)


def _open(source: Source, name: str) -> Image.Image:
    """Open and fully decode ``source``; every failure becomes InputError. Pillow's warnings (a large
    image under the bomb limit, corrupt EXIF) are not errors and are not printed either."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _open_quietly(source, name)


def _open_quietly(source: Source, name: str) -> Image.Image:
    if isinstance(source, Image.Image):
        image = source
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            if not data:
                raise InputError(f"cannot read {name}: it is empty (0 bytes)")
            fp: object = io.BytesIO(data)
        elif isinstance(source, (str, os.PathLike)):
            data = read_path(source, name)  # all at once: no file handle is left open on any path
            if not data:
                raise InputError(f"cannot read {name}: the file is empty (0 bytes)")
            fp = io.BytesIO(data)
        else:
            raise TypeError(f"load_rgb expects a path, bytes or a PIL image, not {type(source).__name__}")
        try:
            image = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise InputError(f"cannot read {name}: {exc}") from None
        except Image.UnidentifiedImageError:
            raise InputError(f"cannot read {name}: not an image file in a format Pillow knows") from None
        except Exception as exc:  # Pillow plugins raise SyntaxError, ValueError, struct.error...
            raise InputError(f"cannot read {name}: {exc}") from None
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read {name}: {exc}") from None
    except Exception as exc:  # truncated file, broken chunk, bad Huffman table, ...
        raise InputError(f"cannot read {name}: the image is corrupt or truncated ({exc})") from None
    if image.width <= 0 or image.height <= 0:
        raise InputError(f"cannot read {name}: the image has no pixels")
    return image


def _exif_upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed EXIF block is ignored, not fatal."""
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:
        return image
    return image if upright is None else upright


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image of any mode to an H x W x 3 uint8 RGB array."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        if mode == "I;16S":
            values = np.clip(values, 0, None) * 2.0  # signed: 0..32767 -> 0..65534
        return _grey_to_rgb(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8))
    if mode == "I":
        values = np.asarray(image).astype(np.float64)
        values = np.clip(values, 0, None)
        top = max(65535.0, float(values.max(initial=0.0)))
        return _grey_to_rgb(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8))
    if mode == "F":
        values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if values.max(initial=0.0) <= 1.0:
            values = values * 255.0
        return _grey_to_rgb(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _composite_on_white(np.asarray(image.convert("RGBA")))
    if mode == "L":
        return _grey_to_rgb(np.asarray(image))
    if mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image), dtype=np.uint8)


def is_image(data: bytes) -> bool:
    """Whether `data` is a whole image Pillow can decode."""
    try:
        _open(data, "<image bytes>")
    except InputError:
        return False
    return True


def load_rgb(source: Source, *, name: str | None = None) -> np.ndarray:
    """Read an image file (path), encoded image bytes, or a PIL image as H x W x 3 uint8 RGB.

    ``name`` is used in error messages (default: the path, or ``<image bytes>``).
    Raises InputError for anything that is not a readable image.
    """
    label = _source_name(source, name)
    image = _open(source, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = _exif_upright(image)
            array = to_rgb_array(image)
    except InputError:
        raise
    except Exception as exc:  # an exotic mode Pillow cannot convert
        raise InputError(f"cannot read {label}: unsupported image mode {image.mode!r} ({exc})") from None
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------------------
# Writing

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def format_for(path: Union[str, os.PathLike]) -> str:
    """The image format an output path asks for by its suffix; PNG for stdout (-) and no suffix."""
    suffix = pathlib.Path(path).suffix.lower()
    if str(path) == "-" or not suffix:
        return "PNG"
    if suffix not in _FORMATS:
        raise SfaceError(f"cannot write {path}: unknown image suffix {suffix!r} (use one of {', '.join(sorted(_FORMATS))})")
    return _FORMATS[suffix]


def _as_pil(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), "L")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array), "RGB" if array.shape[2] == 3 else "RGBA")
    raise ValueError(f"expected an H x W, H x W x 3 or H x W x 4 image array, got shape {array.shape}")


def _save_options(fmt: str) -> dict:
    if fmt == "JPEG":
        # 4:4:4 chroma: decoded faces are small, 4:2:0 would visibly smear colour edges.
        return {"quality": 95, "subsampling": 0}
    if fmt == "WEBP":
        return {"lossless": True}
    return {}


def encode_image(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """Encode a uint8 image array (grey, RGB or RGBA) as PNG, JPEG or WEBP bytes."""
    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in _FORMATS.values():
        raise ValueError(f"unsupported image format {fmt!r}")
    image = _as_pil(array)
    if fmt == "JPEG" and image.mode == "RGBA":
        image = Image.fromarray(_composite_on_white(np.asarray(image)), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **_save_options(fmt))
    return buffer.getvalue()


def save_image(array: np.ndarray, path: Union[str, os.PathLike]) -> pathlib.Path:
    """Write a uint8 image array; the format comes from the suffix (.png, .jpg/.jpeg, .webp).

    JPEG is written at quality 95 with full-resolution chroma, WEBP losslessly.
    Raises SfaceError for an unknown suffix or a file that cannot be written.
    """
    path = pathlib.Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_FORMATS))
        raise SfaceError(f"cannot write {path}: unknown image suffix {path.suffix!r} (use one of {known})")
    data = encode_image(array, fmt)
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise SfaceError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
