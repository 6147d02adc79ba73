"""Validated, frozen game configuration and the registered presets.

A :class:`GridConfig` holds everything that decides the rules of one game. It never changes after it is
made; every check on user input happens in :func:`make_config`, so the core can trust what it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

N_ACTIONS = 5
ACTION_NAMES = ("stay", "up", "down", "left", "right")
N_CHANNELS = 5
CHANNEL_NAMES = ("self", "others", "own_coins", "others_coins", "walls")


def _check_int(name: str, value: Any, low: int, what: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer >= {low}{what}, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}{what}, got {value!r}")
    return value


def parse_layout(layout: str) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """Read an ASCII map (``#`` wall, ``.`` floor, one line per row) into (height, width, walls).

    Blank leading/trailing lines and surrounding spaces are ignored, so a map can be written as an indented
    triple-quoted string.
    """
    if not isinstance(layout, str):
        raise TypeError(f"layout must be a string of '#' and '.' rows, got {type(layout).__name__}")
    rows = [line.strip() for line in layout.strip().splitlines() if line.strip()]
    if not rows:
        raise ValueError("layout is empty: give one line of '#' (wall) and '.' (floor) per row")
    width = len(rows[0])
    walls = []
    for r, line in enumerate(rows):
        if len(line) != width:
            raise ValueError(
                f"layout rows must all have the same width: row 0 has {width} cells, row {r} has {len(line)}"
            )
        for c, ch in enumerate(line):
            if ch == "#":
                walls.append((r, c))
            elif ch != ".":
                raise ValueError(
                    f"layout may hold only '#' (wall) and '.' (floor); row {r} col {c} is {ch!r}"
                )
    return len(rows), width, tuple(walls)


@dataclass(frozen=True)
class GridConfig:
    """The rules of one game. Build it with :func:`make_config`, which validates every field.

    Attributes:
        height: rows of the grid (row 0 at the top).
        width: columns of the grid.
        n_agents: number of players, ``player_0 … player_{n-1}``; player i owns colour i.
        coins_per_agent: coins of every colour on the board at all times.
        view_size: ``None`` for the full view, or an odd window size >= 3 centred on the observer.
        max_steps: episode length; every agent is truncated when ``t == max_steps``.
        walls: static wall cells as ``(row, col)`` pairs, sorted.
        reward_pick: reward of every agent standing on a coin when it is picked up.
        reward_stolen: reward of a coin's owner for every agent of another colour that picks its coin.
    """

    height: int = 4
    width: int = 4
    n_agents: int = 2
    coins_per_agent: int = 1
    view_size: int | None = None
    max_steps: int = 50
    walls: tuple[tuple[int, int], ...] = field(default=())
    reward_pick: float = 1.0
    reward_stolen: float = -2.0

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that make this game again, in ``make_config``, ``gym.make`` or the envs."""
        return {**asdict(self), "walls": [tuple(w) for w in self.walls]}

    @property
    def n_cells(self) -> int:
        return self.height * self.width

    @property
    def n_coins(self) -> int:
        return self.n_agents * self.coins_per_agent

    @property
    def n_free_cells(self) -> int:
        return self.n_cells - len(self.walls)

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(f"player_{i}" for i in range(self.n_agents))

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        if self.view_size is None:
            return (N_CHANNELS, self.height, self.width)
        return (N_CHANNELS, self.view_size, self.view_size)

    @property
    def state_shape(self) -> tuple[int, int, int]:
        return (2 * self.n_agents + 1, self.height, self.width)

    @property
    def layout(self) -> str:
        """The wall map as ASCII, one line per row."""
        grid = [["."] * self.width for _ in range(self.height)]
        for r, c in self.walls:
            grid[r][c] = "#"
        return "\n".join("".join(row) for row in grid)


CONFIG_KEYS = tuple(GridConfig.__dataclass_fields__)
#: Every keyword argument that describes a game: the config's fields, ``layout`` and ``max_cycles``.
GAME_ARGUMENTS = (*CONFIG_KEYS, "layout", "max_cycles")


def reject_unknown_arguments(caller: str, given: Iterable[str], allowed: Sequence[str]) -> None:
    """Raise ``TypeError`` for the first of ``given`` that is not in ``allowed``.

    The message starts in Python's own wording (``caller() got an unexpected keyword argument 'x'``), so
    that tools which retry without an argument they pass on speculation (TorchRL's ``GymEnv`` passes
    ``frameskip``) recognise it, and goes on with every other unknown name and the allowed ones.
    """
    unknown = [name for name in given if name not in allowed]
    if not unknown:
        return
    also = f" (and also {unknown[1:]})" if len(unknown) > 1 else ""
    raise TypeError(
        f"{caller}() got an unexpected keyword argument {unknown[0]!r}{also}; allowed: {list(allowed)}"
    )


def make_config(config: GridConfig | Mapping[str, Any] | None = None, **kwargs: Any) -> GridConfig:
    """Build a validated :class:`GridConfig`.

    Accepts the contract's keyword arguments (``height``, ``width``, ``n_agents``, ``coins_per_agent``,
    ``view_size``, ``max_steps``, ``layout``, ``reward_pick``, ``reward_stolen``), ``walls`` as ``(row, col)``
    pairs, and ``max_cycles`` as PettingZoo's name for ``max_steps``. ``layout`` sets height, width and walls.

    Raises:
        ValueError / TypeError: naming the argument, its value and what is allowed.
    """
    if isinstance(config, GridConfig):
        if kwargs:
            raise TypeError("give either a GridConfig or keyword arguments, not both")
        return config
    params: dict[str, Any] = dict(config or {})
    params.update(kwargs)
    # Unknown names are refused before None values are dropped: None means "the default" only for a
    # known argument, so make_config(frameskip=None) must fail like make_config(frameskip=1).
    reject_unknown_arguments("make_config", params, GAME_ARGUMENTS)
    if "max_cycles" in params:
        max_cycles = params.pop("max_cycles")
        if max_cycles is not None:
            if params.get("max_steps", max_cycles) != max_cycles:
                raise ValueError(
                    f"max_cycles={max_cycles!r} and max_steps={params['max_steps']!r} disagree; give only one"
                )
            params["max_steps"] = max_cycles
    layout = params.pop("layout", None)
    if layout is not None:
        height, width, walls = parse_layout(layout)
        for name, value in (("height", height), ("width", width)):
            if params.get(name) is not None and params[name] != value:
                raise ValueError(
                    f"{name}={params[name]!r} disagrees with the layout, which has {name} {value}"
                )
        if params.get("walls"):
            raise ValueError("give walls either as layout or as walls, not both")
        params.update(height=height, width=width, walls=walls)
    params = {k: v for k, v in params.items() if v is not None or k == "view_size"}
    cfg = dict(GridConfig().__dict__)
    cfg.update(params)

    height = _check_int("height", cfg["height"], 1)
    width = _check_int("width", cfg["width"], 1)
    if height * width < 2:
        raise ValueError(f"the grid needs at least 2 cells, got height={height}, width={width}")
    n_agents = _check_int("n_agents", cfg["n_agents"], 2)
    coins_per_agent = _check_int("coins_per_agent", cfg["coins_per_agent"], 1)
    max_steps = _check_int("max_steps", cfg["max_steps"], 1)
    view_size = cfg["view_size"]
    if view_size is not None:
        view_size = _check_int("view_size", view_size, 3, " and odd (or None for the full view)")
        if view_size % 2 == 0:
            raise ValueError(f"view_size must be odd and >= 3 (or None for the full view), got {view_size}")
    walls_in = cfg["walls"] or ()
    walls = set()
    for cell in walls_in:
        try:
            r, c = (int(x) for x in cell)
        except (TypeError, ValueError):
            raise TypeError(f"walls must be (row, col) pairs, got {cell!r}") from None
        if not (0 <= r < height and 0 <= c < width):
            raise ValueError(f"wall {cell!r} lies outside the {height}x{width} grid")
        walls.add((r, c))
    for name in ("reward_pick", "reward_stolen"):
        value = cfg[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a number, got {value!r}")
        cfg[name] = float(value)
    out = GridConfig(
        height=height,
        width=width,
        n_agents=n_agents,
        coins_per_agent=coins_per_agent,
        view_size=view_size,
        max_steps=max_steps,
        walls=tuple(sorted(walls)),
        reward_pick=cfg["reward_pick"],
        reward_stolen=cfg["reward_stolen"],
    )
    # Respawn needs a free cell even when every agent stands alone and every other coin is placed.
    needed = out.n_agents + out.n_coins
    if out.n_free_cells < needed:
        raise ValueError(
            f"too few free cells: {out.n_free_cells} non-wall cells cannot hold n_agents={n_agents} agents and "
            f"n_agents*coins_per_agent={out.n_coins} coins on distinct cells (need >= {needed})"
        )
    return out


WALLED_LAYOUT = """
......
.#..#.
......
.##...
....#.
"""

# Registered ids and the game arguments they stand for. Registration loops over this dict.
PRESETS: dict[str, dict[str, Any]] = {
    "GridMARL-v0": {},
    "GridMARL-Partial-v0": {"view_size": 3},
    "GridMARL-Walls3P-v0": {"layout": WALLED_LAYOUT, "n_agents": 3, "coins_per_agent": 2},
    "GridMARL-8x8-4P-Partial-v0": {"height": 8, "width": 8, "n_agents": 4, "view_size": 3},
}


class ResetNeeded(RuntimeError):
    """Raised when an env is stepped before ``reset()`` or after its episode ended."""


def check_action(value: Any, name: str = "action") -> int:
    """A single action as an ``int`` in 0..4; numpy integers and 0-d integer arrays are accepted.

    Raises:
        TypeError: for a float, string, bool or anything else that is not an integer.
        ValueError: for an integer outside 0..4.
    """
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{name} must be an integer in 0..{N_ACTIONS - 1} "
            f"({', '.join(f'{i} {a}' for i, a in enumerate(ACTION_NAMES))}), got {value!r} "
            f"of type {type(value).__name__}"
        )
    if not 0 <= value < N_ACTIONS:
        raise ValueError(f"{name} must be an integer in 0..{N_ACTIONS - 1}, got {value!r}")
    return int(value)


def check_action_array(values: Any, shape: tuple[int, ...], name: str = "actions") -> np.ndarray:
    """A batch of actions as int64 of ``shape``, each in 0..4."""
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integers in 0..{N_ACTIONS - 1}, got an array of dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= N_ACTIONS):
        bad = arr[(arr < 0) | (arr >= N_ACTIONS)][0]
        raise ValueError(f"{name} must all lie in 0..{N_ACTIONS - 1}, got {bad!r}")
    return arr.astype(np.int64, copy=False)
