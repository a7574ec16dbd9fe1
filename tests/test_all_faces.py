"""Every face of a photo: encode --all writes one .sfc per face, decode --paste-into puts them all back."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

import scalableface as sf
from scalableface import container
from scalableface.cli import main
from scalableface.errors import InputError
from scalableface.images import load_rgb

SIZES = (260, 190, 150)  # widths of the pasted astronaut heads, so the order largest-first is known


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A synthetic group photo: the astronaut's head pasted three times, at three sizes, on a grey canvas."""
    head = Image.fromarray(skdata.astronaut()[20:260, 110:330])
    canvas = Image.new("RGB", (1000, 420), (128, 128, 128))
    for x, w in zip((620, 40, 360), SIZES):
        canvas.paste(head.resize((w, w * 240 // 220)), (x, 60))
    p = tmp_path_factory.mktemp("group") / "group.jpg"
    canvas.save(p, quality=95)
    return p


def face_width(data: bytes) -> float:
    m = container.parse(data).header.transform.matrix
    return float(np.hypot(m[0], m[3]))  # the crop -> photo scale


def test_encode_all_largest_first_each_with_its_transform(group):
    files = sf.encode_all(str(group), layers="base")
    assert len(files) == 3
    widths = [face_width(f) for f in files]
    assert widths == sorted(widths, reverse=True)
    centres = [container.parse(f).header.transform.matrix[2] for f in files]  # x offsets: right, left, middle
    assert centres[0] > centres[2] > centres[1]


def test_cli_all_and_paste_back(group, tmp_path):
    out = tmp_path / "faces"
    r = CliRunner().invoke(main, ["encode", str(group), "--all", "--out-dir", str(out), "-q", "3"])
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["group-1.sfc", "group-2.sfc", "group-3.sfc"]
    restored = tmp_path / "restored.png"
    r = CliRunner().invoke(main, ["decode", "--paste-into", str(group), *[str(out / n) for n in written], "-o", str(restored)])
    assert r.exit_code == 0, r.output
    before, after = load_rgb(str(group)).astype(int), load_rgb(str(restored)).astype(int)
    changed = np.abs(after - before).max(axis=2) > 0
    assert not changed[:, :20].any() and not changed[400:].any()  # far from every face: untouched
    for x, w in zip((620, 40, 360), SIZES):  # each face was pasted back, close to the original
        box = (slice(60 + w // 4, 60 + 3 * w // 4), slice(x + w // 4, x + 3 * w // 4))
        assert changed[box].mean() > 0.5
        err = np.mean((after[box] - before[box]) ** 2)
        assert 10 * np.log10(255**2 / err) > 22


def test_astronaut_first_face_is_what_encode_writes(photo, tmp_path):
    r = CliRunner().invoke(main, ["encode", str(photo), "--all", str(tmp_path / "a.sfc"), "--layers", "identity"])
    assert r.exit_code == 0, r.output
    # HOG also fires on the mission patch on her suit (a smaller box): --all writes what the detector finds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-1.sfc", "a-2.sfc"]
    assert (tmp_path / "a-1.sfc").read_bytes() == sf.encode(str(photo), layers="identity")


def test_no_face_is_a_clear_error(tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (300, 200), (90, 120, 150)).save(blank)
    r = CliRunner().invoke(main, ["encode", str(blank), "--all", "--out-dir", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert f"{blank}: no face found" in r.output and "Traceback" not in r.output
    with pytest.raises(InputError, match="no face found"):
        sf.encode_all(str(blank))
