"""Command-line speed for shell use (a benchmark, not a test).

    python -m scalableface.eval.startup [--crops 1000] [--jobs 2]

Wall times (median of 5 runs, each a fresh process) of `sface info`, `sface strip` and a
single-image `sface decode --layer base`, and the rate of a batch `sface encode --aligned -j N` over
--crops aligned 128x128 crops (the first LFW crops of the evaluation cache when present, else shifted
copies of the bundled example's crop), written as PNG files first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import codec
from ..images import save_image
from ..paths import cache_dir, example_photo


def sface(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scalableface", *args], check=True, capture_output=True)
    return time.perf_counter() - t


def crops(n: int) -> np.ndarray:
    cached = cache_dir() / "lfw_crops.npy"
    if cached.exists():
        return np.asarray(np.load(cached, mmap_mode="r")[:n])
    crop = codec.align_image(str(example_photo())).crop
    return np.stack([np.roll(crop, (i % 5 - 2, i // 5 % 5 - 2), axis=(0, 1)) for i in range(n)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--crops", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        sfc = t / "a.sfc"
        sfc.write_bytes(codec.encode(str(example_photo())))
        res = {
            "info_s": statistics.median(sface("info", str(sfc)) for _ in range(5)),
            "strip_s": statistics.median(sface("strip", "--force", str(sfc), str(t / "b.sfc")) for _ in range(5)),
            "decode_s": statistics.median(sface("decode", "--force", str(sfc), "-o", str(t / "a.png")) for _ in range(5)),
        }
        folder = t / "crops"
        folder.mkdir()
        for i, c in enumerate(crops(args.crops)):
            save_image(c, folder / f"{i:05d}.png")
        seconds = sface("encode", "--aligned", str(folder), "--out-dir", str(t / "out"), "-j", str(args.jobs))
        res |= {"batch_encode_crops": args.crops, "batch_encode_jobs": args.jobs, "batch_encode_s": seconds,
                "batch_encode_faces_per_s": args.crops / seconds}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
