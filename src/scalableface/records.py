"""Gallery record files (.sfr): many identity payloads under one header (bitstream_spec.md, section 11).

    from scalableface import records
    data = records.pack(["a.sfc", "b.sfc"])                # gather the identity layers of .sfc files
    data = records.encode(symbols, base_rate=1)            # or code identity symbols (N x dims) directly
    g = records.parse(data)                                # Records: model_id, base_rate, payloads, names
    vecs = records.descriptors(data)                       # N x 128 float32, the vectorised decoder

An identity-only .sfc file spends 20 bytes of header and framing on a 6.5-byte payload; a record
file spends one length byte per face and a CRC-32 per block of records (64 by default), so a
gallery costs about 1.06 bytes per face above its payloads (`python -m scalableface.eval.records`
measures it). Parsing is pure Python (no torch, no numpy): `sface info` reads these files too.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

from .container import VarintError, read_varint, varint
from .errors import BitstreamError

MAGIC = b"SFR"
MAJOR, MINOR = 1, 0
FLAG_NAMES = 0x01
HEADER_SIZE = 20
CHECK_SIZE = 4
DEFAULT_BLOCK = 64  # records per CRC block: 4/64 = 0.06 bytes per face; damage is located to 64 faces
MAX_RECORD_BYTES = 1024  # an identity payload of n symbols of 16-bit tables is at most 2n + 1 bytes
MAX_RECORD_LENGTH_BYTES = 2
MAX_NAMES_LENGTH_BYTES = 4
MAX_NAMES_BYTES = (1 << 28) - 1  # the names' text, also the most a 4-byte varint says
MAX_NAME_BYTES = 4096  # per record on average, with its line feed
MIN_RECORD_SIZE = 2  # a length byte and a payload byte


@dataclass(frozen=True)
class Records:
    model_id: bytes
    base_rate: int
    block_records: int
    payloads: tuple[bytes, ...]
    names: Optional[tuple[str, ...]]  # one per record when the file has them
    version: str = f"{MAJOR}.{MINOR}"  # as the file says it

    def __len__(self) -> int:
        return len(self.payloads)

    @property
    def model_hex(self) -> str:
        return self.model_id.hex()


def is_sfr(data) -> bool:
    return isinstance(data, (bytes, bytearray)) and bytes(data[:3]) == MAGIC


def to_bytes(model_id: bytes, base_rate: int, payloads: Sequence[bytes], names: Optional[Sequence[str]] = None,
             block_records: int = DEFAULT_BLOCK) -> bytes:
    """A record file of identity payloads (each the canonical code of a face's symbols at `base_rate`
    of model `model_id`), with one name per payload when `names` is given."""
    if len(model_id) != 4:
        raise ValueError("model_id is 4 bytes")
    if not 1 <= base_rate <= 15:
        raise ValueError("base_rate is 1..15")
    if not 1 <= block_records <= 0xFFFF:
        raise ValueError("block_records is 1..65535")
    if len(payloads) > 0xFFFFFFFF:
        raise ValueError("at most 2**32 - 1 records")
    if names is not None and len(names) != len(payloads):
        raise ValueError("one name per payload")
    head = MAGIC + bytes([MAJOR << 4 | MINOR, FLAG_NAMES if names is not None else 0]) + model_id
    head += bytes([base_rate << 4]) + struct.pack(">HI", block_records, len(payloads))
    out = bytearray(head + struct.pack(">I", zlib.crc32(head)))
    crc = zlib.crc32(out)
    for start in range(0, len(payloads), block_records):
        block = bytearray()
        for p in payloads[start : start + block_records]:
            if not 1 <= len(p) <= MAX_RECORD_BYTES:
                raise ValueError(f"an identity payload is 1..{MAX_RECORD_BYTES} bytes")
            block += varint(len(p)) + p
        crc = zlib.crc32(block, crc)
        block += struct.pack(">I", crc)
        crc = zlib.crc32(block[-CHECK_SIZE:], crc)
        out += block
    if names is not None:
        if any("\n" in n for n in names):
            raise ValueError("a name cannot hold a line break")
        text = "".join(n + "\n" for n in names).encode("utf-8")
        if len(text) > _names_limit(len(names)):
            raise ValueError(f"names over {MAX_NAME_BYTES} bytes per record, or 256 MiB in all")
        packed = zlib.compress(text, 9)
        section = varint(len(packed)) + packed
        crc = zlib.crc32(section, crc)
        out += section + struct.pack(">I", crc)
    return bytes(out)


def _read_varint(data: bytes, pos: int, most: int, what: str) -> tuple[int, int]:
    try:
        return read_varint(data, pos, most)
    except VarintError as e:
        raise BitstreamError({
            "cut": f"truncated .sfr file: it ends inside the length field of {what}",
            "non-minimal": f"invalid .sfr file: non-minimal length field of {what}",
            "long": f"invalid .sfr file: the length field of {what} is longer than {most} bytes",
        }[e.kind]) from None


def parse_header(data: bytes) -> tuple[int, int, int, int, bytes]:
    """(flags, base_rate, block_records, count, model_id) of a record file, by the rules of 11.2."""
    if len(data) < 3 or data[:3] != MAGIC:
        raise BitstreamError("not an .sfr file (bad magic bytes)")
    if len(data) < 4:
        raise BitstreamError("truncated .sfr header: the file ends after the magic bytes")
    if data[3] >> 4 != MAJOR:
        raise BitstreamError(f"unsupported .sfr major version {data[3] >> 4} (this reader knows version {MAJOR})")
    if len(data) < HEADER_SIZE:
        raise BitstreamError(f"truncated .sfr header: {HEADER_SIZE} bytes needed, {len(data)} present")
    (crc,) = struct.unpack_from(">I", data, HEADER_SIZE - CHECK_SIZE)
    if crc != zlib.crc32(data[: HEADER_SIZE - CHECK_SIZE]):
        raise BitstreamError(".sfr header CRC mismatch: the header is corrupted")
    flags, rates = data[4], data[9]
    block_records, count = struct.unpack_from(">HI", data, 10)
    if flags & ~FLAG_NAMES:
        raise BitstreamError(f"reserved .sfr flag bits set ({flags:#04x})")
    if rates & 0x0F:
        raise BitstreamError(f"invalid .sfr header: reserved bits of the rates byte set ({rates:#04x})")
    if rates >> 4 == 0:
        raise BitstreamError("invalid .sfr header: base rate point 0")
    if block_records == 0:
        raise BitstreamError("invalid .sfr header: 0 records per block")
    room = (len(data) - HEADER_SIZE) // MIN_RECORD_SIZE
    if count > room:
        raise BitstreamError(f"truncated .sfr file: the header declares {count} records, "
                             f"its {len(data)} bytes hold at most {room}")
    return flags, rates >> 4, block_records, count, bytes(data[5:9])


def _names_limit(count: int) -> int:
    return min(MAX_NAMES_BYTES, MAX_NAME_BYTES * count)


def _names_text(packed: bytes, count: int) -> str:
    """The names section's text: a zlib stream (RFC 1950) of at most _names_limit(count) bytes of UTF-8."""
    z, limit = zlib.decompressobj(), _names_limit(count)
    try:
        raw = z.decompress(packed, limit + 1)
    except zlib.error:
        raise BitstreamError("invalid .sfr file: the names are not a zlib stream") from None
    if len(raw) > limit:
        raise BitstreamError(f"invalid .sfr file: the names are over {limit} bytes ({MAX_NAME_BYTES} per record)")
    if not z.eof or z.unused_data:
        raise BitstreamError("invalid .sfr file: the names section is not one whole zlib stream")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("invalid .sfr file: the names are not UTF-8") from None


