"""Benchmark: detect and align every image of LFW (or any folder tree of images).

    python -m scalableface.eval.align_bench /work/shared/data/lfw --workers 2

Prints images per second and how many faces were found by each method (hog,
hog-upsampled, fallback) and how many images failed.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import pathlib
import sys
import time
from typing import Dict, List, Optional, Tuple

from ..files import IMAGE_SUFFIXES


def list_images(data_dir: os.PathLike) -> List[pathlib.Path]:
    """Every image file under data_dir (LFW: <name>/<name>_NNNN.jpg), sorted."""
    root = pathlib.Path(data_dir)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _init_worker() -> None:
    from scalableface import align

    align.load_models()


def _align_one(path: pathlib.Path) -> Tuple[str, str, float, str]:
    """(path, method or "failed", CPU seconds spent, error message)."""
    from scalableface import align

    start = time.process_time()
    try:
        face = align.align(path, centred=True)
    except Exception as exc:  # counted, not fatal: the benchmark must finish
        return str(path), "failed", time.process_time() - start, f"{type(exc).__name__}: {exc}"
    return str(path), face.method, time.process_time() - start, ""


def main(data_dir: os.PathLike, workers: int = 2, limit: Optional[int] = None) -> Dict[str, object]:
    """Align every image under data_dir with a pool of ``workers`` processes; print and
    return the throughput and the count per method."""
    paths = list_images(data_dir)
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        raise SystemExit(f"no images found under {data_dir}")
    counts: collections.Counter = collections.Counter()
    failures: List[Tuple[str, str]] = []
    cpu = 0.0
    start = time.perf_counter()
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(workers, initializer=_init_worker) as pool:
        for path, method, seconds_used, error in pool.imap_unordered(_align_one, paths, chunksize=32):
            cpu += seconds_used
            counts[method] += 1
            if error:
                failures.append((path, error))
    seconds = time.perf_counter() - start
    rate = len(paths) / seconds
    print(f"aligned {len(paths)} images in {seconds:.1f} s with {workers} workers: {rate:.1f} images/s")
    # CPU time does not grow when other jobs share the cores, so it also tells what an
    # idle machine would take.
    per_image = cpu / len(paths)
    print(f"CPU time {per_image * 1000:.1f} ms per image (about {cpu / workers:.0f} s on {workers} idle cores)")
    for method in ("hog", "hog-upsampled", "fallback", "failed"):
        print(f"  {method:14s} {counts.get(method, 0):6d}")
    for path, error in failures[:10]:
        print(f"  failed: {path}: {error}")
    return {
        "images": len(paths),
        "seconds": seconds,
        "images_per_second": rate,
        "cpu_seconds_per_image": per_image,
        "counts": dict(counts),
        "failures": failures,
    }


def _cli(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="folder of images, e.g. the LFW root")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args(argv)
    main(args.data_dir, args.workers, args.limit)


if __name__ == "__main__":
    _cli()
