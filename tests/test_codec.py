"""End to end with the shipped model set: encode, decode, strip, extract features, compare."""

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

import scalableface as sf
from scalableface import codec, container, modelset
from scalableface.cli import main
from scalableface.container import LayerType
from scalableface.errors import BitstreamError, InputError, ModelError


@pytest.fixture(scope="module")
def sfc(photo):
    return sf.encode(str(photo), layers="base")


def test_base_file_is_a_few_dozen_bytes_with_both_base_layers(sfc):
    f = container.parse(sfc)
    assert [l.type for l in f.layers] == [LayerType.IDENTITY, LayerType.APPEARANCE]
    assert len(f.layer(LayerType.IDENTITY).payload) <= 20
    assert len(sfc) < 200
    assert f.header.transform is not None and f.header.transform.photo_width == 512


def test_encoding_is_deterministic(photo, sfc):
    assert sf.encode(str(photo), layers="base") == sfc


def test_decode_base_gives_a_face_that_the_recognizer_accepts(photo, sfc):
    from scalableface.recognizer import describe

    d = sf.decode(sfc, layer="base")
    assert d.image.shape == (128, 128, 3) and d.image.dtype == np.uint8 and d.layer == "base"
    assert d.note is None
    # the full layer is absent from a base file: the best present layer is decoded, with a note
    full = sf.decode(sfc, layer="full")
    assert full.note and np.array_equal(full.image, d.image)
    crop = codec.align_image(str(photo)).crop
    dist = np.linalg.norm(describe(d.image[None])[0] - describe(crop[None])[0])
    assert dist < 0.8


def test_extract_features_equals_the_encoders_decoded_descriptor(photo, sfc):
    base = modelset.load().base
    rate = container.parse(sfc).header.base_rate
    ident = base.identity(rate)
    crop = codec.align_image(str(photo)).crop
    own = ident.reconstruct(ident.quantize(base.describe(crop[None])))[0]
    assert np.array_equal(sf.extract_features(sfc), own)
    # and from the image directly: the same path
    assert np.array_equal(sf.extract_features(str(photo)), own)


def test_stripped_file_decodes_to_the_same_base_image(sfc):
    base_only = container.truncate(sfc, LayerType.APPEARANCE)
    assert np.array_equal(sf.decode(base_only, layer="base").image, sf.decode(sfc, layer="base").image)
    ident = container.truncate(sfc, LayerType.IDENTITY)
    d = sf.decode(ident, layer="base")
    assert d.layer == "identity" and d.note
    assert np.array_equal(sf.extract_features(ident), sf.extract_features(sfc))


def test_rate_points_trade_bytes_for_fidelity(photo):
    base = modelset.load().base
    lo, hi = base.rates[0], base.rates[-1]
    small = container.parse(sf.encode(str(photo), layers="identity", base_rate=lo)).layer(LayerType.IDENTITY)
    large = container.parse(sf.encode(str(photo), layers="identity", base_rate=hi)).layer(LayerType.IDENTITY)
    assert len(small.payload) < len(large.payload)


def test_compare_same_and_different(photo, tmp_path):
    flipped = tmp_path / "flipped.png"
    Image.fromarray(skdata.astronaut()[:, ::-1]).save(flipped)
    c = sf.compare(sf.encode(str(photo)), str(flipped))
    assert c.same and c.distance < c.threshold


def test_unknown_model_is_refused_clearly(sfc):
    import binascii
    import struct

    bad = bytearray(sfc)
    bad[5:9] = b"\0\0\0\0"
    # fix the header CRC so that only the model id is wrong
    end = container.parse(sfc).header_size
    bad[end - 2 : end] = struct.pack(">H", binascii.crc_hqx(bytes(bad[: end - 2]), 0))
    with pytest.raises(ModelError, match="not installed"):
        sf.extract_features(bytes(bad))


def test_a_crop_size_the_model_does_not_decode_is_refused(sfc):
    f = container.parse(sfc)
    other = container.pack(replace(f.header, crop_size=256), [(l.type, l.payload) for l in f.layers])
    with pytest.raises(BitstreamError, match="256x256 crop"):
        sf.decode(other)
    assert np.array_equal(sf.extract_features(other), sf.extract_features(sfc))  # the descriptor needs no crop


def test_faceless_image_is_an_input_error(tmp_path):
    p = tmp_path / "grey.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(p)
    with pytest.raises(InputError, match="no face"):
        sf.encode(str(p))


def test_cli_round_trip(photo, tmp_path):
    r = CliRunner()
    out = tmp_path / "a.sfc"
    assert r.invoke(main, ["encode", str(photo), str(out)]).exit_code == 0
    res = r.invoke(main, ["decode", str(out), "-o", str(tmp_path / "a.png"), "--layer", "base"])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "a.png").size == (128, 128)
    res = r.invoke(main, ["extract-features", str(out), str(photo), "--format", "json"])
    rows = json.loads(res.output)
    assert len(rows) == 2 and np.allclose(rows[0]["descriptor"], rows[1]["descriptor"], atol=1e-6)
    res = r.invoke(main, ["extract-features", str(out), "-o", str(tmp_path / "f.npy")])
    assert res.exit_code == 0 and np.load(tmp_path / "f.npy").shape == (1, 128)
    assert (tmp_path / "f.files.txt").read_text().split() == [str(out)]
    res = r.invoke(main, ["encode", str(photo), str(tmp_path / "b.jpg")])
    assert res.exit_code == 2 and "looks like an image" in res.output
