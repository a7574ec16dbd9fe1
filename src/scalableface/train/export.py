"""Assemble a model set from the trained stages and install it in models/ (safetensors + manifest entry).

    python -m scalableface.train.export --name sface-base-v1 --rates 1 2 3 4 --default-rate 3

Reads <cache>/identity_r<k>_export.npz (train/identity.py) and <cache>/texture.pt (train/texture.py),
or, with --texture-from MODEL, the appearance codec and generator of an installed model (a new
identity codec beside an unchanged texture stage).
The compare threshold is the one scalar taken from LFW: the distance that best separates all 6,000
View-2 pairs for the default rate point's decoded descriptors (as dlib did for its 0.6).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from ..facesets import aligned_crops, reference_descriptors
from ..layers.base import BaseLayer
from ..models import model_id, sha256_file
from ..paths import cache_dir, data_dir
from ..eval.lfw import best_threshold, read_pairs
from .texture import TextureNet
from .texture import export as export_texture

REPO_MODELS = Path(__file__).resolve().parents[3] / "models"


def lfw_thresholds(base: BaseLayer, rate: int, lfw: Path) -> tuple[float, float]:
    """(both descriptors decoded from identity layers, one decoded and one uncompressed)."""
    pairs = read_pairs(lfw)
    crops, _ = aligned_crops("lfw", pairs.images)
    codec = base.identity(rate)
    ref = reference_descriptors("lfw", crops).mean(axis=1)
    d = codec.reconstruct(codec.quantize(ref))
    both = best_threshold(np.linalg.norm(d[pairs.left] - d[pairs.right], axis=1), pairs.same)
    mixed = best_threshold(np.linalg.norm(d[pairs.left] - ref[pairs.right], axis=1), pairs.same)
    return both, mixed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--rates", type=int, nargs="+", required=True)
    ap.add_argument("--default-rate", type=int, required=True)
    ap.add_argument("--summary", default="face codec: identity + appearance base layer (UTKFace, non-commercial research)")
    ap.add_argument("--lfw", type=Path, default=None)
    ap.add_argument("--texture-from", default=None, help="take the appearance codec and generator from this installed model")
    ap.add_argument("--out", type=Path, default=REPO_MODELS)
    args = ap.parse_args(argv)
    cache = cache_dir()

    tensors: dict[str, np.ndarray] = {}
    for r in args.rates:
        tensors |= dict(np.load(cache / f"identity_r{r}_export.npz"))
    if args.texture_from:
        from ..models import find, load

        source_tensors, source_config = load(find(args.texture_from))
        tensors |= {k: v for k, v in source_tensors.items() if k.startswith(("appearance.", "generator."))}
        texture = {k: source_config[k] for k in ("appearance_latent", "texture_width", "texture_steps")}
    else:
        ck = torch.load(cache / "texture.pt", weights_only=True)
        net = TextureNet(ck["args"]["latent"], ck["args"]["width"])
        net.load_state_dict(ck["net"])
        tensors |= export_texture(net)
        texture = {"appearance_latent": ck["args"]["latent"], "texture_width": ck["args"]["width"], "texture_steps": ck["step"]}
    config = {"identity_rates": args.rates, "default_rate": args.default_rate} | texture
    config["threshold"], config["threshold_vs_uncompressed"] = lfw_thresholds(
        BaseLayer(tensors, config | {"threshold": 0}), args.default_rate, args.lfw or data_dir() / "lfw")

    install(tensors, config, args.name, args.summary, args.out)


def install(tensors: dict, config: dict, name: str, summary: str, out: Path, kind: str = "codec",
            extends: str | None = None) -> None:
    """Write <out>/<name>.safetensors (config in its metadata) and put it first in <out>/MANIFEST.json."""
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, weights, metadata={"config": json.dumps(config)})
    sha = sha256_file(weights)
    manifest_path = out / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": []}
    manifest["models"] = [m for m in manifest["models"] if m["name"] != name]
    entry = {"name": name, "file": weights.name, "sha256": sha, "size": weights.stat().st_size,
             "summary": summary, "card": f"{name}.md", "kind": kind}
    if extends:
        entry["extends"] = extends
    manifest["models"].insert(0 if kind == "codec" else len(manifest["models"]), entry)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps({"name": name, "id": model_id(name, sha).hex(), "sha256": sha, "config": config}))

if __name__ == "__main__":
    main()
