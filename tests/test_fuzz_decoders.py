"""Well-framed files with arbitrary layer payloads reach the entropy decoders and the networks: they
decode to something or raise the project's own error, never crash."""

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image
from skimage import data as skdata

import scalableface as sf
from scalableface import container
from scalableface.errors import SfaceError


@pytest.fixture(scope="module")
def header(tmp_path_factory):
    p = tmp_path_factory.mktemp("fz") / "a.png"
    Image.fromarray(skdata.astronaut()).save(p)
    return container.parse(sf.encode(str(p))).header


@settings(max_examples=40, deadline=None)
@given(identity=st.binary(max_size=40), appearance=st.one_of(st.none(), st.binary(max_size=80)))
def test_arbitrary_payloads(header, identity, appearance):
    layers = [(container.LayerType.IDENTITY, identity)]
    if appearance is not None:
        layers.append((container.LayerType.APPEARANCE, appearance))
    data = container.pack(header, layers)
    try:
        vec = sf.extract_features(data)
        img = sf.decode(data, layer="base").image
    except SfaceError as e:
        assert str(e)
        return
    assert vec.shape == (128,) and img.shape == (128, 128, 3)
