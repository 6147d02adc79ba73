"""Native batched ``GridMARL-v0``: N games stepped as arrays by one :class:`EgoGames` engine.

Made by ``gym.make_vec("GridMARL-v0", num_envs=N, vectorization_mode="vector_entry_point")``. It follows
Gymnasium's default next-step autoreset: the step after a game is truncated resets that game (the action
given for it is ignored) and returns its first observation with reward 0. One generator serves the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gridmarl.config import N_ACTIONS, ResetNeeded, check_action_array, make_config
from gridmarl.ego import EgoGames
from gridmarl.frames import RENDER_FPS, FrameRenderer, check_render_mode
from gridmarl.gym_env import observation_space
from gridmarl.opponents import DEFAULT_SWITCH_POOL, OpponentPolicy


class GridMARLVectorEnv(VectorEnv):
    """``num_envs`` games of :class:`~gridmarl.gym_env.GridMARLEnv` as one batch.

    Takes the same arguments as the single env. ``info`` holds ``opponent_actions`` (N, n_agents - 1)
    int64, ``rewards`` (N, n_agents) float32 and ``opponent_policies`` (N, n_agents - 1) names, each with
    Gymnasium's ``_key`` mask (False for games that were reset on this step).
    """

    metadata = {
        "render_modes": ["rgb_array", "ansi"],
        "render_fps": RENDER_FPS,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        opponent: str | OpponentPolicy | Sequence[str | OpponentPolicy] = "random",
        ego: int = 0,
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
        **game_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.config = make_config(**game_kwargs)
        self.games = EgoGames(self.config, self.num_envs, ego, opponent, switch_every, switch_pool)
        self.core = self.games.core
        self.ego = self.games.ego
        self.single_observation_space = observation_space(self.config)
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = check_render_mode(render_mode, tuple(self.metadata["render_modes"]))
        self._renderer = FrameRenderer(render_mode)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._all_true = np.ones(self.num_envs, dtype=bool)
        self._all_true.flags.writeable = False
        self._names = np.array(self.games.opponents.names)
        self._started = False

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, list | tuple):
            raise ValueError(
                "seed must be one integer or None: this vector env draws every game from one generator"
            )
        super().reset(seed=seed)
        self.games.reset(self.np_random)
        self._autoreset[:] = False
        self._started = True
        return self.games.observe(), {"opponent_policies": self._policy_names()}

    def _policy_names(self) -> np.ndarray:
        return self._names[self.games.opponents.current]

    def step(self, actions):
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        actions = check_action_array(actions, (self.num_envs,))
        if self._autoreset.all():
            # Every game ended on the last step (the usual case: episodes have one length). Reset without
            # stepping, which draws exactly what the single env's reset() draws.
            self.games.reset(self.np_random)
            rewards = np.zeros((self.num_envs, self.config.n_agents), dtype=np.float32)
            opp = np.zeros((self.num_envs, self.games.opponents.n_opponents), dtype=np.int64)
            stepped = np.zeros(self.num_envs, dtype=bool)
        else:
            rewards, opp = self.games.step(actions, self.np_random)
            stepped = self._all_true
            if self._autoreset.any():
                # Games that ended on the last step start again; what this step did to them is discarded.
                rows = np.flatnonzero(self._autoreset)
                self.games.reset(self.np_random, rows)
                rewards[rows] = 0.0
                opp[rows] = 0
                stepped = ~self._autoreset
        truncated = self.core.truncated(self.games.state)
        self._autoreset = truncated.copy()
        ego_rewards = rewards[:, self.ego].copy()
        info = {
            "opponent_actions": opp,
            "_opponent_actions": stepped,
            "rewards": rewards,
            "_rewards": stepped,
            "opponent_policies": self._policy_names(),
            "_opponent_policies": stepped,
        }
        return self.games.observe(), ego_rewards, np.zeros(self.num_envs, dtype=bool), truncated, info

    def get_state(self) -> list[dict[str, Any]]:
        """A snapshot of every game (see ``GridMARLEnv.get_state``)."""
        if not self._started:
            raise ResetNeeded("call reset() before get_state()")
        return [self.games.snapshot(i) for i in range(self.num_envs)]

    def set_state(self, states: list[dict[str, Any]]) -> None:
        if len(states) != self.num_envs:
            raise ValueError(f"set_state needs {self.num_envs} snapshots, got {len(states)}")
        for i, s in enumerate(states):
            self.games.restore(i, s)
        self._autoreset = self.core.truncated(self.games.state).copy()

    def render(self):
        if self.render_mode is None or not self._started:
            return None
        return tuple(
            self._renderer.render(self.core, self.games.state, i, highlight=self.ego)
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        self._renderer.close()
