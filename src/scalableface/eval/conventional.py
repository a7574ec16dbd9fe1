"""Conventional image codecs for the rate-fidelity benchmark on 128x128 RGB face crops.

Every codec reports two sizes per image:

* ``file_bytes``: a standalone file of that one image as a user would store it (.jpg, .webp, .avif,
  .jxl, a raw Annex-B .hevc, a raw .obu), headers and all.
* ``payload_bytes``: the coded image data without container or stream headers, so that codecs are
  compared on what they spend on the picture itself (a 128x128 file is small enough for fixed
  headers to be a large share of it). What exactly is counted is said in each parser's docstring.

``qualities`` are ordered from the lowest to the highest rate, whatever the codec's own scale (QP
and CRF run downwards). The ffmpeg codecs encode a batch as one all-intra stream and split it into
per-image pictures, which is much faster than one process per image; every frame is coded without
reference to the others, and constant-quantiser rate control (x265 QP, libaom end-usage=q) keeps its
size and pixels the same as when it is coded alone.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Callable, Iterator

import numpy as np
from PIL import Image, features

SIZE = 128
FFMPEG_CHUNK = 1000  # frames per ffmpeg call


class CodecError(RuntimeError):
    """An external encoder or decoder failed, or produced a stream we cannot split."""


@dataclass(frozen=True)
class CodedBatch:
    file_bytes: np.ndarray  # (N,) int: standalone file of each image
    payload_bytes: np.ndarray  # (N,) int: coded data without container/stream headers
    images: np.ndarray  # (N, 128, 128, 3) uint8 decoded


@dataclass(frozen=True)
class CodedPicture:
    """One image cut out of a multi-frame stream: a standalone file of it, and its payload size."""

    file: bytes
    payload: int


def bpp(nbytes, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """Bits per pixel of byte counts."""
    return 8.0 * np.asarray(nbytes, dtype=np.float64) / (height * width)


def _check_crops(crops: np.ndarray) -> np.ndarray:
    crops = np.ascontiguousarray(crops)
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"expected (N, {SIZE}, {SIZE}, 3) uint8 crops, got {crops.shape} {crops.dtype}")
    return crops


# --- container parsers ------------------------------------------------------------------------

_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: markers without a length field


def jpeg_payload_size(data: bytes) -> int:
    """Bytes of the entropy-coded segments: everything after each SOS header up to the next marker
    that is neither a stuffed 0xFF00 nor a restart marker (RSTn and stuffing are counted). Tables
    (DQT, DHT), frame and scan headers, SOI/EOI and any APPn are not."""
    if data[:2] != b"\xff\xd8":
        raise CodecError("not a JPEG file")
    pos, total = 2, 0
    while pos + 1 < len(data):
        if data[pos] != 0xFF:
            raise CodecError(f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            return total
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # SOS
            end = _jpeg_scan_end(data, pos)
            total += end - pos
            pos = end
    raise CodecError("JPEG file without EOI")


def _jpeg_scan_end(data: bytes, pos: int) -> int:
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise CodecError("JPEG scan runs to the end of the file")
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos += 2
        elif nxt == 0xFF:
            pos += 1
        else:
            return pos


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, int]]:
    """(fourcc, data size) of each chunk of a RIFF/WEBP file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CodecError("not a WebP file")
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        yield data[pos : pos + 4], size
        pos += 8 + size + (size & 1)


def webp_payload_size(data: bytes) -> int:
    """Data size of the VP8 (lossy) or VP8L (lossless) chunk; it starts with the codec's own 10-byte
    (VP8) or 5-byte (VP8L) frame header, which is part of the bitstream. RIFF framing and any
    VP8X/ALPH/metadata chunks are not counted."""
    sizes = [size for fourcc, size in _riff_chunks(data) if fourcc in (b"VP8 ", b"VP8L")]
    if not sizes:
        raise CodecError("WebP file without VP8/VP8L chunk")
    return sum(sizes)


