"""LFW accuracy of the reference pipeline (our alignment + the dlib ResNet port), the yardstick of
every codec figure: (a) 150x150 chips taken from the photo, (b) the 128x128 canonical crop upsampled
to 150. Each also with flip test-time augmentation (descriptor of the crop and its mirror, averaged),
which is what the sface encoder feeds its base layer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..facesets import aligned_crops, reference_descriptors
from .lfw import read_pairs, verification_accuracy


def lfw_reference(lfw: Path, workers: int = 2) -> dict:
    pairs = read_pairs(lfw)
    crops, methods = aligned_crops("lfw", pairs.images, 128, workers)
    chips, _ = aligned_crops("lfw150", pairs.images, 150, workers)
    d128 = reference_descriptors("lfw", crops)
    d150 = reference_descriptors("lfw150", chips)
    rows = {
        "a_chip150": verification_accuracy(pairs, d150[:, 0]),
        "a_chip150_flip": verification_accuracy(pairs, d150.mean(axis=1)),
        "b_crop128": verification_accuracy(pairs, d128[:, 0]),
        "b_crop128_flip": verification_accuracy(pairs, d128.mean(axis=1)),
    }
    return {
        "images": len(pairs.images),
        "pairs": int(len(pairs.same)),
        "alignment": dict(Counter(methods)),
        "accuracy": {k: {"mean": a.mean, "std": a.std, "folds": a.folds, "threshold_all_pairs": a.threshold} for k, a in rows.items()},
    }
