"""Native batched ``GridMARL-v0``: N games stepped as arrays by one :class:`EgoGames` engine.

Made by ``gym.make_vec("GridMARL-v0", num_envs=N, vectorization_mode="vector_entry_point")``. It offers the
three autoreset modes of Gymnasium 1.x, chosen as Gymnasium's own vector envs take it, with
``autoreset_mode=`` (an :class:`~gymnasium.vector.AutoresetMode` or its value, e.g. ``"SameStep"``), and
reported in ``metadata["autoreset_mode"]`` and the ``autoreset_mode`` attribute:

- ``NEXT_STEP`` (the default): the step after a game is truncated resets that game (the action given for
  it is ignored) and returns its first observation with reward 0.
- ``SAME_STEP``: a game truncated by this step is reset at once; the step returns its first observation
  and the truncation flag, and its last observation and step info in ``info["final_obs"]`` and
  ``info["final_info"]`` (masked by ``info["_final_obs"]``/``info["_final_info"]``).
- ``DISABLED``: nothing resets by itself; reset ended games with ``reset(options={"reset_mask": mask})``.
  Stepping a game that has ended raises :class:`~gridmarl.ResetNeeded`.

In every mode a step's outputs are what Gymnasium's ``SyncVectorEnv`` gives over single ``GridMARL-v0``
envs in that mode; the one difference is the randomness: one generator serves the whole batch (drawing
each step's uniforms for all games at once is what makes the batch fast), where ``SyncVectorEnv`` seeds
one generator per game with ``seed + i``. With one game the two draw the same numbers and agree exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from gridmarl.config import N_ACTIONS, ResetNeeded, check_action_array, make_config, reject_unknown_arguments
from gridmarl.ego import EgoGames
from gridmarl.frames import RENDER_FPS, FrameRenderer, check_render_mode
from gridmarl.gym_env import ENV_ARGUMENTS, observation_space
from gridmarl.opponents import DEFAULT_SWITCH_POOL, OpponentPolicy


def check_autoreset_mode(value: Any) -> AutoresetMode:
    """An :class:`AutoresetMode` from itself, its value (``"NextStep"``) or its name (``"NEXT_STEP"``)."""
    if isinstance(value, AutoresetMode):
        return value
    for mode in AutoresetMode:
        if value in (mode.value, mode.name):
            return mode
    raise ValueError(
        f"autoreset_mode must be a gymnasium.vector.AutoresetMode or one of "
        f"{[m.value for m in AutoresetMode]}, got {value!r}"
    )


class GridMARLVectorEnv(VectorEnv):
    """``num_envs`` games of :class:`~gridmarl.gym_env.GridMARLEnv` as one batch.

    Takes the same arguments as the single env, and ``autoreset_mode`` (see the module's docstring).
    ``info`` holds ``opponent_actions`` (N, n_agents - 1) int64, ``rewards`` (N, n_agents) float32,
    ``opponent_policies`` (N, n_agents - 1) names (left out with ``policy_names_in_info=False``) and
    ``opponent_policy_ids`` (N, n_agents - 1) int64 ids of :attr:`opponent_policy_names` and ``t`` (N,)
    int64 steps played, each with Gymnasium's ``_key`` mask: ``opponent_actions`` and ``rewards`` are
    False for games that were reset on this step instead of stepped; the policies and ``t`` are those
    after the step (after the reset, for a game reset on this step), so always True.
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
        policy_names_in_info: bool = True,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **game_kwargs: Any,
    ) -> None:
        reject_unknown_arguments(
            "GridMARLVectorEnv.__init__", game_kwargs, ("num_envs", "autoreset_mode", *ENV_ARGUMENTS)
        )
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.autoreset_mode = check_autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
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
        self.policy_names_in_info = bool(policy_names_in_info)
        # Games truncated by the last step: reset on this step (NEXT_STEP), or refused until reset (DISABLED).
        self._ended = np.zeros(self.num_envs, dtype=bool)
        self._all_true = np.ones(self.num_envs, dtype=bool)
        self._all_true.flags.writeable = False
        self._names = np.array(self.games.opponents.names)
        # Opponents that never switch keep their policies: their ids and names are made once, not per step.
        fixed = self.games.opponents.fixed
        self._fixed_ids = None
        if None not in fixed:
            self._fixed_ids = np.tile(np.array(fixed, dtype=np.int64), (self.num_envs, 1))
            self._fixed_names = self._names[self._fixed_ids]
        self._started = False

    @property
    def opponent_policy_names(self) -> tuple[str, ...]:
        """Name of every policy id that ``info["opponent_policy_ids"]`` may hold, indexed by id."""
        return tuple(self.games.opponents.names)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """Reset every game, or with ``options={"reset_mask": mask}`` ((N,) bool) only the masked ones.

        ``seed`` (one integer) reseeds the batch's generator first.
        """
        if isinstance(seed, list | tuple):
            raise ValueError(
                "seed must be one integer or None: this vector env draws every game from one generator"
            )
        mask = (options or {}).get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.num_envs,) or not mask.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with at least "
                    f"one True, got {mask!r}"
                )
            if not self._started:
                raise ResetNeeded("call reset() without a reset_mask first, to start every game")
        super().reset(seed=seed)
        if mask is None:
            self.games.reset(self.np_random)
            self._ended[:] = False
            self._started = True
            masks = self._all_true
        else:
            self.games.reset(self.np_random, np.flatnonzero(mask))
            self._ended[mask] = False
            masks = mask.copy()
        info = self._policy_info(masks)
        return self.games.observe(), info

    def _policy_info(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        if self._fixed_ids is not None:
            ids = self._fixed_ids.copy()
            names = self._fixed_names.copy() if self.policy_names_in_info else None
        else:
            ids = self.games.opponents.current.copy()
            names = self._names[ids] if self.policy_names_in_info else None
        info = {"opponent_policy_ids": ids, "_opponent_policy_ids": mask}
        if names is not None:
            info["opponent_policies"] = names
            info["_opponent_policies"] = mask
        info["t"] = self.games.state.t.copy()
        info["_t"] = mask
        return info

    def step(self, actions):
        if not self._started:
            raise ResetNeeded("call reset() before step()")
        actions = check_action_array(actions, (self.num_envs,))
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            return self._step_next_step(actions)
        if self._ended.any():  # in SAME_STEP only after set_state() to an ended game
            raise ResetNeeded(
                f"games {np.flatnonzero(self._ended).tolist()} have ended: with autoreset_mode="
                f"{self.autoreset_mode.name}, call reset(options={{'reset_mask': mask}}) for them before step()"
            )
        rewards, opp = self.games.step(actions, self.np_random)
        truncated = self.core.truncated(self.games.state)
        obs = self.games.observe()
        info = {
            "opponent_actions": opp,
            "_opponent_actions": self._all_true,
            "rewards": rewards,
            "_rewards": self._all_true,
            **self._policy_info(self._all_true),
        }
        if self.autoreset_mode is AutoresetMode.DISABLED:
            self._ended = truncated.copy()
        elif truncated.any():
            obs, info = self._reset_ended_now(obs, info, truncated)
        return obs, rewards[:, self.ego].copy(), np.zeros(self.num_envs, dtype=bool), truncated, info

    def _reset_ended_now(
        self, obs: np.ndarray, info: dict[str, np.ndarray], ended: np.ndarray
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """SAME_STEP: reset the games ``ended`` (N,) that this step truncated. Their last observation and
        step info move to ``final_obs``/``final_info``; the step's info keeps, for them, only the
        policies of the new episode (as ``SyncVectorEnv`` merges the reset's info)."""
        rows = np.flatnonzero(ended)
        final_obs = np.full(self.num_envs, None, dtype=object)
        for r in rows:
            final_obs[r] = obs[r]
        final_info: dict[str, np.ndarray] = {}
        for key, value in info.items():
            if key.startswith("_"):
                final_info[key] = ended.copy()
            else:
                kept = np.zeros_like(value)
                kept[rows] = value[rows]
                final_info[key] = kept
        self.games.reset(self.np_random, rows)
        stepped = ~ended
        for key in ("opponent_actions", "rewards"):
            info[key] = info[key].copy()
            info[key][rows] = 0
            info[f"_{key}"] = stepped
        info.update(self._policy_info(self._all_true))
        info.update(
            final_obs=final_obs, _final_obs=ended.copy(), final_info=final_info, _final_info=ended.copy()
        )
        return self.games.observe(), info

    def _step_next_step(self, actions: np.ndarray):
        if self._ended.all():
            # Every game ended on the last step (the usual case: episodes have one length). Reset without
            # stepping, which draws exactly what the single env's reset() draws.
            self.games.reset(self.np_random)
            rewards = np.zeros((self.num_envs, self.config.n_agents), dtype=np.float32)
            opp = np.zeros((self.num_envs, self.games.opponents.n_opponents), dtype=np.int64)
            stepped = np.zeros(self.num_envs, dtype=bool)
        else:
            rewards, opp = self.games.step(actions, self.np_random)
            stepped = self._all_true
            if self._ended.any():
                # Games that ended on the last step start again; what this step did to them is discarded.
                rows = np.flatnonzero(self._ended)
                self.games.reset(self.np_random, rows)
                rewards[rows] = 0.0
                opp[rows] = 0
                stepped = ~self._ended
        truncated = self.core.truncated(self.games.state)
        self._ended = truncated.copy()
        ego_rewards = rewards[:, self.ego].copy()
        info = {
            "opponent_actions": opp,
            "_opponent_actions": stepped,
            "rewards": rewards,
            "_rewards": stepped,
            **self._policy_info(self._all_true),
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
        self._ended = self.core.truncated(self.games.state).copy()

    def render(self):
        if self.render_mode is None or not self._started:
            return None
        return tuple(
            self._renderer.render(self.core, self.games.state, i, highlight=self.ego)
            for i in range(self.num_envs)
        )

    def close_extras(self, **kwargs: Any) -> None:
        self._renderer.close()
