"""Plan with a learned model: random-shooting MPC imagines futures in the world model and plays the best
first move in the real game. The same planner also runs on the exact rules, for comparison.

python examples/plan_in_imagination.py --model runs/example_wm/checkpoint.pt
python examples/plan_in_imagination.py --model runs/example_wm/checkpoint.pt --opponent greedy --episodes 4
"""

import argparse

import numpy as np

from gridmarl.gym_env import GridMARLEnv
from gridmarl_wm import WorldModel
from gridmarl_wm.planning import ExactSimulator, LearnedSimulator, RandomShooting


def play_episode(planner, sim, opponent: str, seed: int) -> float:
    """One real episode; before every move the planner imagines in ``sim``."""
    env = GridMARLEnv(opponent=opponent)
    obs, info = env.reset(seed=seed)
    total, truncated = 0.0, False
    while not truncated:
        roots = sim.roots([env], obs[None])  # the learned simulator starts from the observation
        action = int(planner.act(sim, roots)[0])  # the exact one from env.get_state()
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a checkpoint, e.g. from examples/train_model.py")
    parser.add_argument("--opponent", default="random")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=128, help="imagined action sequences per move")
    args = parser.parse_args()

    model = WorldModel.load(args.model)
    planner = RandomShooting(n_sequences=args.sequences, horizon=6, seed=0)
    learned = LearnedSimulator(model, seed=0)  # others' moves from the model's opponent head
    exact = ExactSimulator(model.game, opponent=args.opponent, seed=0)  # the rules and the true opponent
    for name, sim in [("learned", learned), ("exact", exact)]:
        returns = [play_episode(planner, sim, args.opponent, seed) for seed in range(args.episodes)]
        print(
            f"planning in the {name} simulator: mean return {np.mean(returns):.2f} over {args.episodes} episodes"
        )


if __name__ == "__main__":
    main()
