"""N games seen by one ego player against scripted opponents: the engine of the Gymnasium envs.

The single Gymnasium env is this engine with N = 1 and the vector env is the same engine with N games, so
given the same generator both produce the same trajectories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridmarl.config import GridConfig
from gridmarl.core import GridCore, State
from gridmarl.opponents import DEFAULT_SWITCH_POOL, OpponentPolicy, Opponents


class EgoGames:
    """A batch of ``num_envs`` games, player ``ego`` acting, the others driven by :class:`Opponents`
    (``ego=None``: every player is driven, as in data collection).

    Per step, one block of uniforms (N, n_step_draws + n_coins) is drawn from the caller's generator: first
    the opponents' draws, then the respawn draws. Per reset, (R, n_agents + n_coins + n_reset_draws).
    """

    def __init__(
        self,
        config: GridConfig,
        num_envs: int,
        ego: int | None = 0,
        opponent: str | OpponentPolicy | Sequence[str | OpponentPolicy] = "random",
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
    ) -> None:
        self.core = GridCore(config)
        if ego is not None and (
            isinstance(ego, bool) or not isinstance(ego, int | np.integer) or not 0 <= ego < config.n_agents
        ):
            raise ValueError(f"ego must be a player index in 0..{config.n_agents - 1}, got {ego!r}")
        self.ego = None if ego is None else int(ego)
        self.num_envs = num_envs
        self.opponents = Opponents(self.core, self.ego, opponent, switch_every, switch_pool)
        self.state: State | None = None
        self._joint = np.zeros((num_envs, config.n_agents), dtype=np.int64)
        self._opp_cols = np.array(self.opponents.slots)
        self._n_place = config.n_agents + config.n_coins

    def reset(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> None:
        """Start new games in ``rows`` (all when None)."""
        R = self.num_envs if rows is None else len(rows)
        u = rng.random((R, self._n_place + self.opponents.n_reset_draws))
        fresh = self.core.reset(u[:, : self._n_place])
        if rows is None or self.state is None:
            self.state = fresh
        else:
            self.state.put(rows, fresh)
        self.opponents.reset(self.num_envs, rows, u[:, self._n_place :])

    def act(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The opponents' actions (N, n_opponents) for this step, and the respawn uniforms (N, n_coins)
        drawn with them (one draw per step: the opponents' part first)."""
        n_draw = self.opponents.n_step_draws
        u = rng.random((self.num_envs, n_draw + self.core.n_coins))
        return self.opponents.act(self.state, u[:, :n_draw]), u[:, n_draw:]

    def advance(
        self, ego_actions: np.ndarray | None, opponent_actions: np.ndarray, u: np.ndarray
    ) -> np.ndarray:
        """Play the joint action; returns every player's rewards (N, n_agents)."""
        joint = self._joint
        if self.ego is not None:
            joint[:, self.ego] = ego_actions
        joint[:, self._opp_cols] = opponent_actions
        rewards, _ = self.core.step(self.state, joint, u)
        return rewards

    def step(self, ego_actions: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Advance every game; returns every player's rewards (N, n_agents) and the opponents' actions
        (N, n_opponents)."""
        opponent_actions, u = self.act(rng)
        return self.advance(ego_actions, opponent_actions, u), opponent_actions

    def observe(self) -> np.ndarray:
        """The ego's observations, (N, 5, h, w) float32."""
        return self.core.observe(self.state, (self.ego,))[:, 0]

    def snapshot(self, row: int) -> dict[str, Any]:
        """Everything that decides game ``row``'s future except the generator."""
        s = self.state
        return {
            "agents": s.agents[row].copy(),
            "coins": s.coins[row].copy(),
            "t": int(s.t[row]),
            "opponent_policies": self.opponents.current[row].copy(),
        }

    def restore(self, row: int, snapshot: dict[str, Any]) -> None:
        self.state.put(slice(row, row + 1), state_from_snapshot(self.core, snapshot))
        if "opponent_policies" in snapshot:
            ids = np.asarray(snapshot["opponent_policies"], dtype=np.int64)
            if (
                ids.shape != (self.opponents.n_opponents,)
                or ids.min(initial=0) < 0
                or ids.max(initial=0) >= len(self.opponents.names)
            ):
                raise ValueError(f"snapshot's opponent_policies {ids!r} do not fit this env's opponents")
            self.opponents.current[row] = ids


def state_from_snapshot(core: GridCore, snapshot: dict[str, Any]) -> State:
    """A batch-1 :class:`State` from a snapshot dict, checked against the game."""
    try:
        agents = np.asarray(snapshot["agents"], dtype=np.int64)
        coins = np.asarray(snapshot["coins"], dtype=np.int64)
        t = int(snapshot["t"])
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"a state snapshot needs 'agents', 'coins' and 't' (from get_state()): {err}"
        ) from None
    cfg = core.config
    if agents.shape != (cfg.n_agents,) or coins.shape != (cfg.n_coins,):
        raise ValueError(
            f"snapshot has agents {agents.shape} and coins {coins.shape}; this game needs "
            f"({cfg.n_agents},) and ({cfg.n_coins},)"
        )
    cells = np.concatenate([agents, coins])
    if cells.min() < 0 or cells.max() >= core.n_cells or core.wall_mask[cells].any():
        raise ValueError(f"snapshot puts an agent or coin off the grid or on a wall: {snapshot!r}")
    if len(set(coins.tolist())) != len(coins) or np.isin(coins, agents).any():
        raise ValueError("snapshot's coins must lie on distinct cells with no agent on them")
    if not 0 <= t <= cfg.max_steps:
        raise ValueError(f"snapshot's t={t} must lie in 0..max_steps={cfg.max_steps}")
    return State(agents[None].copy(), coins[None].copy(), np.array([t], dtype=np.int64))
