"""Decoded pixels are the same bytes whatever the batch size, thread count or process (a check, as
a command; tests/test_determinism.py runs it small).

    python -m scalableface.eval.determinism [--files 200] [--qualities 1,5,9] [--input PHOTO]

Encodes --files faces (the first LFW images, or without the data set shifted and mirrored copies of
the bundled example or of --input), an equal share at each of --qualities, then decodes
them all in batches of 1, 7 and 64 in two fresh processes, one at 1 torch thread and one at 2, and in
this process, and compares the SHA-256 of every decoded PNG. Prints JSON; exit status 1 if any file
differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import codec
from ..errors import SfaceError
from ..images import encode_image

DECODE = """
import hashlib, sys, pathlib, torch
torch.set_num_threads(int(sys.argv[2]))
from scalableface import codec
from scalableface.images import encode_image
data = [f.read_bytes() for f in sorted(pathlib.Path(sys.argv[1]).glob("*.sfc"))]
for batch in BATCHES:
    print(" ".join(hashlib.sha256(encode_image(d.image)).hexdigest()
                   for i in range(0, len(data), batch) for d in codec.decode_many(data[i : i + batch])))
"""
BATCHES = (1, 7, 64)


def main(argv=None):
    from .speed import sample_files

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--qualities", default="1,5,9", help="enhancement qualities, comma-separated")
    ap.add_argument("--input", type=Path, default=None, help="photo to copy when LFW is absent (default: the bundled example)")
    args = ap.parse_args(argv)
    qualities = [int(q) for q in args.qualities.split(",")]
    try:
        files = [f for k, q in enumerate(qualities)
                 for f in sample_files(len(range(k, args.files, len(qualities))), q, args.input)]
    except SfaceError as e:
        raise SystemExit(f"error: {e}") from None
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(files):
            (Path(tmp) / f"{i:05d}.sfc").write_bytes(data)
        hashes = {}
        for threads in (1, 2):
            r = subprocess.run([sys.executable, "-c", f"BATCHES = {BATCHES}\n" + DECODE, tmp, str(threads)],
                               capture_output=True, text=True, check=True)
            for batch, line in zip(BATCHES, r.stdout.splitlines()):
                hashes[f"process {threads}, threads {threads}, batch {batch}"] = line.split()
        hashes["this process, batch 1"] = [hashlib.sha256(encode_image(codec.decode(f).image)).hexdigest() for f in files]
    first = next(iter(hashes.values()))
    differing = sorted({i for h in hashes.values() for i, (a, b) in enumerate(zip(first, h)) if a != b})
    same = all(len(h) == len(files) for h in hashes.values()) and not differing
    print(json.dumps({"files": len(files), "qualities": qualities, "runs": list(hashes), "identical": same,
                      "differing_files": len(differing)}))
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()
