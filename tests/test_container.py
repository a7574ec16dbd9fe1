import struct

import pytest

from scalableface.container import (
    Header,
    LayerType,
    Transform,
    pack,
    pack_layer,
    parse,
    truncate,
)
from scalableface.errors import BitstreamError

ID, APP, ENH = LayerType.IDENTITY, LayerType.APPEARANCE, LayerType.ENHANCEMENT


def sample(transform=True, enh=40):
    t = Transform(512, 384, (1.5, -0.25, 100.0, 0.25, 1.5, 80.0)) if transform else None
    h = Header(model_id=b"\x12\x34\x56\x78", base_rate=2, quality=3, transform=t)
    layers = [(ID, bytes(range(10))), (APP, bytes(range(100, 160)))]
    if enh:
        layers.append((ENH, bytes((i * 7) % 256 for i in range(enh))))
    return h, layers, pack(h, layers)


def test_round_trip_keeps_every_field():
    h, layers, data = sample()
    f = parse(data)
    assert f.header == Header(
        model_id=h.model_id, base_rate=2, quality=3,
        transform=Transform(512, 384, tuple(struct.unpack(">6f", struct.pack(">6f", *h.transform.matrix)))),
    )
    assert [(l.type, l.payload) for l in f.layers] == layers
    assert f.size == len(data)


def test_base_only_header_is_compact():
    h, _, data = sample(transform=False, enh=0)
    f = parse(data)
    assert f.header_size == 14
    # 10-byte identity payload: 1 type + 1 length + 4 CRC of framing
    assert f.layers[0].size == 16


def test_large_layer_uses_multibyte_length():
    h = Header(model_id=b"abcd")
    payloads = [(ID, b"x"), (APP, b"y" * 300), (ENH, b"z" * 70000)]
    f = parse(pack(h, payloads))
    assert [len(l.payload) for l in f.layers] == [1, 300, 70000]


def layer_ends(data):
    return {l.offset + l.size for l in parse(data).layers}


@pytest.mark.parametrize("transform", [True, False])
def test_every_truncation_is_an_error_or_a_valid_prefix(transform):
    _, layers, data = sample(transform)
    ends = layer_ends(data)
    for cut in range(len(data)):
        if cut in ends:
            f = parse(data[:cut])
            assert f.layers[-1].offset + f.layers[-1].size == cut
            assert [l.payload for l in f.layers] == [p for _, p in layers][: len(f.layers)]
        else:
            with pytest.raises(BitstreamError):
                parse(data[:cut])


@pytest.mark.parametrize("transform", [True, False])
def test_every_single_bit_flip_is_detected(transform):
    _, _, data = sample(transform)
    for pos in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            with pytest.raises(BitstreamError):
                parse(bytes(bad))


def test_strip_is_a_pure_truncation():
    _, _, data = sample()
    base = truncate(data, APP)
    assert data.startswith(base)
    assert [l.type for l in parse(base).layers] == [ID, APP]
    ident = truncate(data, ID)
    assert [l.type for l in parse(ident).layers] == [ID]
    assert truncate(base, APP) == base


def test_oversized_and_overlong_length_fields_are_refused_before_reading():
    h, _, data = sample(transform=False, enh=0)
    head = data[:14]
    huge = head + bytes([ID]) + b"\xff\xff\x7f" + b"\0" * 4 + b"\0" * 8
    with pytest.raises(BitstreamError, match="limit"):
        parse(huge)
    overlong = head + bytes([ID]) + b"\x80\x80\x80\x01" + b"\0" * 8
    with pytest.raises(BitstreamError, match="longer than"):
        parse(overlong)
    past_end = head + bytes([ID]) + b"\x80\x40" + b"\0" * 4 + b"abc"
    with pytest.raises(BitstreamError, match="truncated identity layer"):
        parse(past_end)
    nonminimal = head + bytes([ID]) + b"\x81\x00" + b"\0" * 8
    with pytest.raises(BitstreamError, match="non-minimal"):
        parse(nonminimal)


def test_errors_name_what_is_wrong():
    h, _, data = sample(transform=False)
    with pytest.raises(BitstreamError, match="not an .sfc file"):
        parse(b"GIF89a" + data)
    with pytest.raises(BitstreamError, match="major version 2"):
        parse(data[:3] + b"\x20" + data[4:])
    with pytest.raises(BitstreamError, match="header CRC"):
        parse(data[:6] + b"\xff" + data[7:])
    with pytest.raises(BitstreamError, match="trailing bytes"):
        parse(data + b"\x01")
    with pytest.raises(BitstreamError, match="no layer"):
        parse(data[:14])
    with pytest.raises(BitstreamError, match="out of order"):
        parse(data[:14] + pack_layer(APP, b"abc"))
    with pytest.raises(BitstreamError, match="appearance layer CRC"):
        f = parse(data)
        app = f.layer(APP)
        bad = bytearray(data)
        bad[app.offset + app.size - 1] ^= 0xFF
        parse(bytes(bad))


def test_writer_refuses_what_the_reader_would_refuse():
    with pytest.raises(ValueError):
        pack(Header(model_id=b"abcd"), [(APP, b"")])
    with pytest.raises(ValueError):
        pack(Header(model_id=b"abcd", crop_size=100), [(ID, b"")])
    with pytest.raises(ValueError):
        pack(Header(model_id=b"abcd", base_rate=0), [(ID, b"")])
