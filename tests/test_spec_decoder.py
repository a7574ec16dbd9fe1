"""The decoder written from bitstream_spec.md alone (tools/spec_decoder.py, which imports nothing of
the package) agrees with the package: on the golden files' symbols and descriptors, on the
checkerboard configuration of the enhancement layer, and, for the range coder of section 3.3, with
constriction word for word."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import constriction
import numpy as np
import pytest
from PIL import Image

from scalableface import models
from scalableface.errors import ModelError
from scalableface.layers.enhance import load_enhancement, SCALE_TABLE

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sd = _load("spec_decoder", ROOT / "tools" / "spec_decoder.py")


def _v2_tables() -> list[np.ndarray]:
    tensors, _ = models.load(models.find("sface-v2"))
    return [np.asarray(row[:n], np.int64) for p in ("enhancement.y", "enhancement.z")
            for row, n in zip(tensors[f"{p}.table_freqs"], tensors[f"{p}.table_lengths"])]


def _golden():
    for folder in sorted(p for p in GOLDEN.iterdir() if p.is_dir()):
        for entry in json.loads((folder / "expected.json").read_text())["files"]:
            yield pytest.param(folder, entry, id=f"{folder.name}/{entry['file']}")


@pytest.mark.parametrize("folder,entry", list(_golden()))
def test_spec_decoder_reads_the_golden_files(folder, entry):
    try:
        models.find(entry["model_id"])
    except ModelError:
        pytest.skip(f"model {entry['model']} is not installed")
    got = sd.decode((folder / entry["file"]).read_bytes(), ROOT / "models")
    assert got["symbols"] == entry["symbols"]
    assert got["descriptor"] == entry["descriptor"]
    reference = np.asarray(Image.open(folder / entry["png"]).convert("RGB"), np.int16)
    assert np.abs(got["image"].astype(np.int16) - reference).max() <= 1  # float32 networks (spec section 8)


def test_the_specs_scale_table_is_the_codecs():
    """Section 3.2 lists the 64 scales as decimals that read back to the codec's float64 values."""
    text = (ROOT / "bitstream_spec.md").read_text()
    block = text.split("<!-- scale table -->")[1]
    listed = np.array([float(v) for v in re.findall(r"\d+\.\d+(?:e[-+]?\d+)?", block)])
    assert listed.tolist() == SCALE_TABLE.tolist()
    assert sd.SCALE_TABLE.tolist() == SCALE_TABLE.tolist()
    # and they are 3.2's formula, to the last bit or one off it, whichever exp evaluates it
    formula = np.exp(np.linspace(np.log(0.11), np.log(256), 64))
    np.testing.assert_array_max_ulp(SCALE_TABLE, formula, maxulp=1)


def test_coder_cdf_is_constrictions_quantization():
    """Decoding random words with constriction's Categorical(f / 2**16, perfect=False) and with the
    spec's 24-bit cumulative table gives the same symbols (and the same refusals)."""
    tabs = _v2_tables()
    cmodels = [constriction.stream.model.Categorical(f.astype(np.float64) / 65536, perfect=False) for f in tabs]
    cdfs = [sd.coder_cdf(f.tolist()) for f in tabs]
    rng = np.random.default_rng(1)
    refused = 0
    for trial in range(300):
        words = [int(w) for w in rng.integers(0, 1 << 32, size=int(rng.integers(0, 8)))]
        if trial % 5 == 0 and len(words) >= 2:  # the one way a stream can be invalid: a first quantile of 2**24
            words[:2] = [0xFFFFFFFF, int(rng.integers(0xFF000000, 1 << 32))]
        which = rng.integers(0, len(tabs), size=int(rng.integers(1, 200)))
        theirs = constriction.stream.queue.RangeDecoder(np.array(words, np.uint32))
        try:
            a = [int(theirs.decode(cmodels[i], 1)[0]) for i in which]
        except (ValueError, RuntimeError, AssertionError):
            a = None
        ours = sd.RangeDecoder(words)
        try:
            b = [ours.decode(cdfs[i]) for i in which]
        except sd.SpecError:
            b = None
        assert a == b, trial
        refused += a is None
    assert refused > 0


def test_range_encoder_words_are_constrictions():
    tabs = _v2_tables()
    cmodels = [constriction.stream.model.Categorical(f.astype(np.float64) / 65536, perfect=False) for f in tabs]
    cdfs = [sd.coder_cdf(f.tolist()) for f in tabs]
    rng = np.random.default_rng(0)
    for trial in range(100):
        enc = constriction.stream.queue.RangeEncoder()
        coded = []
        for i in rng.integers(0, len(tabs), size=[0, 1, 2][trial] if trial < 3 else int(rng.integers(3, 1500))):
            f = tabs[i]
            s = int(rng.choice(len(f), p=f / f.sum())) if rng.random() < 0.9 else int(rng.integers(len(f)))
            enc.encode(np.array([s], np.int32), cmodels[i])
            coded.append((s, cdfs[i]))
        words = sd.range_encode(coded)
        assert enc.get_compressed().tolist() == words, trial
        dec = sd.RangeDecoder(words)
        assert [dec.decode(c) for _, c in coded] == [s for s, _ in coded]


def test_spec_decoder_reads_the_checkerboard_configuration():
    """A 3-stage checkerboard network (as sface-v3 is; conditional, the one mode no shipped model
    uses) with untrained weights and sface-v2's tables: the spec's two coding passes give the codec's
    symbols, and its synthesis the codec's pixels."""
    import torch

    from scalableface.layers.enhance import EnhanceNet

    torch.manual_seed(0)
    tensors, _ = models.load(models.find("sface-v2"))
    shape = {"mode": "conditional", "n": 16, "m": 24, "nz": 32, "ctx": 8, "qualities": 3, "stages": 3, "context": "checkerboard"}
    net = EnhanceNet(shape["mode"], shape["n"], shape["m"], shape["nz"], shape["ctx"], shape["qualities"],
                     shape["stages"], shape["context"])
    with torch.no_grad():
        net.log_gains.add_(5.0)  # wider latents, so that many symbols and tables occur
    model = {k: v for k, v in tensors.items() if k.startswith(("enhancement.y.", "enhancement.z."))}
    model |= {f"enhancement.net.{k}": v.numpy() for k, v in net.state_dict().items()}
    config = {"enhancement": shape}
    codec = load_enhancement(model, config)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    bases = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    for quality in (1, 3):
        payloads = codec.compress(crops, bases, quality)
        images = codec.decompress(payloads, [quality] * len(payloads), bases)
        for payload, base, image in zip(payloads, bases, images):
            latent = codec.decode_latent(payload, quality, 128)
            z, y, y_hat = sd.enhancement_symbols(payload, quality, 128, model, config)
            assert len(np.unique(y)) > 10
            assert np.array_equal(z, latent.z_symbols) and np.array_equal(y, latent.y_symbols)
            ours = sd.synthesise(y_hat, base, model, config).astype(np.int16)
            assert np.abs(ours - image).max() <= 1
