"""Align every UTKFace image and describe it with the reference recognizer, into the cache.

    python -m scalableface.train.prepare [--data ../shared/data]

Every training stage reads these arrays; LFW is never touched here.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ..facesets import aligned_crops, reference_descriptors
from ..paths import data_dir


def utk_files(data: Path) -> list[Path]:
    files = sorted((data / "utkface").glob("*.jpg"))
    if not files:
        raise SystemExit(f"no UTKFace images under {data / 'utkface'}")
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=None, help="folder holding utkface/ (default $SFACE_DATA or ../shared/data)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    crops, methods = aligned_crops("utk", utk_files(args.data or data_dir()), workers=args.workers)
    print("alignment:", dict(Counter(methods)))
    reference_descriptors("utk", crops)


if __name__ == "__main__":
    main()
