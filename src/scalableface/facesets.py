"""Aligned crops and reference descriptors of a whole image set, computed once and cached.

Training (UTKFace) and evaluation (LFW) both start from these. The cache lives outside the
repository (paths.cache_dir()) and is keyed by a set name; a cache made for another file list is
rebuilt, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from .align import CROP_SIZE, align
from .errors import SfaceError
from .paths import cache_dir


def spread(paths: Sequence[Path], limit: int) -> list[Path]:
    """`limit` of the sorted paths, spread evenly (UTKFace names start with the age, so the first N
    would all be children); all of them when limit is 0 or not smaller."""
    paths = sorted(paths)
    if limit and len(paths) > limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    return paths


UTK_VALIDATION = 500  # the last images of the sorted UTKFace list: every stage validates on them, none trains on them
SHARP_FACES = 1000  # photos of utkface-extra in the benchmark's sharp set, never trained on


def sharp_files(folder: Path, limit: int = SHARP_FACES) -> list[Path]:
    """The benchmark's set of sharper faces: `limit` photos of the folder spread evenly (spread);
    training stages that read the same folder leave exactly these out."""
    return spread([p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")], limit)


def sharp_set_name(folder: Path, files: Sequence[Path]) -> str:
    """The cache name of the aligned crops and descriptors of sharp_files(folder, ...)."""
    return f"sharp-{folder.name}-{len(files)}"


def _align_one(path: str, size: int) -> tuple[np.ndarray, str]:
    try:
        face = align(path, size=size, centred=True)
        return face.crop, face.method
    except SfaceError:
        return np.zeros((size, size, 3), np.uint8), "failed"


def list_key(paths: Sequence[Path]) -> str:
    """A short hash of a list of image paths, in order: names the caches computed from that list."""
    return hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:16]


def aligned_crops(
    name: str, paths: Sequence[Path], size: int = CROP_SIZE, workers: int = 2, progress: bool = True
) -> tuple[np.ndarray, list[str]]:
    """(N x size x size x 3 uint8 crops, N alignment methods) for the images at `paths`, in order.
    An image where even the fallback fails gets a black crop and the method "failed"."""
    cache = cache_dir()
    crops_file, meta_file = cache / f"{name}_crops.npy", cache / f"{name}_crops.json"
    key = list_key(paths) + f"-{size}"
    if crops_file.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if meta.get("key") == key:
            return np.load(crops_file, mmap_mode="r"), meta["methods"]
    crops = np.zeros((len(paths), size, size, 3), np.uint8)
    methods = []
    with get_context("fork").Pool(workers) as pool:
        results = pool.imap(partial(_align_one, size=size), [str(p) for p in paths], chunksize=32)
        for i, (crop, method) in enumerate(tqdm(results, total=len(paths), desc=f"aligning {name}", disable=not progress)):
            crops[i] = crop
            methods.append(method)
    np.save(crops_file, crops)
    meta_file.write_text(json.dumps({"key": key, "methods": methods}))
    return crops, methods


def reference_descriptors(name: str, crops: np.ndarray, progress: bool = True) -> np.ndarray:
    """(N x 2 x 128) descriptors of each crop and of its mirror image, from the reference recognizer
    run on the 128 crop upsampled to 150 (the reference every codec comparison uses)."""
    from .recognizer import describe

    cache = cache_dir()
    out_file = cache / f"{name}_desc.npy"
    key_file = cache / f"{name}_desc.json"
    key = hashlib.sha256(np.ascontiguousarray(crops[:: max(1, len(crops) // 64)]).tobytes()).hexdigest()[:16]
    if out_file.exists() and key_file.exists() and json.loads(key_file.read_text()).get("key") == key:
        return np.load(out_file)
    out = np.zeros((len(crops), 2, 128), np.float32)
    step = 256
    for i in tqdm(range(0, len(crops), step), desc=f"describing {name}", disable=not progress):
        chunk = np.asarray(crops[i : i + step])
        out[i : i + step, 0] = describe(chunk)
        out[i : i + step, 1] = describe(np.ascontiguousarray(chunk[:, :, ::-1]))
    np.save(out_file, out)
    key_file.write_text(json.dumps({"key": key}))
    return out
