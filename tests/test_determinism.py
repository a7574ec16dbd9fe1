"""Same input, same bits; same file, same symbols and the same pixels, byte for byte, in any process,
at any torch thread count and in any batch."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import scalableface as sf


@pytest.fixture(scope="module")
def sfc(tmp_path_factory):
    p = tmp_path_factory.mktemp("det") / "a.png"
    Image.fromarray(skdata.astronaut()).save(p)
    first = sf.encode(str(p))
    assert sf.encode(str(p)) == first
    return first


def test_decoding_in_batches_gives_the_same_pixels(sfc):
    import torch

    alone = sf.decode(sfc).image
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            for d in sf.decode_many([sfc] * 5) + sf.decode_many([sfc, sfc[:-1] + sfc[-1:]]):
                assert np.array_equal(d.image, alone)
    finally:
        torch.set_num_threads(threads)


def test_threads_batches_and_processes_agree(tmp_path):
    """eval.determinism, small: files at three qualities decoded in two fresh processes (1 and 2
    threads) in batches of 1, 7 and 64, and in a third; every PNG must hash the same."""
    env = {**os.environ, "SFACE_DATA": str(tmp_path / "no-data")}  # the example's copies: no LFW needed
    r = subprocess.run([sys.executable, "-m", "scalableface.eval.determinism", "--files", "8"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["identical"] and res["files"] == 8 and len(res["runs"]) == 7
