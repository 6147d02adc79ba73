"""The coin game in Gymnasium's vector envs and their common wrappers, unmodified.

    python examples/gymnasium_vector.py                        # every way below, random actions
    python examples/gymnasium_vector.py --model run/model.pt   # and the same with the learned simulator

1. ``gym.make_vec(..., vectorization_mode="sync")`` and ``"async"`` (Gymnasium's ``SyncVectorEnv`` and
   ``AsyncVectorEnv`` over single envs), each sub-env wrapped in ``FlattenObservation``, the batch in
   ``RecordEpisodeStatistics``.
2. The native vector env (``vectorization_mode="vector_entry_point"``) in each of Gymnasium's autoreset
   modes. ``RecordEpisodeStatistics`` reads the mode from ``metadata["autoreset_mode"]``; in ``DISABLED``
   the loop itself resets the games that ended, with ``reset(options={"reset_mask": ...})``.
3. With ``--model``: ``ImaginedEnv`` (the game played inside a world model) in a ``SyncVectorEnv`` and in
   an ``AsyncVectorEnv``. An async env is built in its worker process from a function sent there; that
   function is :class:`ImaginedEnvFactory`, which holds the checkpoint's path and loads the model in the
   worker, rather than a model pickled whole for every worker.

Every run prints the episodes it finished and their mean return and length.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import FlattenObservation
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import gridmarl  # noqa: F401  (registers GridMARL-v0)


def play(venv: gym.vector.VectorEnv, steps: int, seed: int) -> dict[str, float]:
    """Random actions for ``steps`` steps; the finished episodes' count, mean return and mean length."""
    venv = RecordEpisodeStatistics(venv)
    venv.action_space.seed(seed)
    venv.reset(seed=seed)
    for _ in range(steps):
        venv.step(venv.action_space.sample())
    venv.close()
    returns, lengths = list(venv.return_queue), list(venv.length_queue)
    return {
        "episodes": len(returns),
        "mean_return": float(np.mean(returns)) if returns else float("nan"),
        "mean_length": float(np.mean(lengths)) if lengths else float("nan"),
    }


def play_disabled(venv: gym.vector.VectorEnv, steps: int, seed: int) -> dict[str, float]:
    """Random actions with autoreset DISABLED: the loop resets the games that ended."""
    venv.action_space.seed(seed)
    venv.reset(seed=seed)
    returns, running = [], np.zeros(venv.num_envs)
    for _ in range(steps):
        _, reward, terminated, truncated, _ = venv.step(venv.action_space.sample())
        running += reward
        ended = terminated | truncated
        if ended.any():
            returns.extend(running[ended].tolist())
            running[ended] = 0.0
            venv.reset(options={"reset_mask": ended})
    venv.close()
    return {"episodes": len(returns), "mean_return": float(np.mean(returns)) if returns else float("nan")}


def gymnasium_vectorizers(num_envs: int, steps: int, max_steps: int, seed: int) -> dict[str, dict]:
    out = {}
    for mode in ("sync", "async"):
        venv = gym.make_vec(
            "GridMARL-v0",
            num_envs,
            vectorization_mode=mode,
            wrappers=[FlattenObservation],
            opponent="greedy",
            max_steps=max_steps,
        )
        assert venv.single_observation_space.shape == (5 * 4 * 4,)
        out[mode] = play(venv, steps, seed)
    return out


def native_modes(num_envs: int, steps: int, max_steps: int, seed: int) -> dict[str, dict]:
    out = {}
    for mode in AutoresetMode:
        venv = gym.make_vec(
            "GridMARL-v0",
            num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=mode,
            opponent="greedy",
            max_steps=max_steps,
        )
        out[mode.name] = (play_disabled if mode is AutoresetMode.DISABLED else play)(venv, steps, seed)
    return out


def imagined(make_env: Callable[[], gym.Env], num_envs: int, steps: int, seed: int) -> dict[str, float]:
    """``ImaginedEnv`` (or any single env ``make_env`` gives) in Gymnasium's ``SyncVectorEnv``."""
    return play(gym.vector.SyncVectorEnv([make_env] * num_envs), steps, seed)


class ImaginedEnvFactory:
    """Makes an ``ImaginedEnv`` from a world-model checkpoint; picklable, so it can be sent to
    ``AsyncVectorEnv``'s workers, each of which loads the model itself.

    Args:
        model: a checkpoint path, or ``"exact"`` for the exact stand-in (the rules behind the model's
            interface).
        opponent: as ``ImaginedEnv``'s (``"model"``: the model's opponent head).
        max_steps: the episode length, in place of the model's game's (None keeps it).
        start: as ``ImaginedEnv``'s (``"real"`` for a model that carries no start observations).
    """

    def __init__(
        self, model: str, opponent: str = "model", max_steps: int | None = None, start: str = "data"
    ) -> None:
        self.model, self.opponent, self.max_steps, self.start = str(model), opponent, max_steps, start

    def __call__(self) -> gym.Env:
        from gridmarl_wm import ImaginedEnv, WorldModel
        from gridmarl_wm.simulation.exact_model import ExactModel

        model = ExactModel() if self.model == "exact" else WorldModel.load(self.model)
        game = model.game.as_kwargs()
        if self.max_steps is not None:
            game["max_steps"] = self.max_steps
        return ImaginedEnv(model, opponent=self.opponent, game=game, start=self.start)


def imagined_async(make_env: Callable[[], gym.Env], num_envs: int, steps: int, seed: int) -> dict[str, float]:
    """``make_env``'s envs (e.g. an :class:`ImaginedEnvFactory`'s) in Gymnasium's ``AsyncVectorEnv``, one
    worker process each. The workers are spawned, not forked: a process forked from one whose torch has
    started its thread pool can hang in its first torch call."""
    return play(gym.vector.AsyncVectorEnv([make_env] * num_envs, context="spawn"), steps, seed)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="vector steps per run")
    parser.add_argument("--max-steps", type=int, default=20, help="episode length")
    parser.add_argument(
        "--model",
        default=None,
        help="a world model checkpoint for part 3 ('exact': the rules behind the model's interface)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = {
        "gymnasium_vectorizers": gymnasium_vectorizers(args.num_envs, args.steps, args.max_steps, args.seed),
        "native_vector_env": native_modes(args.num_envs, args.steps, args.max_steps, args.seed),
    }
    if args.model:
        from gridmarl_wm import ImaginedEnv, WorldModel
        from gridmarl_wm.simulation.exact_model import ExactModel

        model = ExactModel() if args.model == "exact" else WorldModel.load(args.model)
        # The exact stand-in has no opponent head: its opponents are the real env's scripted ones.
        opponent = "greedy" if args.model == "exact" else "model"
        game = {**model.game.as_kwargs(), "max_steps": args.max_steps}
        results["imagined_sync"] = imagined(
            lambda: ImaginedEnv(model, opponent=opponent, game=game), args.num_envs, args.steps, args.seed
        )
        factory = ImaginedEnvFactory(args.model, opponent, args.max_steps)
        results["imagined_async"] = imagined_async(factory, args.num_envs, args.steps, args.seed)
    for part, figures in results.items():
        print(part, figures)
    return results


if __name__ == "__main__":
    main()
