"""Folders outside the repository: the cache (aligned crops, descriptors, checkpoints) and the data sets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$SFACE_CACHE, else ~/.cache/scalableface; created on first use."""
    d = Path(os.environ.get("SFACE_CACHE") or Path.home() / ".cache" / "scalableface")
    d.mkdir(parents=True, exist_ok=True)
    return d


def data_dir() -> Path:
    """$SFACE_DATA, else ../shared/data (the layout of a checkout beside the shared folder)."""
    return Path(os.environ.get("SFACE_DATA") or Path("..") / "shared" / "data")
