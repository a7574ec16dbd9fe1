"""Install a trained enhancement codec (train/enhance.py) as a model file in models/.

    python -m scalableface.train.export_enhancement --mode conditional --name sface-v2 --extends sface-base-v1
    python -m scalableface.train.export_enhancement --mode single --name single-layer-v1 --kind baseline
    python -m scalableface.train.export_enhancement --mode residual --checkpoint RUN.pt --name sface-v5 \
        --extends sface-v4 --low-tier --keep 8      # a network for sface-v4's qualities 1..8

A codec that extends a base model holds only the enhancement tensors and names the base model in
the manifest (models.load merges the two, each checked against its own hash), so the base weights
are stored once. The single-layer baseline is installed as kind "baseline": never a default codec.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..layers.enhance import LOW_TIER
from ..paths import cache_dir
from .enhance import extended_log_gains, layer_config, load_run
from .enhance import export as export_enhancement
from .export import REPO_MODELS, install


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("conditional", "residual", "single"), required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--extends", default=None, help="the base model this codec builds on")
    ap.add_argument("--kind", choices=("codec", "baseline"), default="codec")
    ap.add_argument("--default-quality", type=int, default=3)
    ap.add_argument("--summary", default="face codec: base layer + enhancement layer (UTKFace, non-commercial research)")
    ap.add_argument("--extra-low", type=int, default=0,
                    help="add this many qualities below the trained ones, their gains extrapolated from the "
                         "two lowest (log-gain steps of the same size); they become qualities 1..K")
    ap.add_argument("--extra-high", type=int, default=0,
                    help="add this many qualities above the trained ones, extrapolated from the two highest")
    ap.add_argument("--low-tier", action="store_true",
                    help="install the run as the low-quality network of the --extends codec (tensors "
                         "enhancement_low.*): it codes that codec's qualities 1..K, the rest stay its own")
    ap.add_argument("--keep", type=int, default=0,
                    help="keep only the lowest K qualities (after --extra-low): where a --low-tier network "
                         "stops being the better one")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: <cache>/enhance_<mode>.pt (see train.enhance --run)")
    ap.add_argument("--out", type=Path, default=REPO_MODELS)
    args = ap.parse_args(argv)
    if args.mode != "single" and not args.extends:
        ap.error(f"a {args.mode} enhancement layer needs --extends <base model>")

    model, ck = load_run(args.checkpoint or cache_dir() / f"enhance_{args.mode}.pt")
    a = ck["args"]
    lambdas = list(a["lambdas"])
    net = model.net
    if args.extra_low or args.extra_high:
        net.log_gains = torch.nn.Parameter(extended_log_gains(net.log_gains, args.extra_low, args.extra_high))
        lambdas = [None] * args.extra_low + lambdas + [None] * args.extra_high  # None: extrapolated, not trained
    if args.keep:
        net.log_gains = torch.nn.Parameter(net.log_gains[: args.keep])
        lambdas = lambdas[: args.keep]
    shape = layer_config(model, a) | {"default_quality": args.default_quality, "lambdas": lambdas, "steps": ck["step"]}
    prefix = LOW_TIER if args.low_tier else "enhancement"
    if args.low_tier:  # the default quality is the extended codec's
        del shape["default_quality"]
    install(export_enhancement(model, prefix), {prefix: shape}, args.name, args.summary, args.out, args.kind, args.extends)


if __name__ == "__main__":
    main()
