"""Model registry: name -> weights file + hash + config, loaded without executing code.

Installed models are listed in MANIFEST.json inside a models folder, which is found in this order:
the folders in $SFACE_MODELS (os.pathsep-separated), the `_models` folder inside the installed
package (a wheel install ships the repository's models/ there), and the repository's models/ (a
source checkout or an editable install).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ModelError

MANIFEST = "MANIFEST.json"
REFERENCE_FILES = {
    "dlib-resnet-v1": ("dlib_face_recognition_resnet_model_v1.dat", "reference recognizer (dlib ResNet, 128-d), public domain"),
    "dlib-landmarks-5": ("shape_predictor_5_face_landmarks.dat", "5-point landmark model for alignment, public domain"),
}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    sha256: str
    size: int
    summary: str
    card: Optional[Path]
    kind: str = "codec"
    extends: Optional[str] = None  # a model whose tensors and config this one builds on

    @property
    def short_id(self) -> bytes:
        return model_id(self.name, self.sha256)


def model_id(name: str, sha256_hex: str) -> bytes:
    """The 4-byte id a file header carries (bitstream_spec.md, section 4)."""
    return hashlib.sha256(f"{name}:{sha256_hex}".encode("ascii")).digest()[:4]


def verify(entry: ModelEntry) -> str:
    """"ok", "missing" or "hash mismatch" for a model's weights file."""
    try:
        digest = sha256_file(entry.path)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return "ok" if digest == entry.sha256 else "hash mismatch"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("SFACE_MODELS", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs += [here / "_models", here.parents[1] / "models"]
    return [d for d in dirs if (d / MANIFEST).is_file()]


def codec_models() -> list[ModelEntry]:
    entries: dict[str, ModelEntry] = {}
    for d in model_dirs():
        try:
            manifest = json.loads((d / MANIFEST).read_text())
            for m in manifest["models"]:
                if m["name"] in entries:
                    continue  # an earlier folder overrides a later one
                card = d / m["card"] if m.get("card") else None
                entries[m["name"]] = ModelEntry(
                    m["name"], d / m["file"], m["sha256"], int(m["size"]), m.get("summary", ""), card,
                    m.get("kind", "codec"), m.get("extends"),
                )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"unreadable model manifest {d / MANIFEST}: {e}") from e
    return list(entries.values())


def reference_models() -> list[ModelEntry]:
    """dlib's public-domain models, read from the installed face-recognition-models package."""
    from .dlib_files import dlib_model_path

    out = []
    for name, (filename, summary) in REFERENCE_FILES.items():
        try:
            path = dlib_model_path(filename)
        except ModelError:
            continue
        out.append(ModelEntry(name, path, sha256_file(path), path.stat().st_size, summary, None, "reference"))
    return out


def find(name_or_id: str | bytes) -> ModelEntry:
    """A codec model by name, by 8-hex-digit id, or by the 4-byte id from a file header."""
    models = codec_models()
    if isinstance(name_or_id, bytes):
        wanted = name_or_id.hex()
    else:
        wanted = name_or_id.lower()
    for m in models:
        if wanted in (m.name.lower(), m.short_id.hex()):
            return m
    known = ", ".join(f"{m.name} ({m.short_id.hex()})" for m in models) or "none"
    raise ModelError(f"model {wanted} is not installed (installed: {known})")


def default_model() -> ModelEntry:
    """The first codec of the first manifest (baselines and building blocks are never the default)."""
    models = [m for m in codec_models() if m.kind == "codec"]
    if not models:
        raise ModelError("no codec model is installed (see `sface models`)")
    return models[0]


@lru_cache(maxsize=8)
def load_weights(path: Path, sha256: str) -> tuple[dict, dict]:
    """(numpy tensors, config) from a safetensors file, after checking its hash."""
    from safetensors.numpy import load

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model weights {path}: {e.strerror}") from e
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelError(f"model weights {path} do not match their recorded hash: the file is corrupted or replaced")
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        config = json.loads(metadata.get("config", "{}"))
        if not isinstance(config, dict):
            raise ValueError("its config is not a JSON object")
    except Exception as e:  # safetensors raises its own SafetensorError, json ValueError, ...
        raise ModelError(f"model weights {path} match their recorded hash but are not a valid safetensors "
                         f"model file ({type(e).__name__}: {e})") from None
    # float16 storage halves a network's file; widening to float32 is exact, so the model computes
    # with the same values whichever the file held
    tensors = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in tensors.items()}
    return tensors, config


def base_of(entry: ModelEntry) -> ModelEntry:
    """The model at the end of entry's extends chain (entry itself if it extends none): the one whose
    weights hold the base layer."""
    seen = {entry.name}
    while entry.extends:
        if entry.extends in seen:
            raise ModelError(f"model {entry.name} extends itself through {entry.extends}")
        entry = find(entry.extends)
        seen.add(entry.name)
    return entry


def load(entry: ModelEntry, _seen: tuple = ()) -> tuple[dict, dict]:
    """(tensors, config) of a model; one that extends another gets that one's tensors and config
    under its own (its own win on a clash), each file checked against its own hash."""
    tensors, config = load_weights(entry.path, entry.sha256)
    if not entry.extends:
        return tensors, config
    if entry.extends in _seen:
        raise ModelError(f"model {entry.name} extends itself through {entry.extends}")
    parent_tensors, parent_config = load(find(entry.extends), _seen + (entry.name,))
    return parent_tensors | tensors, parent_config | config