def parse(data: bytes) -> Records:
    """Validate a whole record file: header, every record's framing, every block's CRC, the names;
    raises BitstreamError naming the first problem found. Payloads are not decoded here (that needs
    the model; descriptors() does it)."""
    data = bytes(data)
    flags, base_rate, block, count, model_id = parse_header(data)
    pos = HEADER_SIZE
    crc = zlib.crc32(data[:pos])
    payloads: list[bytes] = []
    for start in range(0, count, block):
        begin, stop = pos, min(start + block, count)
        for k in range(start, stop):
            what = f"record {k + 1}"
            length, body = _read_varint(data, pos, MAX_RECORD_LENGTH_BYTES, what)
            if not 1 <= length <= MAX_RECORD_BYTES:
                raise BitstreamError(f"invalid .sfr file: {what} has length {length} (1..{MAX_RECORD_BYTES})")
            if body + length > len(data):
                raise BitstreamError(f"truncated .sfr file: {what} needs {body + length - pos} bytes from offset "
                                     f"{pos}, {len(data) - pos} present")
            payloads.append(data[body : body + length])
            pos = body + length
        what = f"block {start // block + 1} (records {start + 1}..{stop})"
        if pos + CHECK_SIZE > len(data):
            raise BitstreamError(f"truncated .sfr file: it ends inside the CRC of {what}")
        crc = zlib.crc32(data[begin:pos], crc)
        if struct.unpack_from(">I", data, pos)[0] != crc:
            raise BitstreamError(f".sfr CRC mismatch in {what}: the records are corrupted")
        crc = zlib.crc32(data[pos : pos + CHECK_SIZE], crc)
        pos += CHECK_SIZE
    names = None
    if flags & FLAG_NAMES:
        begin = pos
        length, body = _read_varint(data, pos, MAX_NAMES_LENGTH_BYTES, "the names")
        if body + length + CHECK_SIZE > len(data):
            raise BitstreamError(f"truncated .sfr file: the names need {body + length + CHECK_SIZE - begin} bytes "
                                 f"from offset {begin}, {len(data) - begin} present")
        crc = zlib.crc32(data[begin : body + length], crc)
        pos = body + length
        if struct.unpack_from(">I", data, pos)[0] != crc:
            raise BitstreamError(".sfr CRC mismatch in the names: they are corrupted")
        pos += CHECK_SIZE
        text = _names_text(data[body : body + length], count)
        split = text.split("\n")
        if split[-1] or len(split) != count + 1:
            raise BitstreamError(f"invalid .sfr file: the names section holds {len(split) - 1} line-ended names "
                                 f"for {count} records")
        names = tuple(split[:-1])
    if pos != len(data):
        raise BitstreamError(f"trailing bytes after the last section of the .sfr file (offset {pos})")
    return Records(model_id, base_rate, block, tuple(payloads), names, f"{data[3] >> 4}.{data[3] & 0x0F}")


