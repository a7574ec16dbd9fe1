"""The base layer of a model set: identity codec per rate point, appearance codec, generator.

    crops -> describe -> encode -> identity and appearance payloads -> decode -> descriptors, base faces

Everything that needs only the identity layer (descriptors from a file) stays in numpy; the
recognizer, the appearance encoder and the generator load torch on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np

from .. import entropy
from ..errors import BitstreamError, ModelError
from .identity import IdentityCodec, load_identity_codec


@dataclass(frozen=True)
class BaseCode:
    """What the base layer codes for N crops, and the faces a decoder will generate from it."""

    identity_payloads: list
    appearance_payloads: Optional[list]
    faces: Optional[np.ndarray]  # N x 128 x 128 x 3 uint8, when asked for


@dataclass(frozen=True)
class BaseDecoded:
    descriptors: np.ndarray  # N x 128 float32, decoded from the identity layers
    faces: np.ndarray  # N x 128 x 128 x 3 uint8 generated from them and the appearance layers


class BaseLayer:
    def __init__(self, tensors: dict, config: dict):
        self.tensors = tensors
        self.config = config
        self._identity: dict[int, IdentityCodec] = {}

    @property
    def rates(self) -> list[int]:
        return sorted(int(r) for r in self.config["identity_rates"])

    @property
    def default_rate(self) -> int:
        return int(self.config["default_rate"])

    @property
    def threshold(self) -> float:
        return float(self.config["threshold"])

    def identity(self, rate: int) -> IdentityCodec:
        if rate not in self._identity:
            if rate not in self.rates:
                raise ModelError(f"the model has no base rate point {rate} (it has {', '.join(map(str, self.rates))})")
            self._identity[rate] = load_identity_codec(self.tensors, rate)
        return self._identity[rate]

    # -- appearance: integer tables in numpy, encoder and generator in torch ----------------------

    @cached_property
    def appearance_tables(self) -> list:
        return entropy.unpack_tables(self.tensors, "appearance")

    @cached_property
    def appearance_medians(self) -> np.ndarray:
        return self.tensors["appearance.medians"].astype(np.float32)

    def _module(self, cls, prefix: str):
        import torch

        module = cls(int(self.config["appearance_latent"]), int(self.config["texture_width"]))
        state = {k[len(prefix) :]: torch.from_numpy(v.astype(np.float32)) for k, v in self.tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise ModelError(f"model weights under {prefix} do not fit the network: {e}") from None
        return module.eval()

    @cached_property
    def appearance_encoder(self):
        from .appearance import AppearanceEncoder

        return self._module(AppearanceEncoder, "appearance.encoder.")

    @cached_property
    def generator(self):
        from .appearance import Generator

        return self._module(Generator, "generator.")

    def encode_appearances(self, crops: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """(payloads, N x latent symbols) for N x 128 x 128 x 3 uint8 crops."""
        import torch

        x = torch.from_numpy(np.array(crops)).permute(0, 3, 1, 2).float() / 255
        with torch.inference_mode():
            y = self.appearance_encoder(x).numpy()
        q = entropy.quantize(y, self.appearance_medians, self.appearance_tables)
        return [entropy.encode(row.tolist(), self.appearance_tables) for row in q], q

    def encode_appearance(self, crop: np.ndarray) -> tuple[bytes, np.ndarray]:
        payloads, q = self.encode_appearances(np.asarray(crop)[None])
        return payloads[0], q[0]

    def describe(self, crops: np.ndarray) -> np.ndarray:
        """The reference descriptors the identity layer codes (N x 128): the recognizer on each crop
        and on its mirror, averaged. One crop at a time, so a descriptor does not depend on the batch."""
        from ..recognizer import describe

        return np.stack([describe(np.stack([c, c[:, ::-1]])).mean(axis=0) for c in crops])

    def encode(self, crops: np.ndarray, descriptors: np.ndarray, rate: int, *, appearance: bool = True,
               faces: bool = False) -> BaseCode:
        """Identity (and appearance) payloads of N crops with their reference descriptors (describe);
        with `faces`, also the base faces exactly as decoding those payloads gives them."""
        identity = self.identity(rate)
        id_symbols = identity.quantize(descriptors)
        id_payloads = [entropy.encode(row.tolist(), identity.tables) for row in id_symbols]
        if not appearance:
            return BaseCode(id_payloads, None, None)
        app_payloads, app_symbols = self.encode_appearances(crops)
        generated = self.generate(identity.reconstruct(id_symbols), app_symbols + self.appearance_medians) if faces else None
        return BaseCode(id_payloads, app_payloads, generated)

    def decode_identity(self, payload: bytes, rate: int) -> np.ndarray:
        """The descriptor an identity payload coded at `rate` decodes to (numpy only: no torch)."""
        codec = self.identity(rate)
        return codec.reconstruct(codec.decode_symbols(payload)[None])[0]

    def decode(self, identity_payloads: list, appearance_payloads: list, rates: list) -> BaseDecoded:
        """N descriptors and base faces from N identity payloads (each at its rate point) and N
        appearance payloads (None where a file has none: a typical appearance)."""
        descriptors = np.stack([self.decode_identity(p, r) for p, r in zip(identity_payloads, rates)])
        appearances = np.stack([self.decode_appearance(p) for p in appearance_payloads])
        return BaseDecoded(descriptors, self.generate(descriptors, appearances))

    def decode_appearance(self, payload: bytes | None) -> np.ndarray:
        """The appearance latent; without the layer, the median of every dimension (a typical face)."""
        if payload is None:
            return self.appearance_medians.copy()
        try:
            q = np.array(entropy.decode(payload, self.appearance_tables), np.float32)
        except BitstreamError as e:
            raise BitstreamError(f"appearance layer: {e}") from None
        return q + self.appearance_medians

    def generate(self, descriptors: np.ndarray, appearances: np.ndarray) -> np.ndarray:
        """Base faces: N x 128 x 128 x 3 uint8 from N descriptors and N appearance latents, each
        face the same whatever the batch and the thread count (layers/exact.py)."""
        import torch

        from .exact import per_face, to_pixels

        return to_pixels(per_face(self.generator, torch.from_numpy(np.asarray(descriptors, np.float32)),
                                  torch.from_numpy(np.asarray(appearances, np.float32))))
