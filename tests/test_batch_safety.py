"""Nothing lost between batches: exclusive creation of outputs between processes, output name
collisions refused before any work, resumable batches (--skip-existing), SIGINT and SIGTERM to a
-j 2 batch, and folder walks that report what they pass over."""

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from click.testing import CliRunner

from scalableface.cli import main
from scalableface.container import parse
from scalableface.errors import SfaceError
from scalableface.files import write_bytes

NAMES = 20
FEW = 8


def _writer(folder, tag, barrier, results):
    barrier.wait()
    mine = []
    for i in range(NAMES):
        try:
            write_bytes(os.path.join(folder, f"{i}.out"), tag.encode() * 100)
            mine.append(i)
        except SfaceError as e:
            assert "exists" in str(e)
    results.put((tag, mine))


@pytest.mark.parametrize("round_", range(20))
def test_two_processes_never_replace_each_others_outputs(tmp_path, round_):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), tag, barrier, results)) for tag in "ab"]
    for p in procs:
        p.start()
    done = dict(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join()
    assert sorted(done["a"] + done["b"]) == list(range(NAMES))  # each name written by exactly one
    for tag, names in done.items():
        for i in names:
            assert (tmp_path / f"{i}.out").read_bytes() == tag.encode() * 100
    assert not list(tmp_path.glob(".*.part"))


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes of two threads each would crawl on 2 cores


def sface(*args, **kw):
    return subprocess.run([sys.executable, "-m", "scalableface", *args], capture_output=True, env=ONE_THREAD, **kw)


def sface_here(*args):
    """The CLI in this process (the models stay loaded between tests): (exit code, stdout, stderr)."""
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_two_batches_into_one_folder(crop_folder, tmp_path):
    out = tmp_path / "out"
    files = [str(p) for p in sorted(crop_folder.glob("*.png"))[:FEW]]
    cmd = [sys.executable, "-m", "scalableface", "encode", "--aligned", *files, "--out-dir", str(out),
           "--layers", "identity", "--json", "--base-rate"]
    procs = {rate: subprocess.Popen(cmd + [str(rate)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ONE_THREAD)
             for rate in (1, 4)}
    reports = {}
    for rate, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        reports[rate] = (json.loads(stdout), stderr.decode())
    done = {rate: r["done"] for rate, (r, _) in reports.items()}
    assert done[1] + done[4] == FEW  # never more files reported done than there are
    for rate, (r, err) in reports.items():
        assert len(r["failed"]) == FEW - r["done"]
        for f in r["failed"]:  # every refused file named, as existing
            assert "exists" in f["error"] and os.path.basename(f["input"]) in err
    by_rate = {1: 0, 4: 0}
    for f in out.glob("*.sfc"):
        by_rate[parse(f.read_bytes()).header.base_rate] += 1
    assert by_rate == done  # no file replaced: each holds what the process that reported it wrote


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_collisions_are_refused_before_any_work(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        Image.new("RGB", (128, 128)).save(tmp_path / "in" / sub / "x.png")
    Image.new("RGB", (128, 128)).save(tmp_path / "in" / "a" / "x.webp")
    out = tmp_path / "out"
    for args in ([str(tmp_path / "in" / "a" / "x.png"), str(tmp_path / "in" / "b" / "x.png"), "--force"],
                 [str(tmp_path / "in" / "a"), str(tmp_path / "in" / "b")],
                 [str(tmp_path / "in" / "a")]):
        code, _, err = sface_here("encode", "--aligned", *args, "--out-dir", str(out))
        assert code == 1 and "would both be written to" in err, err
        assert not out.exists()


def test_interrupted_batches_resume_to_the_same_bytes(crop_folder, tmp_path):
    # enough work (96 full-layer files) that the batch is still running when its first file appears
    # on an idle machine: 24 identity-only files could all be written before the signal
    folder, n = tmp_path / "crops", 96
    folder.mkdir()
    for i in range(n):
        shutil.copyfile(crop_folder / f"{i % 24:02d}.png", folder / f"{i:03d}.png")
    args = ["encode", "--aligned", str(folder), "--layers", "full", "-j", "2", "--out-dir"]
    r = sface(*args, str(tmp_path / "ref"))
    assert r.returncode == 0, r.stderr
    reference = _tree(tmp_path / "ref")
    assert len(reference) == n
    for sig, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        out = tmp_path / sig.name
        p = subprocess.Popen([sys.executable, "-m", "scalableface", *args, str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 600  # a loaded machine can take minutes to start torch in the workers
        while time.time() < deadline and not (out.exists() and any(out.glob("*.sfc"))):
            time.sleep(0.02)
        assert p.poll() is None, "the batch ended before it could be interrupted"
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert p.returncode == status, err
        assert b"Traceback" not in err
        time.sleep(0.3)  # workers that outlived their parent would still be writing now
        partial = _tree(out)
        assert 0 < len(partial) < n and not list(out.glob(".*.part"))
        assert partial == _tree(out)
        r = sface(*args, str(out), "--skip-existing", "--json")
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["skipped"] == len(partial) and report["done"] == n - len(partial)
        assert _tree(out) == reference


def test_skip_existing_refuses_an_invalid_output_unless_forced(crop_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    src = [str(crop_folder / "00.png"), str(crop_folder / "01.png")]
    (out / "00.sfc").write_bytes(b"SFC not really")
    args = ["encode", "--aligned", *src, "--layers", "identity", "--out-dir", str(out), "--skip-existing", "--json"]
    code, stdout, _ = sface_here(*args)
    assert code == 1
    report = json.loads(stdout)
    assert report["done"] == 1 and report["skipped"] == 0 and "not a valid output" in report["failed"][0]["error"]
    code, stdout, _ = sface_here(*args, "--force")
    assert code == 0 and json.loads(stdout) == {"done": 1, "skipped": 1, "failed": []}
    parse((out / "00.sfc").read_bytes())


def test_folder_walks_report_what_they_pass_over(crop_folder, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    Image.open(crop_folder / "00.png").save(d / "face.avif", quality=95)
    (d / "broken.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(d / "pipe.png")
    (d / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (d / "notes.txt").write_text("not an image, and its suffix says so")
    code, stdout, err = sface_here("encode", "--aligned", "--layers", "identity", str(d), "--out-dir", str(tmp_path / "out"), "--json")
    assert code == 1
    report = json.loads(stdout)
    assert report["done"] == 1 and (tmp_path / "out" / "face.sfc").is_file()
    reasons = {os.path.basename(f["input"]): f["error"] for f in report["failed"]}
    assert set(reasons) == {"broken.png", "pipe.png", "phone.heic"}
    assert "broken symbolic link" in reasons["broken.png"] and "regular file" in reasons["pipe.png"]
    assert all(name in err for name in reasons) and "notes.txt" not in err
