"""``gridmarl.animation``: GIFs read back with Pillow hold every frame, exactly; errors; atomic writes; MP4."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
from helpers import one_state as make_state
from helpers import read_gif

import gridmarl  # noqa: F401  (registers GridMARL-v0)
from gridmarl import animation
from gridmarl.animation import record_episode, save_animation
from gridmarl.config import make_config
from gridmarl.core import GridCore, State
from gridmarl.render import FLOOR_COLOUR, player_colour, render_rgb

Image = pytest.importorskip("PIL.Image")

P = 48


def centre(img: np.ndarray, r: int, c: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in img[r * P + P // 2, c * P + P // 2])


@pytest.fixture
def core() -> GridCore:
    # 3 rows x 5 columns, 3 players, a wall at (1, 1).
    return GridCore(make_config(height=3, width=5, n_agents=3, walls=[(1, 1)]))


@pytest.fixture
def states() -> list[State]:
    # player_0 walks along row 0 (standing still once); player_1 and player_2 share (1, 3); coins stay.
    coins = [4, 10, 12]
    return [make_state([cell, 8, 8], coins, t) for t, cell in enumerate([0, 1, 1, 2])]


def test_gif_reads_back_every_frame_exactly(tmp_path, core, states) -> None:
    frames = [render_rgb(core, s) for s in states]
    path = save_animation(frames, tmp_path / "walk.gif", fps=4)
    assert path == tmp_path / "walk.gif"
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == len(frames)
        assert im.info["duration"] == 250 and im.info["loop"] == 0
    back = read_gif(path)
    assert len(back) == len(frames)  # the repeated frame (player_0 stays) is kept, not merged
    for i, (got, want) in enumerate(zip(back, frames)):
        assert got.shape == want.shape and np.array_equal(got, want), i
    # The state puts player_0 at (0, 2) in the last frame: that cell's centre is its exact colour.
    r, c = divmod(int(states[3].agents[0, 0]), core.config.width)
    assert (r, c) == (0, 2)
    assert centre(back[3], r, c) == centre(frames[3], r, c) == player_colour(0)
    assert centre(back[3], 0, 0) == FLOOR_COLOUR
    assert centre(back[0], 0, 0) == player_colour(0)
    # Coins of colours 0, 1, 2 at (0, 4), (2, 0), (2, 2).
    assert [centre(back[3], *rc) for rc in [(0, 4), (2, 0), (2, 2)]] == [player_colour(i) for i in range(3)]
    # Frames differ where the state changed and only there.
    assert not np.array_equal(back[0], back[1]) and np.array_equal(back[1], back[2])
    changed = np.argwhere(np.any(back[0] != back[1], axis=2))
    assert changed[:, 0].max() < P and changed[:, 1].max() < 2 * P  # only cells (0, 0) and (0, 1)


def test_gif_accepts_an_array_and_one_frame(tmp_path, core, states) -> None:
    stack = np.stack([render_rgb(core, s, cell_px=8) for s in states])
    save_animation(stack, tmp_path / "a.gif")
    assert np.array_equal(np.stack(read_gif(tmp_path / "a.gif")), stack)
    save_animation(stack[:1], tmp_path / "one.GIF")
    assert np.array_equal(read_gif(tmp_path / "one.GIF")[0], stack[0])


def test_gif_with_more_than_256_colours_keeps_frames(tmp_path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 20, 24, 3), dtype=np.uint8)
    save_animation(frames, tmp_path / "noise.gif")
    back = np.stack(read_gif(tmp_path / "noise.gif"))
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 40  # a shared 256-colour palette: close, not exact


def test_record_episode_frames_match_the_state(tmp_path) -> None:
    env = gym.make("GridMARL-v0", render_mode="rgb_array", max_steps=6)
    games = env.unwrapped.games
    cells = []

    def policy(obs):
        cells.append(int(games.state.agents[0, 0]))
        return 4  # right

    frames = record_episode(env, policy=policy, seed=3)
    cells.append(int(games.state.agents[0, 0]))
    assert len(frames) == 7 and len(cells) == 7  # truncated after max_steps
    assert all(f.dtype == np.uint8 and f.shape == frames[0].shape for f in frames)
    save_animation(frames, tmp_path / "episode.gif")
    back = read_gif(tmp_path / "episode.gif")
    assert len(back) == len(frames)
    width = env.unwrapped.config.width
    last_state = games.state
    r, c = divmod(cells[-1], width)
    assert centre(back[-1], r, c) == centre(render_rgb(env.unwrapped.core, last_state), r, c)
    assert all(np.array_equal(a, b) for a, b in zip(back, frames))
    env.close()


def test_record_episode_default_policy_is_seeded_and_steps_cap() -> None:
    env = gym.make("GridMARL-v0", render_mode="rgb_array")
    a = record_episode(env, steps=5, seed=1)
    b = record_episode(env, steps=5, seed=1)
    assert len(a) == 6 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(record_episode(env, steps=0, seed=1)) == 1
    with pytest.raises(ValueError, match="steps"):
        record_episode(env, steps=-1)
    with pytest.raises(ValueError, match="render_mode"):
        record_episode(gym.make("GridMARL-v0", render_mode="ansi"))
    env.close()


@pytest.mark.parametrize("name", ["x.png", "x", "x.gif.bak", "x.webm"])
def test_bad_suffix(tmp_path, name) -> None:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(
        ValueError, match=r"path must end in one of \.gif, \.mp4.*" + name.replace(".", r"\.")
    ):
        save_animation([frame], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "at least one frame"),
        (np.zeros((0, 4, 4, 3), dtype=np.uint8), "at least one frame"),
        ([np.zeros((4, 4, 3), dtype=np.float32)], r"frames\[0\] must have dtype uint8, got float32"),
        ([np.zeros((4, 4), dtype=np.uint8)], r"frames\[0\] must have shape \(H, W, 3\)"),
        ([np.zeros((4, 4, 4), dtype=np.uint8)], r"frames\[0\] must have shape \(H, W, 3\)"),
        (np.zeros((4, 4, 3), dtype=np.uint8), r"frames must be an array of shape \(T, H, W, 3\)"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], r"frames\[1\] has shape"),
        ("frames", "frames must be a list"),
    ],
)
def test_bad_frames(tmp_path, frames, message) -> None:
    with pytest.raises(ValueError, match=message):
        save_animation(frames, tmp_path / "x.gif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf"), True, "4"])
def test_bad_fps(tmp_path, fps) -> None:
    with pytest.raises(ValueError, match="fps must be a positive number"):
        save_animation([np.zeros((4, 4, 3), dtype=np.uint8)], tmp_path / "x.gif", fps=fps)


def test_atomic_write_leaves_no_temp_files(tmp_path, core, states, monkeypatch) -> None:
    frames = [render_rgb(core, s, cell_px=8) for s in states]
    target = tmp_path / "walk.gif"
    save_animation(frames, target)
    save_animation(frames[::-1], target)  # overwrites in place
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]
    assert np.array_equal(read_gif(target)[0], frames[-1])
    before = target.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(animation, "_palette_frames", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_animation(frames, target)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]  # no temp file, the old file untouched
    assert target.read_bytes() == before


def test_missing_libraries_raise_import_error_with_the_pip_line(tmp_path, monkeypatch) -> None:
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ImportError, match="pip install imageio imageio-ffmpeg"):
        save_animation([frame], tmp_path / "x.mp4")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        save_animation([frame], tmp_path / "x.gif")
    assert list(tmp_path.iterdir()) == []


def test_mp4(tmp_path, core, states) -> None:
    # The test extra installs imageio and imageio-ffmpeg, so CI runs this test: no skip when they are absent.
    import imageio.v2 as imageio
    import imageio_ffmpeg  # noqa: F401

    frames = [render_rgb(core, s) for s in states]
    path = save_animation(frames, tmp_path / "walk.mp4", fps=4)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]
    with imageio.get_reader(path) as reader:
        back = [np.asarray(f) for f in reader]
    assert len(back) == len(frames) and back[0].shape == frames[0].shape
    # Lossy, but player_0's cell is still close to its colour.
    assert np.abs(np.subtract(centre(back[3], 0, 2), player_colour(0))).max() < 40
