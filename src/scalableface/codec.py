"""The library API: encode, decode, extract_features, compare. The CLI, tests and benchmarks call these.

This module only sequences the stages, each in its own module:

    photo -> align (align.py) -> crop -> base layer (layers/base.py) -> identity + appearance payloads
          -> enhancement layer (layers/enhance.py) -> payload -> container (container.py) -> .sfc

and back; the models come from modelset.py, inputs are read by files.py.

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
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from . import container, entropy, models, modelset
from .canonical import CROP_SIZE, DESCRIPTOR_DIM
from .container import Header, LayerType, SfcFile, Transform
from .errors import BitstreamError, InputError, SalvageableError, SfaceError, named
from .files import read_path
from .modelset import ModelSet

Source = Union[str, Path, bytes, np.ndarray]
LAYER_CHOICES = ("identity", "base", "full")
_TOP_LAYER = {"identity": LayerType.IDENTITY, "base": LayerType.APPEARANCE, "full": LayerType.ENHANCEMENT}


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray  # crop_size x crop_size x 3 uint8
    layer: str  # the layer actually decoded: "identity", "base" or "full"
    header: Header
    note: Optional[str]  # set when the asked-for layer was absent, or damaged and salvaged


@dataclass(frozen=True)
class Comparison:
    distance: float
    threshold: float
    same: bool


def _data(source: Source) -> bytes | np.ndarray:
    """What the stages take: bytes or an image array as given; a path read by files.read_path."""
    return source if isinstance(source, (bytes, bytearray, np.ndarray)) else read_path(source)


def is_sfc(data) -> bool:
    return isinstance(data, (bytes, bytearray)) and bytes(data[:3]) == container.MAGIC


def align_image(source: Source, *, aligned: bool = False, all_faces: bool = False, name: Optional[str] = None):
    """The canonical crop(s) of a photo (align.AlignedFace); `aligned` takes a ready 128x128 crop."""
    from . import align
    from .images import load_rgb

    label = name or (str(source) if isinstance(source, (str, Path)) else "<input>")
    data = _data(source)
    image = data if isinstance(data, np.ndarray) else load_rgb(data, name=label)
    if aligned:
        return align.from_aligned(image, name=label)
    return align.align(image, all_faces=all_faces, name=label)


def encode(
    source: Source,
    *,
    layers: str = "full",
    quality: Optional[int] = None,
    base_rate: Optional[int] = None,
    aligned: bool = False,
    model: Optional[str] = None,
    name: Optional[str] = None,
    keep_transform: bool = True,
    effort: Optional[int] = None,
) -> bytes:
    """An .sfc file for the largest face in `source`, holding layers up to `layers` ("identity",
    "base" or "full"), the enhancement layer at `quality` (1 = smallest; default: the model's).
    The header keeps the crop's place in the photo (28 bytes, for pasting a decoded face back)
    unless keep_transform is False. `effort` (0-3) is how long the encoder searches for a cheaper
    enhancement layer (the decoder is the same): 0 not at all (fastest), default 1 (about 0.25 s a
    face, ~3% fewer bytes), 2 and 3 seconds per face for a little more."""
    face = align_image(source, aligned=aligned, name=name)
    return encode_crops(face.crop[None], layers=layers, quality=quality, base_rate=base_rate, model=model,
                        transforms=[_transform_of(face, keep_transform)], effort=effort)[0]


def encode_all(
    source: Source,
    *,
    layers: str = "full",
    quality: Optional[int] = None,
    base_rate: Optional[int] = None,
    model: Optional[str] = None,
    name: Optional[str] = None,
    keep_transform: bool = True,
    effort: Optional[int] = None,
) -> list[bytes]:
    """encode() of every face in the photo, largest first: one .sfc file each, each with its own
    transform. A photo with no face raises InputError."""
    faces = align_image(source, all_faces=True, name=name)
    return encode_crops(np.stack([f.crop for f in faces]), layers=layers, quality=quality, base_rate=base_rate,
                        model=model, transforms=[_transform_of(f, keep_transform) for f in faces], effort=effort)


def _transform_of(face, keep: bool) -> Optional[Transform]:
    """Where the crop sat in its photo, as a header keeps it (none for a pre-aligned crop)."""
    if not keep or face.method == "aligned" or max(face.photo_size) > 0xFFFF:
        return None
    return Transform(*face.photo_size, tuple(float(v) for v in face.transform.reshape(-1)))


def encode_crops(
    crops: np.ndarray,
    *,
    layers: str = "full",
    quality: Optional[int] = None,
    base_rate: Optional[int] = None,
    model: Optional[str] = None,
    transforms: Optional[Sequence[Optional[Transform]]] = None,
    descriptors: Optional[np.ndarray] = None,
    effort: Optional[int] = None,
) -> list[bytes]:
    """One .sfc file per canonical crop (N x 128 x 128 x 3 uint8), computed in batches. `descriptors`
    (N x 128) may pass the reference descriptors (BaseLayer.describe) when they are already known;
    `effort` (0-3; default 1 with the full layer) is encode()'s."""
    if layers not in LAYER_CHOICES:
        raise SfaceError(f"layers must be one of {', '.join(LAYER_CHOICES)}")
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or crops.dtype != np.uint8:
        raise InputError(f"crops must be N x {CROP_SIZE} x {CROP_SIZE} x 3 uint8")
    ms = modelset.load(model)
    base, enh = ms.base, (ms.enhancement if layers == "full" else None)
    if enh is not None:
        quality = enh.default_quality if quality is None else quality
        if not 1 <= quality <= enh.qualities:
            raise SfaceError(f"quality must be 1..{enh.qualities} for model {ms.entry.name}")
        from .layers import refine  # torch is loaded with the enhancement layer anyway

        try:
            effort = refine.level(effort)
        except ValueError as e:
            raise SfaceError(str(e)) from None
    elif effort:
        raise SfaceError("effort searches the enhancement layer: it needs layers='full'")
    rate = base.default_rate if base_rate is None else base_rate
    # base layer: the descriptors and the appearance, and the faces a decoder will generate from them
    descriptors = base.describe(crops) if descriptors is None else descriptors
    code = base.encode(crops, descriptors, rate, appearance=layers != "identity", faces=enh is not None)
    # enhancement layer: what the crop has beyond its base face
    enhancement = enh.compress(crops, code.faces, quality, effort) if enh is not None else None
    # container: the layers present, in order, under one header per face
    columns = [(LayerType.IDENTITY, code.identity_payloads), (LayerType.APPEARANCE, code.appearance_payloads),
               (LayerType.ENHANCEMENT, enhancement)]
    transforms = transforms or [None] * len(crops)
    return [
        container.pack(Header(model_id=ms.entry.short_id, crop_size=CROP_SIZE, base_rate=rate,
                              quality=quality if enh is not None else 0, transform=t),
                       [(kind, payloads[k]) for kind, payloads in columns if payloads is not None])
        for k, t in zip(range(len(crops)), transforms)
    ]


def identity_files(symbols: np.ndarray, *, base_rate: Optional[int] = None, model: Optional[str] = None) -> list[bytes]:
    """Identity-only .sfc files holding given identity symbols (N x dims, e.g. IdentityCodec.sample_symbols):
    faces with no photo behind them, for tests and benchmarks of search."""
    ms = modelset.load(model)
    rate = ms.base.default_rate if base_rate is None else base_rate
    tables = ms.base.identity(rate).tables
    header = Header(model_id=ms.entry.short_id, crop_size=CROP_SIZE, base_rate=rate, quality=0)
    return [container.pack(header, [(LayerType.IDENTITY, entropy.encode(row.tolist(), tables))]) for row in symbols]


def base_rates(model: Optional[str] = None) -> list[int]:
    """The base rate points of a model (default: the installed one)."""
    return modelset.load(model).base.rates


def identity_codec(base_rate: Optional[int] = None, model: Optional[str] = None):
    """The identity codec (layers.identity.IdentityCodec) of a model's base rate point (default: the model's)."""
    base = modelset.load(model).base
    return base.identity(base.default_rate if base_rate is None else base_rate)


def _parse(source: Source, upto: Optional[LayerType] = None) -> SfcFile:
    data = _data(source)
    if not is_sfc(data):
        raise InputError(f"{source if isinstance(source, (str, Path)) else 'input'} is not an .sfc file")
    return container.parse(data, upto)


def _parse_for_decode(source: Source, layer: str, salvage: bool) -> tuple[SfcFile, Optional[str]]:
    """The file as far as decoding `layer` reads it, and a note when a damaged enhancement layer was
    left out (only with `salvage`; without it, that damage is a SalvageableError)."""
    if layer == "base":
        return _parse(source, LayerType.APPEARANCE), None
    try:
        return _parse(source), None
    except BitstreamError as e:
        damage = e
    f = _parse(source, LayerType.APPEARANCE)  # damage below the enhancement layer is not salvageable
    if not salvage:
        raise SalvageableError(f"{damage}; the base layer below it is intact") from None
    return f, f"{damage}; salvaged the base layer"


def model_for(header: Header, pixels: bool = True) -> ModelSet:
    """The model set a header names, once the header asks nothing it cannot serve (the crop size
    only matters when pixels are decoded: bitstream_spec.md, 1.2)."""
    ms = modelset.load(header.model_id)
    if pixels and header.crop_size != CROP_SIZE:
        raise BitstreamError(f"the header names a {header.crop_size}x{header.crop_size} crop; "
                             f"the model codes {CROP_SIZE}x{CROP_SIZE} crops")
    if header.base_rate not in ms.base.rates:
        raise BitstreamError(f"the header names base rate point {header.base_rate}; "
                             f"the model has {', '.join(map(str, ms.base.rates))}")
    return ms


def decode(source: Source, *, layer: str = "full", salvage: bool = False) -> Decoded:
    """The face image of an .sfc file, stopping after `layer` ("base" or "full"), or after the best
    layer present when the asked-for one is absent (`note` then says so). Decoding the base layer
    reads and checks only the layers below the enhancement layer. A damaged enhancement layer is an
    error (SalvageableError when the base layer is intact); with `salvage`, the base layer is
    decoded instead and `note` says why."""
    return decode_many([source], layer=layer, salvage=salvage)[0]


def decode_many(sources: Sequence[Source], *, layer: str = "full", salvage: bool = False) -> list[Decoded]:
    """decode() for many files, with the networks run in batches."""
    if layer not in ("base", "full"):
        raise SfaceError("layer must be 'base' or 'full'")
    parsed = [_parse_for_decode(s, layer, salvage) for s in sources]
    files = [f for f, _ in parsed]
    damage = {i: note for i, (_, note) in enumerate(parsed) if note}
    out: list[Optional[Decoded]] = [None] * len(files)
    by_model: dict[bytes, list[int]] = {}
    for i, f in enumerate(files):
        by_model.setdefault(f.header.model_id, []).append(i)
    for idx in by_model.values():
        ms = [model_for(files[i].header) for i in idx][0]  # every header checked
        group = [files[i] for i in idx]
        # base layer: descriptors and appearances to base faces
        apps = [f.layer(LayerType.APPEARANCE) for f in group]
        images = ms.base.decode([f.layer(LayerType.IDENTITY).payload for f in group], [a.payload if a else None for a in apps],
                                [f.header.base_rate for f in group]).faces
        layers = ["base" if a else "identity" for a in apps]
        # enhancement layer, onto the base faces
        full = [k for k, f in enumerate(group) if layer == "full" and f.top == LayerType.ENHANCEMENT]
        if full:
            full = _decode_enhancement(ms.enhancement, group, full, images, salvage, damage, idx)
            for k in full:
                layers[k] = "full"
        for k, f in enumerate(group):
            note = damage.get(idx[k])
            if note is None and (layer == "full" and layers[k] != "full" or layer == "base" and layers[k] == "identity"):
                missing = "enhancement" if layer == "full" else "appearance"
                note = f"the file has no {missing} layer; decoded the {layers[k]} layer" + (
                    " with a typical appearance" if layers[k] == "identity" else "")
            out[idx[k]] = Decoded(images[k], layers[k], f.header, note)
    return out


def _decode_enhancement(enh, group: list[SfcFile], full: list[int], images: np.ndarray, salvage: bool,
                        damage: dict[int, str], idx: list[int]) -> list[int]:
    """Decode the enhancement layers of group[k] for k in `full` onto their base faces in `images`;
    with `salvage`, a layer that does not decode leaves its base face, and its note in `damage`.
    Returns the k whose enhancement layer was decoded."""
    def run(ks):
        images[ks] = enh.decompress([group[k].layer(LayerType.ENHANCEMENT).payload for k in ks],
                                    [group[k].header.quality for k in ks], images[ks])

    try:
        run(full)
        return full
    except BitstreamError as e:
        if not salvage:
            raise SalvageableError(f"{e}; the base layer below it is intact") from None
    decoded = []
    for k in full:  # one by one, to find the layers that do not decode
        try:
            run([k])
            decoded.append(k)
        except BitstreamError as e:
            damage[idx[k]] = f"{e}; salvaged the base layer"
    return decoded


def paste_into(decoded: Union[Decoded, Sequence[Decoded]], photo: Source) -> np.ndarray:
    """The photo the face (or faces, e.g. encode_all's) was cut from, with each decoded face put back
    where its header's transform says."""
    from .align import paste_back
    from .images import load_rgb

    faces = [decoded] if isinstance(decoded, Decoded) else list(decoded)
    data = _data(photo)
    image = data if isinstance(data, np.ndarray) else load_rgb(data, name=str(photo) if isinstance(photo, (str, Path)) else "photo")
    h, w = image.shape[:2]
    for d in faces:
        t = d.header.transform
        if t is None:
            raise InputError("the file does not say where the face sat in its photo (encoded from an aligned crop "
                             "or with --no-transform), so it cannot be pasted back")
        if (w, h) != (t.photo_width, t.photo_height):
            raise InputError(f"the photo is {w}x{h} but the face was cut from a {t.photo_width}x{t.photo_height} photo")
        image = paste_back(image, d.image, np.array(t.matrix, np.float64).reshape(2, 3))
    return image


def extract_features(source: Source, *, aligned: bool = False, model: Optional[str | bytes] = None,
                     name: Optional[str] = None) -> np.ndarray:
    """The 128-d descriptor: from an .sfc file, entropy-decoded from the identity layer alone (no
    pixels, no recognition network, no look at the layers above it); from an image, the encoder's
    own decoded descriptor (coded with `model`, default the installed one). `name` labels an image
    source in errors."""
    data = _data(source)
    if is_sfc(data):
        f = container.parse(data, upto=LayerType.IDENTITY)
        return model_for(f.header, pixels=False).base.decode_identity(f.layer(LayerType.IDENTITY).payload, f.header.base_rate)
    label = name or (str(source) if isinstance(source, (str, Path)) else None)
    return extract_features(encode(data, layers="identity", aligned=aligned, model=model, name=label))


def model_threshold(model: Optional[str | bytes] = None) -> float:
    """The same/different threshold between two descriptors decoded from identity layers (model card)."""
    return modelset.load(model).base.threshold


@dataclass(frozen=True)
class Features:
    """Descriptors of many inputs: rows for the inputs that succeeded, in input order."""

    descriptors: np.ndarray  # M x 128 float32
    index: list  # M input positions, one per row
    failures: list  # (input position, message) for the others, in input order


def source_names(sources: Sequence[Source], names: Optional[Sequence[str]] = None) -> list[str]:
    """How messages name each source: `names` when given, else a path as it is, else "input k"."""
    if names is not None:
        return list(names)
    return [str(s) if isinstance(s, (str, Path)) else f"input {k + 1}" for k, s in enumerate(sources)]


def extract_features_many(sources: Sequence[Source], *, aligned: bool = False, model: Optional[str | bytes] = None,
                          names: Optional[Sequence[str]] = None) -> Features:
    """extract_features() of many inputs. The identity layers of .sfc files are entropy-decoded in
    vectorised batches, one per model and rate point; images are encoded one by one. With `model`
    (a name or id), .sfc files must be coded with it and images are coded with it. An input that
    fails is a failure with its message; the others go on."""
    names = source_names(sources, names)
    wanted = models.find(model).short_id if model is not None else None
    parsed, images, failures = [], [], []
    for k, s in enumerate(sources):
        try:
            data = _data(s)
            if not is_sfc(data):
                images.append((k, data))
                continue
            f = container.parse(data, upto=LayerType.IDENTITY)
            if wanted is not None and f.header.model_id != wanted:
                raise InputError(f"coded with model {f.header.model_hex}, not {wanted.hex()} as asked")
            parsed.append((k, f))
        except SfaceError as e:
            failures.append((k, str(e)))
    groups: dict[tuple[bytes, int], list] = {}
    for k, f in parsed:
        groups.setdefault((f.header.model_id, f.header.base_rate), []).append((k, f))
    rows, index = [], []
    for (mid, rate), members in groups.items():
        try:
            identity = model_for(members[0][1].header, pixels=False).base.identity(rate)
        except SfaceError as e:
            failures += [(k, str(e)) for k, _ in members]
            continue
        symbols, canonical = identity.decode_symbols_many([f.layer(LayerType.IDENTITY).payload for _, f in members])
        refused = f"identity layer: {entropy.NOT_CODE.format(n=len(identity.tables))}"
        failures += [(k, refused) for (k, _), ok in zip(members, canonical) if not ok]
        good = [m for m, ok in zip(members, canonical) if ok]
        rows.append(identity.reconstruct(symbols[canonical]))
        index += [k for k, _ in good]
    for k, data in images:
        try:
            rows.append(extract_features(data, aligned=aligned, model=model, name=names[k])[None])
            index.append(k)
        except SfaceError as e:
            failures.append((k, str(e)))
    order = np.argsort(index, kind="stable")
    vectors = np.concatenate(rows)[order] if rows else np.zeros((0, DESCRIPTOR_DIM), np.float32)
    return Features(vectors, [index[o] for o in order], sorted(failures))


def compare(a: Source, b: Source, *, aligned: bool = False, names: Optional[Sequence[str]] = None) -> Comparison:
    """Distance between two faces' descriptors and the same/different verdict at the model's
    threshold (calibrated on LFW; see the model card). An error names the source it came from
    (`names`, else the path, else "first"/"second input")."""
    names = names or [str(s) if isinstance(s, (str, Path)) else f"{w} input" for s, w in ((a, "first"), (b, "second"))]
    descriptors = []
    for source, label in zip((a, b), names):
        try:
            descriptors.append(extract_features(source, aligned=aligned, name=label))
        except SfaceError as e:
            raise named(e, label) from None
    da, db = descriptors
    dist = float(np.linalg.norm(da - db))
    threshold = model_threshold()
    return Comparison(dist, threshold, dist < threshold)
