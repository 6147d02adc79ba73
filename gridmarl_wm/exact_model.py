"""The game itself behind the world-model interface: a perfect stand-in for tests and for planners.

For a two-player full-view game an observation is the whole state (channel 2 holds the observer's coins,
channel 3 the other player's), so the exact next-observation distribution follows from
:func:`gridmarl.transition_outcomes`. ``log_prob`` and ``sample`` behave like ``WorldModel``'s.
"""

from __future__ import annotations

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, State, make_config, transition_outcomes


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
        obs = np.asarray(obs)
        B, k = obs.shape[0], self.game.coins_per_agent
        flat = obs.reshape(B, 5, -1)
        agents = np.stack([flat[:, 0].argmax(1), flat[:, 1].argmax(1)], axis=1)
        own = np.sort(np.argsort(-flat[:, 2], axis=1, kind="stable")[:, :k], axis=1)
        other = np.sort(np.argsort(-flat[:, 3], axis=1, kind="stable")[:, :k], axis=1)
        return State(
            agents.astype(np.int64), np.concatenate([own, other], 1).astype(np.int64), np.zeros(B, np.int64)
        )

    def _outcomes(self, obs, self_action, other_actions):
        state = self.state_of(obs)
        joint = np.concatenate(
            [np.asarray(self_action).reshape(-1, 1), np.asarray(other_actions).reshape(-1, 1)], 1
        )
        out, src = transition_outcomes(self.game, state, joint.astype(np.int64))
        return out, src, self.core.observe(out.states, (0,))[:, 0]

    def log_prob(self, obs, self_action, other_actions, next_obs, source=None) -> torch.Tensor:
        obs = np.asarray(obs)
        out, src, outcome_obs = self._outcomes(obs, self_action, other_actions)
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
        out, src, outcome_obs = self._outcomes(obs, self_action, other_actions)
        B = len(np.asarray(obs))
        u = torch.rand(B, generator=generator).numpy() if temperature else np.zeros(B)
        first = np.searchsorted(src, np.arange(B))
        counts = np.bincount(src, minlength=B)
        cum = np.cumsum(out.probs)
        base = np.where(first > 0, cum[first - 1], 0.0)
        pick = np.searchsorted(cum, base + u * (cum[first + counts - 1] - base), side="right")
        pick = np.minimum(pick, first + counts - 1)
        return torch.as_tensor(outcome_obs[pick]), torch.as_tensor(out.rewards[first, 0])

    def reward(self, obs, self_action, other_actions) -> torch.Tensor:
        return self.sample(obs, self_action, other_actions, temperature=0)[1]

    def eval(self) -> ExactModel:
        return self
