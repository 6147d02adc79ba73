"""Atomic file writes: the one helper every file ``gridmarl_wm`` saves goes through.

A file is written under a unique temporary name in its target's folder and then moved over the target with
``os.replace``, so a reader sees either the old file or the whole new one, never half of one, and two
writers of the same path never share a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills an open binary temporary file in the same folder,
    which then replaces ``path``. On any error the temporary file is removed and ``path`` is untouched.
    Returns ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
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
