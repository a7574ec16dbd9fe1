"""Real-bitstream validation of an enhancement codec on held-out UTKFace crops: bpp and PSNR per quality.

    python -m scalableface.train.validate --model sface-v2
    python -m scalableface.train.validate --checkpoint ~/.cache/scalableface/enhance_v3.pt [--against sface-v2]
    python -m scalableface.train.validate --model sface-v7 --against sface-v5
    python -m scalableface.train.validate --model sface-v7 --effort 1 --against sface-v7

Unlike the training log (estimated bits, noisy rounding), this writes real payloads through the
model's integer tables and decodes them, on the first --faces of the UTK_VALIDATION held-out crops and
their cached base faces (train.enhance). With --against, it also prints the BD-rate (PSNR) against
that installed model on the same crops (coded at effort 0). --effort codes the measured model with
the encoder's search (layers/refine.py): how its levels were chosen. Choose checkpoints and encoder
settings on this, never on LFW.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..eval.bdrate import bd_rate
from ..eval.metrics import psnr
from ..facesets import UTK_VALIDATION
from ..paths import cache_dir


def codec_of_checkpoint(path: Path):
    """The run-time EnhancementCodec of a train.enhance checkpoint, and its step."""
    from ..layers.enhance import load_enhancement
    from .enhance import export, layer_config, load_run

    model, ck = load_run(path)
    config = layer_config(model, ck["args"]) | {"lambdas": ck["args"].get("lambdas")}  # what --effort searches with
    return load_enhancement(export(model), {"enhancement": config}), ck["step"]


def codec_of_model(name: str):
    from .. import models
    from ..layers.enhance import load_enhancement

    return load_enhancement(*models.load(models.find(name)))


def curve(codec, crops: np.ndarray, bases: np.ndarray, first: int = 1, effort: int = 0) -> list[dict]:
    """One point per quality from `first` up: mean payload bpp and mean PSNR-RGB of the decoded crops,
    coded at `effort`."""
    out = []
    pixels = crops.shape[1] * crops.shape[2]
    for q in range(first, codec.qualities + 1):
        payloads = codec.compress(crops, bases if codec.mode != "single" else None, q, effort)
        decoded = codec.decompress(payloads, [q] * len(payloads), bases)
        mse = ((decoded.astype(np.float64) - crops) ** 2).reshape(len(crops), -1).mean(1)
        out.append({"quality": q, "bpp": float(np.mean([8 * len(p) for p in payloads]) / pixels),
                    "psnr": float(psnr(torch.from_numpy(mse), 255).mean())})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="a train.enhance checkpoint")
    which.add_argument("--model", help="an installed model with an enhancement layer")
    ap.add_argument("--against", default=None, help="an installed model to compute the BD-rate against")
    ap.add_argument("--min-quality", type=int, default=1,
                    help="measure qualities from this one up (two models sharing a low-quality network differ above it)")
    ap.add_argument("--faces", type=int, default=64, help="how many of the held-out crops")
    ap.add_argument("--effort", type=int, default=0, help="encode the measured model at this effort (0: the plain encoder)")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cache = args.cache or cache_dir()
    crops = np.asarray(np.load(cache / "utk_crops.npy", mmap_mode="r")[-UTK_VALIDATION:][: args.faces])
    bases = np.asarray(np.load(cache / "utk_base_r3.npy", mmap_mode="r")[-UTK_VALIDATION:][: args.faces])
    if args.checkpoint:
        codec, step = codec_of_checkpoint(args.checkpoint)
        result = {"checkpoint": str(args.checkpoint), "step": step}
    else:
        codec, result = codec_of_model(args.model), {"model": args.model}
    result["faces"], result["effort"] = len(crops), args.effort
    result["points"] = curve(codec, crops, bases, args.min_quality, args.effort)
    if args.against:
        ref = curve(codec_of_model(args.against), crops, bases, args.min_quality)
        result["against"] = {"model": args.against, "points": ref, "bd_rate_psnr": bd_rate(
            [p["bpp"] for p in ref], [p["psnr"] for p in ref],
            [p["bpp"] for p in result["points"]], [p["psnr"] for p in result["points"]])}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
