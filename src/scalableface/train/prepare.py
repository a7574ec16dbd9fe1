"""Align every UTKFace image and describe it with the reference recognizer, into the cache.

    python -m scalableface.train.prepare [--data ../shared/data] [--extra] [--augment 4]

Every training stage reads these arrays; LFW is never touched here. `--extra` also prepares
utkface-extra (set "utkx"), leaving out the benchmark's sharp set (facesets.sharp_files), and
`--augment K` adds the descriptors of K imperfect views of every crop (scalableface.augment) for the
identity codec: <cache>/<set>_aug<k>_desc.npy, one file per view, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from ..facesets import aligned_crops, reference_descriptors, sharp_files
from ..paths import cache_dir, data_dir


def utk_files(data: Path) -> list[Path]:
    files = sorted((data / "utkface").glob("*.jpg"))
    if not files:
        raise SystemExit(f"no UTKFace images under {data / 'utkface'}")
    return files


def extra_files(data: Path) -> list[Path]:
    """utkface-extra without the benchmark's sharp set."""
    folder = data / "utkface-extra"
    if not folder.is_dir():
        raise SystemExit(f"no folder {folder}")
    held_out = set(sharp_files(folder))
    return sorted(p for p in folder.glob("*.jpg") if p not in held_out)


def augmented_descriptors(name: str, crops: np.ndarray, views: int) -> None:
    """<cache>/<name>_aug<k>_desc.npy for k < views: the recognizer on one imperfect view of each crop."""
    from tqdm import tqdm

    from ..recognizer import describe
    from ..augment import views as make_views

    for k in range(views):
        out_file = cache_dir() / f"{name}_aug{k}_desc.npy"
        if out_file.exists() and np.load(out_file, mmap_mode="r").shape[0] == len(crops):
            continue
        out = np.zeros((len(crops), 128), np.float32)
        for i in tqdm(range(0, len(crops), 256), desc=f"{name} view {k + 1}/{views}"):
            out[i : i + 256] = describe(make_views(crops[i : i + 256], seed=k, start=i))
        tmp = out_file.with_suffix(".part.npy")
        np.save(tmp, out)
        tmp.rename(out_file)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="folder holding utkface/ (default $SFACE_DATA or ../shared/data)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--extra", action="store_true", help="also prepare utkface-extra (less the benchmark's sharp set)")
    ap.add_argument("--augment", type=int, default=0, help="imperfect views per crop to describe (identity training)")
    args = ap.parse_args(argv)
    data = args.data or data_dir()
    sets = [("utk", utk_files(data))] + ([("utkx", extra_files(data))] if args.extra else [])
    for name, files in sets:
        crops, methods = aligned_crops(name, files, workers=args.workers)
        print(f"alignment of {name}:", dict(Counter(methods)))
        reference_descriptors(name, crops)
        if args.augment:
            augmented_descriptors(name, crops, args.augment)


if __name__ == "__main__":
    main()
