"""gridmarl: a multi-agent grid coin game as PettingZoo and Gymnasium environments.

``import gridmarl`` registers ``GridMARL-v0`` and its variants (see :data:`gridmarl.config.PRESETS`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from gridmarl.config import (
    ACTION_NAMES,
    CHANNEL_NAMES,
    PRESETS,
    GridConfig,
    ResetNeeded,
    make_config,
    parse_layout,
)
from gridmarl.core import GridCore, State
from gridmarl.exact import (
    Outcomes,
    canonical,
    count_reachable_states,
    reachable_states,
    transition_distribution,
    transition_outcomes,
)
from gridmarl.pettingzoo_env import GridAECEnv, GridParallelEnv

__version__ = "0.1.0"

__all__ = [
    "ACTION_NAMES",
    "CHANNEL_NAMES",
    "PRESETS",
    "GridAECEnv",
    "GridConfig",
    "GridCore",
    "GridParallelEnv",
    "Outcomes",
    "ResetNeeded",
    "State",
    "canonical",
    "count_reachable_states",
    "env",
    "make_config",
    "parallel_env",
    "parse_layout",
    "reachable_states",
    "transition_distribution",
    "transition_outcomes",
]


def parallel_env(render_mode: str | None = None, **game_kwargs: Any) -> GridParallelEnv:
    """PettingZoo ParallelEnv of the game; keyword arguments as in :func:`make_config`."""
    return GridParallelEnv(render_mode=render_mode, **game_kwargs)


def env(render_mode: str | None = None, **game_kwargs: Any) -> GridAECEnv:
    """PettingZoo AECEnv of the game; keyword arguments as in :func:`make_config`."""
    return GridAECEnv(render_mode=render_mode, **game_kwargs)


def _register() -> None:
    for env_id, kwargs in PRESETS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="gridmarl.gym_env:GridMARLEnv",
            vector_entry_point="gridmarl.vector_env:GridMARLVectorEnv",
            kwargs=dict(kwargs),
        )


_register()
