"""A trained policy in the real env: returns against opponents, and self-play statistics.

Returns come from :func:`gridmarl_wm.planning.play`, so a policy plays exactly the games (seeds
``1000 * seed + episode``) the planners and the scripted ego are measured on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gridmarl.config import GridConfig, make_config
from gridmarl_wm.agents.batched import NativeGames
from gridmarl_wm.agents.checkpoint import LoadedPolicy
from gridmarl_wm.planning import PlayResult, ci95, play
from gridmarl_wm.simulation.simulators import ExactSimulator


class PolicyPlanner:
    """A policy ``policy(obs (B, 5, h, w)) -> (B,)`` behind the planner interface of :func:`play`: it reads
    the real games' observations through the simulator and plans nothing."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def act(self, sim: ExactSimulator, roots, steps_left=None) -> np.ndarray:
        obs = sim.observe(roots).numpy()
        if hasattr(self.policy, "act_batch"):
            return self.policy.act_batch(obs)
        return np.array([int(self.policy(o)) for o in obs], dtype=np.int64)


def policy_returns(
    policy: Any,
    opponent: Any = "random",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes: int = 4,
    game: GridConfig | dict | None = None,
    switch_every: int = 10,
) -> PlayResult:
    """The real-env return per episode of ``policy`` playing player_0 against ``opponent``."""
    cfg = make_config(game)
    if hasattr(policy, "reset"):
        policy.reset()
    sim = ExactSimulator(cfg, opponent, switch_every=switch_every)
    return play(PolicyPlanner(policy), sim, opponent, seeds, episodes, cfg, switch_every=switch_every)


def self_play_stats(
    policy: LoadedPolicy, game: GridConfig | dict | None = None, games: int = 64, seed: int = 0
) -> dict[str, float]:
    """Every player played by ``policy`` (each given its own index) for one episode of ``games`` games.

    Returns per episode (means over the games): ``coins`` picked by all players, ``own_share`` (the share
    of pick-ups of one's own colour), ``steals`` (pick-ups of another player's coin), ``welfare`` (the sum
    of every player's return), and ``return_per_player``.
    """
    cfg = make_config(game)
    env = NativeGames(cfg, games, opponent="self", seed=seed)
    obs = env.reset()  # (G, A, 5, h, w)
    rng = np.random.default_rng(seed)
    picks = np.zeros((games, cfg.n_agents, cfg.n_agents))
    welfare = np.zeros(games)
    base_player = policy.player
    for _ in range(cfg.max_steps):
        actions = np.zeros((games, cfg.n_agents), dtype=np.int64)
        for p in range(cfg.n_agents):
            policy.player = p
            actions[:, p] = policy.act_batch(obs[:, p], rng.random(games))
        res = env.step(actions)
        picks += res.pickups
        welfare += res.rewards.sum(axis=1)
        obs = res.obs
    policy.player = base_player
    coins = picks.sum(axis=(1, 2))
    own = np.trace(picks, axis1=1, axis2=2)
    return {
        "coins": float(coins.mean()),
        "own_share": float(own.sum() / max(1.0, coins.sum())),
        "steals": float((coins - own).mean()),
        "welfare": float(welfare.mean()),
        "return_per_player": float(welfare.mean() / cfg.n_agents),
    }


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% t half-width of per-seed values."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), ci95(arr)
