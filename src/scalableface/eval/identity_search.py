"""Encoder-side search for the identity layer (issue 12's lever): does choosing other symbols than
the rounded analysis output pay in verification accuracy?

    python -m scalableface.eval.identity_search [--model NAME] [--sweeps 3] [-o results/identity_search.json]

The decoder is a small MLP, so an encoder can afford to try symbol changes: starting from the
plain code, each sweep tries every latent dimension one step down and one step up (within its
table) and keeps a change when it lowers the objective: the squared descriptor error ("mse"), or
that error weighted by the covariance of the UTKFace training descriptors ("weighted": to first
order, how much an error moves the distances to other faces, since those differ mostly along the
high-variance directions). The decoder is unchanged. Measured on the flip-averaged reference
descriptors of all LFW images, per base rate point: real payload bytes, the mean squared error,
LFW 10-fold accuracy (both decoded) and cross accuracy (against the uncompressed descriptor).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import entropy, models, modelset
from ..facesets import UTK_VALIDATION
from ..layers.identity import IdentityCodec
from ..paths import cache_dir, data_dir
from .lfw import read_pairs, verification_accuracy

OBJECTIVES = ("mse", "weighted")


def searched_symbols(codec: IdentityCodec, descriptors: np.ndarray, weight: np.ndarray, sweeps: int) -> np.ndarray:
    """Symbols (N x dims) that lower e^T W e (e the decoded descriptor's error) from the plain code's,
    by greedy one-step changes of one dimension at a time."""
    def cost(symbols):
        e = (codec.reconstruct(symbols) - descriptors).astype(np.float64)
        return np.einsum("ni,ij,nj->n", e, weight, e)

    symbols = codec.quantize(descriptors)
    best = cost(symbols)
    for _ in range(sweeps):
        for j, table in enumerate(codec.tables):
            for step in (-1, 1):
                trial = symbols.copy()
                trial[:, j] = np.clip(trial[:, j] + step, table.offset, table.offset + len(table.freqs) - 1)
                c = cost(trial)
                better = c < best
                symbols[better], best[better] = trial[better], c[better]
    return symbols


def point(codec: IdentityCodec, symbols: np.ndarray, descriptors: np.ndarray, pairs) -> dict:
    decoded = codec.reconstruct(symbols)
    return {
        "payload_bytes": float(np.mean([len(entropy.encode(s.tolist(), codec.tables)) for s in symbols])),
        "mse": float(((decoded - descriptors) ** 2).sum(axis=1).mean()),
        "accuracy": verification_accuracy(pairs, decoded).mean,
        "cross_accuracy": verification_accuracy(pairs, decoded, descriptors).mean,
    }


def run(model: str | None, sweeps: int) -> dict:
    cache = cache_dir()
    pairs = read_pairs(data_dir() / "lfw")
    lfw = np.load(cache / "lfw_desc.npy").mean(axis=1)
    fit = np.load(cache / "utk_desc.npy").mean(axis=1)[:-UTK_VALIDATION].astype(np.float64)
    covariance = np.cov(fit.T)
    weights = {"mse": np.eye(lfw.shape[1]), "weighted": covariance * lfw.shape[1] / np.trace(covariance)}
    ms = modelset.load(model)
    points = []
    for r in ms.base.rates:
        codec = ms.base.identity(r)
        points.append({"rate": r, "search": "none"} | point(codec, codec.quantize(lfw), lfw, pairs))
        for name in OBJECTIVES:
            symbols = searched_symbols(codec, lfw, weights[name], sweeps)
            points.append({"rate": r, "search": name} | point(codec, symbols, lfw, pairs))
            print(json.dumps(points[-1]), flush=True)
    return {"model": models.base_of(ms.entry).name, "sweeps": sweeps, "faces": len(lfw), "points": points}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--sweeps", type=int, default=3, help="passes over the latent dimensions")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    out = run(args.model, args.sweeps)
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
