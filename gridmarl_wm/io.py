"""Atomic file writes for ``gridmarl_wm``: the names every file it saves goes through.

They are :mod:`gridmarl.files`'s, the project's one implementation (kept in the numpy-only game package so
that the game, the benchmark scripts and ``gridmarl_wm`` share it): a file is written under a unique
temporary name in its target's folder, given the usual mode (``0o666 & ~umask``) and moved over the target
with ``os.replace``, so a reader sees either the old file or the whole new one, never half of one.
"""

from __future__ import annotations

from typing import Any

from gridmarl.files import atomic_copy, atomic_path, atomic_write, atomic_write_text

__all__ = ["atomic_copy", "atomic_path", "atomic_write", "atomic_write_text", "plain"]


def plain(obj: Any) -> Any:
    """Configs as plain containers (string keys, lists for tuples): what JSON files and checkpoints hold,
    and what two configs are compared as."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj
