"""The coin game in Tianshou, unmodified: both players through its PettingZoo env and multi-agent
algorithm, and the single-player Gymnasium env (real or imagined) through its vector envs.

    python examples/tianshou_collect.py                       # a few rounds of collect + update
    python examples/tianshou_collect.py --model run/model.pt  # the single-player part in a learned model

1. ``PettingZooEnv(gridmarl.env())`` (Tianshou's PettingZoo env takes AEC envs), two of them in a
   ``DummyVectorEnv``; ``MultiAgentOffPolicyAlgorithm`` gives player_0 a DQN learner and player_1 Tianshou's
   random player; a ``Collector`` fills one replay buffer and the algorithm updates from it.
2. ``gym.make("GridMARL-v0")`` (or ``ImaginedEnv`` around ``--model``) in a ``DummyVectorEnv``, the same
   DQN collect + update, one player against scripted opponents.

Each round is a few hundred steps and one update: it shows the pieces fit, not a trained player.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from tianshou.algorithm.modelfree.dqn import DQN, DiscreteQLearningPolicy
from tianshou.algorithm.multiagent.marl import MultiAgentOffPolicyAlgorithm
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.algorithm.random import MARLRandomDiscreteMaskedOffPolicyAlgorithm
from tianshou.data import Collector, VectorReplayBuffer
from tianshou.env import DummyVectorEnv, PettingZooEnv
from tianshou.utils.net.common import Net
from tianshou.utils.torch_utils import policy_within_training_step

import gridmarl


def dqn(observation_space: gym.spaces.Box, action_space: gym.spaces.Discrete) -> DQN:
    """A small DQN learner on flattened observations."""
    net = Net(state_shape=observation_space.shape, action_shape=action_space.n, hidden_sizes=[64])
    policy = DiscreteQLearningPolicy(model=net, action_space=action_space, eps_training=0.2)
    return DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), gamma=0.9, target_update_freq=50)


def collect_and_update(algorithm, envs, rounds: int, steps: int, batch_size: int) -> tuple[Collector, dict]:
    """``rounds`` times: collect ``steps`` steps into a replay buffer, then one update from it."""
    buffer = VectorReplayBuffer(rounds * steps + len(envs), len(envs))
    collector = Collector(algorithm, envs, buffer, exploration_noise=True)
    collector.reset()
    episodes, returns = 0, []
    for _ in range(rounds):
        stats = collector.collect(n_step=steps)
        episodes += stats.n_collected_episodes
        if stats.n_collected_episodes:
            returns.append(np.asarray(stats.returns).reshape(stats.n_collected_episodes, -1))
        with policy_within_training_step(algorithm.policy):
            algorithm.update(buffer=buffer, sample_size=batch_size)
    mean_returns = np.concatenate(returns).mean(0).tolist() if returns else []
    return collector, {"transitions": len(buffer), "episodes": episodes, "mean_return": mean_returns}


def both_players(rounds: int, steps: int, seed: int) -> dict:
    """player_0 learns with DQN, player_1 plays at random, through Tianshou's PettingZoo env."""

    def make() -> PettingZooEnv:
        return PettingZooEnv(gridmarl.env(max_steps=10))

    env = make()
    learner = dqn(env.observation_space, env.action_space)
    before = [p.detach().clone() for p in learner.policy.parameters()]
    random_player = MARLRandomDiscreteMaskedOffPolicyAlgorithm(env.action_space)
    algorithm = MultiAgentOffPolicyAlgorithm(algorithms=[learner, random_player], env=env)
    envs = DummyVectorEnv([make, make])
    envs.seed(seed)
    collector, out = collect_and_update(algorithm, envs, rounds, steps, batch_size=64)
    buffer = collector.buffer
    agents = buffer.obs.agent_id[buffer.sample_indices(0)]  # every stored transition
    out["turns"] = {a: int((agents == a).sum()) for a in env.agents}  # AEC: players act in turn
    out["learner_changed"] = any(
        not torch.equal(a, b) for a, b in zip(before, learner.policy.parameters(), strict=True)
    )
    return out


def one_player(make_env: Callable[[], gym.Env], rounds: int, steps: int, seed: int) -> dict:
    """DQN on the single-player Gymnasium env ``make_env`` gives, in Tianshou's ``DummyVectorEnv``."""
    env = make_env()
    algorithm = dqn(env.observation_space, env.action_space)
    envs = DummyVectorEnv([make_env, make_env])
    envs.seed(seed)
    _, out = collect_and_update(algorithm, envs, rounds, steps, batch_size=64)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200, help="steps collected per round")
    parser.add_argument(
        "--model",
        default=None,
        help="a world model checkpoint to play part 2 in ('exact': the rules behind the model's interface)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # Tianshou's random player and epsilon-greedy draw from numpy's global state

    if args.model:
        from gridmarl_wm import ImaginedEnv, WorldModel
        from gridmarl_wm.simulation.exact_model import ExactModel

        model = ExactModel() if args.model == "exact" else WorldModel.load(args.model)

        # The exact stand-in has no opponent head: its opponents are the real env's scripted ones.
        opponent = "greedy" if args.model == "exact" else "model"

        game = {**model.game.as_kwargs(), "max_steps": 10}

        def make_single() -> gym.Env:
            return ImaginedEnv(model, opponent=opponent, game=game)
    else:

        def make_single() -> gym.Env:
            return gym.make("GridMARL-v0", opponent="greedy", max_steps=10)

    results = {
        "pettingzoo_both_players": both_players(args.rounds, args.steps, args.seed),
        "gymnasium_one_player": one_player(make_single, args.rounds, args.steps, args.seed),
    }
    for part, figures in results.items():
        print(part, figures)
    return results


if __name__ == "__main__":
    main()
