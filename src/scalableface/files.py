"""Reading inputs and writing outputs safely: `-` for stdin/stdout, atomic writes, no silent overwrite."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .errors import SfaceError


def read_bytes(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except IsADirectoryError:
        raise SfaceError(f"{source}: is a folder (use it as an input of a batch command with --out-dir)") from None
    except OSError as e:
        raise SfaceError(f"cannot read {source}: {e.strerror}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target: str, data: bytes, *, force: bool = False) -> None:
    """Write all of `data` or nothing: a temporary file in the same folder, then a rename."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    if path.exists() and not force:
        raise SfaceError(f"{target} exists (use --force to overwrite)")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise SfaceError(f"cannot write {target}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() would honour the umask
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise SfaceError(f"cannot write {target}: {e.strerror}") from None
        raise


def expand_inputs(paths, suffixes) -> list[tuple[str, Path]]:
    """(input, output-relative path) pairs: files as given, folders searched recursively for files
    whose suffix is in `suffixes`, in sorted order, keeping their layout below the folder."""
    out = []
    for p in paths:
        path = Path(p)
        if p != "-" and path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            out += [(str(f), f.relative_to(path)) for f in found]
        elif p == "-":
            out.append((p, Path("stdin")))
        else:
            # a relative path keeps its folders under the output folder, so a/x.jpg and b/x.jpg differ
            keep = not path.is_absolute() and ".." not in path.parts
            out.append((p, path if keep else Path(path.name)))
    return out


def numbered(path: str, k: int) -> str:
    """NAME-k.EXT beside NAME.EXT: where the k-th of several faces of one photo goes (`--all`)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{k}{p.suffix}"))
