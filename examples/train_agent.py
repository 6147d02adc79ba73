"""Train an agent with PPO in a few minutes, then play it in the real game beside the scripted greedy ego.

    python examples/train_agent.py                        # ~2.5M game steps against greedy opponents
    python examples/train_agent.py --opponent self --moa  # every player learns, with a model of the others
    python examples/train_agent.py --steps 20000          # a smoke test

The same as ``gridmarl-wm learn``, from Python: ``make_trainer`` builds N games × the learning players on
the native batched core, ``run`` trains, ``load_policy`` gives the trained policy as a callable that any
gridmarl env takes as an opponent.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

import gridmarl  # noqa: F401  (registers GridMARL-v0)
from gridmarl_wm import load_policy
from gridmarl_wm.agents import PPOConfig, make_trainer
from gridmarl_wm.agents.evaluate import policy_returns, self_play_stats
from gridmarl_wm.planning import ScriptedEgo, play


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opponent", default="greedy", help="random, greedy, switching, ... or self")
    p.add_argument("--steps", type=int, default=2_500_000, help="game steps of training")
    p.add_argument("--num-envs", type=int, default=512)
    p.add_argument("--moa", action="store_true", help="add a model of the other agents' actions")
    p.add_argument("--out", default="runs/example_agent")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    ppo = PPOConfig(total_steps=args.steps, rollout_steps=32, minibatch_size=min(8192, args.num_envs * 16))
    trainer = make_trainer(args.out, opponent=args.opponent, num_envs=args.num_envs, ppo=ppo, moa=args.moa)
    last = trainer.run(progress=True)
    print(f"trained {trainer.env_steps:,} game steps in {trainer.elapsed:.0f} s; "
          f"last training return {last.get('episode_return', float('nan')):.2f}")  # fmt: skip

    policy = load_policy(trainer.checkpoint_path)
    if args.opponent == "self":
        stats = self_play_stats(policy, games=64)
        print("self-play per episode: " + ", ".join(f"{k} {v:.2f}" for k, v in stats.items()))
        return
    learned = policy_returns(policy, args.opponent, seeds=(0, 1, 2), episodes=4)
    scripted = play(ScriptedEgo("greedy"), None, args.opponent, (0, 1, 2), 4)
    print(f"return per 50-step episode against {args.opponent}: trained policy {learned.mean:.2f} "
          f"± {learned.ci95:.2f}, scripted greedy ego {scripted.mean:.2f} ± {scripted.ci95:.2f}")  # fmt: skip

    # The trained policy is an opponent like any callable.
    env = gym.make("GridMARL-v0", opponent=policy)
    obs, _ = env.reset(seed=0)
    total, rng = 0.0, np.random.default_rng(0)
    for _ in range(50):
        obs, reward, _, truncated, info = env.step(int(rng.integers(5)))
        total += reward
    print(f"a random ego against the trained policy as opponent: return {total:.0f} "
          f"(the opponent is {info['opponent_policies'][0]})")  # fmt: skip


if __name__ == "__main__":
    main()
