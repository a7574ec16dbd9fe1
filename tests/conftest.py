import pytest
from PIL import Image
from skimage import data as skdata


@pytest.fixture(scope="session")
def photo(tmp_path_factory):
    """scikit-image's astronaut as a JPEG file: one face, 512x512."""
    p = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(p, quality=92)
    return p


@pytest.fixture(scope="session")
def crop_folder(tmp_path_factory):
    """24 aligned 128x128 crops (shifted copies of the astronaut's canonical crop) as PNG files."""
    import numpy as np

    from scalableface import codec

    d = tmp_path_factory.mktemp("crops")
    crop = codec.align_image(skdata.astronaut()).crop
    for i in range(24):
        Image.fromarray(np.roll(crop, (i % 5 - 2, i // 5 - 2), axis=(0, 1))).save(d / f"{i:02d}.png")
    return d


def identity_file(seed: int = 0, rate: int | None = None) -> bytes:
    """An identity-only .sfc file of a random descriptor for the installed model, made without torch."""
    import numpy as np

    from scalableface import container, models
    from scalableface.layers.base import BaseLayer

    entry = models.default_model()
    base = BaseLayer(*models.load(entry))
    rate = rate or base.default_rate
    payload, _ = base.identity(rate).encode(np.random.default_rng(seed).normal(0, 0.08, 128).astype(np.float32))
    header = container.Header(model_id=entry.short_id, base_rate=rate)
    return container.pack(header, [(container.LayerType.IDENTITY, payload)])
