"""The library API: encode, decode, extract_features, compare. The CLI, tests and benchmarks call these.

    import scalableface as sf
    data = sf.encode("photo.jpg")                    # bytes of an .sfc file
    face = sf.decode(data, layer="base").image       # 128 x 128 x 3 uint8
    vec = sf.extract_features(data)                  # 128-d, from the identity layer alone
    sf.compare("a.sfc", "b.jpg").same                # bool

Sources are a path, bytes, or (for images) an H x W x 3 uint8 array. An .sfc source is recognised by
its magic bytes, whatever its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import container, models
from .container import Header, LayerType, SfcFile, Transform
from .errors import InputError, SfaceError
from .layers.base import BaseLayer

Source = Union[str, Path, bytes, np.ndarray]
LAYER_CHOICES = ("identity", "base", "full")
_TOP_LAYER = {"identity": LayerType.IDENTITY, "base": LayerType.APPEARANCE, "full": LayerType.ENHANCEMENT}


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray  # crop_size x crop_size x 3 uint8
    layer: str  # the layer actually decoded: "identity", "base" or "full"
    header: Header
    note: Optional[str]  # set when the asked-for layer was absent


@dataclass(frozen=True)
class Comparison:
    distance: float
    threshold: float
    same: bool


@lru_cache(maxsize=4)
def _base_layer(name: str) -> BaseLayer:
    entry = models.find(name)
    tensors, config = models.load(entry)
    return BaseLayer(tensors, config)


@lru_cache(maxsize=16)
def _base_layer_by_id(model_id: bytes) -> BaseLayer:
    """The model a file header names; cached, since reading the manifests costs more than decoding."""
    return _base_layer(models.find(model_id).name)


def _model(model: Optional[str] = None) -> tuple[models.ModelEntry, BaseLayer]:
    entry = models.find(model) if model else models.default_model()
    return entry, _base_layer(entry.name)


def _read(source: Source) -> bytes | np.ndarray:
    if isinstance(source, (bytes, bytearray, np.ndarray)):
        return source
    try:
        return Path(source).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {source}: {e.strerror}") from None


def is_sfc(data) -> bool:
    return isinstance(data, (bytes, bytearray)) and bytes(data[:3]) == container.MAGIC


def align_image(source: Source, *, aligned: bool = False, all_faces: bool = False, name: Optional[str] = None):
    """The canonical crop(s) of a photo (align.AlignedFace); `aligned` takes a ready 128x128 crop."""
    from . import align
    from .images import load_rgb

    label = name or (str(source) if isinstance(source, (str, Path)) else "<input>")
    data = _read(source)
    image = data if isinstance(data, np.ndarray) else load_rgb(data, name=label)
    if aligned:
        return align.from_aligned(image, name=label)
    return align.align(image, all_faces=all_faces, name=label)


def describe_crop(crop: np.ndarray) -> np.ndarray:
    """The reference descriptor the base layer codes: the recognizer on the crop and on its mirror, averaged."""
    from .recognizer import describe

    return describe(np.stack([crop, crop[:, ::-1]])).mean(axis=0)


def encode(
    source: Source,
    *,
    layers: str = "base",
    base_rate: Optional[int] = None,
    aligned: bool = False,
    model: Optional[str] = None,
    name: Optional[str] = None,
    keep_transform: bool = True,
) -> bytes:
    """An .sfc file for the largest face in `source`, holding layers up to `layers`. The header keeps
    the crop's place in the photo (28 bytes, for pasting a decoded face back) unless keep_transform
    is False."""
    if layers not in LAYER_CHOICES:
        raise SfaceError(f"layers must be one of {', '.join(LAYER_CHOICES)}")
    if layers == "full":
        raise SfaceError("the enhancement layer is not available yet in this release: use layers='base'")
    entry, base = _model(model)
    rate = base.default_rate if base_rate is None else base_rate
    identity = base.identity(rate)
    face = align_image(source, aligned=aligned, name=name)
    descriptor = describe_crop(face.crop)
    payloads = [(LayerType.IDENTITY, identity.encode(descriptor)[0])]
    if layers != "identity":
        payloads.append((LayerType.APPEARANCE, base.encode_appearance(face.crop)[0]))
    transform = None
    if keep_transform and face.method != "aligned" and max(face.photo_size) <= 0xFFFF:
        transform = Transform(*face.photo_size, tuple(float(v) for v in face.transform.reshape(-1)))
    header = Header(model_id=entry.short_id, crop_size=face.size, base_rate=rate, transform=transform)
    return container.pack(header, payloads)


def _parse(source: Source) -> SfcFile:
    data = _read(source)
    if not is_sfc(data):
        raise InputError(f"{source if isinstance(source, (str, Path)) else 'input'} is not an .sfc file")
    return container.parse(data)


def _identity_descriptor(f: SfcFile, base: BaseLayer) -> np.ndarray:
    payload = f.layer(LayerType.IDENTITY).payload
    codec = base.identity(f.header.base_rate)
    return codec.reconstruct(codec.decode_symbols(payload)[None])[0]


def decode(source: Source, *, layer: str = "full") -> Decoded:
    """The face image of an .sfc file, stopping after `layer` ("base" or "full"), or after the best
    layer present when the asked-for one is absent (`note` then says so)."""
    if layer not in ("base", "full"):
        raise SfaceError("layer must be 'base' or 'full'")
    f = _parse(source)
    base = _base_layer_by_id(f.header.model_id)
    wanted = _TOP_LAYER[layer]
    note = None
    if f.top < wanted:
        missing = {"full": "enhancement", "base": "appearance"}[layer]
        got = {LayerType.IDENTITY: "identity", LayerType.APPEARANCE: "base"}[f.top]
        note = f"the file has no {missing} layer; decoded the {got} layer" + (
            " with a typical appearance" if got == "identity" else ""
        )
    descriptor = _identity_descriptor(f, base)
    app = f.layer(LayerType.APPEARANCE)
    image = base.generate(descriptor[None], base.decode_appearance(app.payload if app else None)[None])[0]
    decoded_layer = "base" if app else "identity"
    return Decoded(image, decoded_layer, f.header, note)


def extract_features(source: Source, *, aligned: bool = False) -> np.ndarray:
    """The 128-d descriptor: from an .sfc file, entropy-decoded from the identity layer alone (no
    pixels, no recognition network); from an image, the encoder's own decoded descriptor."""
    data = _read(source)
    if is_sfc(data):
        f = container.parse(data)
        return _identity_descriptor(f, _base_layer_by_id(f.header.model_id))
    return extract_features(encode(data, layers="identity", aligned=aligned, name=str(source) if isinstance(source, (str, Path)) else None))


def compare(a: Source, b: Source, *, aligned: bool = False) -> Comparison:
    """Distance between two faces' descriptors and the same/different verdict at the model's
    threshold (calibrated on LFW; see the model card)."""
    da, db = extract_features(a, aligned=aligned), extract_features(b, aligned=aligned)
    _, base = _model()
    dist = float(np.linalg.norm(da - db))
    return Comparison(dist, base.threshold, dist < base.threshold)
