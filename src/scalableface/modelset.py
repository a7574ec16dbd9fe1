"""The loaded model sets: one manifest entry with the layers its weights make, loaded once per process.

    ms = modelset.load()                 # the default codec; load("sface-v2") or load(header.model_id)
    ms.base.encode(...)                  # layers.base.BaseLayer: identity and appearance
    ms.enhancement.compress(...)         # layers.enhance.EnhancementCodec, loaded (torch) on first use

Sits above models (the registry) and layers (the coders), below codec, which sequences them.
"""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Optional

from . import models
from .layers.base import BaseLayer


class ModelSet:
    def __init__(self, entry: models.ModelEntry):
        self.entry = entry
        self.tensors, self.config = models.load(entry)
        self.base = BaseLayer(self.tensors, self.config)

    @cached_property
    def enhancement(self):
        """The enhancement layer's codec (ModelError when the set has none). Lazy: it loads torch
        and most of the weights, and identity-only or base-only work never needs it."""
        from .layers.enhance import load_enhancement

        return load_enhancement(self.tensors, self.config)


def load(name_or_id: Optional[str | bytes] = None) -> ModelSet:
    """The model set named by a name, an 8-hex-digit id, a header's 4-byte id, or None (or "") for
    the default codec. Loaded once per process and entry."""
    if isinstance(name_or_id, (bytes, bytearray)):
        return _by_id(bytes(name_or_id))
    return _loaded(models.find(name_or_id) if name_or_id else models.default_model())


@lru_cache(maxsize=16)
def _by_id(model_id: bytes) -> ModelSet:
    # a header's id is looked up once: reading the manifests costs more than decoding a file
    return _loaded(models.find(model_id))


@lru_cache(maxsize=4)
def _loaded(entry: models.ModelEntry) -> ModelSet:
    return ModelSet(entry)
