"""Arbitrary and mutated bytes never crash the parser: a valid file or a BitstreamError, nothing else."""

from hypothesis import given, settings, strategies as st

from scalableface.container import Header, LayerType, Transform, pack, parse
from scalableface.errors import BitstreamError

SAMPLE = pack(
    Header(model_id=b"\x01\x02\x03\x04", base_rate=3, quality=2, transform=Transform(300, 200, (1, 0, 5, 0, 1, 6))),
    [(LayerType.IDENTITY, b"\x9a" * 9), (LayerType.APPEARANCE, bytes(range(37))), (LayerType.ENHANCEMENT, b"\x55" * 200)],
)


def parse_or_error(data: bytes):
    try:
        f = parse(data)
    except BitstreamError as e:
        assert str(e)
        return None
    assert f.size == len(data)
    return f


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    parse_or_error(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_magic(data):
    parse_or_error(b"SFC\x10" + data)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(1, 255)), min_size=1, max_size=8),
       st.integers(0, len(SAMPLE)))
def test_mutated_sample(edits, cut):
    data = bytearray(SAMPLE[:cut] if cut else SAMPLE)
    for pos, xor in edits:
        if pos < len(data):
            data[pos] ^= xor
    f = parse_or_error(bytes(data))
    if f is not None:  # only an untouched prefix that ends at a layer boundary may parse
        assert SAMPLE.startswith(bytes(data))
