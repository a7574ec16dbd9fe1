"""The .sfc container: write, read and validate (bitstream_spec.md is the contract).

Pure Python on purpose: `sface info` and `sface strip` read containers and must start fast.
"""

from __future__ import annotations

import binascii
import enum
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

from .errors import BitstreamError

MAGIC = b"SFC"
MAJOR, MINOR = 1, 2  # 1.2: the enhancement layer may use a checkerboard context; the container is as in 1.0
FLAG_TRANSFORM = 0x01
HEADER_SIZE = 14
TRANSFORM_SIZE = 28
MAX_LAYER_BYTES = 1 << 20
MAX_LENGTH_BYTES = 3
TEMPLATE_DLIB_5POINT = 0


class LayerType(enum.IntEnum):
    IDENTITY = 1
    APPEARANCE = 2
    ENHANCEMENT = 3


@dataclass(frozen=True)
class Transform:
    """Maps crop pixel (x, y) to photo pixel (a x + b y + c, d x + e y + f)."""

    photo_width: int
    photo_height: int
    matrix: tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Header:
    model_id: bytes
    crop_size: int = 128
    padding: float = 0.25
    base_rate: int = 1
    quality: int = 0
    template: int = TEMPLATE_DLIB_5POINT
    transform: Optional[Transform] = None

    @property
    def model_hex(self) -> str:
        return self.model_id.hex()


@dataclass(frozen=True)
class Layer:
    type: LayerType
    payload: bytes
    offset: int  # where the layer's type byte sits in the file
    size: int  # bytes of the whole layer: type, length, crc and payload


@dataclass(frozen=True)
class SfcFile:
    header: Header
    header_size: int
    layers: tuple[Layer, ...]
    version: str = f"{MAJOR}.{MINOR}"  # as the file says it

    def layer(self, kind: LayerType) -> Optional[Layer]:
        return next((l for l in self.layers if l.type == kind), None)

    @property
    def top(self) -> LayerType:
        return self.layers[-1].type

    @property
    def size(self) -> int:
        return self.header_size + sum(l.size for l in self.layers)


