"""Replacing a file whole: readers see the old file or the new one, never a part of it.

Used for feed lists that ``ingest feeds import`` appends to and for ``feeds export -o``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, data: str | bytes, *,
                     check: Callable[[Path], None] | None = None) -> None:
    """Replace (or create) ``path`` with ``data`` (text is written as UTF-8).

    The data goes to a unique temporary file in the same folder (``tempfile.mkstemp``,
    so ``os.replace`` is a rename on one file system), is flushed to disk, and takes the
    mode of the file it replaces (a new file gets the usual mode under the umask).
    ``check``, when given, is called with the temporary file before it replaces
    ``path``: whatever it raises leaves ``path`` unchanged.  The temporary file never
    outlives the call.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(name)
    try:
        with open(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(temp, mode)
        if check is not None:
            check(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _sync_folder(path.parent)


def _umask() -> int:
    """The process's umask (read by setting it, as the OS offers no other portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """Flush the rename to disk too, where the OS lets a folder be opened (not Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
