"""scalableface: a layered face codec whose base layer is a recognition feature.

The library API (the CLI, tests and benchmarks all call it) is in `scalableface.codec`; its main
functions are re-exported here lazily, so that `import scalableface` stays light (no torch).
"""

__version__ = "0.5.0"

_API = {"encode", "encode_all", "decode", "extract_features", "extract_features_many", "compare", "align_image",
        "encode_crops", "decode_many", "paste_into"}


def __getattr__(name):
    if name in _API:
        from . import codec

        return getattr(codec, name)
    if name == "Gallery":
        from .gallery import Gallery

        return Gallery
    raise AttributeError(f"module 'scalableface' has no attribute {name!r}")