def _crc16(data: bytes) -> int:
    return binascii.crc_hqx(data, 0)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pack_header(h: Header) -> bytes:
    if len(h.model_id) != 4:
        raise ValueError("model_id is 4 bytes")
    if h.crop_size % 8 or not 8 <= h.crop_size <= 255 * 8:
        raise ValueError("crop_size must be a multiple of 8 in 8..2040")
    pad_code = round(h.padding * 16)
    if not 1 <= pad_code <= 15 or abs(pad_code / 16 - h.padding) > 1e-9:
        raise ValueError("padding must be a multiple of 1/16 in 1/16..15/16")
    if not 1 <= h.base_rate <= 15 or not 0 <= h.quality <= 15:
        raise ValueError("base_rate is 1..15 and quality 0..15")
    flags = FLAG_TRANSFORM if h.transform else 0
    out = bytearray(MAGIC)
    out += bytes([MAJOR << 4 | MINOR, flags]) + h.model_id
    out += bytes([h.crop_size // 8, h.template << 4 | pad_code, h.base_rate << 4 | h.quality])
    if h.transform:
        t = h.transform
        if not (1 <= t.photo_width <= 0xFFFF and 1 <= t.photo_height <= 0xFFFF):
            raise ValueError("photo size must be 1..65535")
        out += struct.pack(">HH6f", t.photo_width, t.photo_height, *t.matrix)
    out += struct.pack(">H", _crc16(bytes(out)))
    return bytes(out)


def pack_layer(kind: LayerType, payload: bytes) -> bytes:
    if len(payload) > MAX_LAYER_BYTES:
        raise ValueError("layer payload over 1 MiB")
    head = bytes([kind]) + varint(len(payload))
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def pack(header: Header, payloads: Sequence[tuple[LayerType, bytes]]) -> bytes:
    """A whole file; payloads must be a prefix of (identity, appearance, enhancement)."""
    kinds = [k for k, _ in payloads]
    if not kinds or kinds != list(LayerType)[: len(kinds)]:
        raise ValueError("layers must be a non-empty prefix of identity, appearance, enhancement")
    return pack_header(header) + b"".join(pack_layer(k, p) for k, p in payloads)


def parse_header(data: bytes) -> tuple[Header, int]:
    if len(data) < 3 or data[:3] != MAGIC:
        raise BitstreamError("not an .sfc file (bad magic bytes)")
    if len(data) < 4:
        raise BitstreamError("truncated header: the file ends after the magic bytes")
    major = data[3] >> 4
    if major != MAJOR:
        raise BitstreamError(f"unsupported .sfc major version {major} (this reader knows version {MAJOR})")
    if len(data) < 5:
        raise BitstreamError("truncated header: the file ends before the flags byte")
    flags = data[4]
    size = HEADER_SIZE + (TRANSFORM_SIZE if flags & FLAG_TRANSFORM else 0)
    if len(data) < size:
        raise BitstreamError(f"truncated header: {size} bytes needed, {len(data)} present")
    (crc,) = struct.unpack_from(">H", data, size - 2)
    if crc != _crc16(data[: size - 2]):
        raise BitstreamError("header CRC mismatch: the header is corrupted")
    if flags & ~FLAG_TRANSFORM:
        raise BitstreamError(f"reserved header flag bits set ({flags:#04x})")
    crop8, geometry, rates = data[9], data[10], data[11]
    template, pad_code = geometry >> 4, geometry & 0x0F
    base_rate, quality = rates >> 4, rates & 0x0F
    if crop8 == 0:
        raise BitstreamError("invalid header: crop size 0")
    if template != TEMPLATE_DLIB_5POINT:
        raise BitstreamError(f"invalid header: unknown alignment template {template}")
    if pad_code == 0:
        raise BitstreamError("invalid header: padding 0")
    if base_rate == 0:
        raise BitstreamError("invalid header: base rate point 0")
    transform = None
    if flags & FLAG_TRANSFORM:
        w, h, *m = struct.unpack_from(">HH6f", data, 12)
        if w == 0 or h == 0 or not all(math.isfinite(v) for v in m):
            raise BitstreamError("invalid header: bad transform (zero photo size or non-finite numbers)")
        transform = Transform(w, h, tuple(m))
    header = Header(
        model_id=bytes(data[5:9]),
        crop_size=crop8 * 8,
        padding=pad_code / 16,
        base_rate=base_rate,
        quality=quality,
        template=template,
        transform=transform,
    )
    return header, size


class VarintError(ValueError):
    """A LEB128 field that is cut ("cut"), longer than allowed ("long") or not minimal ("non-minimal")."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def read_varint(data: bytes, pos: int, most: int) -> tuple[int, int]:
    """(value, position after it) of the minimal unsigned LEB128 varint of at most `most` bytes at `pos`."""
    value = 0
    for i in range(most):
        if pos + i >= len(data):
            raise VarintError("cut")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise VarintError("non-minimal")
            return value, pos + i + 1
    raise VarintError("long")


def _read_varint(data: bytes, pos: int, name: str) -> tuple[int, int]:
    try:
        return read_varint(data, pos, MAX_LENGTH_BYTES)
    except VarintError as e:
        raise BitstreamError({
            "cut": f"truncated {name} layer: the file ends inside its length field",
            "non-minimal": f"invalid {name} layer: non-minimal length encoding",
            "long": f"invalid {name} layer: length field longer than {MAX_LENGTH_BYTES} bytes",
        }[e.kind]) from None


def parse(data: bytes, upto: Optional[LayerType] = None) -> SfcFile:
    """Validate a whole file, or with `upto` the header and the layers up to that one (a reader that
    stops there neither reads nor checks the bytes after it); raises BitstreamError naming the
    first problem found."""
    data = bytes(data)
    header, header_size = parse_header(data)
    pos = header_size
    layers: list[Layer] = []
    while pos < len(data) and not (upto and layers and layers[-1].type >= upto):
        code = data[pos]
        expected = len(layers) + 1
        if expected > len(LayerType):
            raise BitstreamError(f"trailing bytes after the enhancement layer (offset {pos})")
        if code not in LayerType._value2member_map_:
            raise BitstreamError(f"unknown layer type {code} at offset {pos}")
        kind = LayerType(code)
        name = kind.name.lower()
        if kind != expected:
            raise BitstreamError(
                f"layer out of order: {name} at offset {pos}, where the {LayerType(expected).name.lower()} layer must come"
            )
        length, body = _read_varint(data, pos + 1, name)
        if length > MAX_LAYER_BYTES:
            raise BitstreamError(f"invalid {name} layer: length {length} over the {MAX_LAYER_BYTES}-byte limit")
        end = body + 4 + length
        if end > len(data):
            raise BitstreamError(
                f"truncated {name} layer: {end - pos} bytes needed from offset {pos}, {len(data) - pos} present"
            )
        (crc,) = struct.unpack_from(">I", data, body)
        if crc != zlib.crc32(data[body + 4 : end], zlib.crc32(data[pos:body])):
            raise BitstreamError(f"{name} layer CRC mismatch: the layer is corrupted")
        layers.append(Layer(kind, data[body + 4 : end], pos, end - pos))
        pos = end
    if not layers:
        raise BitstreamError("the file holds a header but no layer")
    return SfcFile(header, header_size, tuple(layers), f"{data[3] >> 4}.{data[3] & 0x0F}")


def is_valid(data: bytes) -> bool:
    """Whether `data` is a whole, valid .sfc file (every layer framed and its CRC right)."""
    try:
        parse(data)
    except BitstreamError:
        return False
    return True


def truncate(data: bytes, keep: LayerType) -> bytes:
    """The file cut right after layer `keep` (validated up to it); the cut file is itself valid."""
    last = parse(data, upto=keep).layers[-1]
    return bytes(data[: last.offset + last.size])
