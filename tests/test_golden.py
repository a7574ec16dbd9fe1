"""The golden files (tests/golden/<model>/, made once by tools/make_golden.py) decode with the
installed models to exactly the symbols and descriptors recorded beside them, and to the recorded
pixels. A model or code change that alters any of them fails here; a retrained model has a new id,
and its golden files are a new folder.

Pixels: each file is decoded on its own with torch on one thread, and must hash to the recorded
SHA-256. CPU convolution kernels differ between machines, so where the hash differs the crop may
still pass if no pixel is more than PIXEL_TOLERANCE grey levels from the recorded PNG."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scalableface import models
from scalableface.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
PIXEL_TOLERANCE = 1


def _tool():
    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "tools" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed(model_id: str) -> bool:
    try:
        models.find(model_id)
        return True
    except ModelError:
        return False


def _cases():
    for folder in sorted(p for p in GOLDEN.iterdir() if p.is_dir()):
        expected = json.loads((folder / "expected.json").read_text())
        for entry in expected["files"]:
            yield pytest.param(folder, entry, id=f"{folder.name}/{entry['file']}")


CASES = list(_cases())


def test_some_golden_files_have_an_installed_model():
    """A release whose models no golden file names must ship golden files of its own."""
    assert any(_installed(p.values[1]["model_id"]) for p in CASES)


@pytest.mark.parametrize("folder,entry", CASES)
def test_golden_file(folder, entry):
    if not _installed(entry["model_id"]):
        pytest.skip(f"model {entry['model']} ({entry['model_id']}) is not installed")
    data = (folder / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"], "the golden file itself changed"
    import torch

    threads = torch.get_num_threads()
    try:
        got, image = _tool().record(data)
    finally:
        torch.set_num_threads(threads)
    for key in ("model", "header", "layers", "symbols", "descriptor"):
        assert got[key] == entry[key], f"{key} differs from the golden record"
    assert got["decoded"]["layer"] == entry["decoded"]["layer"]
    if got["decoded"]["pixels_sha256"] != entry["decoded"]["pixels_sha256"]:
        reference = np.asarray(Image.open(folder / entry["png"]).convert("RGB"), np.int16)
        assert image.shape == reference.shape
        worst = int(np.abs(image.astype(np.int16) - reference).max())
        assert worst <= PIXEL_TOLERANCE, f"decoded pixels differ from the golden PNG by up to {worst} grey levels"


def test_golden_pngs_hold_the_recorded_pixels():
    tool = _tool()
    for p in CASES:
        folder, entry = p.values
        image = np.asarray(Image.open(folder / entry["png"]).convert("RGB"))
        assert tool.pixels_sha256(image) == entry["decoded"]["pixels_sha256"], entry["png"]


def test_make_golden_refuses_to_overwrite(tmp_path):
    (tmp_path / "sface-v2").mkdir()
    assert _tool().main(["--model", "sface-v2", "--out", str(tmp_path)]) == 1
    assert not any((tmp_path / "sface-v2").iterdir())
