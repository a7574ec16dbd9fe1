"""The LFW accuracy an ideal code of the descriptor's covariance keeps at a given identity payload size.

    python -m scalableface.eval.identity_channel [--bytes B ...] [--seeds N] [-o results/identity_channel.json]

For each size, the flip-averaged reference descriptors of all LFW images go through the backward
channel that attains the rate-distortion function of a Gaussian source with the UTKFace training
descriptors' covariance at that many bits (eval.identity_bound.test_channel: each principal
coefficient z becomes (1 - D_i/lambda_i) z plus Gaussian noise of variance (1 - D_i/lambda_i) D_i,
D_i = min(lambda_i, theta) by reverse water-filling), and the 10-fold accuracy of the result (both
sides decoded, and cross: against the uncompressed descriptor) is averaged over --seeds draws.

It is the accuracy curve of the best code that knows the descriptors' covariance and squeezes
squared error: a codec above it has found structure beyond the covariance (or an error that costs
less accuracy per unit of squared error). Nothing is trained; it runs in seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..facesets import UTK_VALIDATION
from ..paths import cache_dir, data_dir
from .identity_bound import test_channel
from .lfw import read_pairs, verification_accuracy


def channel_curve(descriptors: np.ndarray, fit: np.ndarray, pairs, sizes: list[float], seeds: int) -> list[dict]:
    """Per payload size (bytes): mean accuracy, cross accuracy and squared error of the Gaussian test
    channel fitted on `fit`, over `seeds` draws."""
    fit = np.asarray(fit, np.float64)
    mean, covariance = fit.mean(axis=0), np.cov(fit.T)
    out = []
    for size in sizes:
        draws = [test_channel(descriptors, mean, covariance, 8 * size, np.random.default_rng(s)) for s in range(seeds)]
        accuracy = [verification_accuracy(pairs, d).mean for d in draws]
        out.append({"payload_bytes": size, "accuracy": float(np.mean(accuracy)), "accuracy_per_seed": accuracy,
                    "cross_accuracy": float(np.mean([verification_accuracy(pairs, d, descriptors).mean for d in draws])),
                    "mse": float(np.mean([((d - descriptors) ** 2).sum(axis=1).mean() for d in draws]))})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bytes", type=float, nargs="+", default=[4, 5, 6.5, 8, 8.7, 11.6, 12, 14.7],
                    help="identity payload sizes (bytes per face) to measure")
    ap.add_argument("--seeds", type=int, default=20, help="noise draws averaged per size (one draw varies by about 0.3 points)")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    cache = cache_dir()
    pairs = read_pairs(data_dir() / "lfw")
    lfw = np.load(cache / "lfw_desc.npy").mean(axis=1)
    fit = np.load(cache / "utk_desc.npy").mean(axis=1)[:-UTK_VALIDATION]
    out = {"fit_faces": len(fit), "reference_accuracy": verification_accuracy(pairs, lfw).mean,
           "sizes": channel_curve(lfw, fit, pairs, args.bytes, args.seeds)}
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(f"reference {100 * out['reference_accuracy']:.2f}%; ideal Gaussian code of the UTKFace covariance:")
    for p in out["sizes"]:
        print(f"{p['payload_bytes']:6.2f} bytes  accuracy {100 * p['accuracy']:.2f}%  cross {100 * p['cross_accuracy']:.2f}%"
              f"  squared error {p['mse']:.4f}")


if __name__ == "__main__":
    main()
