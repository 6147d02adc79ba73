"""One call that builds the games, the policy and the trainer from plain settings: what the command line,
the example and the benchmarks use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gridmarl.config import GridConfig, make_config
from gridmarl_wm.agents.batched import NativeGames, check_opponent
from gridmarl_wm.agents.checkpoint import load_policy
from gridmarl_wm.agents.policy import PolicyConfig
from gridmarl_wm.agents.ppo import PPOConfig, PPOTrainer
from gridmarl_wm.training.distributed import rank_and_world

ALGORITHMS = ("ppo", "mappo")


def resolve_opponent(opponent: Any, game: GridConfig) -> Any:
    """An opponent spec with paths to ``policy.pt`` files (or folders holding one) loaded as policies.

    A comma-separated string is a list, one entry per opponent."""
    if isinstance(opponent, str) and "," in opponent:
        opponent = [s.strip() for s in opponent.split(",")]
    if isinstance(opponent, list | tuple):
        return [resolve_opponent(o, game) for o in opponent]
    if isinstance(opponent, str | os.PathLike) and (
        str(opponent).endswith(".pt") or Path(opponent, "policy.pt").exists()
    ):
        return load_policy(opponent, game=game)
    return opponent


def _describe(opponent: Any) -> str:
    """The opponent spec as the command line writes it (a list comma-separated)."""
    if isinstance(opponent, list | tuple):
        return ",".join(_describe(o) for o in opponent)
    return opponent if isinstance(opponent, str) else getattr(opponent, "__name__", str(opponent))


def make_trainer(
    out_dir: str | Path,
    game: GridConfig | dict | None = None,
    opponent: Any = "random",
    algorithm: str = "ppo",
    num_envs: int = 1024,
    groups: int | None = None,
    ppo: PPOConfig | None = None,
    switch_every: int = 10,
    device: str = "cpu",
    **policy: Any,
) -> PPOTrainer:
    """A :class:`PPOTrainer` on :class:`NativeGames`.

    Args:
        out_dir: where ``policy.pt`` and ``metrics.jsonl`` go.
        game: the game (default ``GridMARL-v0``'s).
        opponent: ``"self"`` (every player learns, shared parameters), or the opponents of player_0 as
            ``gym.make`` takes them; a path to a ``policy.pt`` plays that trained policy.
        algorithm: ``"ppo"`` (each learner's own value) or ``"mappo"`` (a centralised critic on the state).
        num_envs: games over all processes (split into ``groups``, one generator each; default: one group
            per process).
        ppo: PPO's settings (``PPOConfig()`` by default).
        device: where the network learns (``cpu``, ``cuda``); the games always run on the CPU.
        **policy: :class:`PolicyConfig` fields (``hidden``, ``moa``, ``goal``, ...).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is unknown; allowed: {list(ALGORITHMS)}")
    cfg = make_config(game)
    resolved = resolve_opponent(opponent, cfg)
    check_opponent(resolved, cfg)
    rank, world = rank_and_world()
    groups = world if groups is None else groups
    if groups % world:
        raise ValueError(f"groups={groups} must be divisible by the {world} processes")
    if num_envs % groups:
        raise ValueError(f"num_envs={num_envs} must be divisible by groups={groups}")
    per = groups // world
    env = NativeGames(
        cfg, num_envs, resolved, seed=(ppo or PPOConfig()).seed, groups=groups,
        group_ids=range(rank * per, (rank + 1) * per), switch_every=switch_every,
    )  # fmt: skip
    if "central_critic" in policy:
        raise ValueError("choose the critic with algorithm='mappo', not central_critic")
    pcfg = PolicyConfig.for_game(cfg, central_critic=algorithm == "mappo", **policy)
    meta = {
        "algorithm": algorithm, "opponent": _describe(opponent),
        "num_envs": num_envs, "groups": groups, "switch_every": switch_every,
    }  # fmt: skip
    return PPOTrainer(env, pcfg, ppo or PPOConfig(), out_dir, meta=meta, device=device)
