"""The game itself behind the world-model interface: a perfect stand-in for tests and for planners.

For a two-player full-view game an observation is the whole state (channel 2 holds the observer's coins,
channel 3 the other player's), so the exact next-observation distribution follows from
:func:`gridmarl.transition_outcomes`, and a sample is one step of the rules. ``log_prob``, ``sample`` and
``reward`` behave like ``WorldModel``'s.
"""

from __future__ import annotations

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, State, make_config, transition_outcomes
from gridmarl_wm.simulation.imagine import state_from_observation


class ExactModel:
    """``WorldModel``'s public calls, answered by the rules (two players, full view)."""

    def __init__(self, game: GridConfig | dict | None = None) -> None:
        self.game = make_config(game)
        if self.game.n_agents != 2 or self.game.view_size is not None:
            raise ValueError(
                "ExactModel needs a two-player full-view game: only there is an observation the state"
            )
        self.core = GridCore(self.game)
        self.device = torch.device("cpu")

    def state_of(self, obs: np.ndarray) -> State:
        """States (observer as player 0) of observations (B, 5, H, W)."""
        return state_from_observation(self.game, obs)

    def _joint(self, self_action, other_actions) -> np.ndarray:
        a = np.asarray(self_action, dtype=np.int64).reshape(-1, 1)
        return np.concatenate([a, np.asarray(other_actions, dtype=np.int64).reshape(-1, 1)], 1)

    def log_prob(self, obs, self_action, other_actions, next_obs, source=None) -> torch.Tensor:
        obs = np.asarray(obs)
        out, src = transition_outcomes(self.game, self.state_of(obs), self._joint(self_action, other_actions))
        outcome_obs = self.core.observe(out.states, (0,))[:, 0]
        target = np.asarray(next_obs)
        rows = np.arange(len(obs)) if source is None else np.asarray(source)
        result = np.full(len(target), -np.inf)
        for m, (r, o) in enumerate(zip(rows, target, strict=True)):
            cand = np.flatnonzero(src == r)
            hit = cand[(outcome_obs[cand] == o).reshape(len(cand), -1).all(1)]
            if len(hit):
                result[m] = np.log(out.probs[hit[0]])
        return torch.as_tensor(result)

    def sample(
        self,
        obs,
        self_action,
        other_actions,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the rules from the state each observation shows; respawn cells drawn from
        ``generator`` (at ``temperature`` 0, the first free cell)."""
        obs = obs.cpu().numpy() if isinstance(obs, torch.Tensor) else np.asarray(obs)
        if isinstance(self_action, torch.Tensor):
            self_action, other_actions = self_action.cpu().numpy(), other_actions.cpu().numpy()
        state = self.state_of(obs)
        B = len(obs)
        if temperature:
            u = torch.rand((B, self.core.n_coins), generator=generator, dtype=torch.float64).numpy()
        else:
            u = np.zeros((B, self.core.n_coins))
        rewards, _ = self.core.step(state, self._joint(self_action, other_actions), u)
        return torch.as_tensor(self.core.observe(state, (0,))[:, 0]), torch.as_tensor(rewards[:, 0])

    def reward(self, obs, self_action, other_actions) -> torch.Tensor:
        return self.sample(obs, self_action, other_actions, temperature=0)[1]

    def eval(self) -> ExactModel:
        return self
