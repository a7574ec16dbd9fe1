"""Install a trained enhancement codec (train/enhance.py) as a model file in models/.

    python -m scalableface.train.export_enhancement --mode conditional --name sface-v2 --extends sface-base-v1
    python -m scalableface.train.export_enhancement --mode single --name single-layer-v1 --kind baseline
    python -m scalableface.train.export_enhancement --mode residual --checkpoint LOW.pt --name sface-v5 \
        --extends sface-v4 --low-tier --skip 2 --keep 7 --main-checkpoint V4.pt --main-extra-high 2 --default-quality 8
    python -m scalableface.train.export_enhancement --mode residual --checkpoint LOW.pt --name sface-v7 \
        --extends sface-v5 --low-tier --keep 9 --float16

A codec that extends a base model holds only the enhancement tensors and names the base model in
the manifest (models.load merges the two, each checked against its own hash), so the base weights
are stored once. With --low-tier the run becomes the low-quality network (enhancement_low.*) of the
codec it extends, whose network is stored once too: only its gains are written again (from
--main-checkpoint, the run it was exported from, checked against it), so that its qualities can be
renumbered around the new network's. With --low-from a new main network takes another codec's
low-quality network with it (copied, so that the codec it came from can be retired). A new main network may instead extend the codec
whose low-quality network it keeps (its own tensors win). --float16 stores the networks' weights
in half precision (validate the exported model). The single-layer baseline is installed as kind "baseline": never a default codec.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .. import models
from ..layers.enhance import LOW_TIER
from ..paths import cache_dir
from .enhance import EnhanceTrainer, extended_log_gains, layer_config, load_run
from .enhance import export as export_enhancement
from .export import REPO_MODELS, install


def select_qualities(model: EnhanceTrainer, trained: list, extra_low: int = 0, extra_high: int = 0, skip: int = 0,
                     keep: int = 0) -> list:
    """Set the network's gain rows to its trained ones with `extra_low` / `extra_high` extrapolated rows
    added (extended_log_gains), then the first `skip` dropped and only the first `keep` kept (0: all).
    Returns each row's lambda (None where extrapolated)."""
    net = model.net
    gains = extended_log_gains(net.log_gains, extra_low, extra_high)
    lambdas = [None] * extra_low + list(trained) + [None] * extra_high
    end = skip + keep if keep else len(lambdas)
    net.log_gains = torch.nn.Parameter(gains[skip:end])
    return lambdas[skip:end]


def main_gains(checkpoint: Path, extends: str, extra_high: int, default_quality: int) -> tuple[dict, dict]:
    """(tensors, config) that renumber the qualities of the extended codec's network: its gains from the
    run it was exported from, after checking that the run holds the same weights."""
    model, ck = load_run(checkpoint)
    lambdas = select_qualities(model, ck["args"]["lambdas"], extra_high=extra_high)
    installed, _ = models.load(models.find(extends))
    tensors = export_enhancement(model)
    for k, v in tensors.items():
        if k.startswith("enhancement.net.") and k != "enhancement.net.log_gains" and not np.array_equal(installed.get(k), v):
            raise SystemExit(f"{checkpoint} is not the run {extends} was exported from ({k} differs)")
    config = layer_config(model, ck["args"]) | {"default_quality": default_quality, "lambdas": lambdas, "steps": ck["step"]}
    return {"enhancement.net.log_gains": tensors["enhancement.net.log_gains"]}, {"enhancement": config}


def low_network(name: str, qualities: int) -> tuple[dict, dict]:
    """(tensors, config) of an installed codec's low-quality network, for a main network with
    `qualities` gain rows (the low network's qualities must leave some to it)."""
    tensors, config = models.load(models.find(name))
    if LOW_TIER not in config:
        raise SystemExit(f"{name} has no low-quality network ({LOW_TIER})")
    if config[LOW_TIER]["qualities"] >= qualities:
        raise SystemExit(f"{name}'s low-quality network codes qualities 1-{config[LOW_TIER]['qualities']}, which "
                         f"leaves none of the new network's {qualities} (add rows below with --extra-low)")
    return {k: v for k, v in tensors.items() if k.startswith(f"{LOW_TIER}.")}, {LOW_TIER: config[LOW_TIER]}


def halve_networks(tensors: dict) -> dict:
    """The networks' float32 weights (<prefix>.net.*) stored as float16: half the file. The entropy
    tables stay as they are; the loader widens the weights back to float32 exactly."""
    return {k: v.astype(np.float16) if ".net." in k and v.dtype == np.float32 else v for k, v in tensors.items()}


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
    ap.add_argument("--skip", type=int, default=0, help="then drop the lowest K qualities")
    ap.add_argument("--keep", type=int, default=0, help="then keep only the lowest K qualities (0: all)")
    ap.add_argument("--low-tier", action="store_true",
                    help="install the run as the low-quality network of the --extends codec (tensors "
                         "enhancement_low.*): it codes qualities 1..K, the extended codec's network the rest")
    ap.add_argument("--main-checkpoint", type=Path, default=None,
                    help="with --low-tier: the run the extended codec's network was exported from; its gains "
                         "are written again, renumbered (--main-extra-high), with --default-quality")
    ap.add_argument("--main-extra-high", type=int, default=0,
                    help="with --main-checkpoint: extrapolated qualities above the main network's trained ones")
    ap.add_argument("--low-from", default=None, metavar="MODEL",
                    help="without --low-tier: copy this installed codec's low-quality network (enhancement_low.*) "
                         "into the new one, which codes qualities 1..K with it and the rest with the run")
    ap.add_argument("--float16", action="store_true",
                    help="store the networks' weights as float16 (half the file; validate the exported model)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: <cache>/enhance_<mode>.pt (see train.enhance --run)")
    ap.add_argument("--out", type=Path, default=REPO_MODELS)
    args = ap.parse_args(argv)
    if args.mode != "single" and not args.extends:
        ap.error(f"a {args.mode} enhancement layer needs --extends <base model>")
    if args.main_checkpoint and not args.low_tier:
        ap.error("--main-checkpoint goes with --low-tier")
    if args.low_from and args.low_tier:
        ap.error("--low-from gives a main network a low-quality one; it does not go with --low-tier")

    def write(tensors: dict, config: dict) -> None:
        install(halve_networks(tensors) if args.float16 else tensors, config, args.name, args.summary, args.out,
                args.kind, args.extends)

    model, ck = load_run(args.checkpoint or cache_dir() / f"enhance_{args.mode}.pt")
    lambdas = select_qualities(model, ck["args"]["lambdas"], args.extra_low, args.extra_high, args.skip, args.keep)
    shape = layer_config(model, ck["args"]) | {"lambdas": lambdas, "steps": ck["step"]}
    if not args.low_tier:
        tensors, config = export_enhancement(model), {"enhancement": shape | {"default_quality": args.default_quality}}
        if args.low_from:
            low_tensors, low_config = low_network(args.low_from, shape["qualities"])
            tensors, config = tensors | low_tensors, config | low_config
        write(tensors, config)
        return
    tensors, config = export_enhancement(model, LOW_TIER), {LOW_TIER: shape}
    if args.main_checkpoint:  # else the extended codec's qualities and default stay as they are
        main_tensors, main_config = main_gains(args.main_checkpoint, args.extends, args.main_extra_high, args.default_quality)
        tensors, config = tensors | main_tensors, config | main_config
    write(tensors, config)


if __name__ == "__main__":
    main()
