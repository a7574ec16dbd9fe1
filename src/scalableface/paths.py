"""Folders outside the repository (the cache, the data sets) and files shipped beside the code."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SfaceError

EXAMPLE_NAME = "astronaut.jpg"


def cache_dir() -> Path:
    """$SFACE_CACHE, else ~/.cache/scalableface; created on first use (only the commands that keep
    results there call this), or an error naming the folder when it cannot be made or written."""
    d = Path(os.environ.get("SFACE_CACHE") or Path.home() / ".cache" / "scalableface")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SfaceError(f"cannot make the cache folder {d}: {e.strerror} (set SFACE_CACHE to a writable folder)") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise SfaceError(f"the cache folder {d} is not writable (set SFACE_CACHE to a writable folder)")
    return d


def data_dir() -> Path:
    """$SFACE_DATA, else ../shared/data (the layout of a checkout beside the shared folder)."""
    return Path(os.environ.get("SFACE_DATA") or Path("..") / "shared" / "data")


def example_photo() -> Path:
    """The bundled example photo: inside an installed package (`_examples`, as the wheel ships it),
    else in the repository's examples/ (a source checkout)."""
    here = Path(__file__).resolve().parent
    for p in (here / "_examples" / EXAMPLE_NAME, here.parents[1] / "examples" / EXAMPLE_NAME):
        if p.is_file():
            return p
    raise SfaceError(f"the bundled example photo {EXAMPLE_NAME} is not installed (pass a photo with --input)")