def _isobmff_boxes(data: bytes, pos: int = 0) -> Iterator[tuple[bytes, int, int]]:
    """(type, content start, content end) of each top-level ISOBMFF box from pos."""
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        start = pos + 8
        if size == 1:  # 64-bit size follows
            size = int.from_bytes(data[start : start + 8], "big")
            start += 8
        elif size == 0:  # box runs to the end of the file
            size = len(data) - pos
        if size < start - pos:
            raise CodecError(f"bad ISOBMFF box size at byte {pos}")
        yield kind, start, pos + size
        pos += size


def avif_payload_size(data: bytes) -> int:
    """Content size of the ``mdat`` box(es): the AV1 item data, i.e. the sequence header OBU (about a
    dozen bytes) and the frame OBU with their size fields. The ftyp/meta boxes (item properties,
    colour info, etc.) are not counted."""
    sizes = [end - start for kind, start, end in _isobmff_boxes(data) if kind == b"mdat"]
    if not sizes:
        raise CodecError("AVIF file without mdat box")
    return sum(sizes)


_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


def jxl_payload_size(data: bytes) -> int:
    """Size of the JPEG XL codestream: the whole file when it is a naked codestream (the default
    here), else the ``jxlc`` box content or the ``jxlp`` box contents less their 4-byte part index.
    The codestream's own small image header (size, colour encoding) is part of it and counted."""
    if data[:2] == b"\xff\x0a":
        return len(data)
    if not data.startswith(_JXL_CONTAINER):
        raise CodecError("not a JPEG XL file")
    total = 0
    for kind, start, end in _isobmff_boxes(data):
        if kind == b"jxlc":
            total += end - start
        elif kind == b"jxlp":
            total += end - start - 4
    return total


# --- Annex-B HEVC and AV1 OBU streams ---------------------------------------------------------

_HEVC_PARAMETER_SETS = (32, 33, 34)  # VPS, SPS, PPS


def _annexb_units(stream: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(unit with its start code, NAL unit without it) for each NAL unit of an Annex-B stream."""
    starts = []
    pos = stream.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos)
        pos = stream.find(b"\x00\x00\x01", pos + 3)
    for i, pos in enumerate(starts):
        begin = pos - 1 if pos > 0 and stream[pos - 1] == 0 else pos  # 4-byte start code
        end = starts[i + 1] if i + 1 < len(starts) else len(stream)
        if i + 1 < len(starts) and stream[end - 1] == 0:
            end -= 1  # that zero byte belongs to the next 4-byte start code
        yield stream[begin:end], stream[pos + 3 : end]


def split_hevc(stream: bytes) -> list[CodedPicture]:
    """Cut an Annex-B HEVC stream into pictures. Payload: the picture's slice (VCL) NAL units with
    their 2-byte NAL headers, without start codes. File: the latest VPS, SPS and PPS followed by the
    picture's NAL units, all with their start codes, as a raw .hevc of that one image would be.
    Other non-VCL units (SEI, AUD; none with our settings) go with the picture they precede."""
    params: dict[int, bytes] = {}
    units: list[list[bytes]] = []  # per picture, with start codes
    payloads: list[int] = []
    in_force: list[bytes] = []  # parameter sets in force at each picture
    pending: list[bytes] = []
    for unit, nal in _annexb_units(stream):
        kind = (nal[0] >> 1) & 0x3F
        if kind in _HEVC_PARAMETER_SETS:
            params[kind] = unit
        elif kind < 32:
            if nal[2] & 0x80:  # first_slice_segment_in_pic_flag
                units.append(pending)
                payloads.append(0)
                in_force.append(b"".join(params[k] for k in sorted(params)))
                pending = []
            elif not units:
                raise CodecError("HEVC stream starts with a dependent slice")
            units[-1].append(unit)
            payloads[-1] += len(nal)
        else:
            pending.append(unit)
    return [CodedPicture(ps + b"".join(u), p) for ps, u, p in zip(in_force, units, payloads)]


_OBU_SEQUENCE_HEADER, _OBU_TEMPORAL_DELIMITER = 1, 2
_OBU_FRAME_TYPES = (3, 4, 6)  # frame header, tile group, frame


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        shift += 7
        if not byte & 0x80:
            return value, pos


def _obus(stream: bytes) -> Iterator[tuple[int, bytes, int]]:
    """(type, whole OBU, OBU size less its leb128 size field) of each OBU of a low-overhead stream."""
    pos = 0
    while pos < len(stream):
        header = stream[pos]
        kind = (header >> 3) & 0xF
        header_len = 2 if header & 0x4 else 1
        if not header & 0x2:
            raise CodecError("AV1 OBU without size field")
        size, data_start = _leb128(stream, pos + header_len)
        end = data_start + size
        if end > len(stream):
            raise CodecError("truncated AV1 OBU")
        yield kind, stream[pos:end], header_len + size
        pos = end


def split_obu(stream: bytes) -> list[CodedPicture]:
    """Cut a low-overhead AV1 stream into temporal units. Payload: the frame OBUs (frame, frame
    header, tile group) with their OBU headers, without the leb128 size field (as with start codes
    for HEVC). File: the whole temporal unit (temporal delimiter, sequence header, frame), as a raw
    .obu of that one image would be; a unit without a sequence header gets the one in force."""
    sequence_header = b""
    units: list[list[tuple[int, bytes]]] = []  # (type, OBU) per temporal unit
    payloads: list[int] = []
    in_force: list[bytes] = []  # sequence header in force at each unit's start
    for kind, obu, size in _obus(stream):
        if kind == _OBU_TEMPORAL_DELIMITER:
            units.append([])
            payloads.append(0)
            in_force.append(sequence_header)
        elif not units:
            raise CodecError("AV1 stream does not start with a temporal delimiter")
        if kind == _OBU_SEQUENCE_HEADER:
            sequence_header = obu
        elif kind in _OBU_FRAME_TYPES:
            payloads[-1] += size
        units[-1].append((kind, obu))
    pictures = []
    for obus, payload, header in zip(units, payloads, in_force):
        data = [obu for _, obu in obus]
        if all(kind != _OBU_SEQUENCE_HEADER for kind, _ in obus):
            data.insert(1, header)
        pictures.append(CodedPicture(b"".join(data), payload))
    return pictures


# --- codecs -------------------------------------------------------------------------------------


class Codec:
    """A conventional codec: encodes crops at one quality setting, reports sizes and decodes."""

    name: str
    label: str
    qualities: tuple

    def unavailable(self) -> str | None:
        """None if the codec can run here, else why not."""
        return None

    def run(self, crops: np.ndarray, quality) -> CodedBatch:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class PillowCodec(Codec):
    """A codec run through Pillow, one file per image."""

    def __init__(self, name: str, label: str, qualities: tuple, pillow_format: str, options: dict,
                 payload_size: Callable[[bytes], int], settings: str, pillow_features: tuple[str, str] = ("", "")):
        self.name, self.label, self.qualities = name, label, qualities
        self.pillow_format, self.options = pillow_format, options
        self.payload_size, self.settings = payload_size, settings
        self.feature, self.library = pillow_features  # Pillow feature names: to check, to take the version of

    def unavailable(self) -> str | None:
        return None if features.check(self.feature) else f"Pillow built without {self.feature}"

    def encode(self, image: np.ndarray, quality) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=self.pillow_format, quality=quality, **self.options)
        return buffer.getvalue()

    def run(self, crops: np.ndarray, quality) -> CodedBatch:
        crops = _check_crops(crops)
        files = [self.encode(image, quality) for image in crops]
        images = np.empty_like(crops)
        for i, data in enumerate(files):
            with Image.open(io.BytesIO(data)) as decoded:
                images[i] = np.asarray(decoded.convert("RGB"))
        return CodedBatch(np.array([len(f) for f in files], dtype=np.int64),
                          np.array([self.payload_size(f) for f in files], dtype=np.int64), images)

    def describe(self) -> str:
        return f"Pillow {Image.__version__} ({self.library} {features.version(self.library)}), {self.settings}"


class JpegXL(PillowCodec):
    """JPEG XL through pillow-jxl-plugin (its bundled libjxl), imported only when used."""

    @staticmethod
    def _register() -> None:
        import pillow_jxl.JpegXLImagePlugin  # noqa: F401  registers the JXL format with Pillow

    def unavailable(self) -> str | None:
        try:
            self._register()
        except ImportError:
            return "pillow-jxl-plugin not installed"
        return None

    def run(self, crops: np.ndarray, quality) -> CodedBatch:
        self._register()
        return super().run(crops, quality)

    def describe(self) -> str:
        try:
            version = metadata.version("pillow-jxl-plugin")
        except metadata.PackageNotFoundError:
            version = "(not installed)"
        return f"pillow-jxl-plugin {version}, {self.settings}"


@lru_cache(maxsize=None)
def _ffmpeg_list(kind: str) -> str:
    """Output of `ffmpeg -encoders` or `ffmpeg -decoders`."""
    return subprocess.run(["ffmpeg", "-hide_banner", f"-{kind}"], capture_output=True, text=True).stdout


def _ffmpeg_has(kind: str, name: str) -> bool:
    return any(line.split()[1:2] == [name] for line in _ffmpeg_list(kind).splitlines())


@lru_cache(maxsize=None)
def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return " ".join(out.split()[:3]) if out else "ffmpeg (unknown version)"


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    """Run ffmpeg with data on stdin, return stdout; raise CodecError with the stderr tail on failure."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", *args]
    done = subprocess.run(command, input=data, capture_output=True)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-2000:]
        raise CodecError(f"ffmpeg failed ({done.returncode}): {' '.join(command)}\n{tail}")
    return done.stdout


