"""Frame content of ``gridmarl.render``: exact pixels of the RGB renderer, the ANSI layout, the pygame window."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pytest
from helpers import one_state as make_state

from gridmarl.config import make_config
from gridmarl.core import GridCore, State
from gridmarl.render import (
    FLOOR_COLOUR,
    GRID_COLOUR,
    OUTLINE_COLOUR,
    PLAYER_COLOURS,
    SHADED_FLOOR_COLOUR,
    WALL_COLOUR,
    HumanWindow,
    highlight_thickness,
    player_colour,
    render_ansi,
    render_rgb,
)

P = 48


@pytest.fixture
def core() -> GridCore:
    # 3 rows x 5 columns, 3 players, a wall at (1, 1).
    return GridCore(make_config(height=3, width=5, n_agents=3, walls=[(1, 1)]))


@pytest.fixture
def state() -> State:
    # player_0 alone at (0, 0); player_1 and player_2 share (1, 3).
    # coin colour 0 at (0, 4), colour 1 at (2, 0), colour 2 at (2, 2).
    return make_state(agents=[0, 8, 8], coins=[4, 10, 12], t=7)


def centre(img: np.ndarray, r: int, c: int, cell_px: int = P) -> tuple[int, int, int]:
    return tuple(int(v) for v in img[r * cell_px + cell_px // 2, c * cell_px + cell_px // 2])


def cell_pixels(img: np.ndarray, r: int, c: int, cell_px: int = P) -> np.ndarray:
    return img[r * cell_px : (r + 1) * cell_px, c * cell_px : (c + 1) * cell_px].reshape(-1, 3)


def has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.all(pixels == np.array(colour, dtype=np.uint8), axis=1).any())


def test_palette_is_distinct_and_cycles() -> None:
    assert len(PLAYER_COLOURS) >= 8
    assert len(set(PLAYER_COLOURS)) == len(PLAYER_COLOURS)
    special = {FLOOR_COLOUR, SHADED_FLOOR_COLOUR, GRID_COLOUR, WALL_COLOUR, OUTLINE_COLOUR}
    assert not special & set(PLAYER_COLOURS)
    for a in range(len(PLAYER_COLOURS)):
        for b in range(a):
            dist = np.abs(np.subtract(PLAYER_COLOURS[a], PLAYER_COLOURS[b])).sum()
            assert dist > 60, (a, b)
    assert player_colour(len(PLAYER_COLOURS) + 2) == PLAYER_COLOURS[2]


def test_shape_dtype_and_cell_placement(core: GridCore, state: State) -> None:
    img = render_rgb(core, state)
    assert img.shape == (3 * P, 5 * P, 3) and img.dtype == np.uint8
    small = render_rgb(core, state, cell_px=10)
    assert small.shape == (30, 50, 3)
    # Agent alone: centre pixel exactly its colour, dark outline present in its cell.
    assert centre(img, 0, 0) == player_colour(0)
    assert has_colour(cell_pixels(img, 0, 0), OUTLINE_COLOUR)
    # Coins: centre pixel exactly their owner's colour, at the cells the state says.
    assert centre(img, 0, 4) == player_colour(0)
    assert centre(img, 2, 0) == player_colour(1)
    assert centre(img, 2, 2) == player_colour(2)
    assert centre(small, 2, 2, cell_px=10) == player_colour(2)
    # Empty cells are floor at the centre, and carry no player colour at all.
    for r, c in [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 4), (2, 1), (2, 3), (2, 4)]:
        assert centre(img, r, c) == FLOOR_COLOUR
        pix = cell_pixels(img, r, c)
        assert not any(has_colour(pix, col) for col in PLAYER_COLOURS[:3])
    # Grid lines on the first pixel row/column of each cell.
    assert tuple(img[P, P // 2]) == GRID_COLOUR
    assert tuple(img[P // 2, 2 * P]) == GRID_COLOUR


def test_walls_filled(core: GridCore, state: State) -> None:
    img = render_rgb(core, state)
    assert np.all(cell_pixels(img, 1, 1) == np.array(WALL_COLOUR, dtype=np.uint8))
    assert not has_colour(cell_pixels(img, 1, 0), WALL_COLOUR)


def test_shared_cell_shows_every_agent(core: GridCore, state: State) -> None:
    img = render_rgb(core, state)
    pix = cell_pixels(img, 1, 3)
    assert has_colour(pix, player_colour(1)) and has_colour(pix, player_colour(2))
    assert not has_colour(pix, player_colour(0))
    # All three on one cell, and a coin forced under an agent (never happens in play): all still visible.
    crowded = render_rgb(core, make_state(agents=[7, 7, 7], coins=[4, 7, 12]))
    pix = cell_pixels(crowded, 1, 2)
    assert all(has_colour(pix, player_colour(i)) for i in range(3))
    assert render_ansi(core, make_state(agents=[7, 7, 7], coins=[4, 7, 12])).split("\n")[1][6:9] == "01+"


def test_non_square_tall_grid_and_batch_row() -> None:
    core = GridCore(make_config(height=5, width=2, n_agents=4))
    states = State(
        agents=np.array([[0, 1, 2, 3], [9, 8, 7, 6]]),
        coins=np.array([[4, 5, 6, 7], [0, 1, 2, 3]]),
        t=np.array([0, 3]),
    )
    img = render_rgb(core, states, row=1, cell_px=16)
    assert img.shape == (80, 32, 3)
    for i, cell in enumerate([9, 8, 7, 6]):
        assert centre(img, *divmod(cell, 2), cell_px=16) == player_colour(i)
    for colour, cell in enumerate([0, 1, 2, 3]):
        assert centre(img, *divmod(cell, 2), cell_px=16) == player_colour(colour)
    with pytest.raises(ValueError, match="row"):
        render_rgb(core, states, row=2)


def test_partial_view_highlight() -> None:
    cfg = dict(height=3, width=5, n_agents=3, walls=[(1, 1)])
    partial = GridCore(make_config(view_size=3, **cfg))
    full = GridCore(make_config(**cfg))
    # player_1 at (1, 3): its 3x3 window covers rows 0-2, cols 2-4; player_0 at (0, 0): rows 0-1, cols 0-1.
    st = make_state(agents=[0, 8, 14], coins=[4, 10, 12])
    b = highlight_thickness(P)
    plain = render_rgb(partial, st)
    hl = render_rgb(partial, st, highlight=1)
    colour = np.array(player_colour(1), dtype=np.uint8)
    # Window left edge: columns 2P .. 2P+b-1, all rows, except where an item overdraws it.
    left = hl[:, 2 * P : 2 * P + b]
    assert np.all(left[P // 4 : 3 * P] == colour)
    assert not np.any(np.all(plain[:, 2 * P : 2 * P + b] == colour, axis=2))
    # Top edge: rows 0 .. b-1 over the window's columns.
    assert np.all(hl[:b, 2 * P : 5 * P] == colour)
    # Nothing of the border left of the window; floor outside is shaded, inside is not.
    new = np.all(hl == colour, axis=2) & ~np.all(plain == colour, axis=2)
    assert not np.any(new[:, : 2 * P])
    assert centre(hl, 1, 0) == SHADED_FLOOR_COLOUR and centre(hl, 0, 2) == FLOOR_COLOUR
    assert centre(plain, 1, 0) == FLOOR_COLOUR
    # Items keep exact colours with highlight.
    assert centre(hl, 0, 0) == player_colour(0) and centre(hl, 2, 0) == player_colour(1)

    # Clipped window at the corner: player_0 at (0, 0) sees rows 0-1, cols 0-1; its border ends at 2P.
    hl0 = render_rgb(partial, st, highlight=0)
    c0 = np.array(player_colour(0), dtype=np.uint8)
    assert np.all(hl0[2 * P - b : 2 * P, : 2 * P] == c0)
    assert np.all(hl0[P // 4 : 2 * P, 2 * P - b : 2 * P] == c0)
    new0 = np.all(hl0 == c0, axis=2) & ~np.all(plain == c0, axis=2)
    assert not np.any(new0[2 * P :]) and not np.any(new0[:, 2 * P :])

    # Full view: highlight changes nothing; bad indices are refused.
    assert np.array_equal(render_rgb(full, st, highlight=1), render_rgb(full, st))
    with pytest.raises(ValueError, match="highlight"):
        render_rgb(partial, st, highlight=3)


def test_ansi_layout(core: GridCore, state: State) -> None:
    text = render_ansi(core, state)
    lines = text.split("\n")
    assert len(lines) == 3 + 2
    grid = lines[:3]
    assert all(len(line) == 3 * 5 for line in grid)

    def fieldat(r: int, c: int) -> str:
        return grid[r][3 * c : 3 * c + 3]

    assert fieldat(0, 0) == " 0 "
    assert fieldat(1, 3) == "12 "
    assert fieldat(1, 1) == " # "
    assert fieldat(0, 4) == " a "
    assert fieldat(2, 0) == " b "
    assert fieldat(2, 2) == " c "
    assert fieldat(0, 1) == " . " and fieldat(2, 4) == " . "
    assert lines[3].startswith("legend:") and "a-c" in lines[3]
    assert lines[4] == "t=7"
    assert grid[0] == " 0  .  .  .  a "


def test_ansi_non_square() -> None:
    core = GridCore(make_config(layout="..\n#.\n..\n..", n_agents=2))
    text = render_ansi(core, make_state(agents=[1, 7], coins=[0, 6], t=0))
    assert text.split("\n")[:4] == [" a  0 ", " #  . ", " .  . ", " b  1 "]
    assert text.split("\n")[-1] == "t=0"


def test_human_window_headless(core: GridCore, state: State) -> None:
    win = HumanWindow()
    win.close()  # before any frame
    frame = render_rgb(core, state, cell_px=8)
    assert win.show(frame, fps=1000)
    assert win.is_open
    assert win.show(render_rgb(core, state, cell_px=6))  # size change re-opens the window
    win.close()
    win.close()
    assert not win.is_open
    assert win.show(frame)  # reopens after a program-side close
    win.close()
    with pytest.raises(ValueError):
        win.show(np.zeros((4, 4), dtype=np.uint8))


def test_human_window_user_quit(core: GridCore, state: State) -> None:
    import pygame

    win = HumanWindow()
    frame = render_rgb(core, state, cell_px=8)
    assert win.show(frame)
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    assert not win.show(frame)  # the user closed it: shut down, no exception
    assert not win.is_open and win.user_closed
    assert not win.show(frame)  # later frames are ignored
    win.close()
    win.close()