# ---- with the model: coding symbols and decoding descriptors ------------------------------------


def encode(symbols, *, base_rate: Optional[int] = None, model: Optional[str] = None,
           names: Optional[Sequence[str]] = None, block_records: int = DEFAULT_BLOCK) -> bytes:
    """A record file of identity symbols (N x dims integers, e.g. IdentityCodec.quantize of
    descriptors) at `base_rate` (default: the model's), each coded exactly as in an .sfc file."""
    from . import entropy, modelset

    ms = modelset.load(model)
    entry, base = ms.entry, ms.base
    rate = base.default_rate if base_rate is None else base_rate
    tables = base.identity(rate).tables
    payloads = [entropy.encode([int(v) for v in row], tables) for row in symbols]
    return to_bytes(entry.short_id, rate, payloads, names, block_records)


def encode_descriptors(descriptors, *, base_rate: Optional[int] = None, model: Optional[str] = None,
                       names: Optional[Sequence[str]] = None, block_records: int = DEFAULT_BLOCK) -> bytes:
    """A record file of descriptors (N x 128, the flip-averaged reference descriptor the encoder codes)."""
    from . import codec

    return encode(codec.identity_codec(base_rate, model).quantize(descriptors), base_rate=base_rate, model=model,
                  names=names, block_records=block_records)


def symbols(data: bytes | Records):
    """(Records, N x dims int64 symbols) of a record file, decoded in one vectorised pass; every
    payload must be the canonical code of its symbols (bitstream_spec.md, 6.1), else the file is refused."""
    import numpy as np

    from . import codec, entropy

    r = data if isinstance(data, Records) else parse(data)
    header = codec.Header(model_id=r.model_id, base_rate=r.base_rate)
    identity = codec.model_for(header, pixels=False).base.identity(r.base_rate)
    if not r.payloads:
        return r, np.zeros((0, len(identity.tables)), np.int64)
    out, canonical = identity.decode_symbols_many(list(r.payloads))
    if not canonical.all():
        k = int(np.flatnonzero(~canonical)[0])
        raise BitstreamError(f"record {k + 1}: {entropy.NOT_CODE.format(n=len(identity.tables))}")
    return r, out


