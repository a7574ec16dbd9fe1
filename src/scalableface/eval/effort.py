"""Encode effort (`sface encode --effort N`): what each effort saves and what it costs.

    python -m scalableface.eval.effort --faces 16 -o results/effort/<model>.json

On a fixed subset of each benchmark set (`--faces` LFW crops and as many sharp faces, spread evenly
over the sets `sface bench` uses), every quality of the model is coded at every effort through the
library (`encode_crops(..., effort=N)`, real files, decoded by `decode_many`). Per set and effort:
mean payload bpp and PSNR-RGB per quality, the BD-rate (PSNR, payload) against effort 0 on the same
faces, and the encoder's seconds per face, the mean over the qualities and the slowest quality's (one
process; the search runs on the whole batch at once).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .. import codec as sface
from .. import models
from ..facesets import SHARP_FACES, aligned_crops, reference_descriptors, sharp_files, sharp_set_name, spread
from ..layers import refine
from ..paths import data_dir
from .bdrate import bd_rate
from .bench import payload_bytes
from .conventional import bpp
from .lfw import read_pairs
from .metrics import psnr_msssim


def face_sets(faces: int) -> dict:
    """{set: (crops, flip-averaged reference descriptors)}: `faces` spread over LFW's crops and over the
    bench's sharp set (skipped when utkface-extra is absent)."""
    lfw = data_dir() / "lfw"
    images = read_pairs(lfw).images
    crops, _ = aligned_crops("lfw", images)
    out = {"lfw": ("lfw", crops)}
    extra = data_dir() / "utkface-extra"
    if extra.is_dir():
        files = sharp_files(extra, SHARP_FACES)
        name = sharp_set_name(extra, files)
        out["sharp"] = (name, aligned_crops(name, files)[0])
    sets = {}
    for key, (name, all_crops) in out.items():
        pick = np.array(spread(list(range(len(all_crops))), faces))
        desc = reference_descriptors(name, all_crops)[pick].mean(axis=1)
        sets[key] = (np.asarray(all_crops[pick]), desc)
    return sets


def measure(crops: np.ndarray, desc: np.ndarray, model: str, quality: int, effort: int) -> dict:
    start = time.perf_counter()
    files = sface.encode_crops(crops, quality=quality, model=model, descriptors=desc, effort=effort)
    seconds = time.perf_counter() - start
    images = np.stack([d.image for d in sface.decode_many(files)])
    psnr, _ = psnr_msssim(crops, images)
    return {"quality": quality, "bpp": float(np.mean(bpp(np.array([payload_bytes(f) for f in files])))),
            "psnr": float(np.mean(psnr)), "encode_seconds_per_face": seconds / len(crops)}


def run(model: str, faces: int, efforts: list[int], qualities: list[int] | None, log=print) -> dict:
    from .. import modelset

    qualities = qualities or list(range(1, modelset.load(model).enhancement.qualities + 1))
    result = {"model": model, "faces_per_set": faces, "qualities": qualities, "sets": {}}
    for set_name, (crops, desc) in face_sets(faces).items():
        per_effort = {}
        for effort in efforts:
            points = [measure(crops, desc, model, q, effort) for q in qualities]
            seconds = [p["encode_seconds_per_face"] for p in points]
            per_effort[effort] = {"points": points, "encode_seconds_per_face": float(np.mean(seconds)),
                                  "encode_seconds_per_face_slowest_quality": float(np.max(seconds))}
            log(f"{set_name} effort {effort}: " + ", ".join(f"q{p['quality']} {p['bpp']:.3f}/{p['psnr']:.2f}" for p in points))
        plain = per_effort.get(0)
        for effort, r in per_effort.items():
            if plain and effort:
                r["bd_rate_vs_effort_0"] = bd_rate([p["bpp"] for p in plain["points"]], [p["psnr"] for p in plain["points"]],
                                                   [p["bpp"] for p in r["points"]], [p["psnr"] for p in r["points"]])
        result["sets"][set_name] = {str(k): v for k, v in per_effort.items()}
    return result


def table(result: dict) -> str:
    rows = ["| set | effort | BD-rate vs effort 0 (PSNR, payload) | encode s/face (mean over qualities) | at the slowest quality |",
            "|---|---|---|---|---|"]
    for set_name, per_effort in result["sets"].items():
        for effort, r in per_effort.items():
            bd = r.get("bd_rate_vs_effort_0")
            rows.append(f"| {set_name} | {effort} | {'' if bd is None else f'{bd:+.1f}%'} | {r['encode_seconds_per_face']:.2f} "
                        f"| {r['encode_seconds_per_face_slowest_quality']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="default: the installed one")
    ap.add_argument("--faces", type=int, default=16, help="faces per set")
    ap.add_argument("--efforts", default=None, help="comma-separated (default: every level)")
    ap.add_argument("--qualities", default=None, help="comma-separated (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    model = args.model or models.default_model().name
    efforts = [int(e) for e in args.efforts.split(",")] if args.efforts else list(range(len(refine.EFFORT_SEARCH)))
    result = run(model, args.faces, efforts,
                 [int(q) for q in args.qualities.split(",")] if args.qualities else None)
    print(table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
