"""The simulators that planners and opponent filters run on: the game's rules (:class:`ExactSimulator`)
and a world model (:class:`LearnedSimulator`), both batched and branchable.

``roots(envs, obs)`` takes the current real games (the exact simulator reads their ``get_state()``, the
learned one their observations), ``repeat`` and ``take`` copy rows, and ``step(states, actions,
other_actions=None)`` returns new states, the ego's rewards (a tensor) and the others' actions (sampled from
its opponent model unless given). ``value(states)`` is V or None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gridmarl import GridConfig, GridCore, State, make_config
from gridmarl.config import N_ACTIONS
from gridmarl.ego import state_from_snapshot
from gridmarl.gym_env import GridMARLEnv
from gridmarl.opponents import DEFAULT_SWITCH_POOL, Opponents
from gridmarl_wm.simulation.imagine import ImaginedSimulator


@dataclass
class ExactStates:
    """Rows of exact games: the states and each row's current scripted opponent policies."""

    state: State
    policies: np.ndarray  # (N, n_opponents) policy ids

    def __len__(self) -> int:
        return self.state.batch_size


class ExactSimulator:
    """The game's rules as a planner's simulator.

    Args:
        game: the game.
        opponent: the others' policy, as ``gym.make("GridMARL-v0", opponent=...)`` takes it (the true
            policy when it matches the real env's).
        opponent_model: instead of ``opponent``, sample the others' actions from this model's opponent head
            (the "exact simulator + learned opponent model" row of the model gap).
        value_fn: ``obs (B, 5, h, w) tensor -> (B,)`` for value bootstraps (e.g. ``model.value``).
        seed: of the respawn and opponent draws.
    """

    def __init__(
        self,
        game: GridConfig | dict | None = None,
        opponent: Any = "random",
        opponent_model: Any = None,
        value_fn: Any = None,
        seed: int = 0,
        ego: int = 0,
        switch_every: int = 10,
        switch_pool: Sequence[str] = DEFAULT_SWITCH_POOL,
    ) -> None:
        self.game = make_config(game)
        self.core = GridCore(self.game)
        self.ego = ego
        self.opponents = Opponents(self.core, ego, opponent, switch_every, switch_pool)
        self.opponent_model = opponent_model
        self.value_fn = value_fn
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.slots = np.array(self.opponents.slots)

    def roots(self, envs: Sequence[GridMARLEnv], obs: Any = None) -> ExactStates:
        snaps = [env.unwrapped.get_state() for env in envs]
        states = [state_from_snapshot(self.core, s) for s in snaps]
        state = State(
            np.concatenate([s.agents for s in states]),
            np.concatenate([s.coins for s in states]),
            np.concatenate([s.t for s in states]),
        )
        return ExactStates(state, np.stack([np.asarray(s["opponent_policies"]) for s in snaps]))

    def repeat(self, states: ExactStates, k: int) -> ExactStates:
        return self.take(states, np.repeat(np.arange(len(states)), k))

    def take(self, states: ExactStates, rows) -> ExactStates:
        rows = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows)
        return ExactStates(states.state.take(rows), states.policies[rows].copy())

    def observe(self, states: ExactStates) -> torch.Tensor:
        return torch.as_tensor(self.core.observe(states.state, (self.ego,))[:, 0])

    def step(self, states: ExactStates, actions, other_actions=None):
        state = states.state.copy()
        N = state.batch_size
        opp = self.opponents
        u = self.rng.random((N, opp.n_step_draws + self.core.n_coins))
        policies = states.policies.copy()
        if other_actions is not None:
            others = np.asarray(
                other_actions.cpu() if isinstance(other_actions, torch.Tensor) else other_actions
            )
        elif self.opponent_model is not None:
            # a model whose opponent head takes the observer's index is told it is the ego's view
            takes_id = getattr(getattr(self.opponent_model, "cfg", None), "agent_id", False)
            ids = {"agent": torch.full((N,), self.ego)} if takes_id else {}
            probs = self.opponent_model.opponent_probs(self.observe(states), **ids)
            probs = probs.reshape(-1, N_ACTIONS).cpu()
            others = torch.multinomial(probs, 1, generator=self.generator).reshape(N, -1).numpy()
        else:
            opp.current = policies
            others = opp.act(state, u[:, : opp.n_step_draws])
        joint = np.zeros((N, self.core.n_agents), dtype=np.int64)
        joint[:, self.ego] = np.asarray(actions.cpu() if isinstance(actions, torch.Tensor) else actions)
        joint[:, self.slots] = others
        rewards, _ = self.core.step(state, joint, u[:, opp.n_step_draws :])
        return ExactStates(state, policies), torch.as_tensor(rewards[:, self.ego]), torch.as_tensor(others)

    def value(self, states: ExactStates) -> torch.Tensor | None:
        if self.value_fn is None:
            return None
        return torch.as_tensor(self.value_fn(self.observe(states))).float().cpu()


class LearnedSimulator:
    """A world model as a planner's simulator: states are observation tensors on the model's device.

    Args:
        model: the world model.
        opponent: ``"model"`` (its opponent head) or a callable ``obs tensor -> others' actions``.
        temperature: of its samples.
        seed: of its generator.
        value: use the model's value head for bootstraps.
        compile: step through ``torch.compile`` (see :class:`~gridmarl_wm.simulation.imagine.ImaginedSimulator`).
    """

    def __init__(
        self,
        model: Any,
        opponent: Any = "model",
        temperature: float = 1.0,
        seed: int = 0,
        value: bool = True,
        compile: bool = False,
    ) -> None:
        self.model = model
        device = torch.device(model.device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.sim = ImaginedSimulator(model, opponent, temperature, self.generator, compile=compile)
        self.use_value = value and hasattr(model, "value")
        self.device = device

    def roots(self, envs: Any, obs) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs), device=self.device, dtype=torch.float32)

    def repeat(self, states: torch.Tensor, k: int) -> torch.Tensor:
        return states.repeat_interleave(k, dim=0)

    def take(self, states: torch.Tensor, rows) -> torch.Tensor:
        return states[torch.as_tensor(rows, device=self.device)]

    def step(self, states: torch.Tensor, actions, other_actions=None):
        actions = torch.as_tensor(actions, device=self.device)
        if other_actions is not None:
            other_actions = torch.as_tensor(other_actions, device=self.device)
        nxt, reward, others = self.sim.step(states, actions, other_actions)
        return nxt.float(), reward, others

    def value(self, states: torch.Tensor) -> torch.Tensor | None:
        return self.model.value(states) if self.use_value else None
