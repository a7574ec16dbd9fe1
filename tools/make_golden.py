"""Make the golden files once: small .sfc files coded with the installed models, the symbols and
descriptors the reference decoder reads from them, and their decoded pixels (bitstream_spec.md,
section 9; tests/golden/README.md says how to use them).

    python tools/make_golden.py [--model sface-v2] [--out tests/golden]

Writes OUT/<model>/ and refuses to run if that folder exists: golden files are never regenerated
silently. A model whose id changed gets a folder of its own. tests/test_golden.py checks every
folder against the installed models with record() below.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
EXPECTED = "expected.json"

# (file, layers, base rate point, enhancement quality, keep the transform); the identity-only file
# is coded with the base model at the end of the main model's extends chain, so both model ids are covered
CASES = [
    ("identity_r1.sfc", "identity", 1, None, False),
    ("base_r3.sfc", "base", 3, None, True),
    ("full_q1_r3.sfc", "full", 3, 1, True),
    ("full_q5_r2.sfc", "full", 2, 5, False),
    ("full_q9_r4.sfc", "full", 4, 9, True),
]


def pixels_sha256(image: np.ndarray) -> str:
    """SHA-256 of a decoded crop's raw RGB bytes (rows top to bottom, R G B per pixel): the same
    for every PNG encoder."""
    return hashlib.sha256(np.ascontiguousarray(image, np.uint8).tobytes()).hexdigest()


def _flat(symbols: np.ndarray) -> dict:
    return {"shape": list(symbols.shape), "values": [int(v) for v in symbols.ravel()]}


def record(data: bytes) -> tuple[dict, np.ndarray]:
    """(what a golden file decodes to, as expected.json stores it; its decoded crop), from the
    installed models through the library's public API, with torch on one thread."""
    import torch

    import scalableface as sf
    from scalableface import container, entropy, modelset
    from scalableface.container import LayerType

    torch.set_num_threads(1)  # CPU convolutions pick their algorithm by thread count
    f = container.parse(data)
    h = f.header
    ms = modelset.load(h.model_id)
    base = ms.base
    symbols: dict = {"identity": [int(s) for s in base.identity(h.base_rate).decode_symbols(f.layer(LayerType.IDENTITY).payload)]}
    appearance = f.layer(LayerType.APPEARANCE)
    if appearance is not None:
        symbols["appearance"] = entropy.decode(appearance.payload, base.appearance_tables)
    enhancement = f.layer(LayerType.ENHANCEMENT)
    if enhancement is not None:
        latent = ms.enhancement.decode_latent(enhancement.payload, h.quality, h.crop_size)
        symbols["enhancement_z"] = _flat(latent.z_symbols)
        symbols["enhancement_y"] = _flat(latent.y_symbols)
    decoded = sf.decode(data)
    t = h.transform
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "model": ms.entry.name,
        "model_id": h.model_hex,
        "header": {
            "version": f.version, "crop_size": h.crop_size, "padding": h.padding, "base_rate": h.base_rate,
            "quality": h.quality,
            "transform": None if t is None else {"photo_size": [t.photo_width, t.photo_height], "matrix": list(t.matrix)},
        },
        "layers": [l.type.name.lower() for l in f.layers],
        "symbols": symbols,
        # float32 values; Python's repr of their float64 widening reads back to the same float32
        "descriptor": [float(v) for v in sf.extract_features(data).astype(np.float32)],
        "decoded": {"layer": decoded.layer, "pixels_sha256": pixels_sha256(decoded.image)},
    }, decoded.image


def _dumps(obj) -> str:
    """JSON with objects indented and lists of numbers on one line each."""
    return re.sub(r"\[\s+([-+0-9.e,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(obj, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="sface-v2", help="the model set to code with (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "golden")
    args = ap.parse_args(argv)

    import scalableface as sf
    from scalableface import models
    from scalableface.errors import SfaceError
    from scalableface.images import save_image

    target = args.out / args.model
    if target.exists():
        print(f"make_golden: error: {target} exists; golden files are never overwritten (a new model "
              f"id gets a folder of its own)", file=sys.stderr)
        return 1
    try:
        entry = models.find(args.model)
        files = []
        for name, layers, rate, quality, keep_transform in CASES:
            model = models.base_of(entry).name if layers == "identity" else entry.name
            data = sf.encode(str(EXAMPLE), layers=layers, base_rate=rate, quality=quality, model=model,
                             keep_transform=keep_transform)
            rec, image = record(data)
            files.append((name, data, rec, image))
    except SfaceError as e:
        print(f"make_golden: error: {e}", file=sys.stderr)
        return 1
    target.mkdir(parents=True)
    out = {"made_by": "tools/make_golden.py", "source": "examples/astronaut.jpg", "package": sf.__version__,
           "files": []}
    for name, data, rec, image in files:
        (target / name).write_bytes(data)
        png = name.replace(".sfc", ".png")
        save_image(image, target / png)
        out["files"].append({"file": name, "png": png} | rec)
    (target / EXPECTED).write_text(_dumps(out) + "\n")
    print(f"wrote {len(files)} golden files to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
