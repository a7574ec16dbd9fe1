"""Speed figures (a benchmark, not a test): feature extraction from .sfc files, in one process.

    python -m scalableface.eval.speed [--faces 200] [--repeat 20]

Encodes the first --faces LFW images (or, without the data set, shifted and mirrored copies of the
bundled example), then times extract_features over all the files --repeat times.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .. import codec
from ..errors import SfaceError
from ..paths import data_dir

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "astronaut.jpg"


def sample_files(faces: int) -> list[bytes]:
    lfw = sorted((data_dir() / "lfw").glob("*/*.jpg"))[:faces]
    out = []
    if lfw:
        for p in lfw:
            try:
                out.append(codec.encode(str(p)))
            except SfaceError:
                pass
        return out
    from ..images import load_rgb

    photo = load_rgb(EXAMPLE)
    for i in range(faces):
        shifted = np.roll(photo, (i % 7 - 3, i // 7 % 7 - 3), axis=(0, 1))
        out.append(codec.encode(shifted[:, ::-1] if i % 2 else shifted))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    files = sample_files(args.faces)
    codec.extract_features(files[0])  # model loading is not part of the rate
    t = time.perf_counter()
    for _ in range(args.repeat):
        for f in files:
            codec.extract_features(f)
    seconds = time.perf_counter() - t
    n = args.repeat * len(files)
    print(json.dumps({"extract_features_faces_per_s": round(n / seconds), "files": len(files),
                      "mean_file_bytes": float(np.mean([len(f) for f in files]))}))


if __name__ == "__main__":
    main()
