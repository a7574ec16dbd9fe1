"""The enhancement layer with the shipped model: qualities, layering, paste-back, corrupt payloads."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import scalableface as sf
from scalableface import codec, container, modelset
from scalableface.cli import main
from scalableface.container import LayerType
from scalableface.errors import BitstreamError, InputError, SfaceError


@pytest.fixture(scope="module")
def crop(photo):
    return codec.align_image(str(photo)).crop


@pytest.fixture(scope="module")
def qualities():
    return modelset.load().enhancement.qualities


@pytest.fixture(scope="module")
def files(photo, qualities):
    return {q: sf.encode(str(photo), quality=q) for q in range(1, qualities + 1)}


def psnr(a, b):
    return 10 * np.log10(255 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_the_default_encode_writes_all_three_layers(photo, files):
    data = sf.encode(str(photo))
    f = container.parse(data)
    assert [l.type for l in f.layers] == [LayerType.IDENTITY, LayerType.APPEARANCE, LayerType.ENHANCEMENT]
    assert data == files[f.header.quality]


def test_higher_quality_costs_more_bytes_and_decodes_closer(files, crop):
    sizes = [len(files[q]) for q in sorted(files)]
    fidelity = [psnr(sf.decode(files[q]).image, crop) for q in sorted(files)]
    assert len(sizes) >= 5
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert all(b > a for a, b in zip(fidelity, fidelity[1:]))
    base = psnr(sf.decode(files[1], layer="base").image, crop)
    assert fidelity[-1] > base + 3


def test_every_quality_decodes_to_the_full_layer_with_its_quality_in_the_header(files):
    for q, data in files.items():
        d = sf.decode(data)
        assert d.layer == "full" and d.note is None and d.header.quality == q
        assert d.image.shape == (128, 128, 3) and d.image.dtype == np.uint8


def test_base_layer_of_a_full_file_equals_its_stripped_copy(files):
    data = files[3]
    stripped = container.truncate(data, LayerType.APPEARANCE)
    assert len(stripped) < len(data)
    a, b = sf.decode(data, layer="base"), sf.decode(stripped, layer="base")
    assert a.layer == b.layer == "base"
    np.testing.assert_array_equal(a.image, b.image)
    full_of_stripped = sf.decode(stripped, layer="full")
    assert full_of_stripped.note and np.array_equal(full_of_stripped.image, a.image)


def test_batch_decode_matches_one_by_one_within_a_grey_level(files):
    batch = codec.decode_many(list(files.values()))
    for d, data in zip(batch, files.values()):
        single = sf.decode(data)
        assert np.abs(d.image.astype(int) - single.image).max() <= 1


def test_a_corrupted_enhancement_payload_is_an_error_not_garbage(files):
    f = container.parse(files[4])
    enh = bytearray(f.layer(LayerType.ENHANCEMENT).payload)
    enh[10] ^= 0x55  # inside the range coder's words; the layer CRC is recomputed below
    payloads = [(l.type, l.payload) for l in f.layers[:2]] + [(LayerType.ENHANCEMENT, bytes(enh))]
    with pytest.raises(BitstreamError, match="enhancement"):
        sf.decode(container.pack(f.header, payloads))
    bad_length = [(l.type, l.payload) for l in f.layers[:2]] + [(LayerType.ENHANCEMENT, bytes(enh[:-1]))]
    with pytest.raises(BitstreamError, match="multiple of 4"):
        sf.decode(container.pack(f.header, bad_length))


def test_a_quality_the_model_lacks_is_refused(photo, files, qualities):
    f = container.parse(files[2])
    header = container.Header(**{**f.header.__dict__, "quality": qualities + 1})
    if qualities < 15:
        with pytest.raises(BitstreamError, match="quality"):
            sf.decode(container.pack(header, [(l.type, l.payload) for l in f.layers]))
    else:  # the model fills the header's 4-bit field: no file can name a quality it lacks
        with pytest.raises(ValueError, match="quality"):
            container.pack(header, [(l.type, l.payload) for l in f.layers])
    with pytest.raises(SfaceError, match="quality"):
        sf.encode(str(photo), quality=qualities + 1)


def test_paste_into_puts_the_face_back_into_its_photo(photo, files, crop):
    original = np.asarray(Image.open(photo).convert("RGB"))
    d = sf.decode(files[max(files)])
    restored = codec.paste_into(d, str(photo))
    assert restored.shape == original.shape
    changed = np.any(restored != original, axis=2)
    assert 0 < changed.mean() < 0.25  # only the face region changes
    ys, xs = np.nonzero(changed)
    assert 150 < xs.mean() < 300 and 50 < ys.mean() < 200  # the astronaut's face
    with pytest.raises(InputError, match="photo is"):
        codec.paste_into(d, original[:100])


def test_cli_encode_quality_decode_and_paste_into(tmp_path, photo):
    runner = CliRunner()
    out = tmp_path / "face.sfc"
    r = runner.invoke(main, ["encode", str(photo), str(out), "-q", "2"])
    assert r.exit_code == 0, r.output
    assert container.parse(out.read_bytes()).header.quality == 2
    r = runner.invoke(main, ["decode", str(out), "--paste-into", str(photo), "-o", str(tmp_path / "restored.jpg")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "restored.jpg").size == (512, 512)
    r = runner.invoke(main, ["encode", str(photo), str(tmp_path / "x.sfc"), "-q", "2", "--layers", "base"])
    assert r.exit_code != 0 and "--layers full" in r.output
    aligned = tmp_path / "aligned.sfc"
    runner.invoke(main, ["encode", str(photo), str(aligned), "--no-transform"])
    r = runner.invoke(main, ["decode", str(aligned), "--paste-into", str(photo), "-o", str(tmp_path / "r2.png")])
    assert r.exit_code == 1 and "cannot be pasted back" in r.output
