"""The side-by-side viewer: panel pixels follow the states, heat maps the model, history and GIFs the steps."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest
from helpers import read_gif
from PIL import Image
from wm_helpers import GAMES, tiny_model

import gridmarl
from gridmarl.render import FLOOR_COLOUR, player_colour, render_rgb
from gridmarl_wm.model.checkpoint import game_to_dict, save_checkpoint
from gridmarl_wm.planning import RandomShooting
from gridmarl_wm.simulation.exact_model import ExactModel
from gridmarl_wm.viewing.viewer import SideBySide, Viewer, main_view

P = 48


def centre(img: np.ndarray, r: int, c: int, cell_px: int = P) -> tuple[int, int, int]:
    return tuple(int(v) for v in img[r * cell_px + cell_px // 2, c * cell_px + cell_px // 2])


def pixel(img: np.ndarray, yx: tuple[int, int]) -> tuple[int, int, int]:
    return tuple(int(v) for v in img[yx])


def display_open() -> bool:
    return "pygame" in sys.modules and sys.modules["pygame"].display.get_init()


def quiet_move(viewer: Viewer) -> int:
    """An action that moves the ego onto a cell with no coin (the opponent stays): no pickup, no respawn."""
    core = viewer.env.unwrapped.core
    state = viewer.real_state()
    here = int(state.agents[0, 0])
    for a in (1, 2, 3, 4):
        dest = int(core.move[here, a])
        if dest != here and dest not in state.coins[0].tolist():
            return a
    raise AssertionError("no quiet move")


@pytest.fixture
def viewer() -> Viewer:
    return Viewer(ExactModel(), opponent="stay", samples=16, seed=0)


def test_reset_panels_match_the_state(viewer: Viewer) -> None:
    frame = viewer.reset(0)
    d = viewer.drawer
    real, imagined = d.crop(frame, "real"), d.crop(frame, "imagined")
    assert frame.dtype == np.uint8 and frame.shape == d.shape
    np.testing.assert_array_equal(real, imagined)
    state = viewer.real_state()
    np.testing.assert_array_equal(real, render_rgb(viewer.env.unwrapped.core, state, cell_px=P))
    W = viewer.game.width
    for j, cell in enumerate(state.coins[0]):  # coin j has colour j (one coin per player)
        r, c = divmod(int(cell), W)
        assert centre(real, r, c) == centre(imagined, r, c) == player_colour(j)
    r, c = divmod(int(state.agents[0, 0]), W)
    assert centre(imagined, r, c) == player_colour(0)
    assert viewer.in_sync and viewer.probs is None and not display_open()


def test_quiet_step_keeps_panels_equal_and_heat_peaks_at_the_true_cell(viewer: Viewer) -> None:
    viewer.reset(3)
    a = quiet_move(viewer)
    frame = viewer.step(a)
    e = viewer.current
    assert e.real_reward == e.imagined_reward == 0 and e.action == a and e.others.tolist() == [0]
    d = viewer.drawer
    np.testing.assert_array_equal(d.crop(frame, "real"), d.crop(frame, "imagined"))
    ego_cell = int(viewer.real_state().agents[0, 0])
    probs = viewer.probs
    assert probs.shape == (4, 4, 4) and int(probs[0].argmax()) == ego_cell and probs[0].max() == 1
    r, c = divmod(ego_cell, viewer.game.width)
    assert pixel(frame, d.heat_centre(0, r, c)) == player_colour(0)
    others = [(rr, cc) for rr in range(4) for cc in range(4) if (rr, cc) != (r, c)]
    assert all(pixel(frame, d.heat_centre(0, rr, cc)) == FLOOR_COLOUR for rr, cc in others)
    opp = divmod(int(viewer.real_state().agents[0, 1]), viewer.game.width)
    assert pixel(frame, d.heat_centre(1, *opp)) == player_colour(1)


def test_back_restores_the_frame_and_replays_the_step() -> None:
    viewer = Viewer(ExactModel(), opponent="random", samples=16, seed=1)
    first = viewer.reset(1)
    assert not viewer.back()  # nothing to undo at the start
    after = [viewer.step(a) for a in (4, 2, 2, 3)]
    assert viewer.back()
    np.testing.assert_array_equal(viewer.frame(), after[-2])
    assert viewer.back() and viewer.back() and viewer.back() and not viewer.back()
    np.testing.assert_array_equal(viewer.frame(), first)
    # The games and their generators were restored: the same actions replay the same frames.
    again = [viewer.step(a) for a in (4, 2, 2, 3)]
    for x, y in zip(again, after):
        np.testing.assert_array_equal(x, y)


def test_resync_sets_the_imagined_game_to_the_real_one() -> None:
    viewer = Viewer(ExactModel(), opponent="greedy", samples=8, seed=0)
    viewer.reset(0)
    rng = np.random.default_rng(0)
    while viewer.in_sync and not viewer.done:  # play until a respawn lands elsewhere in imagination
        viewer.step(int(rng.integers(5)))
    assert not viewer.in_sync
    frame = viewer.resync()
    d = viewer.drawer
    assert viewer.in_sync and viewer.current.resynced
    np.testing.assert_array_equal(d.crop(frame, "real"), d.crop(frame, "imagined"))


def test_save_writes_one_frame_per_step_plus_the_start(viewer: Viewer, tmp_path) -> None:
    viewer.reset(0)
    for a in (1, 4, 0, 2):
        viewer.step(a)
    path = viewer.save(tmp_path / "v.gif")
    back = read_gif(path)
    assert len(back) == 5
    for got, want in zip(back, viewer.frames()):
        np.testing.assert_array_equal(got, want)  # few colours: the GIF palette is exact


def test_cli_headless_writes_a_gif(tmp_path, capsys) -> None:
    path = tmp_path / "cli.gif"
    assert (
        main_view(["--exact", "--steps", "5", "--gif", str(path), "--samples", "8", "--opponent", "greedy"])
        == 0
    )
    assert len(read_gif(path)) == 6
    assert "6 frames" in capsys.readouterr().out and not display_open()
    with pytest.raises(SystemExit):
        main_view(["--exact", "--steps", "5"])


def test_cli_loads_a_checkpoint(tmp_path) -> None:
    game = gridmarl.make_config()
    model = tiny_model(game)
    ckpt = tmp_path / "wm.pt"
    save_checkpoint(
        ckpt, {"game": game_to_dict(game), "model_config": asdict(model.cfg), "model": model.state_dict()}
    )
    path = tmp_path / "wm.gif"
    args = ["--model", str(ckpt), "--steps", "2", "--gif", str(path), "--samples", "4", "--cell-px", "16"]
    assert main_view(args) == 0
    assert len(read_gif(path)) == 3


def test_planner_chooses_the_action() -> None:
    viewer = Viewer(
        ExactModel(), opponent="stay", planner=RandomShooting(n_sequences=32, horizon=3), samples=4
    )
    viewer.reset(0)
    viewer.step()
    assert viewer.current.chosen_by == "RandomShooting" and 0 <= viewer.current.action < 5


@pytest.mark.parametrize("name", ["default", "partial", "walls-3p"])
def test_tiny_untrained_model_runs_with_a_stable_frame_shape(name: str) -> None:
    game = gridmarl.make_config(**GAMES[name])
    model = tiny_model(game).eval()
    model.game = game
    viewer = Viewer(model, samples=8, seed=0, cell_px=24)
    shape = viewer.reset(0).shape
    for _ in range(3):
        frame = viewer.step()
        assert frame.shape == shape == viewer.drawer.shape and frame.dtype == np.uint8
    assert viewer.probs.shape == (4, *game.obs_shape[1:])
    assert viewer.back() and viewer.frame().shape == shape
    if game.view_size is not None:  # the ego's window is outlined in its colour on the real panel
        real = viewer.drawer.crop(viewer.frame(), "real")
        assert np.all(real == np.array(player_colour(0), dtype=np.uint8), axis=2).sum() > 24 * 4


def test_side_by_side_draws_channels_of_a_partial_view() -> None:
    game = gridmarl.make_config(view_size=3)
    d = SideBySide(game, cell_px=P)
    obs = np.zeros((5, 3, 3), dtype=np.float32)
    obs[0, 1, 1] = obs[2, 0, 2] = obs[3, 2, 0] = 1
    img = d.imagined_panel(obs)
    q = d.obs_px
    assert img.shape == (3 * q, 3 * q, 3)
    assert centre(img, 1, 1, q) == player_colour(0)
    assert centre(img, 0, 2, q) == player_colour(0) and centre(img, 2, 0, q) == player_colour(1)


def test_keys_and_the_window_loop() -> None:
    import pygame

    viewer = Viewer(ExactModel(), opponent="stay", samples=4, seed=0)
    viewer.reset(0)
    assert viewer.handle_key(pygame.K_RIGHT) and viewer.current.t == 1 and viewer.current.action == 4
    assert viewer.handle_key(pygame.K_SPACE) and viewer.current.action == 0
    assert viewer.handle_key(pygame.K_LEFTBRACKET) and viewer.current.t == 1
    assert viewer.handle_key(pygame.K_BACKSPACE) and viewer.current.t == 0
    assert viewer.handle_key(pygame.K_p) and viewer.playing
    assert viewer.handle_key(pygame.K_r) and viewer.in_sync
    assert not viewer.handle_key(pygame.K_q) and not viewer.handle_key(pygame.K_ESCAPE)
    assert not display_open()
    # The loop in a (dummy) window: two keys, then q.
    viewer.playing = False
    pygame.display.init()
    for key in (pygame.K_DOWN, pygame.K_UP, pygame.K_q):
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
    viewer.run(max_loops=20)
    assert viewer.current.t == 2 and [e.action for e in viewer.history[1:]] == [2, 1]
    assert not display_open()


def test_gridmarl_wm_view_runs_the_viewer(tmp_path):
    from gridmarl_wm.cli import main

    out = tmp_path / "v.gif"
    main(["view", "--exact", "--steps", "2", "--gif", str(out)])

    assert Image.open(out).n_frames == 3


def test_view_retain_memory_switches_the_allocator_or_names_the_option(tmp_path, monkeypatch, capsys):
    from gridmarl_wm.cli import main
    from gridmarl_wm.simulation import allocator

    calls = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(True) or True)
    main(["view", "--exact", "--steps", "1", "--gif", str(tmp_path / "v.gif"), "--retain-memory"])
    assert calls == [True] and (tmp_path / "v.gif").exists()
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: False)  # not glibc
    with pytest.raises(SystemExit) as exit_info:
        main(["view", "--exact", "--steps", "1", "--gif", str(tmp_path / "w.gif"), "--retain-memory"])
    assert exit_info.value.code == 2 and "--retain-memory needs glibc's malloc" in capsys.readouterr().err
    assert not (tmp_path / "w.gif").exists()
