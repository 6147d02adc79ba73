"""The game as PettingZoo environments: :class:`GridParallelEnv` (parallel) and :class:`GridAECEnv` (AEC).

Both translate dicts and spaces to and from :class:`~gridmarl.core.GridCore`; no rule lives here. Every
player is truncated when ``t == max_steps`` (PettingZoo's ``max_cycles`` is accepted as its alias); nobody
is ever terminated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import AgentSelector

from gridmarl.config import (
    GAME_ARGUMENTS,
    N_ACTIONS,
    ResetNeeded,
    check_action,
    make_config,
    reject_unknown_arguments,
)
from gridmarl.core import GridCore
from gridmarl.ego import state_from_snapshot
from gridmarl.frames import RENDER_FPS, RENDER_MODES, FrameRenderer
from gridmarl.gym_env import observation_space

METADATA = {
    "name": "gridmarl_v0",
    "render_modes": list(RENDER_MODES),
    "render_fps": RENDER_FPS,
    "is_parallelizable": True,
}


class GridParallelEnv(ParallelEnv):
    """All players act at once. Keyword arguments are the game's (see :func:`gridmarl.make_config`).

    ``state()`` is the global view (2 * n_agents + 1, H, W); ``get_state()``/``set_state()`` snapshot and
    restore the game (the generator goes on); ``reset(options={"state": snapshot})`` starts from one.
    """

    metadata = METADATA

    def __init__(self, render_mode: str | None = None, **game_kwargs: Any) -> None:
        reject_unknown_arguments("GridParallelEnv.__init__", game_kwargs, ("render_mode", *GAME_ARGUMENTS))
        self.config = make_config(**game_kwargs)
        self.core = GridCore(self.config)
        self.possible_agents = list(self.config.agents)
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        obs_space = observation_space(self.config)
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(N_ACTIONS) for a in self.possible_agents}
        self.state_space = spaces.Box(0.0, float(self.config.n_agents), self.config.state_shape, np.float32)
        self.render_mode = render_mode
        self._renderer = FrameRenderer(render_mode)
        self._np_random: np.random.Generator | None = None
        self._game = None
        self._joint = np.zeros((1, self.config.n_agents), dtype=np.int64)
        self._falses = dict.fromkeys(self.possible_agents, False)
        self._live = frozenset(self.possible_agents)  # nobody leaves before the episode ends

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    @property
    def np_random(self) -> np.random.Generator:
        if self._np_random is None:
            self._np_random, _ = seeding.np_random()
        return self._np_random

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._np_random, _ = seeding.np_random(seed)
        A, C = self.config.n_agents, self.config.n_coins
        self._game = self.core.reset(self.np_random.random((1, A + C)))
        if options and options.get("state") is not None:
            self.set_state(options["state"])
        self.agents = self.possible_agents[:] if not self.core.truncated(self._game)[0] else []
        if self.render_mode == "human":
            self.render()
        return self._observations(), {a: {} for a in self.possible_agents}

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self.core.observe(self._game)[0]
        return dict(zip(self.possible_agents, obs, strict=True))

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ResetNeeded(
                "the episode has ended: call reset() before step()"
                if self._game is not None
                else "call reset() before step()"
            )
        if not isinstance(actions, dict):
            raise TypeError(f"actions must be a dict from agent name to action, got {type(actions).__name__}")
        if actions.keys() != self._live:
            missing = [a for a in self.agents if a not in actions]
            unknown = [a for a in actions if a not in self._index]
            raise ValueError(
                f"actions must hold one action for each of {self.agents}; "
                f"missing: {missing}, unknown: {unknown}"
            )
        joint = self._joint
        for agent, action in actions.items():
            joint[0, self._index[agent]] = check_action(action, f"actions[{agent!r}]")
        rewards, _ = self.core.step(self._game, joint, self.np_random.random((1, self.config.n_coins)))
        truncated = bool(self._game.t[0] >= self.config.max_steps)
        agents = self.possible_agents
        obs = self._observations()
        rew = dict(zip(agents, rewards[0].tolist(), strict=True))
        truncs = dict.fromkeys(agents, truncated)
        infos = {a: {} for a in agents}
        if truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rew, dict(self._falses), truncs, infos

    def state(self) -> np.ndarray:
        """Global state (2 * n_agents + 1, H, W) float32: each player's cell, each colour's coins, walls."""
        if self._game is None:
            raise ResetNeeded("call reset() before state()")
        return self.core.global_state(self._game)[0]

    def get_state(self) -> dict[str, Any]:
        """A snapshot (agents, coins, t) of everything that decides the future except the generator."""
        if self._game is None:
            raise ResetNeeded("call reset() before get_state()")
        g = self._game
        return {"agents": g.agents[0].copy(), "coins": g.coins[0].copy(), "t": int(g.t[0])}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot from :meth:`get_state`; the generator goes on where it was."""
        self._game = state_from_snapshot(self.core, state)
        self.agents = self.possible_agents[:] if not self.core.truncated(self._game)[0] else []

    def render(self):
        if self.render_mode is None:
            return None
        if self._game is None:
            raise ResetNeeded("call reset() before render()")
        return self._renderer.render(self.core, self._game, 0)

    def close(self) -> None:
        self._renderer.close()


class GridAECEnv(AECEnv):
    """The same game, turn by turn: players choose in order and the step happens after the last one."""

    metadata = METADATA

    def __init__(self, render_mode: str | None = None, **game_kwargs: Any) -> None:
        reject_unknown_arguments("GridAECEnv.__init__", game_kwargs, ("render_mode", *GAME_ARGUMENTS))
        super().__init__()
        self._par = GridParallelEnv(render_mode=render_mode, **game_kwargs)
        self.config = self._par.config
        self.core = self._par.core
        self.possible_agents = self._par.possible_agents[:]
        self.observation_spaces = self._par.observation_spaces
        self.action_spaces = self._par.action_spaces
        self.state_space = self._par.state_space
        self.render_mode = render_mode
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._obs, self.infos = self._par.reset(seed=seed, options=options)
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self._actions: dict[str, int] = {}
        self._selector = AgentSelector(self.agents)
        self.agent_selection = self._selector.reset()

    def observe(self, agent: str) -> np.ndarray:
        return self._obs[agent]

    def step(self, action: Any) -> None:
        if not self.agents:
            raise ResetNeeded("the episode has ended (or never started): call reset() before step()")
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._actions[agent] = check_action(action, f"action of {agent}")
        self._cumulative_rewards[agent] = 0.0
        if self._selector.is_last():
            self._obs, self.rewards, self.terminations, self.truncations, self.infos = self._par.step(
                self._actions
            )
            self._actions = {}
        else:
            self._clear_rewards()
        self.agent_selection = self._selector.next()
        self._accumulate_rewards()

    def state(self) -> np.ndarray:
        return self._par.state()

    def get_state(self) -> dict[str, Any]:
        """Snapshot of the game plus the actions chosen so far in this round."""
        return {
            **self._par.get_state(),
            "pending_actions": dict(self._actions),
            "agent": self.agent_selection,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot, taken at the start of a round or in its middle."""
        self._par.set_state(state)
        self._obs = self._par._observations()
        self._actions = dict(state.get("pending_actions", {}))
        agent = state.get("agent", self.possible_agents[0])
        if agent not in self.possible_agents:
            raise ValueError(f"snapshot's agent {agent!r} is not one of {self.possible_agents}")
        self.agents = self.possible_agents[:]
        self._selector.reinit(self.agents)
        selected = self._selector.reset()
        while selected != agent:
            selected = self._selector.next()
        self.agent_selection = selected

    def render(self):
        return self._par.render()

    def close(self) -> None:
        self._par.close()
