"""Honest decoding: damage above a layer does not cost the layers below it, a damaged enhancement
layer is an error unless salvaged (and then said), and header values or payloads the model cannot
serve are refused."""

import numpy as np
import pytest
from click.testing import CliRunner

import scalableface as sf
from conftest import identity_file
from scalableface import container
from scalableface.cli import main
from scalableface.container import LayerType
from scalableface.errors import BitstreamError, SalvageableError


@pytest.fixture(scope="module")
def full(crop_folder):
    return sf.encode(str(crop_folder / "00.png"), aligned=True, quality=1)


@pytest.fixture(scope="module")
def bad_enhancement(full):
    f = container.parse(full)
    enh = f.layer(LayerType.ENHANCEMENT)
    data = bytearray(full)
    data[enh.offset + enh.size - 1] ^= 0x40  # a payload byte: the layer's CRC no longer matches
    with pytest.raises(BitstreamError, match="enhancement layer CRC"):
        container.parse(bytes(data))
    return bytes(data)


def test_lower_layers_survive_a_bad_enhancement_crc(full, bad_enhancement, tmp_path):
    assert np.array_equal(sf.decode(bad_enhancement, layer="base").image, sf.decode(full, layer="base").image)
    assert np.array_equal(sf.extract_features(bad_enhancement), sf.extract_features(full))
    assert container.truncate(bad_enhancement, LayerType.APPEARANCE) == container.truncate(full, LayerType.APPEARANCE)
    p = tmp_path / "bad.sfc"
    p.write_bytes(bad_enhancement)
    for args in (["strip", str(p), str(tmp_path / "base.sfc")], ["extract-features", str(p)],
                 ["decode", str(p), "--layer", "base", "-o", str(tmp_path / "base.png")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, (args, r.stderr)


def test_a_damaged_enhancement_layer_is_an_error_unless_salvaged(full, bad_enhancement, tmp_path):
    with pytest.raises(SalvageableError, match="base layer below it is intact"):
        sf.decode(bad_enhancement)
    d = sf.decode(bad_enhancement, salvage=True)
    assert d.layer == "base" and "CRC mismatch" in d.note and "salvaged" in d.note
    assert np.array_equal(d.image, sf.decode(full, layer="base").image)
    p = tmp_path / "bad.sfc"
    p.write_bytes(bad_enhancement)
    r = CliRunner().invoke(main, ["decode", str(p), "-o", str(tmp_path / "a.png")])
    assert r.exit_code == 1 and "--salvage" in r.stderr and not (tmp_path / "a.png").exists()
    r = CliRunner().invoke(main, ["decode", str(p), "-o", str(tmp_path / "a.png"), "--salvage"])
    assert r.exit_code == 0 and "salvaged the base layer" in r.stderr and (tmp_path / "a.png").exists()


def test_an_enhancement_layer_that_does_not_decode_can_be_salvaged(full):
    f = container.parse(full)
    payloads = [(l.type, l.payload) for l in f.layers]
    payloads[2] = (LayerType.ENHANCEMENT, payloads[2][1][:2] + bytes(len(payloads[2][1]) - 2))  # a valid CRC, wrong words
    data = container.pack(f.header, payloads)
    with pytest.raises(BitstreamError, match="enhancement layer"):
        sf.decode(data)
    d = sf.decode_many([data, full], salvage=True)
    assert d[0].layer == "base" and "salvaged" in d[0].note and d[1].layer == "full" and d[1].note is None


def test_header_values_the_model_cannot_serve_are_refused(full):
    f = container.parse(full)
    layers = [(l.type, l.payload) for l in f.layers]
    h = f.header
    for bad, match in ((container.Header(h.model_id, crop_size=2040, base_rate=h.base_rate, quality=h.quality), "2040x2040 crop"),
                       (container.Header(h.model_id, crop_size=h.crop_size, base_rate=15, quality=h.quality), "base rate point 15")):
        data = container.pack(bad, layers)
        calls = [lambda: sf.decode(data, layer="base"), lambda: sf.decode(data)]
        if "rate" in match:  # the crop size matters only to pixels (bitstream_spec.md, 1.2)
            calls.append(lambda: sf.extract_features(data))
        for call in calls:
            with pytest.raises(BitstreamError, match=match):
                call()


def test_payloads_that_are_not_the_models_code_are_refused():
    f = container.parse(identity_file(4))
    for payload in (b"", f.layers[0].payload + b"\x00"):
        data = container.pack(f.header, [(LayerType.IDENTITY, payload)])
        with pytest.raises(BitstreamError, match="identity layer: the payload is not the code"):
            sf.extract_features(data)
