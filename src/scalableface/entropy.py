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
    out, num, den = _decode(payload, tables)
    if not _canonical(payload, num, den, PRECISION * len(tables)):
        raise BitstreamError(NOT_CODE.format(n=len(tables)))
    return out


NOT_CODE = "the payload is not the code of {n} symbols (cut, padded or corrupted)"


# Whether a payload P of L bytes is what encode writes, from the decoder's final state alone. With s =
# 16 * symbols, encode's interval is [low, low + width) / 2**s and it writes the first length k whose
# v_k = ceil(low * 256**k / 2**s) lies inside with v_k < 256**k. After decoding, num = P * 2**s -
# low * 256**L and den = width * 256**L, and 0 <= num < den (P lies inside). So P is encode's output
# iff L >= 1, P = v_L, i.e. (P - 1) * 2**s < low * 256**L, i.e. num < 2**s, and length L - 1 had no
# valid code: v_{L-1} * 256 is P rounded up to a multiple of 256 (P_up), inside iff (P_up - P) * 2**s +
# num < den (the interval ends at or below 1, so v_k < 256**k holds whenever v_k is inside). A shorter
# valid code at any length implies one at L - 1.
def _canonical(payload: bytes, num: int, den: int, s: int) -> bool:
    if not payload or num >= 1 << s:
        return False
    up = -payload[-1] % 256  # P_up - P
    return len(payload) == 1 or (up << s) + num >= den


def _decode(payload: bytes, tables: Sequence[FrequencyTable]) -> tuple[list[int], int, int]:
    """(symbols, num, den): the symbols and the decoder's final state (see _canonical)."""
    num = int.from_bytes(payload, "big")
    den = 1 << (8 * len(payload))
    out = []
    for t in tables:
        target = (num << PRECISION) // den
        i = bisect.bisect_right(t.cum, target) - 1
        out.append(t.offset + i)
        num = (num << PRECISION) - t.cum[i] * den
        den *= t.freqs[i]
    return out, num, den


# ---- tables in a model file ----------------------------------------------------------------------
#
# A set of tables is stored as three tensors under a prefix: <prefix>.table_offsets (first symbol of
# each table), <prefix>.table_lengths and <prefix>.table_freqs (one row per table, zero-padded to the
# longest). Training writes them with pack_tables, the run-time coders read them with unpack_tables.


def pack_tables(prefix: str, tables: Sequence[FrequencyTable]) -> dict[str, np.ndarray]:
    """The model-file tensors of `tables` under `prefix`."""
    width = max(len(t.freqs) for t in tables)
    return {
        f"{prefix}.table_offsets": np.array([t.offset for t in tables], np.int32),
        f"{prefix}.table_lengths": np.array([len(t.freqs) for t in tables], np.int32),
        f"{prefix}.table_freqs": np.array([list(t.freqs) + [0] * (width - len(t.freqs)) for t in tables], np.int32),
    }


def unpack_tables(tensors: dict, prefix: str) -> list[FrequencyTable]:
    """The tables pack_tables stored under `prefix`; ModelError when they are missing or malformed."""
    try:
        offsets, freqs, lengths = (np.asarray(tensors[f"{prefix}.table_{k}"]) for k in ("offsets", "freqs", "lengths"))
    except KeyError as e:
        raise ModelError(f"model file lacks {e.args[0]}") from None
    if not (offsets.ndim == 1 and freqs.ndim == 2 and lengths.shape == offsets.shape == freqs.shape[:1]):
        raise ModelError(f"malformed frequency tables {prefix} in the model file")
    try:
        return [FrequencyTable(int(o), tuple(row[: int(n)].tolist())) for o, row, n in zip(offsets, freqs, lengths)]
    except ValueError:
        raise ModelError(f"malformed frequency tables {prefix} in the model file") from None


# ---- many payloads at once -----------------------------------------------------------------------
#
# decode() above is the reference. decode_many() runs the same exact arithmetic on a batch of payloads
# with numpy: each big integer is a column of 32-bit limbs (held in int64, so a limb times a 16-bit
# frequency plus a carry cannot overflow), and the symbol search uses a float estimate of
# num * 2**16 / den that is checked exactly whenever it lies near a table boundary. Decoding depends
# only on the value payload / 256**len(payload), so payloads are right-padded with zero bytes to one
# length without changing a symbol.

LIMB_BITS = 32
_LIMB_MASK = (1 << LIMB_BITS) - 1
BATCH_MAX_PAYLOAD = 64  # bytes; a longer payload (no model writes one) takes the reference decoder
_BATCH_ROWS = 1 << 16  # payloads per numpy pass: bounds the memory of the limb arrays
_MARGIN = 2.0 ** -20  # the float estimate is within 2**-34 of the truth; nearer a boundary, check exactly


def _normalise(a: np.ndarray) -> np.ndarray:
    """Propagate carries from limb a[0] (lowest) upwards in place, leaving every limb but the top one
    in [0, 2**32); the top limb keeps the sign. Returns whether each number is negative."""
    carry = np.zeros(a.shape[1], np.int64)
    for limb in a[:-1]:
        limb += carry
        carry = limb >> LIMB_BITS
        limb &= _LIMB_MASK
    a[-1] += carry
    return a[-1] < 0


