"""scalableface: a layered face codec whose base layer is a recognition feature.

The library API (the CLI, tests and benchmarks all call it) is in `scalableface.codec`; its main
functions are re-exported here lazily, so that `import scalableface` stays light (no torch).
"""

__version__ = "0.2.0"

_API = {"encode", "decode", "extract_features", "compare", "align_image", "encode_crops", "decode_many", "paste_into"}


def __getattr__(name):
    if name in _API:
        from . import codec

        return getattr(codec, name)
    raise AttributeError(f"module 'scalableface' has no attribute {name!r}")
