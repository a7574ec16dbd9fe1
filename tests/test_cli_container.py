"""The CLI commands that only read containers: info, strip, models, and the shared conventions."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from scalableface.cli import main
from scalableface.container import Header, LayerType, Transform, pack, parse


@pytest.fixture
def sfc(tmp_path):
    h = Header(model_id=b"\xde\xad\xbe\xef", base_rate=2, quality=3, transform=Transform(640, 480, (1, 0, 10, 0, 1, 20)))
    data = pack(h, [(LayerType.IDENTITY, b"0123456789"), (LayerType.APPEARANCE, b"a" * 40), (LayerType.ENHANCEMENT, b"e" * 300)])
    p = tmp_path / "face.sfc"
    p.write_bytes(data)
    return p


def test_info_human_and_json(sfc):
    r = CliRunner().invoke(main, ["info", str(sfc)])
    assert r.exit_code == 0, r.output
    assert "deadbeef (not installed)" in r.output and "enhancement" in r.output and "photo 640x480" in r.output
    r = CliRunner().invoke(main, ["info", "--json", str(sfc)])
    d = json.loads(r.output)
    assert d["base_rate"] == 2 and d["quality"] == 3
    assert [l["payload_bytes"] for l in d["layers"]] == [10, 40, 300]


def test_info_reports_corruption_as_one_line(sfc, tmp_path):
    bad = tmp_path / "bad.sfc"
    data = bytearray(sfc.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    r = CliRunner().invoke(main, ["info", str(bad)])
    assert r.exit_code == 1
    assert "enhancement layer CRC mismatch" in r.output
    assert "Traceback" not in r.output


def test_strip_truncates_and_never_overwrites(sfc, tmp_path):
    out = tmp_path / "base.sfc"
    r = CliRunner().invoke(main, ["strip", "--layer", "base", str(sfc), str(out)])
    assert r.exit_code == 0, r.output
    assert sfc.read_bytes().startswith(out.read_bytes())
    assert parse(out.read_bytes()).top == LayerType.APPEARANCE
    r = CliRunner().invoke(main, ["strip", "--layer", "identity", str(sfc), str(out)])
    assert r.exit_code == 1 and "exists" in r.output
    r = CliRunner().invoke(main, ["strip", "--layer", "identity", "--force", str(sfc), str(out)])
    assert r.exit_code == 0 and parse(out.read_bytes()).top == LayerType.IDENTITY


def test_strip_through_pipes(sfc):
    r = subprocess.run([sys.executable, "-m", "scalableface", "strip", "-", "-"], input=sfc.read_bytes(), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert parse(r.stdout).top == LayerType.APPEARANCE


def test_usage_errors_exit_2():
    r = CliRunner().invoke(main, ["strip", "--layer", "nonsense", "a", "b"])
    assert r.exit_code == 2


def test_help_lists_every_command():
    r = CliRunner().invoke(main, ["--help"])
    for cmd in ["encode", "decode", "extract-features", "compare", "align", "info", "strip", "models", "eval", "bench"]:
        assert cmd in r.output


def test_models_lists_reference_models():
    r = CliRunner().invoke(main, ["models", "--json"])
    assert r.exit_code == 0
    names = {m["name"] for m in json.loads(r.output)}
    assert {"dlib-resnet-v1", "dlib-landmarks-5"} <= names


def test_container_commands_do_not_import_torch(sfc, tmp_path):
    code = (
        "import sys; from scalableface.cli import main\n"
        f"sys.argv = ['sface', 'info', {str(sfc)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"sys.argv = ['sface', 'strip', {str(sfc)!r}, {str(tmp_path / 'x.sfc')!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.argv = ['sface', 'models']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'dlib' not in sys.modules, 'heavy import'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
