"""The project's own error types: every failure a user can cause ends in one of these."""


class SfaceError(Exception):
    """Base class: the CLI prints its message and exits with status 1, never a traceback."""


class BitstreamError(SfaceError):
    """An .sfc file is truncated, corrupted, of an unknown version, or otherwise not decodable."""


class SalvageableError(BitstreamError):
    """The enhancement layer is damaged but the base layer below it is intact (decode can salvage it)."""


class InputError(SfaceError):
    """An input image is unreadable, or holds no face."""


class ModelError(SfaceError):
    """A model is not installed, or its weights do not match their recorded hash."""


def named(error: SfaceError, name: str) -> SfaceError:
    """The same error with the file it is about in front, unless its message names it already."""
    return error if name in str(error) else type(error)(f"{name}: {error}")


class Terminated(BaseException):
    """SIGTERM arrived (the CLI's handler raises it): unwinds like Ctrl-C, so temporaries are removed.
    A BaseException, so that no `except Exception` on the way swallows it."""
