"""Where dlib's model files live on this machine.

The PyPI package ``face-recognition-models`` ships dlib's files (the 5-point shape
predictor, the ResNet face descriptor, ...) in a ``models/`` folder next to its
``__init__.py``. Importing that package fails on recent setuptools (it imports
``pkg_resources``), so the folder is located with ``importlib.util.find_spec``, which
does not run the package's code.

This module imports neither torch nor dlib: align.py and recognizer.py both use it.
"""

from __future__ import annotations

import importlib.util
import pathlib

from .errors import ModelError

PACKAGE = "face_recognition_models"
PIP_NAME = "face-recognition-models"


def dlib_models_dir() -> pathlib.Path:
    """The ``models`` folder of the installed face-recognition-models package."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):  # a broken or half-installed package
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelError(
            f"the Python package {PIP_NAME!r} is not installed; it holds dlib's model "
            f"files (install it with: pip install {PIP_NAME})"
        )
    return pathlib.Path(locations[0]) / "models"


def dlib_model_path(filename: str) -> pathlib.Path:
    """Path of one of dlib's model files, e.g. ``shape_predictor_5_face_landmarks.dat``.

    Raises ModelError naming the file and the package when it is missing.
    """
    path = dlib_models_dir() / filename
    if not path.is_file():
        raise ModelError(
            f"dlib model file {filename!r} not found at {path}; reinstall the package "
            f"{PIP_NAME!r} (pip install --force-reinstall {PIP_NAME})"
        )
    return path
