"""The Ray pipeline on a local cluster: every good photo encoded exactly as `sface encode` does, a bad
one a row with its error, the Parquet table readable by `sface index build`."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from scalableface import codec
from scalableface.cli import main
from scalableface.errors import SfaceError


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="the Ray pipeline needs the extra scalableface[ray] (ray[data], pyarrow)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, photo):
    root = tmp_path_factory.mktemp("archive")
    (root / "a").mkdir()
    (root / "a" / "astronaut.jpg").write_bytes(photo.read_bytes())
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "mirrored.png")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def ray_run(cluster, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray_out")
    r = CliRunner().invoke(main, ["encode", "--ray", "-j", "2", str(folder), "--out-dir", str(out / "sfc"),
                                  "--table", str(out / "table"), "--json", "-q", "2"])
    return out, r


def test_good_files_encoded_byte_for_byte_as_sface_encode(ray_run, folder, tmp_path):
    out, r = ray_run
    assert r.exit_code == 1, r.output  # one input failed
    report = json.loads(r.output.splitlines()[-1])
    assert report["done"] == 2 and report["faces"] == 2
    assert [f["input"] for f in report["failed"]] == [str(folder / "a" / "broken.jpg")]
    # -j 1: forking worker processes from a process that runs Ray's threads can deadlock them
    local = CliRunner().invoke(main, ["encode", str(folder), "--out-dir", str(tmp_path / "sfc"), "-q", "2", "-j", "1"])
    assert local.exit_code == 1
    ray_files = sorted(p.relative_to(out / "sfc") for p in (out / "sfc").rglob("*.sfc"))
    local_files = sorted(p.relative_to(tmp_path / "sfc") for p in (tmp_path / "sfc").rglob("*.sfc"))
    assert ray_files == local_files and len(ray_files) == 2
    for rel in ray_files:
        assert (out / "sfc" / rel).read_bytes() == (tmp_path / "sfc" / rel).read_bytes()


def test_table_rows_and_index_build(ray_run, folder):
    import pyarrow.parquet as pq

    out, _ = ray_run
    rows = {r["source"]: r for r in pq.read_table(out / "table").to_pylist()}
    assert set(rows) == {str(folder / "a" / "astronaut.jpg"), str(folder / "a" / "broken.jpg"), str(folder / "mirrored.png")}
    bad = rows[str(folder / "a" / "broken.jpg")]
    assert bad["sfc"] is None and bad["face"] == 0 and "broken.jpg" in bad["error"]
    good = rows[str(folder / "mirrored.png")]
    assert good["error"] is None and good["face"] == 1
    assert good["sfc"] == (out / "sfc" / "mirrored.sfc").read_bytes()
    assert good["model_id"] == codec.models.default_model().short_id.hex()
    assert np.allclose(good["descriptor"], codec.extract_features(good["sfc"]), atol=1e-6)
    pytest.importorskip("faiss", reason="index build needs the extra scalableface[search]")
    r = CliRunner().invoke(main, ["index", "build", str(out / "table"), "-o", str(out / "p.sfx")])
    assert r.exit_code == 1 and "broken.jpg" in r.output  # the failed row is reported, the others indexed
    info = json.loads(CliRunner().invoke(main, ["index", "info", "--json", str(out / "p.sfx")]).output)
    assert info["entries"] == 2


def test_without_ray_the_extra_is_named(monkeypatch, folder, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    from scalableface.distributed import encode_dataset

    with pytest.raises(SfaceError, match=r"scalableface\[ray\]"):
        encode_dataset([str(folder)], out_dir=str(tmp_path))
