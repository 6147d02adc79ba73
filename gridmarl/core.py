"""The game rules, once, in numpy, batched over a leading dimension of N games.

Everything that adapters need (the PettingZoo and Gymnasium envs, the vector env, exact look-ahead) goes
through :class:`GridCore`. Cells are flat indices ``row * width + col``. All randomness comes in as
uniform numbers in [0, 1) drawn by the caller, so the same draws give the same game whichever adapter
drives it. Work per step is a handful of array operations over precomputed tables (moves, observation
slots, reward matrix); nothing here knows of gymnasium, pettingzoo, pygame or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridmarl.config import N_CHANNELS, GridConfig, make_config

# (d_row, d_col) of actions 0 stay, 1 up, 2 down, 3 left, 4 right.
ACTION_DELTAS = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)


@dataclass
class State:
    """A batch of N game states. Positions are flat cell indices.

    Attributes:
        agents: (N, n_agents) int64, player i's cell.
        coins: (N, n_coins) int64, coins in order (colour, index): coin ``c`` has colour
            ``c // coins_per_agent``.
        t: (N,) int64 steps taken since reset.
    """

    agents: np.ndarray
    coins: np.ndarray
    t: np.ndarray

    @property
    def batch_size(self) -> int:
        return self.agents.shape[0]

    def copy(self) -> State:
        return State(self.agents.copy(), self.coins.copy(), self.t.copy())

    def take(self, rows: np.ndarray | slice | int) -> State:
        """The sub-batch ``rows`` (always 2-D), as a copy."""
        if isinstance(rows, int | np.integer):
            rows = slice(int(rows), int(rows) + 1)
        return State(self.agents[rows].copy(), self.coins[rows].copy(), self.t[rows].copy())

    def put(self, rows: np.ndarray | slice, other: State) -> None:
        """Write ``other`` into the sub-batch ``rows``."""
        self.agents[rows] = other.agents
        self.coins[rows] = other.coins
        self.t[rows] = other.t

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return (
            np.array_equal(self.agents, other.agents)
            and np.array_equal(self.coins, other.coins)
            and np.array_equal(self.t, other.t)
        )


class GridCore:
    """Rules and precomputed tables for one :class:`GridConfig`, applied to batches of states."""

    def __init__(self, config: GridConfig | None = None) -> None:
        cfg = make_config(config)
        self.config = cfg
        H, W = cfg.height, cfg.width
        self.n_cells = H * W
        self.n_agents = cfg.n_agents
        self.n_coins = cfg.n_coins
        self.coin_colour = np.repeat(np.arange(cfg.n_agents), cfg.coins_per_agent)  # (C,)

        self.wall_mask = np.zeros(self.n_cells, dtype=bool)
        for r, c in cfg.walls:
            self.wall_mask[r * W + c] = True
        self.free_cells = np.flatnonzero(~self.wall_mask)

        # move[cell, action] -> cell after the move; into a wall or off the grid stays put.
        rows, cols = np.divmod(np.arange(self.n_cells), W)
        nr = rows[:, None] + ACTION_DELTAS[None, :, 0]
        nc = cols[:, None] + ACTION_DELTAS[None, :, 1]
        inside = (nr >= 0) & (nr < H) & (nc >= 0) & (nc < W)
        dest = np.where(inside, nr * W + nc, np.arange(self.n_cells)[:, None])
        dest = np.where(self.wall_mask[dest], np.arange(self.n_cells)[:, None], dest)
        self.move = dest.astype(np.int64)  # (cells, 5)

        # Rewards are linear in the (coin, agent) "is on" matrix: rewards = on.reshape(C*A) @ reward_matrix.
        A, C = self.n_agents, self.n_coins
        reward_matrix = np.zeros((C, A, A), dtype=np.float32)
        for c in range(C):
            owner = self.coin_colour[c]
            for a in range(A):
                reward_matrix[c, a, a] += cfg.reward_pick
                if a != owner:
                    reward_matrix[c, a, owner] += cfg.reward_stolen
        self.reward_matrix = reward_matrix.reshape(C * A, A)

        self._build_view_tables()
        self._buffers: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._all_agents = tuple(range(self.n_agents))

    # ------------------------------------------------------------------ observation tables
    def _build_view_tables(self) -> None:
        cfg = self.config
        H, W = cfg.height, cfg.width
        rows, cols = np.divmod(np.arange(self.n_cells), W)
        self.full_view = cfg.view_size is None
        if self.full_view:
            self.view_h, self.view_w = H, W
            self.view_cells = self.n_cells
            self.slot_stride = self.n_cells  # no slot for objects out of view
            self.view_index = None
            self.wall_plane = self.wall_mask.astype(np.float32)[None]  # (1, V): the same for every centre
            return
        v = cfg.view_size
        r = v // 2
        self.view_h = self.view_w = v
        self.view_cells = v * v
        # One extra slot per channel receives the objects outside the window and is sliced off.
        self.slot_stride = v * v + 1
        wr = rows[None, :] - rows[:, None] + r  # (centre, cell)
        wc = cols[None, :] - cols[:, None] + r
        inside = (wr >= 0) & (wr < v) & (wc >= 0) & (wc < v)
        self.view_index = np.where(inside, wr * v + wc, v * v).astype(np.int64)  # (cells, cells)
        # Wall channel of the window around every centre: walls, and everything off the grid.
        gr = rows[:, None] + (np.arange(v * v) // v)[None, :] - r  # (centre, slot) -> grid row
        gc = cols[:, None] + (np.arange(v * v) % v)[None, :] - r
        on_grid = (gr >= 0) & (gr < H) & (gc >= 0) & (gc < W)
        cell = np.where(on_grid, gr * W + gc, 0)
        self.wall_plane = np.where(on_grid, self.wall_mask[cell], True).astype(np.float32)  # (cells, V)

    def window_cells(self, centre: int) -> np.ndarray:
        """Grid cell of every slot of the window around ``centre`` (-1 off the grid), shape (view_cells,)."""
        if self.full_view:
            return np.arange(self.n_cells)
        H, W, v = self.config.height, self.config.width, self.config.view_size
        r = v // 2
        cr, cc = divmod(int(centre), W)
        gr = cr + np.arange(v * v) // v - r
        gc = cc + np.arange(v * v) % v - r
        on_grid = (gr >= 0) & (gr < H) & (gc >= 0) & (gc < W)
        return np.where(on_grid, gr * W + gc, -1)

    def _index_buffers(self, N: int, observers: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Offsets of every agent's (N, k, A) and coin's (N, k, C) channel in the flat observations of a batch,
        and a reusable (N, k, A + C) index buffer. Cached per (N, observers): building them per step costs
        more than the observation itself for small N."""
        key = (N, observers)
        if key not in self._buffers:
            if len(self._buffers) > 16:
                self._buffers.clear()
            k = len(observers)
            obs = np.asarray(observers)[:, None]
            agent_ch = np.where(obs == np.arange(self.n_agents)[None, :], 0, 1)  # (k, A)
            coin_ch = np.where(obs == self.coin_colour[None, :], 2, 3)  # (k, C)
            row = (np.arange(N * k, dtype=np.int64) * N_CHANNELS * self.slot_stride).reshape(N, k, 1)
            self._buffers[key] = (
                row + agent_ch * self.slot_stride,
                row + coin_ch * self.slot_stride,
                np.empty((N, k, self.n_agents + self.n_coins), dtype=np.int64),
            )
        return self._buffers[key]

    # ------------------------------------------------------------------ rules
    def _kth_free(self, blocked: np.ndarray, u: np.ndarray) -> np.ndarray:
        """For every row, the cell of rank floor(u * F) among its F cells that are neither walls nor in ``blocked``.

        Args:
            blocked: (R, m) cells that are taken.
            u: (R,) uniforms in [0, 1).
        """
        R = blocked.shape[0]
        taken = np.broadcast_to(self.wall_mask, (R, self.n_cells)).copy()
        taken[np.arange(R)[:, None], blocked] = True
        rank = np.cumsum(~taken, axis=1)  # (R, cells)
        k = (u * rank[:, -1]).astype(np.int64)
        return np.argmax(rank > k[:, None], axis=1)

    def reset(self, u: np.ndarray) -> State:
        """New states from uniforms ``u`` of shape (N, n_agents + n_coins).

        Agents go to distinct uniformly random free cells in player order, then coins in order (colour,
        index) to uniformly random cells that hold no wall, agent or coin.
        """
        u = np.asarray(u, dtype=np.float64)
        N = u.shape[0]
        A, C = self.n_agents, self.n_coins
        placed = np.zeros((N, A + C), dtype=np.int64)
        for j in range(A + C):
            placed[:, j] = self._kth_free(placed[:, :j], u[:, j])
        return State(placed[:, :A].copy(), placed[:, A:].copy(), np.zeros(N, dtype=np.int64))

    def step(self, state: State, actions: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every game one step, in place.

        Args:
            state: the batch, modified in place.
            actions: (N, n_agents) int actions in 0..4 (not checked here: adapters check user input).
            u: (N, n_coins) uniforms for respawning, used only for the coins picked up.

        Returns:
            rewards: (N, n_agents) float32.
            picked: (N, n_coins) bool, the coins picked up (and respawned) this step.
        """
        agents = self.move[state.agents, actions]
        state.agents[...] = agents
        N = agents.shape[0]
        on = (state.coins[:, :, None] == agents[:, None, :]).reshape(N, -1)  # (N, C*A)
        rewards = on.astype(np.float32) @ self.reward_matrix
        if np.logical_or.reduce(on, axis=None):
            picked = on.reshape(N, self.n_coins, self.n_agents).any(axis=2)
            self._respawn(state, picked, u)
        else:
            picked = np.zeros((N, self.n_coins), dtype=bool)
        state.t += 1
        return rewards, picked

    def _respawn(self, state: State, picked: np.ndarray, u: np.ndarray) -> None:
        # A picked coin's old cell holds an agent, so counting it as taken changes nothing.
        for c in np.flatnonzero(picked.any(axis=0)):
            rows = np.flatnonzero(picked[:, c])
            blocked = np.concatenate([state.agents[rows], state.coins[rows]], axis=1)
            state.coins[rows, c] = self._kth_free(blocked, u[rows, c])

    def truncated(self, state: State) -> np.ndarray:
        return state.t >= self.config.max_steps

    # ------------------------------------------------------------------ views
    def observe(self, state: State, observers: tuple[int, ...] | None = None) -> np.ndarray:
        """Observations of the given players, float32 of shape (N, len(observers), 5, h, w).

        Channels: 0 self, 1 number of other players, 2 own coins, 3 others' coins, 4 walls (and off-grid
        cells in a partial view). ``observers`` defaults to every player.
        """
        if observers is None:
            observers = self._all_agents
        observers = tuple(observers)
        N, k = state.batch_size, len(observers)
        if self.full_view:
            agent_slots = state.agents[:, None, :]  # (N, 1, A)
            coin_slots = state.coins[:, None, :]
        else:
            centres = state.agents[:, list(observers), None]  # (N, k, 1)
            agent_slots = self.view_index[centres, state.agents[:, None, :]]  # (N, k, A)
            coin_slots = self.view_index[centres, state.coins[:, None, :]]
        agent_base, coin_base, flat = self._index_buffers(N, observers)
        A = self.n_agents
        np.add(agent_base, agent_slots, out=flat[:, :, :A])
        np.add(coin_base, coin_slots, out=flat[:, :, A:])
        S = N_CHANNELS * self.slot_stride
        counts = np.bincount(flat.ravel(), minlength=N * k * S).reshape(N, k, N_CHANNELS, self.slot_stride)
        if not self.full_view:
            counts = counts[..., : self.view_cells]
        obs = counts.astype(np.float32)
        if self.full_view:
            if self.config.walls:
                obs[:, :, 4] = self.wall_plane[0]
        else:
            obs[:, :, 4] = self.wall_plane[state.agents[:, list(observers)]]
        return obs.reshape(N, k, N_CHANNELS, self.view_h, self.view_w)

    def global_state(self, state: State) -> np.ndarray:
        """Global view, float32 (N, 2*n_agents + 1, H, W): each player's cell, each colour's coins, walls."""
        N, A, cells = state.batch_size, self.n_agents, self.n_cells
        P = 2 * A + 1
        base = (np.arange(N, dtype=np.int64) * P * cells)[:, None]
        agent_idx = base + np.arange(A) * cells + state.agents
        coin_idx = base + (A + self.coin_colour) * cells + state.coins
        counts = np.bincount(np.concatenate([agent_idx, coin_idx], axis=1).ravel(), minlength=N * P * cells)
        out = counts.astype(np.float32).reshape(N, P, cells)
        out[:, -1] = self.wall_mask
        return out.reshape(N, P, self.config.height, self.config.width)

    # ------------------------------------------------------------------ helpers
    def cell(self, row: int, col: int) -> int:
        return row * self.config.width + col

    def rowcol(self, cell: int) -> tuple[int, int]:
        return divmod(int(cell), self.config.width)
