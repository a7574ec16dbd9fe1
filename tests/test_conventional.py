"""Conventional codec wrappers of the rate-fidelity benchmark: container parsers on hand-made
files and streams, and every available codec round-tripping small synthetic face-sized images."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from scalableface.eval import conventional as cv

CODEC_NAMES = ["jpeg", "webp", "avif", "jxl", "hevc", "av1"]
BY_NAME = {codec.name: codec for codec in cv.CODECS}


def _smooth_images(count: int = 3) -> np.ndarray:
    """Smooth colour gradients with a mild low-frequency pattern, different per image."""
    y, x = np.mgrid[0:128, 0:128] / 127.0
    images = []
    for k in range(count):
        pattern = 20 * np.sin(2 * np.pi * (x * (2 + k) + y * 1.5)) * np.cos(2 * np.pi * y * (1 + k))
        r = 60 + 140 * x + pattern
        g = 40 + 120 * y - pattern / 2
        b = 180 - 90 * x * y + 30 * k
        images.append(np.stack([r, g, b], axis=2))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def _available(name: str) -> cv.Codec:
    codec = BY_NAME[name]
    reason = codec.unavailable()
    if reason is not None:
        pytest.skip(f"{name} unavailable: {reason}")
    return codec


def test_registry_order_and_settings():
    assert [c.name for c in cv.CODECS] == CODEC_NAMES
    for codec in cv.CODECS:
        assert len(codec.qualities) >= 6
        assert codec.label and "\n" not in codec.describe()


def test_bpp():
    assert np.allclose(cv.bpp([2048, 0]), [1.0, 0.0])
    assert cv.bpp(np.array([100]), height=10, width=10)[0] == pytest.approx(8.0)


# --- parsers ------------------------------------------------------------------------------------


def test_jpeg_payload_counts_scan_data_with_stuffing_and_restarts():
    app0 = b"\xff\xe0\x00\x10" + b"JFIF\x00" + bytes(9)
    dqt = b"\xff\xdb\x00\x04\x00\x01"
    sos = b"\xff\xda\x00\x08" + bytes(6)
    scan1 = b"\x12\xff\x00\x34\xff\xd0\x56"  # stuffed 0xFF00 and RST0 stay in the scan
    scan2 = b"\xab\xcd"
    data = b"\xff\xd8" + app0 + dqt + sos + scan1 + sos + scan2 + b"\xff\xd9"
    assert cv.jpeg_payload_size(data) == len(scan1) + len(scan2)
    with pytest.raises(cv.CodecError):
        cv.jpeg_payload_size(data[:-2])
    with pytest.raises(cv.CodecError):
        cv.jpeg_payload_size(b"RIFF" + data)


def _chunk(fourcc: bytes, body: bytes) -> bytes:
    return fourcc + len(body).to_bytes(4, "little") + body + b"\x00" * (len(body) & 1)


def test_webp_payload_is_the_vp8_chunk():
    chunks = _chunk(b"VP8X", bytes(10)) + _chunk(b"VP8 ", b"\x01\x02\x03\x04\x05") + _chunk(b"EXIF", b"abcd")
    data = b"RIFF" + (4 + len(chunks)).to_bytes(4, "little") + b"WEBP" + chunks
    assert cv.webp_payload_size(data) == 5
    with pytest.raises(cv.CodecError):
        cv.webp_payload_size(b"RIFF\x04\x00\x00\x00WEBP" + _chunk(b"EXIF", b"ab"))


def _box(kind: bytes, body: bytes) -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


def test_avif_payload_is_the_mdat_content():
    large = (1).to_bytes(4, "big") + b"mdat" + (16 + 5).to_bytes(8, "big") + bytes(5)
    data = _box(b"ftyp", b"avif" + bytes(4)) + _box(b"meta", bytes(4)) + _box(b"mdat", bytes(20)) + large
    assert cv.avif_payload_size(data) == 25
    with pytest.raises(cv.CodecError):
        cv.avif_payload_size(_box(b"ftyp", bytes(8)))


def test_jxl_payload_is_the_codestream():
    naked = b"\xff\x0a" + bytes(30)
    assert cv.jxl_payload_size(naked) == len(naked)
    head = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + _box(b"ftyp", b"jxl " + bytes(8))
    parts = _box(b"jxlp", bytes(4) + bytes(10)) + _box(b"Exif", bytes(7)) + _box(b"jxlp", bytes(4) + bytes(6))
    assert cv.jxl_payload_size(head + parts) == 16
    assert cv.jxl_payload_size(head + _box(b"jxlc", bytes(12))) == 12
    with pytest.raises(cv.CodecError):
        cv.jxl_payload_size(b"\x89PNG" + bytes(20))


def _nal(kind: int, body: bytes, long_start: bool = True) -> bytes:
    return (b"\x00\x00\x00\x01" if long_start else b"\x00\x00\x01") + bytes([kind << 1, 1]) + body


def test_split_hevc_groups_slices_and_prepends_parameter_sets():
    params = _nal(32, b"\xaa") + _nal(33, b"\xbb") + _nal(34, b"\xcc")
    first = _nal(19, b"\x80\x11\x22")
    second = _nal(1, b"\x80\x33", long_start=False) + _nal(1, b"\x00\x44\x55", long_start=False)
    pictures = cv.split_hevc(params + first + second)
    assert [p.payload for p in pictures] == [5, 4 + 5]  # NAL headers counted, start codes not
    assert pictures[0].file == params + first
    assert pictures[1].file == params + second


def _obu(kind: int, body: bytes) -> bytes:
    size = len(body)
    leb = bytes([size]) if size < 128 else bytes([(size & 0x7F) | 0x80, size >> 7])
    return bytes([(kind << 3) | 0x2]) + leb + body


def test_split_obu_cuts_temporal_units_and_repeats_the_sequence_header():
    td, sh = _obu(2, b""), _obu(1, b"\x01\x02\x03")
    frame1, frame2 = _obu(6, bytes(4)), _obu(6, bytes(130))  # the second has a 2-byte size field
    pictures = cv.split_obu(td + sh + frame1 + td + frame2)
    assert [p.payload for p in pictures] == [1 + 4, 1 + 130]
    assert pictures[0].file == td + sh + frame1
    assert pictures[1].file == td + sh + frame2
    with pytest.raises(cv.CodecError):
        cv.split_obu(frame1)


# --- availability -------------------------------------------------------------------------------


def test_missing_tools_are_reported(monkeypatch):
    monkeypatch.setattr(cv.shutil, "which", lambda name: None)
    assert BY_NAME["hevc"].unavailable() == "ffmpeg not found"
    assert BY_NAME["av1"].unavailable() == "ffmpeg not found"

    monkeypatch.setattr(cv.shutil, "which", lambda name: "/usr/bin/" + name)
    listing = {"encoders": " V....D libx265   libx265 H.265\n", "decoders": " V..... hevc   HEVC\n"}
    monkeypatch.setattr(cv, "_ffmpeg_list", listing.get)
    assert BY_NAME["hevc"].unavailable() is None
    assert BY_NAME["av1"].unavailable() == "ffmpeg lacks libaom-av1"

    monkeypatch.setitem(sys.modules, "pillow_jxl.JpegXLImagePlugin", None)  # import now fails
    assert BY_NAME["jxl"].unavailable() == "pillow-jxl-plugin not installed"

    monkeypatch.setattr(cv.features, "check", lambda feature: False)
    assert BY_NAME["webp"].unavailable() == "Pillow built without webp"
    assert BY_NAME["avif"].unavailable() == "Pillow built without avif"


def test_ffmpeg_failure_raises_with_stderr():
    codec = _available("hevc")
    with pytest.raises(cv.CodecError, match="ffmpeg failed"):
        codec.decode_stream(b"\x00\x00\x00\x01\x40\x01garbage", 1)


# --- codecs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_codec_round_trip_and_rate_order(name):
    codec = _available(name)
    images = _smooth_images()
    low, high = (codec.run(images, q) for q in (codec.qualities[1], codec.qualities[-2]))
    for coded in (low, high):
        assert coded.images.shape == images.shape and coded.images.dtype == np.uint8
        assert coded.file_bytes.shape == coded.payload_bytes.shape == (len(images),)
        assert np.all(coded.payload_bytes > 0)
        assert np.all(coded.payload_bytes <= coded.file_bytes)
    assert np.all(high.payload_bytes > low.payload_bytes)
    psnr_low, psnr_high = _psnr(images, low.images), _psnr(images, high.images)
    assert psnr_high > psnr_low + 1.0
    assert psnr_high > 38.0
    # the decoded images come back in order
    for k in range(len(images)):
        errors = [_psnr(image, high.images[k]) for image in images]
        assert int(np.argmax(errors)) == k


@pytest.mark.parametrize("name", ["hevc", "av1"])
def test_video_codec_colour_conversion_is_nearly_lossless(name):
    codec = _available(name)
    images = _smooth_images(1)
    assert _psnr(images, codec.run(images, 0).images) > 45.0


@pytest.mark.parametrize("name", ["hevc", "av1"])
def test_video_codec_standalone_files_decode_like_the_batch(name, monkeypatch):
    codec = _available(name)
    images = _smooth_images(3)
    quality = codec.qualities[3]
    pictures = codec.split(codec.encode_stream(images, quality))
    monkeypatch.setattr(cv, "FFMPEG_CHUNK", 2)  # the batch is also cut into chunks
    batch = codec.run(images, quality)
    assert list(batch.file_bytes) == [len(p.file) for p in pictures]
    assert list(batch.payload_bytes) == [p.payload for p in pictures]
    alone = codec.decode_stream(pictures[2].file, 1)
    assert np.array_equal(alone[0], batch.images[2])
