"""Playing real games with a planner: :func:`play` (the ego plans every step in a simulator), :func:`play_paired`
(the same games once per simulator) and :func:`paired_gap` (the model gap of such paired runs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridmarl import GridConfig, make_config
from gridmarl.gym_env import GridMARLEnv
from gridmarl_wm.planning.planners import ScriptedEgo
from gridmarl_wm.planning.statistics import ci95, model_gap
from gridmarl_wm.simulation.simulators import ExactSimulator


@dataclass
class PlayResult:
    """Real-env returns of a planner: ``returns`` (seeds, episodes), with mean and a 95% confidence
    interval over the seeds' means, and how many decisions per second it made."""

    returns: np.ndarray
    seconds: float
    decisions: int

    @property
    def seed_means(self) -> np.ndarray:
        return self.returns.mean(axis=1)

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def ci95(self) -> float:
        """Half-width of the 95% t interval of the mean over seeds."""
        return ci95(self.seed_means)

    @property
    def decisions_per_s(self) -> float:
        return self.decisions / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci95": self.ci95,
            "returns": self.returns.tolist(),
            "seed_means": self.seed_means.tolist(),
            "decisions_per_s": self.decisions_per_s,
        }


def paired_gap(learned: PlayResult, exact: PlayResult) -> tuple[float, float]:
    """:func:`model_gap` of two :func:`play_paired` runs, each episode a pair (the games are independent
    of one another; the two runs of one game share its seed)."""
    if learned.returns.shape != exact.returns.shape:
        raise ValueError(
            f"paired runs must have the same (seeds, episodes), got {learned.returns.shape} and "
            f"{exact.returns.shape}"
        )
    return model_gap(learned.returns.ravel(), exact.returns.ravel())


def play(
    planner: Any,
    sim: Any,
    opponent: Any = "random",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes: int = 4,
    game: GridConfig | dict | None = None,
    switch_every: int = 10,
    progress: Any = None,
    make_env: Any = None,
) -> PlayResult:
    """Play ``episodes`` real games per seed (game seeds ``1000 * seed + e``), all in lockstep, with the
    planner choosing the ego's action by planning in ``sim`` (its roots come from the real games).

    ``progress``: an optional callable ``(t, max_steps)`` called after every step. A simulator with an
    ``observe_step(obs, actions, opponent_actions)`` method is shown every real step (and ``begin(n)`` is
    called first). ``make_env``: a
    callable returning the env to play in instead of ``GridMARLEnv(opponent=...)`` (an ``ImaginedEnv``, to
    measure returns in imagination).
    """
    cfg = make_config(game)
    if make_env is None:

        def make_env():
            return GridMARLEnv(opponent=opponent, switch_every=switch_every, **cfg.as_kwargs())

    envs = [make_env() for _ in range(len(seeds) * episodes)]
    game_seeds = [1000 * s + e for s in seeds for e in range(episodes)]
    obs = np.stack([env.reset(seed=gs)[0] for env, gs in zip(envs, game_seeds, strict=True)])
    returns = np.zeros(len(envs))
    if hasattr(sim, "begin"):  # a simulator with memory of the real games starts afresh
        sim.begin(len(envs))
    exact_roots = (
        ExactSimulator(cfg, opponent, switch_every=switch_every) if isinstance(planner, ScriptedEgo) else None
    )
    start = time.perf_counter()
    for t in range(cfg.max_steps):
        if exact_roots is not None:
            actions = planner.act(None, exact_roots.roots(envs))
        else:
            actions = planner.act(sim, sim.roots(envs, obs), steps_left=cfg.max_steps - t)
        steps = [env.step(int(a)) for env, a in zip(envs, actions, strict=True)]
        if hasattr(sim, "observe_step"):  # a simulator that tracks the real games' history
            sim.observe_step(obs, actions, np.stack([s[4]["opponent_actions"] for s in steps]))
        obs = np.stack([s[0] for s in steps])
        returns += [s[1] for s in steps]
        if progress is not None:
            progress(t + 1, cfg.max_steps)
    seconds = time.perf_counter() - start
    return PlayResult(returns.reshape(len(seeds), episodes), seconds, len(envs) * cfg.max_steps)


def play_paired(
    make_planner: Any,
    sims: dict[str, Any],
    opponent: Any = "random",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    episodes: int = 4,
    game: GridConfig | dict | None = None,
    switch_every: int = 10,
) -> dict[str, PlayResult]:
    """:func:`play` once per simulator in ``sims`` on paired episodes: the same games (game seeds
    ``1000 * seed + e``: the same starts, and the same opponents' and respawn draws for as long as the
    ego's actions agree) and a fresh planner from ``make_planner()`` for each (the same planner seed).
    Only the simulator differs between the runs; :func:`paired_gap` compares them game by game."""
    if not callable(make_planner):
        raise TypeError(f"make_planner must be a callable returning a fresh planner, got {make_planner!r}")
    return {
        name: play(make_planner(), sim, opponent, seeds, episodes, game, switch_every)
        for name, sim in sims.items()
    }
