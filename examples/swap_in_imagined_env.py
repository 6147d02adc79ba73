"""Swap the real env for the learned one in an existing Gymnasium loop: nothing else changes.

python examples/swap_in_imagined_env.py --model runs/example_wm/checkpoint.pt

``ImaginedEnv`` has the spaces, ``reset``/``step`` signature, seeding and truncation of
``gym.make("GridMARL-v0")``; its next observations and rewards are sampled from the world model and the
others' actions from its opponent head.
"""

import argparse

import gymnasium as gym

import gridmarl  # noqa: F401  (registers GridMARL-v0)
from gridmarl_wm import ImaginedEnv, WorldModel


def run_episode(env: gym.Env, seed: int) -> tuple[float, int]:
    """An ordinary Gymnasium loop, written once for any env: a random policy, return and length."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        steps += 1
        done = terminated or truncated
    return total, steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a checkpoint, e.g. from examples/train_model.py")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()

    real = gym.make("GridMARL-v0")  # random opponents
    imagined = ImaginedEnv(WorldModel.load(args.model))
    for name, env in [("real", real), ("imagined", imagined)]:
        results = [run_episode(env, seed) for seed in range(args.episodes)]
        mean = sum(r for r, _ in results) / len(results)
        print(f"{name:>8} env: mean return of a random player {mean:+.2f}, episodes of {results[0][1]} steps")


if __name__ == "__main__":
    main()
