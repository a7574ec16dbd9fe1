import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from scalableface.entropy import BATCH_MAX_PAYLOAD, TOTAL, FrequencyTable, decode, decode_many, encode
from scalableface.errors import BitstreamError


def gaussian_table(scale, half=12):
    x = np.arange(-half, half + 1)
    return FrequencyTable.from_pmf(-half, np.exp(-0.5 * (x / scale) ** 2))


def test_from_pmf_keeps_every_symbol_codable():
    t = FrequencyTable.from_pmf(0, [1.0, 0.0, 1e-12, 5.0])
    assert sum(t.freqs) == TOTAL and min(t.freqs) >= 1


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_round_trip(data):
    n = data.draw(st.integers(0, 40))
    scales = data.draw(st.lists(st.floats(0.05, 6), min_size=n, max_size=n))
    tables = [gaussian_table(s) for s in scales]
    symbols = [data.draw(st.integers(-12, 12)) for _ in range(n)]
    payload = encode(symbols, tables)
    assert decode(payload, tables) == symbols


def test_rate_is_within_a_byte_of_the_information_content():
    rng = np.random.default_rng(1)
    tables = [gaussian_table(s) for s in rng.uniform(0.3, 3, 32)]
    total_bytes = total_info = 0
    for _ in range(200):
        symbols = [int(np.clip(round(rng.normal(0, 1.5)), -12, 12)) for _ in tables]
        total_bytes += len(encode(symbols, tables))
        total_info += -sum(np.log2(t.freqs[s - t.offset] / TOTAL) for s, t in zip(symbols, tables)) / 8
    assert total_bytes / 200 <= total_info / 200 + 1.0


def test_most_probable_symbols_cost_one_byte_and_an_empty_payload_is_refused():
    t = FrequencyTable(0, (TOTAL - 1, 1))
    assert encode([0, 0, 0], [t] * 3) == b"\x00"
    assert decode(b"\x00", [t] * 3) == [0, 0, 0]
    with pytest.raises(BitstreamError):
        decode(b"", [t] * 3)


def test_padded_payloads_are_refused():
    tables = [gaussian_table(s) for s in np.linspace(0.3, 3, 32)]
    payload = encode([(-1) ** i * (i % 5) for i in range(32)], tables)
    for bad in (payload + b"\x00", payload + b"\x80", payload + b"\xff\xff"):
        with pytest.raises(BitstreamError):
            decode(bad, tables)


def test_symbol_outside_table_is_refused():
    with pytest.raises(ValueError):
        encode([13], [gaussian_table(1.0)])


@given(st.binary(max_size=64))
def test_any_payload_decodes_to_in_range_symbols_or_is_refused(payload):
    tables = [gaussian_table(1.0)] * 16
    try:
        out = decode(payload, tables)
    except BitstreamError:
        return
    assert all(-12 <= s <= 12 for s in out) and encode(out, tables) == payload


def test_decode_many_equals_the_reference_on_real_payloads():
    rng = np.random.default_rng(3)
    tables = [gaussian_table(s) for s in rng.uniform(0.1, 5, 32)]
    symbols = np.clip(np.rint(rng.normal(0, 2, (500, 32))), -12, 12).astype(np.int64)
    payloads = [encode(row.tolist(), tables) for row in symbols]
    got, canonical = decode_many(payloads, tables)
    assert (got == symbols).all() and canonical.all()


# Payloads of repeated bytes land exactly on table boundaries, where the float estimate must be checked.
_EDGE = st.sampled_from([b"", b"\x00", b"\x80", b"\x40\x00", b"\xc0", b"\xff" * 9, b"\x80" * 16, b"\x00\x01"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=BATCH_MAX_PAYLOAD + 8), _EDGE), min_size=1, max_size=40),
       st.lists(st.sampled_from([0.05, 0.5, 1.0, 3.0, "half", "skewed", "single"]), max_size=40))
def test_decode_many_equals_the_reference_on_any_payload(payloads, kinds):
    special = {"half": FrequencyTable(-1, (TOTAL // 2, TOTAL // 2)), "skewed": FrequencyTable(0, (TOTAL - 1, 1)),
               "single": FrequencyTable(5, (TOTAL,))}
    tables = [special[k] if isinstance(k, str) else gaussian_table(k) for k in kinds]
    _agrees_with_the_encoder(payloads, tables)


def _agrees_with_the_encoder(payloads, tables):
    """decode_many's symbols are decode()'s, and a payload is canonical (decode() takes it) exactly
    when encode writes it for those symbols: the definition the decoders' shortcut must meet."""
    got, canonical = decode_many(payloads, tables)
    assert got.shape == (len(payloads), len(tables)) and canonical.shape == (len(payloads),)
    for p, row, ok in zip(payloads, got.tolist(), canonical):
        assert ok == (encode(row, tables) == p), (p, row)
        if ok:
            assert decode(p, tables) == row
        else:
            with pytest.raises(BitstreamError):
                decode(p, tables)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_canonical_check_near_real_codes(data):
    """Codes one byte longer or shorter, a last byte one off, 0xff runs: where the check's two
    conditions (rounded up, no shorter code) decide."""
    n = data.draw(st.integers(0, 24))
    scales = data.draw(st.lists(st.sampled_from([0.05, 0.3, 1.0, 4.0]), min_size=n, max_size=n))
    tables = [gaussian_table(s) for s in scales]
    payloads = []
    for _ in range(8):
        code = encode([data.draw(st.integers(-12, 12)) for _ in range(n)], tables)
        byte = data.draw(st.integers(0, 255))
        payloads += [code, code + bytes([byte]), code[:-1], code[:-1] + bytes([(code[-1] + 1) % 256]),
                     code[:-1] + bytes([(code[-1] - 1) % 256]), b"\xff" * (len(code) - 1) + code[-1:],
                     b"\xff" * len(code), code + b"\x00"]
    _agrees_with_the_encoder(payloads, tables)
