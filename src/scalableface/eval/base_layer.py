"""Rate-accuracy of the base layer on LFW View-2, and the PCA anchors it is compared with.

For each base rate point of a model: identity-layer payload bytes per face (real entropy-coded
payloads), whole-file bytes of identity-only and base files, LFW 10-fold accuracy of the descriptors
decoded from the identity layer, and for the base-layer generated faces PSNR-RGB, MS-SSIM (window 7)
and the recognizer's LFW accuracy on them. The anchors code the same reference descriptors with PCA +
a uniform scalar quantizer + per-dimension entropy tables, all fitted on 3,000 UTKFace descriptors.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .. import container, entropy, records
from ..container import Header, LayerType
from ..entropy import FrequencyTable
from ..facesets import UTK_VALIDATION, aligned_crops, reference_descriptors
from ..layers.base import BaseLayer
from .lfw import Pairs, read_pairs, verification_accuracy
from .metrics import psnr_msssim

PIXELS = 128 * 128


def _acc(pairs: Pairs, d: np.ndarray, right: np.ndarray | None = None) -> dict:
    a = verification_accuracy(pairs, d, right)
    return {"mean": a.mean, "std": a.std, "threshold_all_pairs": a.threshold}


def pca_anchor(fit: np.ndarray, test: np.ndarray, dims: int, bits: int) -> tuple[np.ndarray, float]:
    """(reconstructed test descriptors, mean entropy-coded bytes per face) for PCA + scalar quantizer."""
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    basis = vt[:dims]
    zf, zt = (fit - mean) @ basis.T, (test - mean) @ basis.T
    lo, hi = zf.min(axis=0), zf.max(axis=0)
    levels = 1 << bits
    step = (hi - lo) / levels
    qf = np.clip(((zf - lo) / step).astype(int), 0, levels - 1)
    qt = np.clip(((zt - lo) / step).astype(int), 0, levels - 1)
    tables = [FrequencyTable.from_pmf(0, np.bincount(qf[:, j], minlength=levels) + 0.5) for j in range(dims)]
    nbytes = np.mean([len(entropy.encode(q.tolist(), tables)) for q in qt])
    recon = (qt + 0.5) * step + lo
    return recon @ basis + mean, float(nbytes)


def mean_psnr_msssim(ref: np.ndarray, out: np.ndarray, chunk: int = 256) -> tuple[float, float]:
    """Mean PSNR-RGB and MS-SSIM (window 7) over the images, in chunks to bound memory."""
    per_image = [psnr_msssim(ref[i : i + chunk], out[i : i + chunk]) for i in range(0, len(ref), chunk)]
    return tuple(float(np.concatenate(m).mean()) for m in zip(*per_image))


DEGRADED_SEED = 99  # the LFW robustness probe's views (training views use seeds 0, 1, ...)


def grid(rows: list[np.ndarray], columns: int = 10) -> np.ndarray:
    """One image: each entry of rows is N x 128 x 128 x 3; the first `columns` of each, side by side."""
    return np.concatenate([np.concatenate(list(r[:columns]), axis=1) for r in rows], axis=0)


def evaluate(lfw, base: BaseLayer, model_id: bytes, utk_descriptors: np.ndarray, workers: int = 2,
             grid_path=None) -> dict:
    from ..recognizer import describe

    from ..augment import views

    pairs = read_pairs(lfw)
    crops, _ = aligned_crops("lfw", pairs.images, 128, workers)
    ref = reference_descriptors("lfw", crops).mean(axis=1)  # the flip-averaged descriptor the encoder codes
    # faces the codec never saw the like of: held-out UTKFace, and LFW degraded (augment.views: jitter,
    # blur, noise, JPEG, colour, mirror) as a robustness probe
    validation = utk_descriptors[-UTK_VALIDATION:]
    degraded = reference_descriptors("lfw-degraded", np.concatenate(
        [views(crops[i : i + 256], seed=DEGRADED_SEED, start=i) for i in range(0, len(crops), 256)])).mean(axis=1)
    out = {"images": len(pairs.images), "reference_flip": _acc(pairs, ref), "reference_degraded": _acc(pairs, degraded),
           "rates": [], "anchors": []}
    shown = np.linspace(0, len(crops) - 1, 10).astype(int)  # spread over the alphabet: different people
    rows = [np.asarray(crops[shown])]

    app_payloads, app_latents = [], []
    for crop in tqdm(crops, desc="appearance"):
        payload, q = base.encode_appearance(crop)
        app_payloads.append(payload)
        app_latents.append(q + base.appearance_medians)
    app_bytes = float(np.mean([len(p) for p in app_payloads]))
    app_latents = np.array(app_latents, np.float32)

    for rate in base.rates:
        codec = base.identity(rate)
        symbols = codec.quantize(ref)
        payloads = [entropy.encode(q.tolist(), codec.tables) for q in symbols]
        decoded = codec.reconstruct(symbols)
        header = Header(model_id=model_id, base_rate=rate)
        id_file = np.mean([len(container.pack(header, [(LayerType.IDENTITY, p)])) for p in payloads])
        base_file = np.mean([len(container.pack(header, [(LayerType.IDENTITY, p), (LayerType.APPEARANCE, a)]))
                             for p, a in zip(payloads, app_payloads)])
        generated = np.concatenate([base.generate(decoded[i : i + 64], app_latents[i : i + 64])
                                    for i in tqdm(range(0, len(decoded), 64), desc=f"generating r{rate}")])
        psnr, msssim = mean_psnr_msssim(crops, generated)
        rows.append(generated[shown])
        identity_bytes = float(np.mean([len(p) for p in payloads]))
        gallery = len(records.to_bytes(model_id, rate, payloads)) / len(payloads)  # one .sfr file, no names
        out["rates"].append({
            "rate": rate,
            "identity_payload_bytes": identity_bytes,
            "identity_file_bytes": float(id_file),
            # all told per face when the whole set is one gallery record file (.sfr, 64 records per CRC)
            "gallery_bytes_per_face": gallery,
            "appearance_payload_bytes": app_bytes,
            "base_payload_bytes": identity_bytes + app_bytes,
            "base_file_bytes": float(base_file),
            "base_payload_bpp": 8 * (identity_bytes + app_bytes) / PIXELS,
            "identity_accuracy": _acc(pairs, decoded),
            # a compressed probe against an uncompressed gallery, as when matching against dlib descriptors
            "identity_vs_uncompressed_accuracy": _acc(pairs, decoded, ref),
            "degraded_identity_accuracy": _acc(pairs, codec.reconstruct(codec.quantize(degraded))),
            # mean L2 distance between decoded and coded descriptor: a generalization gap shows here
            "descriptor_error": {name: float(np.linalg.norm(codec.reconstruct(codec.quantize(d)) - d, axis=1).mean())
                                 for name, d in (("lfw", ref), ("utk_validation", validation), ("lfw_degraded", degraded))},
            "generated_accuracy": _acc(pairs, describe(generated)),
            "generated_psnr_rgb": psnr,
            "generated_ms_ssim_win7": msssim,
        })
    if grid_path:
        from PIL import Image

        Image.fromarray(grid(rows)).save(grid_path)
    fit = utk_descriptors[:3000]
    for dims, bits in [(8, 4), (12, 3), (12, 4), (16, 3), (16, 4), (24, 3), (24, 4), (32, 3), (32, 4), (48, 3), (64, 3), (64, 4)]:
        recon, nbytes = pca_anchor(fit, ref, dims, bits)
        out["anchors"].append({"pca_dims": dims, "bits": bits, "payload_bytes": nbytes, "accuracy": _acc(pairs, recon)})
    for r in out["rates"]:
        anchor = anchor_bytes_at(out["anchors"], r["identity_accuracy"]["mean"])
        r["pca_anchor_bytes_at_equal_accuracy"] = anchor
        r["bytes_saved_vs_pca_anchor"] = None if anchor is None else 1 - r["identity_payload_bytes"] / anchor
    return out


def anchor_bytes_at(anchors: list[dict], accuracy: float) -> float | None:
    """Bytes the anchors' Pareto front needs for `accuracy` (linear between front points); None
    outside the front's range."""
    pts = sorted((a["payload_bytes"], a["accuracy"]["mean"]) for a in anchors)
    front = []
    for b, acc in pts:
        if not front or acc > front[-1][1]:
            front.append((b, acc))
    for (b0, a0), (b1, a1) in zip(front, front[1:]):
        if a0 <= accuracy <= a1:
            return b0 + (accuracy - a0) / (a1 - a0) * (b1 - b0)
    return None
