"""Scripted opponents, batched: ``random``, ``greedy``, ``selfish``, ``stay``, ``switching`` and callables.

Built-in opponents act on what their own observation shows: ``greedy`` heads for the nearest coin of its
own colour, ``selfish`` for the nearest coin of any colour, by shortest path around the walls it sees (in a
partial view, within its window, where off-grid cells show as walls). They are uniform over the actions
whose resulting cell minimises that distance, and uniform over all five actions when no target is seen or
reachable. All their randomness comes from uniforms drawn by the env's seeded generator.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gridmarl.config import N_ACTIONS, check_action
from gridmarl.core import GridCore, State

BUILTIN_POLICIES = ("random", "greedy", "selfish", "stay")
OPPONENT_CHOICES = (*BUILTIN_POLICIES, "switching")
DEFAULT_SWITCH_POOL = ("greedy", "selfish", "random")

OpponentPolicy = Callable[[np.ndarray], Any]


def _distance_tables(core: GridCore) -> np.ndarray:
    """Shortest-path distances as seen by an observer: (centres, V + 1, V + 1) float64, inf if unreachable.

    Full view: one table over grid cells (leading dim 1). Partial view: for every centre, distances between
    the window's slots, walking only on seen floor; the last row/column stands for 'out of view'.
    """
    if core.full_view:
        passable = [~core.wall_mask]
        neighbours = [core.move]
        V = core.n_cells
    else:
        V = core.view_cells
        v = core.config.view_size
        passable, neighbours = [], []
        slot_r, slot_c = np.divmod(np.arange(V), v)
        for centre in range(core.n_cells):
            cells = core.window_cells(centre)
            ok = cells >= 0
            ok[ok] = ~core.wall_mask[cells[ok]]
            nbr = np.tile(np.arange(V)[:, None], (1, N_ACTIONS))
            for a, (dr, dc) in enumerate([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]):
                r2, c2 = slot_r + dr, slot_c + dc
                inside = (r2 >= 0) & (r2 < v) & (c2 >= 0) & (c2 < v)
                tgt = np.where(inside, r2 * v + c2, 0)
                nbr[:, a] = np.where(inside & ok[tgt], tgt, np.arange(V))
            passable.append(ok)
            neighbours.append(nbr)
    tables = np.full((len(passable), V + 1, V + 1), np.inf)
    for k, (ok, nbr) in enumerate(zip(passable, neighbours, strict=True)):
        for src in np.flatnonzero(ok):
            dist = tables[k, src]
            dist[src] = 0
            queue = deque([src])
            while queue:
                here = queue.popleft()
                for nxt in nbr[here]:
                    if dist[nxt] == np.inf:
                        dist[nxt] = dist[here] + 1
                        queue.append(nxt)
    return tables


class _Targets:
    """Distance-to-nearest-target action sets, shared by ``greedy`` and ``selfish``."""

    def __init__(self, core: GridCore) -> None:
        self.core = core
        self.dist = _distance_tables(core)

    def best_actions(self, state: State, agent: int, rows: np.ndarray | slice, selfish: bool) -> np.ndarray:
        """(R, 5) bool: the actions that minimise the distance to the nearest target coin."""
        core = self.core
        centre = state.agents[rows, agent]  # (R,)
        coins = state.coins[rows]  # (R, C)
        dest = core.move[centre]  # (R, 5)
        if core.full_view:
            d = self.dist[0][dest[:, :, None], coins[:, None, :]]  # (R, 5, C)
        else:
            dslot = core.view_index[centre[:, None], dest]
            cslot = core.view_index[centre[:, None], coins]
            d = self.dist[centre[:, None, None], dslot[:, :, None], cslot[:, None, :]]
        if not selfish:
            d = d[:, :, core.coin_colour == agent]
        dmin = d.min(axis=2)  # (R, 5)
        best = (dmin == dmin.min(axis=1, keepdims=True)) & np.isfinite(dmin)
        best[~best.any(axis=1)] = True
        return best


def _choose(allowed: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Uniform choice among the True entries of each row of ``allowed`` (R, K) using uniforms ``u`` (R,)."""
    rank = np.cumsum(allowed, axis=1)
    k = (u * rank[:, -1]).astype(np.int64)
    return np.argmax(rank > k[:, None], axis=1)


