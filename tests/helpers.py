"""Shared test helpers: ASCII pictures of game states, loop-by-loop reference rules, chi-square p-values.

Pictures
--------
A picture is one line per grid row. Cells are separated by spaces, and each cell is a token:

- ``.`` an empty floor cell, ``#`` a wall;
- otherwise any mix of digits (agents: ``0`` is player_0, ...) and lowercase letters (coins: ``a`` is a coin
  of colour 0, ``b`` of colour 1, ...), e.g. ``0a`` (player_0 on its own coin), ``12`` (two players), ``b``.

A row written without spaces is read one character per cell (``0.a#``), which is handy when no cell holds
more than one thing. Rule tables put two pictures side by side, ``before | after``, split by
:func:`split_pair`. ``n_agents`` is the highest digit + 1 and ``coins_per_agent`` the number of coins of
each colour (every colour must have the same number). Coins of one colour are stored in reading order, which
is also the order in which they respawn.

The reference functions below are deliberately naive (plain Python loops over the rules as DESIGN.md
states them) so that they share no code or tables with ``gridmarl.core``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gridmarl.config import GridConfig, make_config
from gridmarl.core import State

COIN_LETTERS = "abcdefghij"

# (d_row, d_col) per action, written out again here rather than imported from the core.
DELTAS = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}


# ---------------------------------------------------------------------------------------------- pictures
def _rows(picture: str) -> list[list[str]]:
    lines = [line.strip() for line in picture.strip("\n").splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty picture")
    if any(len(line.split()) > 1 for line in lines):
        rows = [line.split() for line in lines]
    else:
        rows = [list(line) for line in lines]
    width = len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"picture row {r} has {len(row)} cells, row 0 has {width}: {picture!r}")
    return rows


def parse_picture(picture: str, t: int = 0, **config_kwargs: Any) -> tuple[GridConfig, State]:
    """The config (size and walls from the picture, other kwargs passed on) and the one-game State."""
    rows = _rows(picture)
    height, width = len(rows), len(rows[0])
    walls: list[tuple[int, int]] = []
    agents: dict[int, int] = {}
    coins: dict[int, list[int]] = {}
    for r, row in enumerate(rows):
        for c, token in enumerate(row):
            cell = r * width + c
            if token == "#":
                walls.append((r, c))
                continue
            if token == ".":
                continue
            letters = [ch for ch in token if ch.isalpha()]
            if len(letters) > 1:
                raise ValueError(f"cell ({r}, {c}) holds more than one coin: {token!r}")
            for ch in token:
                if ch.isdigit():
                    if int(ch) in agents:
                        raise ValueError(f"player {ch} drawn twice")
                    agents[int(ch)] = cell
                elif ch in COIN_LETTERS:
                    coins.setdefault(COIN_LETTERS.index(ch), []).append(cell)
                else:
                    raise ValueError(f"unknown symbol {ch!r} at ({r}, {c})")
    n_agents = max(agents) + 1
    if sorted(agents) != list(range(n_agents)):
        raise ValueError(f"players must be 0..{n_agents - 1}, got {sorted(agents)}")
    per_colour = {len(coins.get(i, [])) for i in range(n_agents)}
    if len(per_colour) != 1 or set(coins) - set(range(n_agents)):
        raise ValueError(f"every colour 0..{n_agents - 1} needs the same number of coins, got {coins}")
    k = per_colour.pop()
    cfg = make_config(
        height=height, width=width, walls=walls, n_agents=n_agents, coins_per_agent=k, **config_kwargs
    )
    state = State(
        np.array([[agents[i] for i in range(n_agents)]], dtype=np.int64),
        np.array([[cell for i in range(n_agents) for cell in coins[i]]], dtype=np.int64),
        np.array([t], dtype=np.int64),
    )
    return cfg, state


def split_pair(pair: str) -> tuple[str, str]:
    """Split a side-by-side picture ``before | after`` (one ``|`` per row) into its two pictures."""
    rows = [line.split("|") for line in pair.strip("\n").splitlines() if line.strip()]
    if any(len(parts) != 2 for parts in rows):
        raise ValueError(f"every row of a before | after picture needs exactly one '|': {pair!r}")
    return "\n".join(b for b, _ in rows), "\n".join(a for _, a in rows)


def draw_picture(cfg: GridConfig, state: State, row: int = 0) -> str:
    """Game ``row`` of ``state`` as a spaced picture (the inverse of :func:`parse_picture`)."""
    tokens = [""] * (cfg.height * cfg.width)
    for r, c in cfg.walls:
        tokens[r * cfg.width + c] = "#"
    for i, cell in enumerate(state.agents[row]):
        tokens[cell] += str(i)
    for j, cell in enumerate(state.coins[row]):
        tokens[cell] += COIN_LETTERS[j // cfg.coins_per_agent]
    tokens = [tok or "." for tok in tokens]
    size = max(len(tok) for tok in tokens)
    lines = [
        " ".join(tok.ljust(size) for tok in tokens[r * cfg.width : (r + 1) * cfg.width]).rstrip()
        for r in range(cfg.height)
    ]
    return "\n".join(lines)


def normalise_picture(picture: str) -> str:
    """A picture redrawn in the canonical spaced form, so two pictures of one state compare equal."""
    return draw_picture(*parse_picture(picture))


def relabel_picture(picture: str, perm: Sequence[int]) -> str:
    """The same picture with player i (and coin colour i) renamed to player ``perm[i]``."""
    table = {str(i): str(p) for i, p in enumerate(perm)}
    table.update({COIN_LETTERS[i]: COIN_LETTERS[p] for i, p in enumerate(perm)})
    return "".join(table.get(ch, ch) for ch in picture)


def repeat_state(state: State, n: int) -> State:
    """``n`` copies of the one-game ``state`` as a batch."""
    return State(
        np.repeat(state.agents, n, axis=0), np.repeat(state.coins, n, axis=0), np.repeat(state.t, n, axis=0)
    )


def random_states(cfg: GridConfig, rng: np.random.Generator, n: int) -> State:
    """``n`` random valid states: agents anywhere off walls (sharing allowed), coins on distinct free cells
    with no agent, t random below max_steps. Broader than what a few steps from reset reach."""
    free = [r * cfg.width + c for r in range(cfg.height) for c in range(cfg.width) if (r, c) not in cfg.walls]
    agents = np.empty((n, cfg.n_agents), dtype=np.int64)
    coins = np.empty((n, cfg.n_coins), dtype=np.int64)
    for b in range(n):
        # Uniform with replacement, but now and then from a small pool, since uniform draws rarely stack
        # agents on big grids.
        pool = rng.choice(free, size=rng.integers(1, cfg.n_agents + 1), replace=False)
        agents[b] = rng.choice(pool if rng.random() < 0.3 else free, size=cfg.n_agents)
        open_cells = [c for c in free if c not in set(agents[b].tolist())]
        coins[b] = rng.choice(open_cells, size=cfg.n_coins, replace=False)
    return State(agents, coins, rng.integers(0, cfg.max_steps, size=n))


# ---------------------------------------------------------------------------------------------- reference rules
def ref_move(cfg: GridConfig, cell: int, action: int) -> int:
    r, c = divmod(int(cell), cfg.width)
    dr, dc = DELTAS[int(action)]
    nr, nc = r + dr, c + dc
    if not (0 <= nr < cfg.height and 0 <= nc < cfg.width) or (nr, nc) in cfg.walls:
        return int(cell)
    return nr * cfg.width + nc


def ref_rewards(cfg: GridConfig, moved_agents: Sequence[int], coins: Sequence[int]) -> np.ndarray:
    """Step 2 of DESIGN.md, coin by coin and agent by agent."""
    rewards = np.zeros(cfg.n_agents)
    for j, coin_cell in enumerate(coins):
        owner = j // cfg.coins_per_agent
        for i, agent_cell in enumerate(moved_agents):
            if agent_cell == coin_cell:
                rewards[i] += cfg.reward_pick
                if i != owner:
                    rewards[owner] += cfg.reward_stolen
    return rewards


def ref_observation(
    cfg: GridConfig, agents: Sequence[int], coins: Sequence[int], observer: int
) -> np.ndarray:
    """The 5-channel observation of ``observer``, full or partial view, built cell by cell."""
    if cfg.view_size is None:
        h, w, top, left = cfg.height, cfg.width, 0, 0
    else:
        h = w = cfg.view_size
        r0, c0 = divmod(int(agents[observer]), cfg.width)
        top, left = r0 - h // 2, c0 - w // 2
    obs = np.zeros((5, h, w), dtype=np.float32)
    for vr in range(h):
        for vc in range(w):
            r, c = top + vr, left + vc
            if not (0 <= r < cfg.height and 0 <= c < cfg.width):
                obs[4, vr, vc] = 1
                continue
            cell = r * cfg.width + c
            obs[4, vr, vc] = (r, c) in cfg.walls
            for i, a in enumerate(agents):
                if a == cell:
                    obs[0 if i == observer else 1, vr, vc] += 1
            for j, coin in enumerate(coins):
                if coin == cell:
                    obs[2 if j // cfg.coins_per_agent == observer else 3, vr, vc] += 1
    return obs


def ref_global_state(cfg: GridConfig, agents: Sequence[int], coins: Sequence[int]) -> np.ndarray:
    n = cfg.n_agents
    out = np.zeros((2 * n + 1, cfg.height, cfg.width), dtype=np.float32)
    for i, a in enumerate(agents):
        out[i][divmod(int(a), cfg.width)] += 1
    for j, coin in enumerate(coins):
        out[n + j // cfg.coins_per_agent][divmod(int(coin), cfg.width)] += 1
    for r, c in cfg.walls:
        out[2 * n, r, c] = 1
    return out


# ---------------------------------------------------------------------------------------------- statistics
#: p-value below which a frequency test fails. The samples come from fixed seeds, so a test either always
#: passes or always fails; the threshold makes a correct sampler failing on some new seed about a
#: one-in-a-million event, while the biased samplers in the tests reach p-values far below it.
P_MIN = 1e-6


def chi2_sf(stat: float, dof: int) -> float:
    """Upper tail P(X >= stat) of a chi-square with ``dof`` degrees of freedom.

    scipy is not a dependency, so this uses the closed form of the regularised upper incomplete gamma
    function at integer and half-integer shape: Q(1, x) = e^-x, Q(1/2, x) = erfc(sqrt x), and
    Q(a + 1, x) = Q(a, x) + x^a e^-x / Gamma(a + 1).
    """
    try:
        from scipy.stats import chi2  # type: ignore[import-not-found]

        return float(chi2.sf(stat, dof))
    except ImportError:
        pass
    x = stat / 2.0
    if x <= 0:
        return 1.0
    a = 1.0 if dof % 2 == 0 else 0.5
    q = math.exp(-x) if dof % 2 == 0 else math.erfc(math.sqrt(x))
    while a < dof / 2.0:
        q += math.exp(a * math.log(x) - x - math.lgamma(a + 1.0))
        a += 1.0
    return min(q, 1.0)


def chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson's goodness-of-fit p-value of ``counts`` against category probabilities ``probs``.

    A category with probability 0 that was observed makes the p-value 0 (the sample is impossible).
    """
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if np.any(counts[probs == 0] > 0):
        return 0.0
    keep = probs > 0
    expected = counts.sum() * probs[keep]
    stat = float(np.sum((counts[keep] - expected) ** 2 / expected))
    return chi2_sf(stat, int(keep.sum()) - 1)


def one_state(agents: Sequence[int], coins: Sequence[int], t: int = 0) -> State:
    """A batch-1 State."""
    return State(
        agents=np.array([agents], dtype=np.int64),
        coins=np.array([coins], dtype=np.int64),
        t=np.array([t], dtype=np.int64),
    )


def read_gif(path) -> list[np.ndarray]:
    """Every frame of a GIF as RGB arrays (needs Pillow)."""
    from PIL import Image

    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames
