"""`sface align`: the canonical crop from the command line."""

from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from scalableface.cli import main


def test_align_writes_the_canonical_crop(tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    out = tmp_path / "crop.png"
    r = CliRunner().invoke(main, ["align", str(photo), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (128, 128)
    r = CliRunner().invoke(main, ["align", str(photo), "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.output
    r = CliRunner().invoke(main, ["align", "--all", str(photo), "-o", str(tmp_path / "face.png")])
    assert r.exit_code == 0 and (tmp_path / "face-1.png").exists()


def test_align_without_a_face_names_the_file(tmp_path):
    grey = tmp_path / "grey.png"
    Image.new("RGB", (300, 300), (120, 120, 120)).save(grey)
    r = CliRunner().invoke(main, ["align", str(grey), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1
    assert "no face found in" in r.output and "grey.png" in r.output
    assert "Traceback" not in r.output


def test_unreadable_input_is_a_clean_error(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    r = CliRunner().invoke(main, ["align", str(bad), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "notes.jpg" in r.output and "Traceback" not in r.output
