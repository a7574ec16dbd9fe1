"""Identity layer at run time: descriptor <-> entropy-coded latent, in numpy (no torch, no network).

The analysis and synthesis transforms are small MLPs (Linear, SiLU, ...); training (train/identity.py)
writes their weights and one integer frequency table per latent dimension into the model file under
`identity.r<k>.*`, one set per base rate point k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import entropy
from ..errors import BitstreamError, ModelError


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _mlp(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = _silu(x)
    return x


@dataclass(frozen=True)
class IdentityCodec:
    analysis: list  # [(weight, bias), ...] as torch.nn.Linear stores them
    synthesis: list
    medians: np.ndarray  # latent value of symbol 0, per dimension
    input_scale: float  # descriptors are multiplied by this before the analysis transform
    tables: list  # entropy.FrequencyTable per latent dimension

    def analyse(self, descriptors: np.ndarray) -> np.ndarray:
        """The latent (N x dims) before rounding."""
        return _mlp(np.asarray(descriptors, np.float32) * self.input_scale, self.analysis)

    def synthesise(self, latents: np.ndarray) -> np.ndarray:
        """Descriptors (N x 128, float32) from latents (rounded or not)."""
        return (_mlp(np.asarray(latents, np.float32), self.synthesis) / self.input_scale).astype(np.float32)

    def quantize(self, descriptors: np.ndarray) -> np.ndarray:
        """Integer symbols (N x dims), clamped to their tables as bitstream_spec.md says."""
        return entropy.quantize(self.analyse(descriptors), self.medians, self.tables)

    def reconstruct(self, symbols: np.ndarray) -> np.ndarray:
        """Descriptors (N x 128, float32) from integer symbols."""
        return self.synthesise((np.asarray(symbols, np.float32) + self.medians).astype(np.float32))

    def encode(self, descriptor: np.ndarray) -> tuple[bytes, np.ndarray]:
        """(payload, symbols) for one descriptor."""
        q = self.quantize(descriptor[None])[0]
        return entropy.encode(q.tolist(), self.tables), q

    def decode_symbols(self, payload: bytes) -> np.ndarray:
        try:
            return np.array(entropy.decode(payload, self.tables), dtype=np.int64)
        except BitstreamError as e:
            raise BitstreamError(f"identity layer: {e}") from None

    def sample_symbols(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n rows of symbols drawn from the entropy tables, each dimension independently, as the
        factorised entropy model assumes: faces that follow the codec's own distribution."""
        out = np.empty((n, len(self.tables)), np.int64)
        for j, t in enumerate(self.tables):
            out[:, j] = t.offset + rng.choice(len(t.freqs), size=n, p=np.asarray(t.freqs) / entropy.TOTAL)
        return out

    def decode_symbols_many(self, payloads) -> tuple[np.ndarray, np.ndarray]:
        """(N x dims symbols, N booleans): decode_symbols of many payloads in one vectorised pass, and
        which payloads are the canonical code of their symbols (decode_symbols refuses the others)."""
        return entropy.decode_many(payloads, self.tables)


def _linear_stack(tensors: dict, prefix: str) -> list:
    layers, i = [], 0
    while f"{prefix}.{i}.weight" in tensors:
        layers.append((tensors[f"{prefix}.{i}.weight"].astype(np.float32), tensors[f"{prefix}.{i}.bias"].astype(np.float32)))
        i += 1
    if not layers:
        raise ModelError(f"model file lacks {prefix}")
    return layers


def load_identity_codec(tensors: dict, rate: int) -> IdentityCodec:
    p = f"identity.r{rate}"
    if f"{p}.medians" not in tensors:
        raise ModelError(f"the model has no base rate point {rate}")
    tables = entropy.unpack_tables(tensors, p)
    return IdentityCodec(
        analysis=_linear_stack(tensors, f"{p}.analysis"),
        synthesis=_linear_stack(tensors, f"{p}.synthesis"),
        medians=tensors[f"{p}.medians"].astype(np.float32),
        input_scale=float(tensors[f"{p}.input_scale"][0]),
        tables=tables,
    )
