"""Throughput of the Ray pipeline against `sface encode -j` (a benchmark, not a test).

    python -m scalableface.eval.ray_bench [--photos 40] [--workers 1 2]

Copies nothing: encodes the first --photos LFW images (sorted paths) with `sface encode -j N --out-dir`
and with `sface encode --ray -j N --out-dir` (a local cluster started by the command, whose start-up
is timed separately), each in a fresh process, and reports photos/s of the whole command and, for
Ray, photos/s with the cluster start-up taken out (what a long job sees).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..paths import data_dir

RAY_START = "import ray, time; t = time.perf_counter(); ray.init(num_cpus={n}, include_dashboard=False); print(time.perf_counter() - t)"


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=False, capture_output=True)
    return time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("-o", "--output", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    photos = sorted((data_dir() / "lfw").glob("*/*.jpg"))[: args.photos]
    if not photos:
        sys.exit("no LFW photos found (set SFACE_DATA)")
    sface = [sys.executable, "-m", "scalableface"]
    out = {"photos": len(photos), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "photos.txt"
        listing.write_text("\n".join(str(p) for p in photos) + "\n")
        for n in args.workers:
            local = _timed(sface + ["encode", "--files-from", str(listing), "--out-dir", f"{tmp}/j{n}", "-j", str(n)])
            ray = _timed(sface + ["encode", "--ray", "--files-from", str(listing), "--out-dir", f"{tmp}/ray{n}", "-j", str(n)])
            start = float(subprocess.run([sys.executable, "-c", RAY_START.format(n=n)], capture_output=True, text=True,
                                         check=True).stdout.split()[-1])
            row = {"workers": n, "encode_j_photos_per_s": round(len(photos) / local, 2),
                   "ray_photos_per_s": round(len(photos) / ray, 2), "ray_start_seconds": round(start, 1),
                   "ray_photos_per_s_without_start": round(len(photos) / max(ray - start, 1e-9), 2)}
            out["runs"].append(row)
            print(json.dumps(row), flush=True)
    text = json.dumps(out, indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
