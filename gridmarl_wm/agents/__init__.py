"""Agents that learn: PPO for every player of the coin game (independent, MAPPO) or one ego against any
opponent, with opponent modelling (MOA, goal inference), on any batched game.

- :mod:`.batched`: the batched-env interface the trainer knows, and :class:`NativeGames` on the numpy core;
- :mod:`.policy`: the actor-critic network and its switchable opponent-modelling heads;
- :mod:`.losses`: GAE and the PPO losses as pure functions;
- :mod:`.ppo`: the trainer (rollouts, updates, checkpoints, exact resume, data-parallel);
- :mod:`.checkpoint`: ``policy.pt`` files and :func:`load_policy`;
- :mod:`.evaluate`: returns in the real env and self-play statistics.
"""

from gridmarl_wm.agents.batched import BatchedGames, NativeGames, StepResult
from gridmarl_wm.agents.checkpoint import LoadedPolicy, load_policy
from gridmarl_wm.agents.learn import ALGORITHMS, make_trainer
from gridmarl_wm.agents.policy import ActorCritic, PolicyConfig
from gridmarl_wm.agents.ppo import PPOConfig, PPOTrainer

__all__ = [
    "ALGORITHMS",
    "ActorCritic",
    "BatchedGames",
    "LoadedPolicy",
    "NativeGames",
    "PPOConfig",
    "PPOTrainer",
    "PolicyConfig",
    "StepResult",
    "load_policy",
    "make_trainer",
]
