"""No tracebacks and errors that name their file: a failing stdout, broken model weights, an unusable
cache folder, a corrupt image, names that need CSV quoting, a missing weights file."""

import csv
import errno
import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import identity_file
from scalableface import models
from scalableface.cli import main
from scalableface.errors import ModelError


def sface(*args, env=None, stdout=subprocess.PIPE):
    return subprocess.run([sys.executable, "-m", "scalableface", *args], stdout=stdout, stderr=subprocess.PIPE,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def sfc(tmp_path):
    p = tmp_path / "a.sfc"
    p.write_bytes(identity_file(1))
    return p


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_stdout_is_one_line(sfc, tmp_path):
    for args in (["info", str(sfc)], ["strip", "--layer", "identity", str(sfc), "-"], ["extract-features", str(sfc)],
                 ["compare", str(sfc), str(sfc)], ["models"]):
        with open("/dev/full", "wb") as full:
            r = sface(*args, stdout=full)
        err = r.stderr.decode()
        assert r.returncode == 1 and "Traceback" not in err and "Exception ignored" not in err, (args, err)
        assert err.strip().count("\n") == 0 and "standard output" in err, (args, err)


def _fake_models(folder, content: bytes | None):
    """A models folder whose one codec's weights are `content` (None: the file is missing), recorded
    with their true hash."""
    import hashlib

    folder.mkdir()
    if content is not None:
        (folder / "w.safetensors").write_bytes(content)
    digest = hashlib.sha256(content or b"").hexdigest()
    entry = {"name": "broken-v1", "file": "w.safetensors", "sha256": digest, "size": len(content or b"")}
    (folder / "MANIFEST.json").write_text(json.dumps({"models": [entry]}))
    return models.model_id("broken-v1", digest)


def test_weights_that_match_their_hash_but_are_not_safetensors(tmp_path):
    model = _fake_models(tmp_path / "m", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    from scalableface.container import Header, LayerType, pack

    files = tmp_path / "in"
    files.mkdir()
    for i in range(2):
        (files / f"{i}.sfc").write_bytes(pack(Header(model_id=model), [(LayerType.IDENTITY, b"\x01")]))
    r = sface("decode", str(files), "--out-dir", str(tmp_path / "out"), env={"SFACE_MODELS": str(tmp_path / "m")})
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err, err
    assert err.count("not a valid safetensors") == 2 and "0.sfc" in err and "1.sfc" in err
    with pytest.raises(ModelError, match="safetensors"):
        models.load_weights(tmp_path / "m" / "w.safetensors", models.sha256_file(tmp_path / "m" / "w.safetensors"))


def test_models_verify_names_a_missing_file(tmp_path):
    _fake_models(tmp_path / "m", None)
    r = sface("models", "--verify", env={"SFACE_MODELS": str(tmp_path / "m")})
    assert r.returncode == 1
    line = next(l for l in r.stdout.decode().splitlines() if l.startswith("broken-v1"))
    assert "MISSING" in line and "MISMATCH" not in line


def test_home_that_is_a_file(sfc, tmp_path):
    home = tmp_path / "home"
    home.write_text("a file where a folder should be")
    env = {"HOME": str(home), "SFACE_CACHE": ""}
    for args in (["info", str(sfc)], ["extract-features", str(sfc)], ["models"]):  # need no cache: work
        r = sface(*args, env=env)
        assert r.returncode == 0, (args, r.stderr)
    r = sface("eval", "base", "--data", str(tmp_path), env=env)
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err and str(home / ".cache" / "scalableface") in err, err


def test_a_read_only_cache_folder_is_named(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    if os.access(cache, os.W_OK):
        pytest.skip("running as root: permissions are not enforced")
    r = sface("eval", "base", "--data", str(tmp_path), env={"SFACE_CACHE": str(cache)})
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err and f"{cache} is not writable" in err, err


def test_errors_name_their_file(sfc, tmp_path):
    bad = tmp_path / "cut.sfc"
    bad.write_bytes(sfc.read_bytes()[:-1])
    photo = tmp_path / "broken.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not much of a JPEG")
    runner = CliRunner()
    r = runner.invoke(main, ["compare", str(sfc), str(bad)])
    assert r.exit_code == 1 and f"{bad}: truncated" in r.stderr
    r = runner.invoke(main, ["strip", "--layer", "identity", str(bad), str(tmp_path / "o.sfc")])
    assert r.exit_code == 1 and f"{bad}: truncated" in r.stderr
    r = runner.invoke(main, ["compare", str(photo), str(sfc)])
    assert r.exit_code == 1 and f"cannot read {photo}" in r.stderr and "<input>" not in r.stderr
    r = runner.invoke(main, ["extract-features", str(photo)])
    assert r.exit_code == 1 and f"cannot read {photo}" in r.stderr and "<input>" not in r.stderr


def test_csv_quotes_names(tmp_path):
    p = tmp_path / "a,b.sfc"
    p.write_bytes(identity_file(2))
    r = CliRunner().invoke(main, ["extract-features", str(p), "--format", "csv"])
    assert r.exit_code == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert len(rows) == 1 and len(rows[0]) == 129 and rows[0][0] == str(p)


def test_pillow_warnings_do_not_leak(tmp_path, monkeypatch):
    from scalableface.images import load_rgb

    p = tmp_path / "big.png"
    Image.new("RGB", (64, 64), (200, 100, 50)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 64 - 1)  # over the limit, under twice it: a warning
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        image = load_rgb(p)
    assert image.shape == (64, 64, 3) and not seen


def test_extract_features_writes_both_outputs_or_neither(tmp_path, monkeypatch):
    p = tmp_path / "a.sfc"
    p.write_bytes(identity_file(3))
    out = tmp_path / "G.npy"
    out.write_bytes(b"an old gallery")
    runner = CliRunner()
    r = runner.invoke(main, ["extract-features", str(p), "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.stderr
    assert not (tmp_path / "G.files.txt").exists() and out.read_bytes() == b"an old gallery"
    out.unlink()
    real_link = os.link
    calls = []

    def full_disk_on_second(tmp, target):  # files.write_files names each output with a hard link
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_link(tmp, target)

    monkeypatch.setattr(os, "link", full_disk_on_second)
    r = runner.invoke(main, ["extract-features", str(p), "-o", str(out)])
    assert r.exit_code == 1 and "No space left" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.sfc"]  # neither output, no temporary
    monkeypatch.setattr(os, "link", real_link)
    r = runner.invoke(main, ["extract-features", str(p), "-o", str(out)])
    assert r.exit_code == 0
    assert np.load(out).shape == (1, 128) and (tmp_path / "G.files.txt").read_text() == f"{p}\n"