def descriptors(data: bytes | Records):
    """(Records, N x 128 float32 descriptors) of a record file: the same symbols, and the same
    descriptors, as the identity layers of the .sfc files it was packed from."""
    import numpy as np

    from . import codec

    r, s = symbols(data)
    if not len(s):
        return r, np.zeros((0, 128), np.float32)
    return r, codec.identity_codec(r.base_rate, r.model_id).reconstruct(s)


def pack(sources: Sequence, *, names: Optional[Sequence[str]] = None, keep_names: bool = True,
         block_records: int = DEFAULT_BLOCK, errors: Optional[list] = None) -> bytes:
    """A record file of the identity layers of .sfc files (paths or bytes), payloads copied as they are
    (no re-coding). All must share one model and base rate point. A file that fails (unreadable, not
    an .sfc file, damaged identity layer, not the canonical code) raises, or with an `errors` list is
    appended to it as (name, message) and left out; `keep_names` stores each file's name."""
    from . import codec, container, entropy, modelset
    from .errors import InputError, SfaceError
    from .files import read_path

    names = codec.source_names(sources, names)
    kept, payloads, key, failed = [], [], None, []  # kept: (position, name)
    for k, (name, s) in enumerate(zip(names, sources)):
        try:
            if keep_names and "\n" in name:
                raise InputError("a name with a line break cannot be stored (keep_names=False leaves names out)")
            data = bytes(s) if isinstance(s, (bytes, bytearray)) else read_path(s, name)
            if not codec.is_sfc(data):
                raise InputError("not an .sfc file")
            f = container.parse(data, upto=container.LayerType.IDENTITY)
            here = (f.header.model_id, f.header.base_rate)
            if key is None:
                codec.model_for(f.header, pixels=False)  # the model is installed and serves the rate point
                key = here
            elif here != key:
                raise InputError(f"coded with model {here[0].hex()} at base rate point {here[1]}; the gallery holds "
                                 f"model {key[0].hex()} at base rate point {key[1]} (one rate point per .sfr file)")
            kept.append((k, name))
            payloads.append(f.layer(container.LayerType.IDENTITY).payload)
        except SfaceError as e:
            if errors is None:
                raise InputError(f"{name}: {e}") from None
            failed.append((k, name, str(e)))
    if key is not None and payloads:  # every payload the canonical code of its symbols, as a reader demands
        identity = modelset.load(key[0]).base.identity(key[1])
        _, canonical = identity.decode_symbols_many(payloads)
        refused = f"identity layer: {entropy.NOT_CODE.format(n=len(identity.tables))}"
        for (k, name), ok in zip(kept, canonical):
            if not ok:
                if errors is None:
                    raise InputError(f"{name}: {refused}")
                failed.append((k, name, refused))
        kept = [n for n, ok in zip(kept, canonical) if ok]
        payloads = [p for p, ok in zip(payloads, canonical) if ok]
    if errors is not None:
        errors += [(name, message) for _, name, message in sorted(failed)]
    if not payloads:
        raise InputError("no .sfc file could be packed")
    return to_bytes(key[0], key[1], payloads, [n for _, n in kept] if keep_names else None, block_records)


def sfc_files(data: bytes | Records) -> list[bytes]:
    """One identity-only .sfc file per record (crop 128, padding 0.25, no transform): what `sface
    unpack` writes; its identity layer is the record's payload, byte for byte."""
    from . import container

    r = data if isinstance(data, Records) else parse(data)
    header = container.Header(model_id=r.model_id, base_rate=r.base_rate)
    return [container.pack(header, [(container.LayerType.IDENTITY, p)]) for p in r.payloads]


def record_names(r: Records, path: str) -> list[str]:
    """How messages and outputs name each record: its stored name, else PATH#k (k from 1)."""
    return list(r.names) if r.names is not None else [f"{path}#{k}" for k in range(1, len(r) + 1)]
