"""The benchmark commands the README names run from an installed copy (the package as the wheel lays
it out, away from the repository), and the fuzz run is resumable and decodes all three layers."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """site-packages as the wheel would fill it: the package plus pyproject's force-include entries."""
    site = tmp_path_factory.mktemp("site")
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    for package in wheel["packages"]:
        shutil.copytree(REPO / package, site / Path(package).name, ignore=shutil.ignore_patterns("__pycache__"))
    for src, dst in wheel["force-include"].items():
        (site / dst).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / src).is_dir() else shutil.copy)(REPO / src, site / dst)
    return site


def run(installed, tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(installed), "SFACE_DATA": str(tmp_path / "no-data"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert str(REPO) not in r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_fuzz_from_an_installed_copy_resumes(installed, tmp_path):
    state = tmp_path / "fuzz.json"
    first = run(installed, tmp_path, "scalableface.eval.fuzz", "--cases", "15", "--state", str(state), "--every", "5")
    assert first["cases"] == 15 and json.loads(state.read_text())["next_case"] == 15
    second = run(installed, tmp_path, "scalableface.eval.fuzz", "--cases", "40", "--state", str(state))
    assert second["cases"] == 40 and second["failed"] == 0
    assert second["decoded"] + second["base"] + second["refused"] == 40
    assert second["decoded"] > 0  # the full decode is fuzzed too


def test_speed_from_an_installed_copy(installed, tmp_path):
    res = run(installed, tmp_path, "scalableface.eval.speed", "--faces", "2", "--repeat", "1")
    assert res["files"] == 2 and res["full_decode_faces_per_s"] > 0
