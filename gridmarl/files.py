"""Atomic file writes: the one implementation every file the project saves goes through.

A file is written under a unique temporary name in its target's folder and then moved over the target with
``os.replace``, so a reader sees either the old file or the whole new one, never half of one, and two
writers of the same path never share a temporary file. On any error the temporary file is removed and the
target is untouched. The new file gets the mode an ordinary ``open(path, "w")`` would give it
(``0o666 & ~umask``), not the private ``0o600`` of a temporary file.

This module is plain Python (no numpy, no torch), so the game package, ``gridmarl_wm`` and the benchmark
scripts all share it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_copy", "atomic_path", "atomic_write", "atomic_write_text", "default_file_mode"]


def default_file_mode() -> int:
    """The mode a new file gets from ``open(path, "w")`` in this process: ``0o666 & ~umask``."""
    umask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path in ``path``'s folder for the caller to fill (by name, for writers that
    want a file name rather than an open file); when the block ends normally the file gets the usual mode
    and replaces ``path``, and on any error it is removed. ``suffix`` ends the temporary name (a writer that
    picks its format by extension needs it, e.g. ``".tmp.mp4"``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp makes the file private (0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills an open binary temporary file in the same folder,
    which then replaces ``path``. On any error the temporary file is removed and ``path`` is untouched.
    Returns ``path`` as a :class:`~pathlib.Path`."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy the file ``src`` to ``dst`` atomically."""

    def copy(f: IO[bytes]) -> None:
        with open(src, "rb") as s:
            while chunk := s.read(1 << 20):
                f.write(chunk)

    return atomic_write(dst, copy)
