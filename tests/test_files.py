"""``gridmarl.files``: the one atomic writer (and its re-export in ``gridmarl_wm.io``): whole files only,
nothing left behind on an error, and the ordinary file mode rather than a temporary file's private one."""

from __future__ import annotations

import os
import stat

import pytest

from gridmarl import files


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield 0o022
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("module", ["gridmarl.files", "gridmarl_wm.io"])
def test_a_written_file_has_the_usual_mode_not_a_private_one(tmp_path, umask_022, module):
    import importlib

    io = importlib.import_module(module)
    io.atomic_write_text(tmp_path / "a.txt", "text")
    io.atomic_write(tmp_path / "b.bin", lambda f: f.write(b"\0\1"))
    io.atomic_copy(tmp_path / "a.txt", tmp_path / "c.txt")
    for name in ("a.txt", "b.bin", "c.txt"):
        assert _mode(tmp_path / name) == 0o666 & ~umask_022 == 0o644
    assert (tmp_path / "c.txt").read_text() == "text"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.txt"]


def test_the_mode_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        files.atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600


def test_atomic_path_replaces_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="encoder"), files.atomic_path(target, suffix=".tmp.mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.mp4")
        tmp.write_text("half")
        raise RuntimeError("encoder died")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    with files.atomic_path(target, suffix=".tmp.mp4") as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_gridmarl_wm_io_uses_the_one_implementation():
    from gridmarl_wm import io

    assert io.atomic_write is files.atomic_write
    assert io.atomic_write_text is files.atomic_write_text
    assert io.atomic_copy is files.atomic_copy
