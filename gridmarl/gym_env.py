"""``GridMARL-v0``: the game as a single-agent Gymnasium env, one ego player against scripted opponents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gridmarl.config import (
    GAME_ARGUMENTS,
    N_ACTIONS,
    ResetNeeded,
    check_action,
    make_config,
    reject_unknown_arguments,
)
from gridmarl.ego import EgoGames
from gridmarl.frames import RENDER_FPS, RENDER_MODES, FrameRenderer
from gridmarl.opponents import DEFAULT_SWITCH_POOL, OpponentPolicy


def observation_space(config) -> spaces.Box:
    """Box of one player's observation: counts of other players go up to n_agents - 1, the rest to 1."""
    return spaces.Box(0.0, float(max(1, config.n_agents - 1)), shape=config.obs_shape, dtype=np.float32)


#: The keyword arguments of ``gym.make("GridMARL-v0", ...)`` and of the native vector env besides
#: ``num_envs``: the env's own, then the game's.
ENV_ARGUMENTS = (
    "render_mode",
    "opponent",
    "ego",
    "switch_every",
    "switch_pool",
    "policy_names_in_info",
    *GAME_ARGUMENTS,
)


class GridMARLEnv(gym.Env):
    """One ego player (``ego``, default player_0) in the coin game; the others follow ``opponent``.

    Args:
        render_mode: ``None``, ``"human"``, ``"rgb_array"`` or ``"ansi"``.
        opponent: ``"random"`` (default), ``"greedy"``, ``"selfish"``, ``"stay"``, ``"switching"``, a
            callable ``policy(obs) -> action`` on the opponent's own observation, or a list of these, one
            per opponent in player order.
        ego: index of the player this env controls.
        switch_every, switch_pool: settings of ``switching`` opponents.
        policy_names_in_info: ``False`` leaves the names (``opponent_policies``) out of ``info``, so that
            every value in it is a number array (their ids, ``opponent_policy_ids``, are always there).
        **game_kwargs: the game's arguments (``height``, ``width``, ``n_agents``, ``coins_per_agent``,
            ``view_size``, ``max_steps``, ``layout``, ``reward_pick``, ``reward_stolen``). Any other
            keyword raises ``TypeError`` in Python's wording (``got an unexpected keyword argument``).

    ``step`` returns the ego's observation and reward; ``info`` holds ``opponent_actions`` (int64, player
    order, ego skipped), ``rewards`` (every player's reward, float32, player order), ``opponent_policies``
    (names in use, a list) and ``opponent_policy_ids`` (the same as int64 ids, player order, ego
    skipped) and ``t`` (steps played in this episode); ``reset``'s info holds the last three. An id indexes :attr:`opponent_policy_names`: the
    built-in policies are always 0 ``random``, 1 ``greedy``, 2 ``selfish``, 3 ``stay`` (a ``switching``
    opponent reports the one it plays now), and callables follow from 4 in the order ``opponent`` lists
    them. ``reset(options={"state": snapshot})`` starts from a snapshot of :meth:`get_state`.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(
        self,
        render_mode: str | None = None,
        opponent: str | OpponentPolicy | Sequence[str | OpponentPolicy] = "random",
        ego: int = 0,
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
        policy_names_in_info: bool = True,
        **game_kwargs: Any,
    ) -> None:
        reject_unknown_arguments("GridMARLEnv.__init__", game_kwargs, ENV_ARGUMENTS)
        self.config = make_config(**game_kwargs)
        self.games = EgoGames(self.config, 1, ego, opponent, switch_every, switch_pool)
        self.core = self.games.core
        self.ego = self.games.ego
        self.observation_space = observation_space(self.config)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._renderer = FrameRenderer(render_mode)
        self.render_mode = render_mode
        self._ego_action = np.zeros(1, dtype=np.int64)
        self._needs_reset = True
        self.policy_names_in_info = bool(policy_names_in_info)

    @property
    def opponent_policy_names(self) -> tuple[str, ...]:
        """Name of every policy id that ``info["opponent_policy_ids"]`` may hold, indexed by id."""
        return tuple(self.games.opponents.names)

    def _policy_info(self) -> dict[str, Any]:
        opponents = self.games.opponents
        info: dict[str, Any] = {"opponent_policy_ids": opponents.current[0].copy()}
        if self.policy_names_in_info:
            info["opponent_policies"] = opponents.policy_names(0)
        info["t"] = self.games.state.t[0].copy()  # np.int64: array readers (TorchRL's) need a dtype
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.games.reset(self.np_random)
        if options and options.get("state") is not None:
            self.games.restore(0, options["state"])
        self._needs_reset = bool(self.core.truncated(self.games.state)[0])
        if self.render_mode == "human":
            self.render()
        return self.games.observe()[0], self._policy_info()

    def step(self, action):
        if self._needs_reset:
            raise ResetNeeded(
                "the episode has ended (or never started): call reset() before step()"
                if self.games.state is not None
                else "call reset() before step()"
            )
        self._ego_action[0] = check_action(action)
        rewards, opp = self.games.step(self._ego_action, self.np_random)
        truncated = bool(self.core.truncated(self.games.state)[0])
        self._needs_reset = truncated
        info = {"opponent_actions": opp[0], "rewards": rewards[0], **self._policy_info()}
        if self.render_mode == "human":
            self.render()
        return self.games.observe()[0], float(rewards[0, self.ego]), False, truncated, info

    def get_state(self) -> dict[str, Any]:
        """A snapshot of everything that decides the future except the generator."""
        if self.games.state is None:
            raise ResetNeeded("call reset() before get_state()")
        return self.games.snapshot(0)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`get_state` snapshot; the generator goes on where it was."""
        if self.games.state is None:
            raise ResetNeeded("call reset() before set_state()")
        self.games.restore(0, state)
        self._needs_reset = bool(self.core.truncated(self.games.state)[0])

    def state(self) -> np.ndarray:
        """Global state (2 * n_agents + 1, H, W) float32."""
        if self.games.state is None:
            raise ResetNeeded("call reset() before state()")
        return self.core.global_state(self.games.state)[0]

    def action_probs(self) -> np.ndarray:
        """The scripted opponents' current action distributions, (n_agents - 1, 5); NaN for callables."""
        return self.games.opponents.action_probs(self.games.state)[0]

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode= to gym.make")
            return None
        if self.games.state is None:
            raise ResetNeeded("call reset() before render()")
        return self._renderer.render(self.core, self.games.state, 0, highlight=self.ego)

    def close(self) -> None:
        self._renderer.close()