# Explicit BT.601 limited-range conversion; accurate_rnd+full_chroma_int replaces swscale's fast
# yuv420p<->rgb24 paths, which alone cost ~8 dB (a 4:2:0 round trip is 43.5 dB instead of 51 dB).
_SWS_FLAGS = "accurate_rnd+full_chroma_int+full_chroma_inp"
_TO_YUV = f"scale=out_color_matrix=bt601:out_range=tv:flags={_SWS_FLAGS},format={{}}"
_TO_RGB = f"scale=in_color_matrix=bt601:in_range=tv:flags={_SWS_FLAGS},format=rgb24"
_COLOUR_TAGS = ["-colorspace", "bt470bg", "-color_primaries", "bt470bg", "-color_trc", "smpte170m",
                "-color_range", "tv"]


class FfmpegCodec(Codec):
    """A video encoder used all-intra through ffmpeg; each chunk of images is one stream. The
    RGB->YUV->RGB conversion (BT.601, limited range, tagged in the stream) is part of the loss."""

    def __init__(self, name: str, label: str, qualities: tuple, encoder: str, decoders: tuple,
                 stream_format: str, pix_fmt: str, encode_args: Callable[[object], list[str]],
                 split: Callable[[bytes], list[CodedPicture]], settings: str):
        self.name, self.label, self.qualities = name, label, qualities
        self.encoder, self.decoders, self.stream_format = encoder, decoders, stream_format
        self.pix_fmt, self.encode_args = pix_fmt, encode_args
        self.split, self.settings = split, settings

    def unavailable(self) -> str | None:
        if shutil.which("ffmpeg") is None:
            return "ffmpeg not found"
        if not _ffmpeg_has("encoders", self.encoder):
            return f"ffmpeg lacks {self.encoder}"
        if self._decoder() is None:
            return f"ffmpeg lacks a decoder for {self.stream_format} ({' or '.join(self.decoders)})"
        return None

    def _decoder(self) -> str | None:
        return next((d for d in self.decoders if _ffmpeg_has("decoders", d)), None)

    def encode_stream(self, crops: np.ndarray, quality) -> bytes:
        """One all-intra stream of the crops, in order."""
        crops = _check_crops(crops)
        source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{SIZE}x{SIZE}",
                  "-framerate", "25", "-i", "pipe:0"]
        return _ffmpeg([*source, "-an", "-vf", _TO_YUV.format(self.pix_fmt), *_COLOUR_TAGS,
                        "-threads", "1", "-c:v", self.encoder, *self.encode_args(quality),
                        "-f", self.stream_format, "pipe:1"], crops.tobytes())

    def decode_stream(self, stream: bytes, count: int) -> np.ndarray:
        """Decode a stream of count pictures to (count, 128, 128, 3) uint8."""
        raw = _ffmpeg(["-threads", "1", "-c:v", self._decoder(), "-f", self.stream_format, "-i", "pipe:0",
                       "-vf", _TO_RGB, "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1"], stream)
        if len(raw) != count * SIZE * SIZE * 3:
            raise CodecError(f"{self.name}: decoded {len(raw) / (SIZE * SIZE * 3):g} frames, expected {count}")
        return np.frombuffer(raw, dtype=np.uint8).reshape(count, SIZE, SIZE, 3).copy()

    def run(self, crops: np.ndarray, quality) -> CodedBatch:
        crops = _check_crops(crops)
        files, payloads, images = [], [], []
        for start in range(0, len(crops), FFMPEG_CHUNK):
            chunk = crops[start : start + FFMPEG_CHUNK]
            stream = self.encode_stream(chunk, quality)
            pictures = self.split(stream)
            if len(pictures) != len(chunk):
                raise CodecError(f"{self.name}: stream holds {len(pictures)} pictures, expected {len(chunk)}")
            files += [len(p.file) for p in pictures]
            payloads += [p.payload for p in pictures]
            images.append(self.decode_stream(stream, len(chunk)))
        images = np.concatenate(images) if images else np.empty_like(crops)
        return CodedBatch(np.array(files, dtype=np.int64), np.array(payloads, dtype=np.int64), images)

    def describe(self) -> str:
        return f"{ffmpeg_version()} {self.encoder} (decoder {self._decoder()}), {self.settings}, BT.601 limited range"


