"""The project's own error types: every failure a user can cause ends in one of these."""


class SfaceError(Exception):
    """Base class: the CLI prints its message and exits with status 1, never a traceback."""


class BitstreamError(SfaceError):
    """An .sfc file is truncated, corrupted, of an unknown version, or otherwise not decodable."""


class InputError(SfaceError):
    """An input image is unreadable, or holds no face."""


class ModelError(SfaceError):
    """A model is not installed, or its weights do not match their recorded hash."""