def _leading(a: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The three limbs from index `top` down, as a float (in units of limb top - 2)."""
    cols = np.arange(a.shape[1])
    value = a[top, cols].astype(np.float64) * 2.0 ** (2 * LIMB_BITS)
    for k in (1, 2):
        value += np.where(top >= k, a[np.maximum(top - k, 0), cols], 0).astype(np.float64) * 2.0 ** ((2 - k) * LIMB_BITS)
    return value


def _used(head: int, j: int) -> int:
    return head + PRECISION * (j + 1) // LIMB_BITS + 2


def _decode_batch(payloads: Sequence[bytes], tables: Sequence[FrequencyTable]) -> tuple[np.ndarray, np.ndarray]:
    n_rows = len(payloads)
    width = -(-max(len(p) for p in payloads) // 4) * 4  # common padded length in bytes, whole limbs
    head = width // 4
    # den <= 256**width * 2**(16 j) before symbol j, so it and num * 2**16 fit in _used(j) limbs, the top one spare
    limbs = _used(head, len(tables) - 1)
    num = np.zeros((limbs, n_rows), np.int64)
    raw = np.frombuffer(b"".join(p.ljust(width, b"\0") for p in payloads), ">u4").reshape(n_rows, head)
    num[:head] = raw[:, ::-1].T  # big-endian bytes -> little-endian limbs
    den = np.zeros_like(num)
    den[head] = 1  # 256**width
    out = np.empty((n_rows, len(tables)), np.int64)
    for j, t in enumerate(tables):
        cum = np.asarray(t.cum, np.int64)
        freqs = np.diff(cum)
        used = _used(head, j)
        n, d = num[:used], den[:used]
        top = used - 1 - np.argmax(d[::-1] != 0, axis=0)
        y = _leading(n, top) / _leading(d, top) * TOTAL
        i = np.clip(np.searchsorted(cum, y, side="right") - 1, 0, len(freqs) - 1)
        unsure = np.minimum(y - cum[i], cum[i + 1] - y) < _MARGIN
        rem = n * TOTAL - cum[i] * d
        down = np.flatnonzero(_normalise(rem))
        while len(down):  # the estimate overshot: step one symbol down
            i[down] -= 1
            fixed = rem[:, down] + freqs[i[down]] * d[:, down]
            still = _normalise(fixed)
            rem[:, down] = fixed
            down = down[still]
        check = np.flatnonzero(unsure)
        while len(check):  # the estimate may have undershot: step up while rem >= freq * den
            above = rem[:, check] - freqs[i[check]] * d[:, check]
            up = ~_normalise(above)
            check = check[up]
            rem[:, check] = above[:, up]
            i[check] += 1
        num[:used] = rem
        d *= freqs[i]
        _normalise(d)
        out[:, j] = t.offset + i
    return out, _canonical_batch(payloads, num, den, PRECISION * len(tables), width)


def _canonical_batch(payloads: Sequence[bytes], num: np.ndarray, den: np.ndarray, s: int, width: int) -> np.ndarray:
    """_canonical of each payload from _decode_batch's final limbs. Padding a payload of L bytes to
    `width` multiplies num and den by 256**(width - L), so its 2**s becomes 2**(s + 8 (width - L))."""
    lengths = np.array([len(p) for p in payloads])
    cols = np.arange(len(payloads))
    bits = s + 8 * (width - lengths)
    q, r = bits // LIMB_BITS, bits % LIMB_BITS
    below = ~(num * (np.arange(len(num))[:, None] > q)).any(0) & (num[q, cols] >> r == 0)  # num < 2**bits
    last = np.array([p[-1] if p else 0 for p in payloads], np.int64)
    up = -last % 256
    shorter = num.copy()  # (P_up - P) * 2**bits + num - den < 0: length L - 1 had a valid code
    shorter[q, cols] += up << r
    shorter = _normalise(shorter - den)
    return (lengths >= 1) & below & ((lengths == 1) | ~shorter)


def decode_many(payloads: Sequence[bytes], tables: Sequence[FrequencyTable]) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, canonical): the symbols of every payload with the same tables, vectorised, as an
    N x len(tables) int64 array equal symbol for symbol to decode()'s arithmetic, and N booleans,
    whether each payload is the canonical code of its symbols (decode() refuses the others). Long
    payloads take decode()'s arithmetic one at a time."""
    out = np.empty((len(payloads), len(tables)), np.int64)
    canonical = np.empty(len(payloads), bool)
    short = [k for k, p in enumerate(payloads) if len(p) <= BATCH_MAX_PAYLOAD]
    for k in sorted(set(range(len(payloads))) - set(short)):
        row, num, den = _decode(payloads[k], tables)
        out[k], canonical[k] = row, _canonical(payloads[k], num, den, PRECISION * len(tables))
    for s in range(0, len(short), _BATCH_ROWS):
        rows = short[s : s + _BATCH_ROWS]
        out[rows], canonical[rows] = _decode_batch([bytes(payloads[k]) for k in rows], tables)
    return out, canonical
