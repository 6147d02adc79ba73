"""Games played inside a simulator of observations: the batched-env interface on a world model.

:class:`ImaginedGames` implements :class:`~gridmarl_wm.agents.batched.BatchedGames` for one learning player
whose observations are advanced by a *model* with ``WorldModel``'s ``sample`` (a trained
:class:`~gridmarl_wm.WorldModel`, or :class:`~gridmarl_wm.simulation.exact_model.ExactModel`, the rules behind the
same calls), so the PPO trainer learns in imagination without knowing it. Every imagined game starts from
an observation drawn from ``starts`` (real observations: the learner's own view) and is truncated after
``horizon`` steps, where the trainer bootstraps from the value of its last observation: the short,
branched rollouts of MBPO and MAMBA. The others' actions come from the model's opponent head
(``opponent="model"``) or from a callable on the learner's observations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from gridmarl.config import GridConfig, make_config
from gridmarl_wm.simulation.imagine import ImaginedSimulator, game_of


class ImaginedGames:
    """:class:`BatchedGames` inside a model of the learner's observations (see the module docstring).

    Args:
        model: anything with ``WorldModel``'s ``sample`` (and ``opponent_probs`` for ``opponent="model"``).
        starts: (M, 5, h, w) real observations of the learner to start imagined games from.
        num_envs: imagined games in all groups together (divisible by ``groups``).
        horizon: imagined steps before a game is truncated (and restarted from a new start).
        opponent: ``"model"`` or a callable mapping observations (B, 5, h, w) to the others' actions
            (B, n_agents - 1) (whose own randomness, if any, is not part of :meth:`get_state`).
        seed: seeds every group's generators (group g uses ``(seed, g)``).
        groups, group_ids: generator groups, as in :class:`~gridmarl_wm.agents.batched.NativeGames`.
        temperature: of the model's samples (1: the model's own distribution).
        game: the game the model simulates, if the model does not say.
        ego: the learner's player index (for models whose opponent head takes it).
        compile: step the games through ``torch.compile`` (a world model with a mixture decoder; see
            :class:`~gridmarl_wm.simulation.imagine.ImaginedSimulator`).
    """

    def __init__(
        self,
        model: Any,
        starts: np.ndarray,
        num_envs: int = 256,
        horizon: int = 15,
        opponent: str | Callable[[torch.Tensor], Any] = "model",
        seed: int = 0,
        groups: int = 1,
        group_ids: Sequence[int] | None = None,
        temperature: float = 1.0,
        game: GridConfig | dict | None = None,
        ego: int = 0,
        compile: bool = False,
    ) -> None:
        self.config = make_config(game) if game is not None else game_of(model)
        for name, value in (("num_envs", num_envs), ("groups", groups), ("horizon", horizon)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if num_envs % groups:
            raise ValueError(f"num_envs={num_envs} must be divisible by groups={groups}")
        starts = np.asarray(starts, dtype=np.float32)
        if starts.ndim != 4 or starts.shape[1:] != self.config.obs_shape or len(starts) == 0:
            raise ValueError(
                f"starts must be a non-empty array of observations (M, {', '.join(map(str, self.config.obs_shape))}), "
                f"got shape {starts.shape}"
            )
        self.group_ids = tuple(range(groups)) if group_ids is None else tuple(int(g) for g in group_ids)
        if not self.group_ids or min(self.group_ids) < 0 or max(self.group_ids) >= groups:
            raise ValueError(f"group_ids must lie in 0..{groups - 1}, got {self.group_ids}")
        self.model = model
        self.horizon = int(horizon)
        self.envs_per_group = num_envs // groups
        self.num_envs = self.envs_per_group * len(self.group_ids)
        self.learners = (int(ego),)
        self.device = torch.device(getattr(model, "device", "cpu"))
        self.starts = torch.as_tensor(starts, device=self.device)
        self.seed = seed
        # One generator draws the imagined outcomes and one the starts; both are part of the saved state.
        self.generator = torch.Generator(self.device).manual_seed(_mix(seed, self.group_ids))
        self.start_rng = np.random.default_rng([seed, 104729, *self.group_ids])
        self.sim = ImaginedSimulator(
            model, opponent, temperature, self.generator, agent=int(ego), compile=compile
        )
        self.obs: torch.Tensor | None = None  # (N, 5, h, w)
        self.t = np.zeros(self.num_envs, dtype=np.int64)
        self.imagined_steps = 0

    def _draw_starts(self, n: int) -> torch.Tensor:
        rows = torch.as_tensor(self.start_rng.integers(len(self.starts), size=n), device=self.device)
        return self.starts[rows].clone()

    # ------------------------------------------------------------------ the interface
    def reset(self) -> np.ndarray:
        self.obs = self._draw_starts(self.num_envs)
        self.t[:] = 0
        return self.obs.cpu().numpy()[:, None]

    def state(self) -> np.ndarray:
        raise ValueError(
            "imagined games have no global state (a model of one player's observations): train without a "
            "centralised critic"
        )

    def step(self, actions: np.ndarray):
        from gridmarl_wm.agents.batched import StepResult

        if self.obs is None:
            raise ValueError("call reset() before step()")
        a = torch.as_tensor(np.asarray(actions, dtype=np.int64).reshape(self.num_envs), device=self.device)
        nxt, reward, others = self.sim.step(self.obs, a)
        nxt = torch.as_tensor(nxt, device=self.device, dtype=torch.float32)
        self.t += 1
        self.imagined_steps += self.num_envs
        truncated = self.t >= self.horizon
        final_obs = None
        if truncated.any():
            rows = np.flatnonzero(truncated)
            final_obs = np.zeros((self.num_envs, 1, *self.config.obs_shape), np.float32)
            final_obs[rows, 0] = nxt[torch.as_tensor(rows, device=self.device)].cpu().numpy()
            nxt = nxt.clone()
            nxt[torch.as_tensor(rows, device=self.device)] = self._draw_starts(len(rows))
            self.t[rows] = 0
        self.obs = nxt
        return StepResult(
            obs=nxt.cpu().numpy()[:, None],
            rewards=torch.as_tensor(reward).float().cpu().numpy().reshape(self.num_envs, 1),
            truncated=truncated,
            final_obs=final_obs,
            final_state=None,
            others=torch.as_tensor(others).long().cpu().numpy().reshape(self.num_envs, 1, -1),
        )

    def get_state(self) -> dict[str, Any]:
        return {
            "obs": None if self.obs is None else self.obs.cpu().clone(),
            "t": self.t.copy(),
            "generator": self.generator.get_state(),
            "start_rng": json.dumps(self.start_rng.bit_generator.state),  # 128-bit integers: as text
            "imagined_steps": self.imagined_steps,
        }

    def set_state(self, snapshot: dict[str, Any]) -> None:
        self.obs = None if snapshot["obs"] is None else snapshot["obs"].to(self.device)
        self.t = np.asarray(snapshot["t"], dtype=np.int64).copy()
        self.generator.set_state(snapshot["generator"])
        self.start_rng.bit_generator.state = json.loads(snapshot["start_rng"])
        self.imagined_steps = int(snapshot["imagined_steps"])


def _mix(seed: int, groups: Sequence[int]) -> int:
    """One 63-bit torch seed from the seed and the groups (numpy's SeedSequence mixes them well)."""
    return int(np.random.SeedSequence([seed, 15485863, *groups]).generate_state(1, np.uint64)[0] >> 1)
