"""Shell use over folders: bad inputs are reported by name and skipped, nothing is overwritten or left half-written."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image
from skimage import data as skdata

from scalableface.container import parse


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    (d / "sub").mkdir()
    Image.fromarray(skdata.astronaut()).save(d / "a.jpg", quality=90)
    Image.fromarray(skdata.astronaut()[:, ::-1]).save(d / "sub" / "b.png")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(d / "grey.jpg")
    (d / "corrupt.jpg").write_bytes((d / "a.jpg").read_bytes()[:1500])
    (d / "text.jpg").write_text("not an image")
    (d / "empty.jpg").write_bytes(b"")
    return d


def sface(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "scalableface", *args], input=stdin, capture_output=True)


def test_folder_with_bad_inputs(folder, tmp_path):
    out = tmp_path / "out"
    r = sface("encode", str(folder), "--out-dir", str(out), "-j", "2", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["done"] == 2
    assert sorted(os.path.basename(f["input"]) for f in report["failed"]) == ["corrupt.jpg", "empty.jpg", "grey.jpg", "text.jpg"]
    err = r.stderr.decode()
    for name in ["corrupt.jpg", "empty.jpg", "grey.jpg", "text.jpg"]:
        assert name in err
    assert "Traceback" not in err
    made = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert made == ["a.sfc", "sub/b.sfc"]
    for p in out.rglob("*.sfc"):
        parse(p.read_bytes())
    # a second run refuses to overwrite, and --force does
    r = sface("encode", str(folder / "a.jpg"), "--out-dir", str(out))
    assert r.returncode == 1 and b"exists" in r.stderr
    r = sface("encode", str(folder / "a.jpg"), "--out-dir", str(out), "--force")
    assert r.returncode == 0


def test_output_folder_that_cannot_be_written(folder, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    if os.access(out, os.W_OK):  # root ignores permissions: use a folder path that is a file instead
        out.chmod(0o700)
        out.rmdir()
        out.write_text("a file where a folder should be")
    r = sface("encode", str(folder / "a.jpg"), str(folder / "sub" / "b.png"), "--out-dir", str(out / "faces"))
    assert r.returncode == 1 and b"a.jpg" in r.stderr and b"b.png" in r.stderr and b"Traceback" not in r.stderr
    assert not out.is_dir() or list(out.iterdir()) == []


def test_files_from_stdin_and_pipes(folder, tmp_path):
    listing = f"{folder / 'a.jpg'}\n{folder / 'sub' / 'b.png'}\n".encode()
    r = sface("encode", "--files-from", "-", "--out-dir", str(tmp_path / "o"), stdin=listing)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "o").rglob("*.sfc")) == ["a.sfc", "b.sfc"]
    r = sface("encode", "-", "-", stdin=(folder / "a.jpg").read_bytes())
    assert r.returncode == 0 and parse(r.stdout).header.base_rate >= 1
    r2 = sface("decode", "-", "-o", "-", "--layer", "base", stdin=r.stdout)
    assert r2.returncode == 0 and r2.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    r3 = sface("decode", str(tmp_path / "o"), "--out-dir", str(tmp_path / "png"))
    assert r3.returncode == 0, r3.stderr
    assert sorted(p.name for p in (tmp_path / "png").rglob("*.png")) == ["a.png", "b.png"]


def test_one_input_needs_one_output(folder, tmp_path):
    r = sface("encode", str(folder / "a.jpg"), str(folder / "sub" / "b.png"))
    assert r.returncode == 2  # a second image is never taken as an output to overwrite
    r = sface("encode", str(folder), str(tmp_path / "x.sfc"))
    assert r.returncode == 2
