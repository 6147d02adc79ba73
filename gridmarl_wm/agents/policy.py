"""The actor-critic network, its opponent-modelling heads, and a trained policy as a plain callable.

The observation is tiny (5 × 4 × 4 by default), so the network is an MLP over the flattened observation
(with the last ``history`` observations stacked). Switchable parts, each set in :class:`PolicyConfig`:

- ``player_id``: the player's index (one-hot) as an input of the policy and value;
- ``moa``: a model of the other agents' actions (Jaques et al. 2019): an MLP on the agent's own
  observation history predicts every other player's action a_{-i}^t; it is trained on the logged actions
  and its hidden features are fed to the policy (detached: the MOA is shaped only by its own loss, so it
  stays a model of the others). ``moa_agent_id`` gives it the agent's index as well;
- ``goal``: inference of the others' goals, the cell where each other player next picks up a coin
  (``"discrete"``: a categorical over the grid's cells plus "none"; ``"continuous"``: (row, col) scaled to
  0…1 and a "has a goal" logit), with its features fed to the policy like the MOA's;
- ``central_critic``: the value from the global state ``state()`` and the player's index (MAPPO) instead
  of from the observation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from gridmarl.config import N_ACTIONS, GridConfig

GOALS = (None, "discrete", "continuous")


@dataclass(frozen=True)
class PolicyConfig:
    """The network's shape and switches (see the module docstring).

    Attributes:
        obs_shape: one observation (5, h, w).
        state_shape: the global state (2 * n_agents + 1, H, W).
        n_agents: players in the game (the MOA and goal heads predict n_agents - 1 others).
        hidden, layers: width and depth of the policy/value trunk (256 wide: against the greedy opponent a
            64-wide trunk levels off about 2 points per episode lower in the same time).
        history: observations stacked as input (1: the current one only).
        player_id: the player's index as an input.
        moa, moa_agent_id, moa_hidden: the others' action model, with the agent's index, its width.
        goal, goal_hidden: goal inference of the others (None, "discrete" or "continuous"), its width.
        central_critic: a value from the global state (MAPPO).
    """

    obs_shape: tuple[int, int, int]
    state_shape: tuple[int, int, int]
    n_agents: int
    hidden: int = 256
    layers: int = 2
    history: int = 1
    player_id: bool = False
    moa: bool = False
    moa_agent_id: bool = False
    moa_hidden: int = 64
    goal: str | None = None
    goal_hidden: int = 64
    central_critic: bool = False

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "history", "moa_hidden", "goal_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {self.goal!r}")
        if self.moa_agent_id and not self.moa:
            raise ValueError("moa_agent_id=True needs moa=True")

    @classmethod
    def for_game(cls, game: GridConfig, **overrides: Any) -> PolicyConfig:
        return cls(
            obs_shape=game.obs_shape, state_shape=game.state_shape, n_agents=game.n_agents, **overrides
        )

    @property
    def obs_features(self) -> int:
        return self.history * math.prod(self.obs_shape)

    @property
    def goal_cells(self) -> int:
        return self.state_shape[1] * self.state_shape[2]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["obs_shape"], d["state_shape"] = list(self.obs_shape), list(self.state_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"policy config has unknown fields {sorted(unknown)}")
        d = dict(d)
        d["obs_shape"], d["state_shape"] = tuple(d["obs_shape"]), tuple(d["state_shape"])
        return cls(**d)


class PolicyOutput(NamedTuple):
    """Outputs for a batch of B observations.

    logits: (B, 5) action logits; value: (B,); moa_logits: (B, n_agents - 1, 5) or None; goal: (B,
    n_agents - 1, cells + 1) logits (discrete) or (B, n_agents - 1, 3) (continuous: row, col, has-goal
    logit), or None.
    """

    logits: torch.Tensor
    value: torch.Tensor
    moa_logits: torch.Tensor | None
    goal: torch.Tensor | None


def _mlp(sizes: list[int], out_gain: float) -> nn.Sequential:
    """ReLU MLP with orthogonal initialisation (the last layer scaled by ``out_gain``); ReLU rather than
    tanh because on a CPU the activation is a third of this small network's time."""
    mods: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layer = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(layer.weight, out_gain if last else math.sqrt(2))
        nn.init.zeros_(layer.bias)
        mods.append(layer)
        if not last:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class ActorCritic(nn.Module):
    """Policy and value (and optional MOA and goal heads) on flattened observation histories."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_others = cfg.n_agents - 1
        x_in = cfg.obs_features
        trunk_in = x_in + (cfg.n_agents if cfg.player_id else 0)
        if cfg.moa:
            moa_in = x_in + (cfg.n_agents if cfg.moa_agent_id else 0)
            self.moa_body = nn.Sequential(
                _mlp([moa_in, cfg.moa_hidden, cfg.moa_hidden], math.sqrt(2)), nn.ReLU()
            )
            self.moa_head = _mlp([cfg.moa_hidden, n_others * N_ACTIONS], 1.0)
            trunk_in += cfg.moa_hidden
        if cfg.goal is not None:
            width = cfg.goal_cells + 1 if cfg.goal == "discrete" else 3
            self.goal_body = nn.Sequential(
                _mlp([x_in, cfg.goal_hidden, cfg.goal_hidden], math.sqrt(2)), nn.ReLU()
            )
            self.goal_head = _mlp([cfg.goal_hidden, n_others * width], 1.0)
            trunk_in += cfg.goal_hidden
        self.trunk = nn.Sequential(_mlp([trunk_in] + [cfg.hidden] * cfg.layers, math.sqrt(2)), nn.ReLU())
        self.pi_head = _mlp([cfg.hidden, N_ACTIONS], 0.01)
        if cfg.central_critic:
            s_in = math.prod(cfg.state_shape) + cfg.n_agents
            self.critic = _mlp([s_in] + [cfg.hidden] * cfg.layers + [1], 1.0)
        else:
            self.v_head = _mlp([cfg.hidden, 1], 1.0)

    def forward(
        self, obs: torch.Tensor, player: torch.Tensor | None = None, state: torch.Tensor | None = None
    ) -> PolicyOutput:
        """Args: obs (B, history * 5 * h * w) or (B, history * 5, h, w); player (B,) int64 indices (needed
        with ``player_id``, ``moa_agent_id`` or ``central_critic``); state (B, S, H, W) with
        ``central_critic``."""
        cfg = self.cfg
        x = obs.reshape(obs.shape[0], -1)
        onehot = None
        if cfg.player_id or cfg.moa_agent_id or cfg.central_critic:
            if player is None:
                raise ValueError("this policy takes the player's index: pass player=(B,) indices")
            onehot = nn.functional.one_hot(player, cfg.n_agents).to(x.dtype)
        parts = [x, onehot] if cfg.player_id else [x]
        moa_logits = goal = None
        if cfg.moa:
            f = self.moa_body(torch.cat([x, onehot], 1) if cfg.moa_agent_id else x)
            moa_logits = self.moa_head(f).reshape(x.shape[0], cfg.n_agents - 1, N_ACTIONS)
            parts.append(f.detach())
        if cfg.goal is not None:
            f = self.goal_body(x)
            goal = self.goal_head(f).reshape(x.shape[0], cfg.n_agents - 1, -1)
            parts.append(f.detach())
        h = self.trunk(torch.cat(parts, 1) if len(parts) > 1 else x)
        logits = self.pi_head(h)
        if cfg.central_critic:
            if state is None:
                raise ValueError("a centralised critic needs state=(B, S, H, W)")
            value = self.critic(torch.cat([state.reshape(x.shape[0], -1), onehot], 1)).squeeze(1)
        else:
            value = self.v_head(h).squeeze(1)
        return PolicyOutput(logits, value, moa_logits, goal)


def sample_actions(logits: torch.Tensor, u: np.ndarray) -> np.ndarray:
    """Actions (B,) int64 drawn from softmax(logits (B, 5)) by inverting the CDF at uniforms ``u`` (B,)
    (the caller's generator decides every draw, so a batch split across processes draws the same)."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1).numpy()
    return np.minimum((cdf < u[:, None]).sum(axis=1), N_ACTIONS - 1).astype(np.int64)