class Opponents:
    """All the non-ego players of a batch of N games.

    Args:
        core: the game.
        ego: index of the ego player; every other player is an opponent, in player order. ``None``: every
            player is driven here (for data collection).
        opponent: a name from :data:`OPPONENT_CHOICES`, a callable ``policy(obs) -> action`` on the
            opponent's own observation (5, h, w), or a list of these, one per opponent.
        switch_every: ``switching`` opponents change policy before acting at every t > 0 with
            ``t % switch_every == 0``.
        switch_pool: the policies a ``switching`` opponent moves between.
    """

    def __init__(
        self,
        core: GridCore,
        ego: int | None,
        opponent: str | OpponentPolicy | Sequence[str | OpponentPolicy],
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
    ) -> None:
        self.core = core
        self.slots = [i for i in range(core.n_agents) if i != ego]
        n_opp = len(self.slots)
        if isinstance(opponent, list | tuple):
            if len(opponent) != n_opp:
                raise ValueError(
                    f"opponent list has {len(opponent)} entries, but there are {n_opp} opponents "
                    f"(n_agents={core.n_agents}{'' if ego is None else ' minus the ego'}); give one per opponent"
                )
            specs = list(opponent)
        else:
            specs = [opponent] * n_opp
        if (
            isinstance(switch_every, bool)
            or not isinstance(switch_every, int | np.integer)
            or switch_every < 1
        ):
            raise ValueError(f"switch_every must be an integer >= 1, got {switch_every!r}")
        self.switch_every = int(switch_every)
        pool = tuple(switch_pool)
        for name in pool:
            if name not in BUILTIN_POLICIES:
                raise ValueError(f"switch_pool entry {name!r} is not one of {BUILTIN_POLICIES}")
        if len(set(pool)) < 2:
            raise ValueError(
                f"switch_pool needs at least 2 distinct policies to switch between, got {pool!r}"
            )
        self.switch_pool = pool

        # Policy ids: the built-ins first, then each distinct callable.
        self.names: list[str] = list(BUILTIN_POLICIES)
        self.callables: dict[int, OpponentPolicy] = {}
        self.fixed: list[int | None] = []  # policy id per slot, None for a switching slot
        for spec in specs:
            if isinstance(spec, str):
                if spec not in OPPONENT_CHOICES:
                    raise ValueError(
                        f"unknown opponent {spec!r}; allowed: {list(OPPONENT_CHOICES)}, a list of these "
                        "(one per opponent), or a callable policy(obs) -> action"
                    )
                self.fixed.append(None if spec == "switching" else self.names.index(spec))
            elif callable(spec):
                self.callables[len(self.names)] = spec
                self.fixed.append(len(self.names))
                self.names.append(getattr(spec, "__name__", type(spec).__name__))
            else:
                raise ValueError(
                    f"opponent {spec!r} is neither a policy name from {list(OPPONENT_CHOICES)} nor a callable"
                )
        self.switching_slots = [k for k, f in enumerate(self.fixed) if f is None]
        self.pool_ids = np.array([self.names.index(p) for p in pool], dtype=np.int64)
        self._targets: _Targets | None = None
        self.all_random = all(f == 0 for f in self.fixed)
        self.current = np.zeros((0, n_opp), dtype=np.int64)

    @property
    def n_opponents(self) -> int:
        return len(self.slots)

    @property
    def n_step_draws(self) -> int:
        """Uniforms used per game per step: one action draw per opponent, one per switching opponent."""
        return self.n_opponents + len(self.switching_slots)

    @property
    def n_reset_draws(self) -> int:
        return len(self.switching_slots)

    def _target_sets(self) -> _Targets:
        if self._targets is None:
            self._targets = _Targets(self.core)
        return self._targets

    def reset(self, num_envs: int, rows: np.ndarray | slice | None, u: np.ndarray) -> None:
        """Start policies for the games ``rows`` (all when None) from uniforms (R, n_reset_draws)."""
        if self.current.shape[0] != num_envs:
            self.current = np.tile(np.array([f if f is not None else 0 for f in self.fixed]), (num_envs, 1))
        if rows is None:
            rows = slice(None)
        for j, slot in enumerate(self.switching_slots):
            pick = (u[:, j] * len(self.pool_ids)).astype(np.int64)
            self.current[rows, slot] = self.pool_ids[pick]

    def _switch(self, state: State, u: np.ndarray) -> None:
        t = state.t
        due = (t > 0) & (t % self.switch_every == 0)
        if not due.any():
            return
        P = len(self.pool_ids)
        for j, slot in enumerate(self.switching_slots):
            rows = np.flatnonzero(due)
            pos = np.argmax(self.current[rows, slot][:, None] == self.pool_ids[None, :], axis=1)
            shift = 1 + (u[rows, j] * (P - 1)).astype(np.int64)
            self.current[rows, slot] = self.pool_ids[(pos + shift) % P]

    def act(self, state: State, u: np.ndarray) -> np.ndarray:
        """The opponents' actions (N, n_opponents) int64 from uniforms ``u`` (N, n_step_draws)."""
        n_opp = self.n_opponents
        if self.all_random:
            return (u[:, :n_opp] * N_ACTIONS).astype(np.int64)
        if self.switching_slots:
            self._switch(state, u[:, n_opp:])
        N = state.batch_size
        actions = np.zeros((N, n_opp), dtype=np.int64)
        for k, agent in enumerate(self.slots):
            ids = self.current[:, k]
            for pid in np.unique(ids) if self.fixed[k] is None else (self.fixed[k],):
                rows = slice(None) if self.fixed[k] is not None else np.flatnonzero(ids == pid)
                actions[rows, k] = self._policy_actions(pid, state, agent, rows, u[rows, k])
        return actions

    def _policy_actions(
        self, pid: int, state: State, agent: int, rows: np.ndarray | slice, u: np.ndarray
    ) -> np.ndarray:
        name = self.names[pid]
        if pid in self.callables:
            policy = self.callables[pid]
            sub = state.take(rows) if not isinstance(rows, slice) else state
            obs = self.core.observe(sub, (agent,))[:, 0]
            who = f"opponent policy {name!r} (player_{agent})"
            return np.array([check_action(policy(o), f"action of {who}") for o in obs], dtype=np.int64)
        if name == "random":
            return (u * N_ACTIONS).astype(np.int64)
        if name == "stay":
            return np.zeros(len(u), dtype=np.int64)
        best = self._target_sets().best_actions(state, agent, rows, selfish=name == "selfish")
        return _choose(best, u)

    def action_probs(self, state: State) -> np.ndarray:
        """The exact action distribution of every opponent (N, n_opponents, 5) in the current policies.

        Callables have no known distribution: their rows are NaN. A ``switching`` opponent that is due to
        switch before its next action is reported with its current (pre-switch) policy.
        """
        N = state.batch_size
        probs = np.full((N, self.n_opponents, N_ACTIONS), np.nan)
        for k, agent in enumerate(self.slots):
            for pid in np.unique(self.current[:, k]):
                rows = np.flatnonzero(self.current[:, k] == pid)
                name = self.names[pid]
                if pid in self.callables:
                    continue
                if name == "random":
                    probs[rows, k] = 1.0 / N_ACTIONS
                elif name == "stay":
                    probs[rows, k] = np.eye(N_ACTIONS)[0]
                else:
                    best = self._target_sets().best_actions(state, agent, rows, selfish=name == "selfish")
                    probs[rows, k] = best / best.sum(axis=1, keepdims=True)
        return probs

    def policy_names(self, row: int = 0) -> list[str]:
        return [self.names[i] for i in self.current[row]]

    def get_state(self) -> np.ndarray:
        return self.current.copy()

    def set_state(self, current: np.ndarray) -> None:
        current = np.asarray(current, dtype=np.int64)
        if current.shape[1:] != (self.n_opponents,):
            raise ValueError(
                f"opponent policy state must have shape (N, {self.n_opponents}), got {current.shape}"
            )
        self.current = current.copy()
