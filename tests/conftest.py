import pytest
from PIL import Image
from skimage import data as skdata


@pytest.fixture(scope="session")
def photo(tmp_path_factory):
    """scikit-image's astronaut as a JPEG file: one face, 512x512."""
    p = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(p, quality=92)
    return p
