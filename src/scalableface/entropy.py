"""Exact arithmetic coding with integer frequency tables (bitstream_spec.md, "Arithmetic code").

The identity and appearance layers are a few dozen symbols each, so the coder keeps the coding interval
as exact big integers instead of a finite-precision range: no carries, no renormalisation, no
floating point, and the payload is the shortest byte string that lands inside the final interval. Every
machine decodes the same symbols because nothing in here depends on floating-point results.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import BitstreamError, ModelError

PRECISION = 16
TOTAL = 1 << PRECISION


@dataclass(frozen=True)
class FrequencyTable:
    """Frequencies of the symbols offset, offset+1, ..., summing to 2**16, none zero."""

    offset: int
    freqs: tuple[int, ...]

    def __post_init__(self):
        if sum(self.freqs) != TOTAL or min(self.freqs) < 1:
            raise ValueError("frequencies must be positive and sum to 2**16")
        cum = [0]
        for f in self.freqs:
            cum.append(cum[-1] + f)
        object.__setattr__(self, "cum", tuple(cum))

    @property
    def max_symbol(self) -> int:
        return self.offset + len(self.freqs) - 1

    @classmethod
    def from_pmf(cls, offset: int, pmf: Sequence[float]) -> "FrequencyTable":
        """Round a probability vector to integer frequencies, keeping every symbol codable."""
        p = np.asarray(pmf, dtype=np.float64)
        if p.ndim != 1 or len(p) < 1 or len(p) > TOTAL // 2 or not np.all(p >= 0) or p.sum() <= 0:
            raise ValueError("pmf must be a non-empty, non-negative vector of at most 32768 entries")
        spare = TOTAL - len(p)
        freqs = 1 + np.floor(p / p.sum() * spare).astype(np.int64)
        # Hand the rounding remainder to the most probable symbols, which lose least by it.
        remainder = TOTAL - int(freqs.sum())
        order = np.argsort(-p, kind="stable")
        freqs[order[: remainder]] += 1
        return cls(offset, tuple(int(f) for f in freqs))


def quantize(latents: np.ndarray, medians: np.ndarray, tables: Sequence[FrequencyTable]) -> np.ndarray:
    """Integer symbols round(latent - median), clamped to each dimension's table as the spec says
    (the end symbols stand for everything beyond)."""
    lo = np.array([t.offset for t in tables])
    hi = np.array([t.max_symbol for t in tables])
    return np.clip(np.rint(latents - medians).astype(np.int64), lo, hi)


def encode(symbols: Sequence[int], tables: Sequence[FrequencyTable]) -> bytes:
    """Code symbols[i] with tables[i]; symbols outside a table's range are a caller error."""
    if len(symbols) != len(tables):
        raise ValueError("one table per symbol")
    low, width, shift = 0, 1, 0  # interval [low, low + width) / 2**shift
    for s, t in zip(symbols, tables):
        i = int(s) - t.offset
        if not 0 <= i < len(t.freqs):
            raise ValueError(f"symbol {s} outside its table [{t.offset}, {t.max_symbol}]")
        low = (low << PRECISION) + t.cum[i] * width
        width *= t.freqs[i]
        shift += PRECISION
    # The shortest k-byte value v (k >= 1) with v / 256**k inside the interval.
    k = 1
    while True:
        v = -((-low << (8 * k)) >> shift)  # ceil(low * 256**k / 2**shift)
        if v < (1 << (8 * k)) and (v << shift) < ((low + width) << (8 * k)):
            return v.to_bytes(k, "big")
        k += 1


def decode(payload: bytes, tables: Sequence[FrequencyTable]) -> list[int]:
    """Inverse of encode: one symbol per table. A payload that is not exactly what encode writes for
    the symbols it decodes to (empty, cut, padded, or most random bytes) raises BitstreamError;
    other corruption is the CRC's job."""
    out = _decode(payload, tables)
    if encode(out, tables) != bytes(payload):
        raise BitstreamError(f"the payload is not the code of {len(tables)} symbols (cut, padded or corrupted)")
    return out


def _decode(payload: bytes, tables: Sequence[FrequencyTable]) -> list[int]:
    num = int.from_bytes(payload, "big")
    den = 1 << (8 * len(payload))
    out = []
    for t in tables:
        target = (num << PRECISION) // den
        i = bisect.bisect_right(t.cum, target) - 1
        out.append(t.offset + i)
        num = (num << PRECISION) - t.cum[i] * den
        den *= t.freqs[i]
    return out


def tables_from_arrays(offsets: np.ndarray, freqs: np.ndarray, lengths: np.ndarray) -> list[FrequencyTable]:
    """Tables as a model file stores them: padded rows of frequencies with their lengths and offsets."""
    if not (offsets.ndim == 1 and freqs.ndim == 2 and lengths.shape == offsets.shape == freqs.shape[:1]):
        raise ModelError("malformed frequency tables in the model file")
    return [FrequencyTable(int(o), tuple(int(f) for f in row[: int(n)])) for o, row, n in zip(offsets, freqs, lengths)]