_X265_PARAMS = "info=0:keyint=1:open-gop=0:pools=1:frame-threads=1:log-level=error"
_X265_PRESET = "slow"
_AOM_CPU_USED = 6

CODECS: list[Codec] = [
    PillowCodec("jpeg", "JPEG (libjpeg-turbo, 4:2:0)", (2, 5, 10, 20, 35, 50, 70, 90), "JPEG",
                {"optimize": True, "subsampling": 2}, jpeg_payload_size,
                "optimize=True (per-image Huffman tables), baseline, 4:2:0", ("jpg", "libjpeg_turbo")),
    PillowCodec("webp", "WebP (libwebp, 4:2:0)", (0, 10, 30, 50, 70, 85, 95), "WEBP",
                {"method": 6}, webp_payload_size, "lossy, method=6, 4:2:0", ("webp", "webp")),
    PillowCodec("avif", "AVIF (libavif + aom, 4:4:4)", (0, 10, 25, 40, 55, 70, 85, 92), "AVIF",
                {"subsampling": "4:4:4", "speed": 6, "max_threads": 1}, avif_payload_size,
                "4:4:4, speed=6, full range", ("avif", "avif")),
    JpegXL("jxl", "JPEG XL (libjxl)", (0, 10, 25, 45, 65, 80, 90, 95), "JXL",
           {"effort": 7, "num_threads": 1}, jxl_payload_size, "lossy (VarDCT), effort=7, naked codestream"),
    FfmpegCodec("hevc", "HEVC intra (x265, 4:2:0)", (51, 45, 39, 33, 28, 23, 18, 13), "libx265", ("hevc",),
                "hevc", "yuv420p",
                lambda qp: ["-preset", _X265_PRESET, "-x265-params", f"{_X265_PARAMS}:qp={qp}"],
                split_hevc, f"preset {_X265_PRESET}, constant QP, all-intra, yuv420p 8-bit, info SEI off"),
    FfmpegCodec("av1", "AV1 intra (libaom, 4:4:4)", (63, 55, 47, 39, 31, 22, 12, 4), "libaom-av1",
                ("libdav1d", "libaom-av1"), "obu", "yuv444p",
                lambda crf: ["-usage", "allintra", "-cpu-used", str(_AOM_CPU_USED), "-crf", str(crf), "-b:v", "0"],
                split_obu, f"usage allintra, cpu-used {_AOM_CPU_USED}, CRF with b:v 0, yuv444p 8-bit"),
]
