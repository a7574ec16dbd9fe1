"""The validation curve of a training run, from its log: a plot and a copy of the log's points.

    python -m scalableface.train.curve ~/.cache/scalableface/enhance_v3.log -o results/training/sface-v3

train.enhance writes one JSON line per validation (every 500 steps: step, loss, and per quality the
estimated bpp and PSNR on the held-out UTKFace crops). This keeps those lines as OUT/validation.json
(the log itself lives outside the repo, beside the checkpoint) and plots PSNR and bpp per quality
against the step as OUT/validation.png, the curve a model card shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_log(path: Path) -> list[dict]:
    """The validation lines of a train.enhance log, in step order (other lines are skipped)."""
    points = []
    for line in path.read_text().splitlines():
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(point, dict) and "step" in point:
            points.append(point)
    return sorted(points, key=lambda p: p["step"])


def qualities(points: list[dict]) -> list[str]:
    return sorted((k for k in points[-1] if k[0] == "q" and k[1:].isdigit()), key=lambda k: int(k[1:]))


def plot(points: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_psnr, ax_bpp) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = [p["step"] for p in points]
    for q in qualities(points):
        ax_psnr.plot(steps, [p[q][1] for p in points], label=q)
        ax_bpp.plot(steps, [p[q][0] for p in points], label=q)
    ax_psnr.set(xlabel="step", ylabel="PSNR-RGB (dB, estimated)", title="validation PSNR")
    ax_bpp.set(xlabel="step", ylabel="bpp (estimated)", title="validation rate", yscale="log")
    for ax in (ax_psnr, ax_bpp):
        ax.grid(alpha=0.3)
    ax_psnr.legend(fontsize=7, ncol=3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", type=Path, help="a train.enhance log (JSON lines)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="folder for validation.json and validation.png")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    points = read_log(args.log)
    if not points:
        ap.error(f"{args.log} has no validation lines")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "validation.json").write_text(json.dumps(points, indent=0) + "\n")
    plot(points, args.out / "validation.png", args.title or f"{args.log.stem}: {points[-1]['step']:,} steps")
    print(f"{len(points)} validation points, steps {points[0]['step']}-{points[-1]['step']} -> {args.out}")


if __name__ == "__main__":
    main()
