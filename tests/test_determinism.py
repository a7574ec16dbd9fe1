"""Same input, same bits; same file, same symbols and (within one grey level) the same image in any
process and at any torch thread count."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import scalableface as sf

DECODE = """
import sys, torch, numpy as np
torch.set_num_threads(int(sys.argv[1]))
from scalableface import codec, container
from scalableface.container import LayerType
data = sys.stdin.buffer.read()
f = container.parse(data)
base = codec._base_layer_by_id(f.header.model_id)
sym = base.identity(f.header.base_rate).decode_symbols(f.layer(LayerType.IDENTITY).payload)
img = codec.decode(data, layer="base").image
sys.stdout.buffer.write(sym.astype(np.int64).tobytes() + img.tobytes())
"""


@pytest.fixture(scope="module")
def sfc(tmp_path_factory):
    p = tmp_path_factory.mktemp("det") / "a.png"
    Image.fromarray(skdata.astronaut()).save(p)
    first = sf.encode(str(p))
    assert sf.encode(str(p)) == first
    return first


def decode_in_process(data, threads):
    r = subprocess.run([sys.executable, "-c", DECODE, str(threads)], input=data, capture_output=True, check=True)
    img = np.frombuffer(r.stdout[-128 * 128 * 3 :], np.uint8)
    return r.stdout[: -128 * 128 * 3], img


def test_threads_and_processes_agree(sfc):
    sym1, img1 = decode_in_process(sfc, 1)
    sym2, img2 = decode_in_process(sfc, 2)
    here = sf.decode(sfc, layer="base").image.reshape(-1)
    assert sym1 == sym2
    assert np.abs(img1.astype(int) - img2).max() <= 1
    assert np.abs(img1.astype(int) - here).max() <= 1
