"""Model registry: lookup by name and id, hash verification, no code execution on load."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from scalableface import models
from scalableface.errors import ModelError


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    w = tmp_path / "tiny.safetensors"
    save_file({"x": np.arange(6, dtype=np.float32)}, w, metadata={"config": json.dumps({"threshold": 0.5})})
    sha = models.sha256_file(w)
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"models": [
        {"name": "tiny-test", "file": w.name, "sha256": sha, "size": w.stat().st_size, "summary": "a test model", "kind": "codec"}]}))
    monkeypatch.setenv("SFACE_MODELS", str(tmp_path))
    return tmp_path


def test_find_by_name_and_short_id(model_dir):
    m = models.find("tiny-test")
    assert models.find(m.short_id.hex()) == m == models.find(m.short_id)
    assert m.short_id == models.model_id("tiny-test", m.sha256)
    tensors, config = models.load(m)
    assert np.array_equal(tensors["x"], np.arange(6)) and config == {"threshold": 0.5}


def test_unknown_model_is_refused_with_what_is_installed(model_dir):
    with pytest.raises(ModelError, match=r"model 00000000 is not installed \(installed: .*tiny-test"):
        models.find(b"\0\0\0\0")


def test_corrupted_weights_are_detected_by_their_hash(model_dir):
    w = model_dir / "tiny.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x40
    w.write_bytes(bytes(data))
    models.load_weights.cache_clear()
    with pytest.raises(ModelError, match="do not match their recorded hash"):
        models.load(models.find("tiny-test"))


def test_broken_manifest_is_a_model_error(tmp_path, monkeypatch):
    (tmp_path / "MANIFEST.json").write_text("{not json")
    monkeypatch.setenv("SFACE_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="unreadable model manifest"):
        models.codec_models()


def _add_model(folder, name, tensors, config, **entry):
    w = folder / f"{name}.safetensors"
    save_file(tensors, w, metadata={"config": json.dumps(config)})
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    manifest["models"].append({"name": name, "file": w.name, "sha256": models.sha256_file(w), "size": w.stat().st_size,
                               "summary": "", "kind": "codec", **entry})
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))


def test_a_model_that_extends_another_gets_both_tensor_sets_and_its_own_config_wins(model_dir):
    _add_model(model_dir, "child", {"y": np.ones(2, np.float32)}, {"threshold": 0.7, "extra": 1}, extends="tiny-test")
    tensors, config = models.load(models.find("child"))
    assert set(tensors) == {"x", "y"} and config == {"threshold": 0.7, "extra": 1}
    assert models.find("child").short_id != models.find("tiny-test").short_id
    _add_model(model_dir, "grandchild", {"z": np.ones(2, np.float32)}, {}, extends="child")
    assert models.base_of(models.find("grandchild")).name == "tiny-test"  # the end of the chain
    assert models.base_of(models.find("tiny-test")).name == "tiny-test"


def test_a_missing_or_circular_parent_is_a_model_error(model_dir):
    _add_model(model_dir, "orphan", {"y": np.ones(2, np.float32)}, {}, extends="not-installed")
    with pytest.raises(ModelError, match="not-installed is not installed"):
        models.load(models.find("orphan"))
    _add_model(model_dir, "a", {"y": np.ones(2, np.float32)}, {}, extends="b")
    _add_model(model_dir, "b", {"z": np.ones(2, np.float32)}, {}, extends="a")
    with pytest.raises(ModelError, match="extends itself"):
        models.load(models.find("a"))
    with pytest.raises(ModelError, match="extends itself"):
        models.base_of(models.find("a"))


def test_float16_tensors_are_widened_exactly_to_float32(model_dir):
    half = np.array([0.1, -2.5, 65504.0, 6e-8], dtype=np.float16)
    _add_model(model_dir, "halved", {"w": half, "t": np.arange(3, dtype=np.int32)}, {}, extends="tiny-test")
    tensors, _ = models.load(models.find("halved"))
    assert tensors["w"].dtype == np.float32 and np.array_equal(tensors["w"], half.astype(np.float32))
    assert tensors["t"].dtype == np.int32 and tensors["x"].dtype == np.float32
