"""Reading inputs and writing outputs safely: `-` for stdin/stdout, atomic writes, no silent overwrite.

Every file the package reads as an input goes through read_path, so an unreadable one is always an
InputError with the same message, whichever command or library call met it."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .errors import InputError, SfaceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".avif", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
# Suffixes that name images Pillow cannot read without a plugin this project does not install
# (pillow-heif): a folder walk reports them instead of passing them over.
UNREADABLE_IMAGE_SUFFIXES = {".heic", ".heif"}


def read_path(path, name: str | None = None) -> bytes:
    """The bytes of a file; InputError naming it (as `name`, else its path) when it cannot be read."""
    name = str(path) if name is None else name
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"cannot read {name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"cannot read {name}: it is a directory") from None
    except PermissionError:
        raise InputError(f"cannot read {name}: permission denied") from None
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from None


def read_bytes(source: str) -> bytes:
    """An input named on the command line: `-` is stdin, a folder is refused with a hint."""
    if source == "-":
        return sys.stdin.buffer.read()
    if os.path.isdir(source):
        raise InputError(f"{source}: is a folder (use it as an input of a batch command with --out-dir)")
    return read_path(source)


def write_stdout(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise SfaceError(f"cannot write to standard output: {e.strerror or e}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temporary(target: str, data: bytes) -> str:
    """A complete copy of `data` in a temporary file beside `target`, with a plain file's permissions."""
    path = Path(target)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise SfaceError(f"cannot write {target}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise SfaceError(f"cannot write {target}: {e.strerror}") from None
        raise
    return tmp


def _commit(tmp: str, target: str, force: bool) -> None:
    """Give the temporary file its final name. Without `force` the name is created exclusively (a hard
    link fails if the name exists), so another process that wrote it first is never overwritten."""
    try:
        if force:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise SfaceError(f"{target} exists (use --force to overwrite)") from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # a file system without hard links: claim the name with O_EXCL, then fill it by rename
            try:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                raise SfaceError(f"{target} exists (use --force to overwrite)") from None
            os.replace(tmp, target)
            return
        os.unlink(tmp)
    except OSError as e:
        raise SfaceError(f"cannot write {target}: {e.strerror}") from None


def refuse_existing(targets: Sequence[str]) -> None:
    """Raise the error a write without --force would, for the first of `targets` that exists (- never does)."""
    for target in targets:
        if target != "-" and os.path.lexists(target):
            raise SfaceError(f"{target} exists (use --force to overwrite)")


def write_bytes(target: str, data: bytes, *, force: bool = False) -> None:
    """Write all of `data` or nothing: a temporary file in the same folder, then a rename."""
    write_files([(target, data)], force=force)


def write_files(outputs: Sequence[tuple[str, bytes]], *, force: bool = False) -> None:
    """Write every (target, data) or none: all are written to temporary files first, then named;
    if one cannot be named, the ones named before it in this call are removed again."""
    if len(outputs) == 1 and outputs[0][0] == "-":
        write_stdout(outputs[0][1])
        return
    if not force:
        refuse_existing([target for target, _ in outputs])
    temps: list[str] = []
    named: list[str] = []
    try:
        for target, data in outputs:
            temps.append(_temporary(target, data))
        for tmp, (target, _) in zip(temps, outputs):
            _commit(tmp, target, force)
            named.append(target)
    except BaseException:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if not force:  # only names this call created: nothing was there before
            for target in named:
                Path(target).unlink(missing_ok=True)
        raise


def _walk(folder: Path, suffixes) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files below `folder` with a suffix in `suffixes`, and (path, reason) for every entry passed
    over for another reason than its suffix."""
    found, passed_over = [], []

    def unreadable(e: OSError):
        passed_over.append((e.filename, f"cannot read the folder: {e.strerror}"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs.sort()
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):
                passed_over.append((os.path.join(root, name), "a symbolic link to a folder, not followed"))
        for name in sorted(files):
            path = os.path.join(root, name)
            suffix = os.path.splitext(name)[1].lower()
            if suffix in UNREADABLE_IMAGE_SUFFIXES:
                passed_over.append((path, f"this installation cannot read {suffix} images"))
                continue
            if suffix not in suffixes:
                continue
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                passed_over.append((path, "a broken symbolic link"))
                continue
            except OSError as e:
                passed_over.append((path, f"cannot read: {e.strerror}"))
                continue
            if not stat.S_ISREG(mode):
                passed_over.append((path, "not a regular file"))
                continue
            found.append(Path(path))
    return found, passed_over


def expand_inputs(paths, suffixes) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """(input, output-relative path) pairs: files as given, folders searched recursively for files
    whose suffix is in `suffixes`, in sorted order, keeping their layout below the folder; and
    (path, reason) for each file a folder walk passed over for another reason than its suffix."""
    out, passed_over = [], []
    for p in paths:
        path = Path(p)
        if p != "-" and path.is_dir():
            found, skipped = _walk(path, suffixes)
            out += [(str(f), f.relative_to(path)) for f in found]
            passed_over += skipped
        elif p == "-":
            out.append((p, Path("stdin")))
        else:
            # a relative path keeps its folders under the output folder, so a/x.jpg and b/x.jpg differ
            keep = not path.is_absolute() and ".." not in path.parts
            out.append((p, path if keep else Path(path.name)))
    return out, passed_over


def numbered(path: str, k: int) -> str:
    """NAME-k.EXT beside NAME.EXT: where the k-th of several faces of one photo goes (`--all`)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{k}{p.suffix}"))
