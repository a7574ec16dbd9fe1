"""Speed figures (a benchmark, not a test), in one process: feature extraction from .sfc files, and
full decoding (base + enhancement layers to pixels), one file at a time and in batches of 64.

    python -m scalableface.eval.speed [--faces 200] [--repeat 20] [--quality Q] [--input PHOTO]

Encodes the first --faces LFW images (or, without the data set, shifted and mirrored copies of the
bundled example, or of --input) with all layers at --quality (default: the model's), then times
extract_features over all the files --repeat times, one file a call and all of them in one
extract_features_many call (what `sface extract-features` runs), and decoding of all the files
once per way.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .. import codec
from ..errors import SfaceError
from ..paths import data_dir, example_photo


def sample_files(faces: int, quality: int | None = None, photo: Path | None = None) -> list[bytes]:
    lfw = sorted((data_dir() / "lfw").glob("*/*.jpg"))[:faces]
    out = []
    if lfw:
        for p in lfw:
            try:
                out.append(codec.encode(str(p), quality=quality))
            except SfaceError:
                pass
        return out
    from ..images import load_rgb

    photo = load_rgb(photo or example_photo())
    for i in range(faces):
        shifted = np.roll(photo, (i % 7 - 3, i // 7 % 7 - 3), axis=(0, 1))
        out.append(codec.encode(shifted[:, ::-1] if i % 2 else shifted, quality=quality))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--input", type=Path, default=None,
                    help="photo to copy when LFW is absent (default: the bundled example)")
    args = ap.parse_args(argv)
    try:
        files = sample_files(args.faces, args.quality, args.input)
    except SfaceError as e:
        raise SystemExit(f"error: {e}") from None
    codec.extract_features(files[0])  # model loading is not part of the rate
    t = time.perf_counter()
    for _ in range(args.repeat):
        for f in files:
            codec.extract_features(f)
    seconds = time.perf_counter() - t
    n = args.repeat * len(files)
    t = time.perf_counter()
    codec.extract_features_many(files * args.repeat)
    many = n / (time.perf_counter() - t)
    codec.decode(files[0])
    t = time.perf_counter()
    for f in files:
        codec.decode(f)
    one_by_one = len(files) / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(0, len(files), 64):
        codec.decode_many(files[i : i + 64])
    batched = len(files) / (time.perf_counter() - t)
    import torch

    print(json.dumps({"extract_features_faces_per_s": round(n / seconds), "extract_features_many_faces_per_s": round(many),
                      "full_decode_faces_per_s": round(one_by_one, 1), "full_decode_batched_faces_per_s": round(batched, 1),
                      "torch_threads": torch.get_num_threads(), "files": len(files),
                      "mean_file_bytes": float(np.mean([len(f) for f in files]))}))


if __name__ == "__main__":
    main()
