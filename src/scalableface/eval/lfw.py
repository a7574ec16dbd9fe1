"""The LFW View-2 verification protocol: pairs.txt, 10 folds, threshold chosen on 9 and tested on the 10th."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SfaceError


@dataclass(frozen=True)
class Pairs:
    images: list[Path]  # every image the protocol uses, sorted, each once
    left: np.ndarray  # index into images, per pair
    right: np.ndarray
    same: np.ndarray  # bool, per pair
    fold: np.ndarray  # 0..9, per pair


def _image(lfw: Path, name: str, number: str) -> Path:
    return lfw / name / f"{name}_{int(number):04d}.jpg"


def read_pairs(lfw: Path) -> Pairs:
    path = Path(lfw) / "pairs.txt"
    try:
        lines = path.read_text().split("\n")
    except OSError as e:
        raise SfaceError(f"cannot read {path}: {e.strerror} (point --data at the LFW folder holding pairs.txt)") from None
    try:
        folds, per_fold = (int(v) for v in lines[0].split())
        rows = [l.split() for l in lines[1:] if l.strip()]
        if len(rows) != folds * 2 * per_fold:
            raise ValueError(f"{len(rows)} pairs listed, {folds * 2 * per_fold} expected")
        pairs = []
        for i, r in enumerate(rows):
            same = len(r) == 3
            a, b = (_image(lfw, r[0], r[1]), _image(lfw, r[0], r[2])) if same else (_image(lfw, r[0], r[1]), _image(lfw, r[2], r[3]))
            pairs.append((a, b, same, i // (2 * per_fold)))
    except (ValueError, IndexError) as e:
        raise SfaceError(f"{path} is not an LFW View-2 pairs file: {e}") from None
    images = sorted({p for a, b, _, _ in pairs for p in (a, b)})
    index = {p: i for i, p in enumerate(images)}
    return Pairs(
        images=images,
        left=np.array([index[a] for a, _, _, _ in pairs]),
        right=np.array([index[b] for _, b, _, _ in pairs]),
        same=np.array([s for _, _, s, _ in pairs]),
        fold=np.array([f for _, _, _, f in pairs]),
    )


def best_threshold(dist: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (same person below it) with the highest accuracy on these pairs."""
    order = np.argsort(dist, kind="stable")
    d, s = dist[order], same[order]
    # Threshold just above d[k]: pairs 0..k say "same". Correct = same among them + different after.
    correct = np.cumsum(s) + (np.sum(~s) - np.cumsum(~s))
    k = int(np.argmax(correct))
    return float((d[k] + d[k + 1]) / 2) if k + 1 < len(d) else float(d[k] + 1e-6)


@dataclass(frozen=True)
class Accuracy:
    mean: float
    std: float
    folds: list[float]
    threshold: float  # chosen on all pairs, for reference only

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f}% +- {100 * self.std:.2f}"


def verification_accuracy(pairs: Pairs, descriptors: np.ndarray, right: np.ndarray | None = None) -> Accuracy:
    """10-fold accuracy; with `right`, each pair's second image takes its descriptor from there."""
    other = descriptors if right is None else right
    dist = np.linalg.norm(descriptors[pairs.left] - other[pairs.right], axis=1)
    accs = []
    for k in range(int(pairs.fold.max()) + 1):
        test = pairs.fold == k
        t = best_threshold(dist[~test], pairs.same[~test])
        accs.append(float(np.mean((dist[test] < t) == pairs.same[test])))
    return Accuracy(float(np.mean(accs)), float(np.std(accs)), accs, best_threshold(dist, pairs.same))
