"""How far the identity codec is from the rate a Gaussian source needs at the same error, and what
its transforms reach without quantization.

    python -m scalableface.eval.identity_bound [--model NAME] [--export NPZ ...] [-o results/identity_bound.json]

For each base rate point of the model (and each identity export of train.identity given by
--export, e.g. a run with another --latent), on the flip-averaged reference descriptors of all LFW
images: real payload bits per face, the mean squared descriptor error D (squared L2 distance between
decoded and coded descriptor), LFW 10-fold accuracy (both descriptors decoded, and cross: against
the uncompressed one), and the same for the transforms without quantization (the transform's own
ceiling).

`gaussian_bits` is the rate-distortion function at D of a Gaussian source with the covariance of
the UTKFace training descriptors (reverse water-filling over its eigenvalues). Among sources of one
covariance the Gaussian needs the most bits, so this is what a codec that only knew the covariance
would need at best; the descriptors can be coded below it only through structure beyond their
covariance, which is what the learned transform is for. D is not the whole story for verification:
an error that scales every descriptor alike costs D and no accuracy, so codecs of equal D can differ
in accuracy (compare the points).

`test_channel` is the backward channel that attains that bound (eval.identity_channel measures the
accuracy it keeps at a given size).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import entropy, models, modelset
from ..facesets import UTK_VALIDATION
from ..layers.identity import IdentityCodec, load_identity_codec
from ..paths import cache_dir, data_dir
from .lfw import read_pairs, verification_accuracy


def gaussian_bits(eigenvalues: np.ndarray, distortion: float) -> float:
    """R(D) in bits of a Gaussian vector with these covariance eigenvalues at total squared error D:
    sum of max(0, log2(lambda / theta) / 2), theta such that sum of min(lambda, theta) = D."""
    lam = np.sort(np.asarray(eigenvalues, np.float64))[::-1]
    if distortion >= lam.sum():
        return 0.0
    lo, hi = 0.0, float(lam.max())
    for _ in range(200):
        theta = (lo + hi) / 2
        lo, hi = (theta, hi) if np.minimum(lam, theta).sum() < distortion else (lo, theta)
    return float(np.maximum(0.0, 0.5 * np.log2(lam / theta)).sum())


def water_level(eigenvalues: np.ndarray, bits: float) -> float:
    """The theta at which reverse water-filling over these eigenvalues spends `bits` (gaussian_bits'
    inverse): sum of max(0, log2(lambda / theta) / 2) = bits."""
    lam = np.asarray(eigenvalues, np.float64)
    lam = lam[lam > 0]
    # bits falls as theta rises; at lo the top eigenvalue alone spends more than `bits`, at hi nothing is
    # spent. Bisected on log(theta), as theta spans orders of magnitude.
    hi = float(lam.max())
    lo = hi * 2.0 ** (-2 * bits - 1)
    for _ in range(200):
        theta = np.sqrt(lo * hi)
        lo, hi = (theta, hi) if np.maximum(0.0, 0.5 * np.log2(lam / theta)).sum() > bits else (lo, theta)
    return float(np.sqrt(lo * hi))


def test_channel(descriptors: np.ndarray, mean: np.ndarray, covariance: np.ndarray, bits: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The descriptors after the backward channel that attains the Gaussian R(D) at `bits` per face
    (see the module's docstring): one random draw of what an ideal code of that size decodes to."""
    lam, vectors = np.linalg.eigh(np.asarray(covariance, np.float64))
    lam = np.maximum(lam, 0.0)
    theta = water_level(lam, bits)
    d = np.minimum(lam, theta)
    gain = np.where(lam > 0, 1 - d / np.where(lam > 0, lam, 1), 0.0)
    z = (np.asarray(descriptors, np.float64) - mean) @ vectors
    z_hat = gain * z + rng.standard_normal(z.shape) * np.sqrt(gain * d)
    return (z_hat @ vectors.T + mean).astype(np.float32)


def measure(codec: IdentityCodec, descriptors: np.ndarray, pairs, eigenvalues: np.ndarray) -> dict:
    symbols = codec.quantize(descriptors)
    decoded = codec.reconstruct(symbols)
    unquantized = codec.synthesise(codec.analyse(descriptors))
    bits = 8 * float(np.mean([len(entropy.encode(s.tolist(), codec.tables)) for s in symbols]))
    d = float(((decoded - descriptors) ** 2).sum(axis=1).mean())
    bound = gaussian_bits(eigenvalues, d)
    return {
        "latent": int(symbols.shape[1]),
        "payload_bytes": bits / 8,
        "mse": d,
        "accuracy": verification_accuracy(pairs, decoded).mean,
        "cross_accuracy": verification_accuracy(pairs, decoded, descriptors).mean,
        "unquantized_accuracy": verification_accuracy(pairs, unquantized).mean,
        "unquantized_mse": float(((unquantized - descriptors) ** 2).sum(axis=1).mean()),
        "gaussian_bits": bound,
        "bits_over_gaussian": bits / max(bound, 1e-9),
    }


def run(model: str | None, exports: list[Path]) -> dict:
    cache = cache_dir()
    pairs = read_pairs(data_dir() / "lfw")
    lfw = np.load(cache / "lfw_desc.npy").mean(axis=1)
    fit = np.load(cache / "utk_desc.npy").mean(axis=1)[:-UTK_VALIDATION]
    eigenvalues = np.linalg.eigvalsh(np.cov(fit.astype(np.float64).T))
    ms = modelset.load(model)
    points = [{"model": models.base_of(ms.entry).name, "rate": r}  # the base model, whose identity codecs these are | measure(ms.base.identity(r), lfw, pairs, eigenvalues)
              for r in ms.base.rates]
    for path in exports:
        tensors = dict(np.load(path))
        rate = int(next(k for k in tensors if k.startswith("identity.r")).split(".")[1][1:])
        points.append({"export": str(path), "rate": rate} | measure(load_identity_codec(tensors, rate), lfw, pairs, eigenvalues))
    return {"fit_faces": len(fit), "points": points}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--export", type=Path, nargs="*", default=[], help="identity_r<k>_export.npz files of train.identity")
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    out = run(args.model, args.export)
    text = json.dumps(out, indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
