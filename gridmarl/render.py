"""Drawing the game: RGB frames in pure numpy, ANSI text, and a lazy pygame window.

Nothing here imports pygame at module level: :class:`HumanWindow` imports it when it first shows a frame,
so ``import gridmarl`` and ``render_mode="rgb_array"`` / ``"ansi"`` never need a display.

Pixel layout of :func:`render_rgb` (exact; tests rely on it), with ``P = cell_px``:

- Cell ``(r, c)`` covers image rows ``r*P : (r+1)*P`` and columns ``c*P : (c+1)*P``. Its *centre pixel* is
  ``(r*P + P//2, c*P + P//2)``.
- Floor cells are :data:`FLOOR_COLOUR`; a 1-pixel grid line (:data:`GRID_COLOUR`) runs along the first pixel
  row and column of every cell, plus the last pixel row and column of the image. Wall cells are filled
  entirely with :data:`WALL_COLOUR`.
- Each cell's items (its agents in player order, then its coins in coin order) are laid out on a sub-grid:
  one item sits at the centre pixel; ``n > 1`` items use ``g = ceil(sqrt(n))`` columns and ``ceil(n / g)``
  rows, row-major, with the last row centred. Item ``j`` in sub-row ``i``, sub-column ``k`` (of ``rows × g``)
  is centred at pixel ``(r*P + floor((i + 0.5) * P / rows), c*P + floor((k + 0.5 + s) * P / g))``, where
  ``s = (g - m) / 2`` on the last row holding ``m`` items and 0 elsewhere.
- An agent is a rounded square in its colour (``PLAYER_COLOURS[i % len(PLAYER_COLOURS)]``) with a dark
  outline (:data:`OUTLINE_COLOUR`); a coin is a smaller disc in its owner's colour with a darker rim. Shapes
  are odd-sized and centred, so the centre pixel of an agent or coin alone on its cell is exactly its colour.
- With ``highlight=i`` and a partial view (``config.view_size`` not None), the floor outside player i's
  window is shaded (:data:`SHADED_FLOOR_COLOUR`) and the window, clipped to the grid, gets a border of
  :func:`highlight_thickness` pixels in player i's colour, drawn just inside the window's outer edge. Agents
  and coins are drawn over it.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import Any

import numpy as np

from gridmarl.core import GridCore, State

__all__ = [
    "FLOOR_COLOUR",
    "GRID_COLOUR",
    "OUTLINE_COLOUR",
    "PLAYER_COLOURS",
    "SHADED_FLOOR_COLOUR",
    "WALL_COLOUR",
    "HumanWindow",
    "coin_char",
    "grid_background",
    "highlight_thickness",
    "player_colour",
    "render_ansi",
    "render_rgb",
]

RGB = tuple[int, int, int]

# Okabe-Ito (colour-blind safe) first, ordered so that the first players differ most, then a few Tableau
# colours. Yellow, the weakest against a light floor, comes late. Indices beyond the tuple cycle.
PLAYER_COLOURS: tuple[RGB, ...] = (
    (0, 114, 178),  # 0 blue
    (230, 159, 0),  # 1 orange
    (0, 158, 115),  # 2 bluish green
    (204, 121, 167),  # 3 reddish purple
    (213, 94, 0),  # 4 vermillion
    (86, 180, 233),  # 5 sky blue
    (140, 86, 75),  # 6 brown
    (240, 228, 66),  # 7 yellow
    (127, 127, 127),  # 8 grey
    (188, 189, 34),  # 9 olive
)

FLOOR_COLOUR: RGB = (242, 241, 236)
SHADED_FLOOR_COLOUR: RGB = (212, 211, 206)
GRID_COLOUR: RGB = (196, 196, 192)
WALL_COLOUR: RGB = (58, 60, 70)
OUTLINE_COLOUR: RGB = (25, 25, 30)

MIN_CELL_PX = 4
_COIN_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def player_colour(i: int) -> RGB:
    """RGB colour of player (and coin colour) ``i``; the palette cycles beyond its length."""
    return PLAYER_COLOURS[int(i) % len(PLAYER_COLOURS)]


def coin_char(colour: int) -> str:
    """ANSI letter of coin colour ``colour``: ``a`` for 0, ``b`` for 1, … ``z``, then ``A``…``Z``, then ``?``."""
    return _COIN_LETTERS[colour] if 0 <= colour < len(_COIN_LETTERS) else "?"


def highlight_thickness(cell_px: int) -> int:
    """Width in pixels of the partial-view border drawn by :func:`render_rgb` for ``highlight``."""
    return max(2, round(cell_px / 14))


# ---------------------------------------------------------------------------------------------- masks
def _rounded_square(half: int, radius: float) -> np.ndarray:
    """Bool mask (2*half+1, 2*half+1) of a square with rounded corners, centred on pixel (half, half)."""
    d = np.abs(np.arange(-half, half + 1, dtype=np.float64))
    if half <= 0:
        return np.ones((1, 1), dtype=bool)
    radius = min(max(radius, 0.0), float(half))
    inner = half - radius
    dy = np.maximum(d[:, None] - inner, 0.0)
    dx = np.maximum(d[None, :] - inner, 0.0)
    return dy**2 + dx**2 <= (radius + 0.5) ** 2


def _disc(half: int) -> np.ndarray:
    """Bool mask (2*half+1, 2*half+1) of a disc centred on pixel (half, half)."""
    d = np.arange(-half, half + 1, dtype=np.float64)
    return d[:, None] ** 2 + d[None, :] ** 2 <= (half + 0.5) ** 2


def _pad_to(mask: np.ndarray, half: int) -> np.ndarray:
    """Centre ``mask`` in a (2*half+1)² canvas."""
    out = np.zeros((2 * half + 1, 2 * half + 1), dtype=bool)
    m = mask.shape[0] // 2
    out[half - m : half + m + 1, half - m : half + m + 1] = mask
    return out


@lru_cache(maxsize=64)
def _agent_masks(slot_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(fill, outline) bool masks of an agent drawn in a slot ``slot_px`` wide; both (2h+1, 2h+1), disjoint."""
    half = max(1, round(0.36 * slot_px))
    half = min(half, max(1, (slot_px - 1) // 2))
    shape = _rounded_square(half, 0.35 * half)
    width = max(1, round(slot_px / 24)) if half >= 3 else 0
    if width == 0:
        return shape, np.zeros_like(shape)
    inner = _pad_to(_rounded_square(half - width, 0.35 * half - width), half)
    return inner, shape & ~inner


@lru_cache(maxsize=64)
def _coin_masks(slot_px: int) -> tuple[np.ndarray, np.ndarray]:
    """(fill, rim) bool masks of a coin drawn in a slot ``slot_px`` wide; both (2h+1, 2h+1), disjoint."""
    half = max(1, round(0.2 * slot_px))
    disc = _disc(half)
    if half < 3:
        return disc, np.zeros_like(disc)
    inner = _pad_to(_disc(half - 1), half)
    return inner, disc & ~inner


@lru_cache(maxsize=32)
def grid_background(
    height: int, width: int, walls: tuple[tuple[int, int], ...], cell_px: int
) -> tuple[np.ndarray, np.ndarray]:
    """Floor, grid lines and walls: uint8 (H*P, W*P, 3) and the bool (H*P, W*P) mask of floor pixels; what
    :func:`render_rgb` (and the world-model viewer) draw first.

    Cached and read-only; callers copy the image before drawing on it.
    """
    P = cell_px
    img = np.empty((height * P, width * P, 3), dtype=np.uint8)
    img[:] = FLOOR_COLOUR
    img[::P, :] = GRID_COLOUR
    img[:, ::P] = GRID_COLOUR
    img[-1, :] = GRID_COLOUR
    img[:, -1] = GRID_COLOUR
    for r, c in walls:
        img[r * P : (r + 1) * P, c * P : (c + 1) * P] = WALL_COLOUR
    floor = np.all(img == np.array(FLOOR_COLOUR, dtype=np.uint8), axis=2)
    img.flags.writeable = False
    floor.flags.writeable = False
    return img, floor


@lru_cache(maxsize=256)
def _slot_layout(n: int, cell_px: int) -> tuple[tuple[tuple[int, int], ...], int]:
    """Centres (dy, dx) relative to the cell's top-left pixel of ``n`` items on one cell, and the slot size."""
    if n <= 1:
        return ((cell_px // 2, cell_px // 2),), cell_px
    g = math.ceil(math.sqrt(n))
    rows = math.ceil(n / g)
    centres = []
    for j in range(n):
        i, k = divmod(j, g)
        in_row = min(g, n - i * g)
        shift = (g - in_row) / 2
        centres.append((math.floor((i + 0.5) * cell_px / rows), math.floor((k + 0.5 + shift) * cell_px / g)))
    return tuple(centres), max(1, cell_px // max(g, rows))


def _stamp(img: np.ndarray, mask: np.ndarray, cy: int, cx: int, colour: RGB | np.ndarray) -> None:
    """Paint ``colour`` on ``img`` where ``mask`` (odd-sized, centred on (cy, cx)) is True, clipped to img."""
    h = mask.shape[0] // 2
    y0, x0 = cy - h, cx - h
    y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
    ty0, tx0 = max(y0, 0), max(x0, 0)
    ty1, tx1 = min(y1, img.shape[0]), min(x1, img.shape[1])
    if ty0 >= ty1 or tx0 >= tx1:
        return
    sub = mask[ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0]
    img[ty0:ty1, tx0:tx1][sub] = colour


def _darker(colour: RGB, factor: float = 0.6) -> tuple[int, int, int]:
    r, g, b = (round(v * factor) for v in colour)
    return (r, g, b)


# ---------------------------------------------------------------------------------------------- rgb
def _check_row(core: GridCore, state: State, row: int) -> tuple[np.ndarray, np.ndarray, int]:
    agents = np.asarray(state.agents)
    coins = np.asarray(state.coins)
    if agents.ndim != 2 or agents.shape[1] != core.n_agents:
        raise ValueError(f"state.agents must have shape (N, {core.n_agents}), got {agents.shape}")
    if coins.ndim != 2 or coins.shape[1] != core.n_coins:
        raise ValueError(f"state.coins must have shape (N, {core.n_coins}), got {coins.shape}")
    n = agents.shape[0]
    if isinstance(row, bool) or not isinstance(row, int | np.integer) or not -n <= int(row) < n:
        raise ValueError(f"row must be an integer in [0, {n}) for a batch of {n} state(s), got {row!r}")
    row = int(row) % n
    t = int(np.asarray(state.t).reshape(-1)[row])
    return agents[row].astype(np.int64), coins[row].astype(np.int64), t


def render_rgb(
    core: GridCore, state: State, row: int = 0, highlight: int | None = None, cell_px: int = 48
) -> np.ndarray:
    """Draw game ``row`` of the batch ``state`` as an RGB image, with numpy only.

    Args:
        core: the game (its config gives the grid size, walls and view size).
        state: a batch of N states; ``state.agents`` (N, n_agents), ``state.coins`` (N, n_coins).
        row: which game of the batch to draw.
        highlight: a player index whose partial-view window is outlined (and the floor outside it shaded);
            ignored in the full view (``config.view_size is None``).
        cell_px: pixels per cell side (>= 4).

    Returns:
        uint8 array of shape (H * cell_px, W * cell_px, 3). The exact pixel layout is in the module docstring:
        cell (r, c) covers rows ``r*cell_px:(r+1)*cell_px`` and columns ``c*cell_px:(c+1)*cell_px``; an agent
        or coin alone on its cell has its centre pixel ``(r*cell_px + cell_px//2, c*cell_px + cell_px//2)``
        exactly in its colour ``player_colour(i)`` (a coin: its owner's colour).
    """
    if isinstance(cell_px, bool) or not isinstance(cell_px, int | np.integer) or cell_px < MIN_CELL_PX:
        raise ValueError(f"cell_px must be an integer >= {MIN_CELL_PX}, got {cell_px!r}")
    P = int(cell_px)
    cfg = core.config
    H, W = cfg.height, cfg.width
    agents, coins, _ = _check_row(core, state, row)
    if highlight is not None and (
        isinstance(highlight, bool)
        or not isinstance(highlight, int | np.integer)
        or not 0 <= int(highlight) < core.n_agents
    ):
        raise ValueError(
            f"highlight must be None or a player index in [0, {core.n_agents}), got {highlight!r}"
        )

    background, floor = grid_background(H, W, cfg.walls, P)
    img = background.copy()

    if highlight is not None and cfg.view_size is not None:
        cells = core.window_cells(int(agents[int(highlight)]))
        cells = cells[cells >= 0]
        rr, cc = np.divmod(cells, W)
        y0, y1 = int(rr.min()) * P, (int(rr.max()) + 1) * P
        x0, x1 = int(cc.min()) * P, (int(cc.max()) + 1) * P
        # Shade the floor outside the window (walls and grid lines stay).
        shade = floor.copy()
        shade[y0:y1, x0:x1] = False
        img[shade] = SHADED_FLOOR_COLOUR
        b = highlight_thickness(P)
        colour = player_colour(int(highlight))
        img[y0 : y0 + b, x0:x1] = colour
        img[y1 - b : y1, x0:x1] = colour
        img[y0:y1, x0 : x0 + b] = colour
        img[y0:y1, x1 - b : x1] = colour

    # Items per cell: agents in player order, then coins in coin order.
    items: dict[int, list[tuple[str, int]]] = {}
    for i, cell in enumerate(agents.tolist()):
        items.setdefault(cell, []).append(("agent", i))
    colours = core.coin_colour
    for j, cell in enumerate(coins.tolist()):
        items.setdefault(cell, []).append(("coin", int(colours[j])))

    for cell, here in items.items():
        if not 0 <= cell < H * W:
            raise ValueError(f"cell index {cell} lies outside the {H}x{W} grid")
        r, c = divmod(cell, W)
        draw_cell_items(img, r, c, P, [(kind, player_colour(who)) for kind, who in here])
    return img


def draw_cell_items(img: np.ndarray, r: int, c: int, cell_px: int, items: list[tuple[str, RGB]]) -> None:
    """Draw ``items`` — ``("agent" | "coin", colour)`` pairs — side by side in cell (r, c) of ``img``."""
    P = cell_px
    centres, slot = _slot_layout(len(items), P)
    for (kind, colour), (dy, dx) in zip(items, centres, strict=True):
        cy, cx = r * P + dy, c * P + dx
        if kind == "agent":
            fill, outline = _agent_masks(slot)
            _stamp(img, outline, cy, cx, OUTLINE_COLOUR)
        else:
            fill, outline = _coin_masks(slot)
            _stamp(img, outline, cy, cx, _darker(colour))
        _stamp(img, fill, cy, cx, colour)


# ---------------------------------------------------------------------------------------------- ansi
def render_ansi(core: GridCore, state: State, row: int = 0) -> str:
    """Draw game ``row`` of the batch ``state`` as text.

    Format (lines joined by ``"\\n"``, no trailing newline):

    - H grid lines, one per row (row 0 first), each exactly ``3 * W`` characters: cell ``(r, c)`` is the
      3-character field ``line[3*c : 3*c+3]``. A field's content is ``#`` for a wall, ``.`` for an empty
      cell, else the indices of the agents on it in player order (``0``, ``01``, ``12`` …) followed by the
      letters of the coins on it (``a`` colour 0, ``b`` colour 1, …, see :func:`coin_char`). One character is
      centred (``" 0 "``), two are left-aligned (``"01 "``), three fill the field, and longer contents are cut
      to their first two characters plus ``+``.
    - A legend line: ``legend: 0-{n-1} = player_i, a-… = coin of colour i, # wall, . floor``.
    - A line ``t=<steps taken>``.
    """
    cfg = core.config
    H, W = cfg.height, cfg.width
    agents, coins, t = _check_row(core, state, row)
    content = ["." for _ in range(H * W)]
    for cell in np.flatnonzero(core.wall_mask):
        content[int(cell)] = "#"
    filled: dict[int, str] = {}
    for i, cell in enumerate(agents.tolist()):
        filled[cell] = filled.get(cell, "") + str(i)
    for j, cell in enumerate(coins.tolist()):
        filled[cell] = filled.get(cell, "") + coin_char(int(core.coin_colour[j]))
    for cell, text in filled.items():
        if not 0 <= cell < H * W:
            raise ValueError(f"cell index {cell} lies outside the {H}x{W} grid")
        content[cell] = text

    def field(text: str) -> str:
        if len(text) == 1:
            return f" {text} "
        if len(text) <= 3:
            return text.ljust(3)
        return text[:2] + "+"

    lines = ["".join(field(content[r * W + c]) for c in range(W)) for r in range(H)]
    n = core.n_agents
    last = n - 1
    lines.append(f"legend: 0-{last} = player_i, a-{coin_char(last)} = coin of colour i, # wall, . floor")
    lines.append(f"t={t}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- window
class HumanWindow:
    """A pygame window that shows RGB frames; pygame is imported only when the first frame is shown.

    The window opens lazily on :meth:`show` and follows the frame's size. If the user closes it (the window
    manager's close button, a ``QUIT`` event), the display is shut down and later :meth:`show` calls do
    nothing and return False, so a running program carries on without a window. :meth:`close` shuts the
    display down from the program's side; it is safe to call twice or before any frame, and a later
    :meth:`show` opens a fresh window.
    """

    def __init__(self, caption: str = "gridmarl") -> None:
        self.caption = caption
        self.user_closed = False
        self._pygame: Any = None
        self._screen: Any = None
        self._clock: Any = None
        self._size: tuple[int, int] | None = None

    @property
    def is_open(self) -> bool:
        """Whether a window is currently open."""
        return self._screen is not None

    def show(self, frame: np.ndarray, fps: float | None = None) -> bool:
        """Show ``frame``, uint8 of shape (H, W, 3), and wait to keep at most ``fps`` frames per second.

        Returns:
            True if the frame was shown, False if the user has closed the window.
        """
        if self.user_closed:
            return False
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
            raise ValueError(f"frame must have shape (H, W, 3), got {frame.shape}")
        if frame.dtype != np.uint8:
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self._pygame = pygame
        size = (int(frame.shape[1]), int(frame.shape[0]))  # pygame sizes are (width, height)
        if self._screen is None or self._size != size:
            if not pygame.display.get_init():
                pygame.display.init()
            self._screen = pygame.display.set_mode(size)
            pygame.display.set_caption(self.caption)
            self._size = size
            if self._clock is None:
                self._clock = pygame.time.Clock()
        pygame.event.pump()
        if pygame.event.get(pygame.QUIT):
            self.user_closed = True
            self._shutdown()
            return False
        # surfarray indexes (x, y): transpose rows and columns.
        surface = pygame.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self._screen.blit(surface, (0, 0))
        pygame.display.flip()
        if fps is not None and fps > 0:
            self._clock.tick(fps)
        return True

    def _shutdown(self) -> None:
        # Only shut the display down if this object opened a window on it.
        if self._screen is not None and self._pygame.display.get_init():
            self._pygame.display.quit()
        self._screen = None
        self._size = None
        self._clock = None

    def close(self) -> None:
        """Close the window and shut the display down; safe to call more than once or before any frame."""
        self._shutdown()
        self.user_closed = False
