"""Train an agent inside the learned simulator, and the same learner inside the exact rules, on a small budget.

    python examples/learn_in_imagination.py                 # a few minutes on 2 CPU cores
    python examples/learn_in_imagination.py --real-steps 4096 --imagined-steps 8192   # seconds (a smoke test)

Each outer iteration plays real games with the current policy, fits the world model to all the real data so
far, and runs PPO on imagined games started from real observations (short horizons, bootstrapped from the
value at the horizon, the others' actions from the model's opponent head). The exact run puts the rules and
the true opponents in place of the model: learned / exact is the model's share of any shortfall.
"""

from __future__ import annotations

import argparse

import torch

from gridmarl_wm.agents.imagination import ImaginationConfig, learn_in_imagination


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--opponent", default="greedy")
    parser.add_argument("--real-steps", type=int, default=30_000, help="real game steps in all")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--model-steps", type=int, default=300, help="world-model steps per iteration")
    parser.add_argument("--imagined-steps", type=int, default=200_000, help="imagined steps per iteration")
    parser.add_argument("--out", default="runs/imagination_example")
    args = parser.parse_args()
    torch.set_num_threads(2)

    for simulator in ("learned", "exact"):
        cfg = ImaginationConfig(
            real_steps=args.real_steps,
            real_steps_per_iteration=args.real_steps // args.iterations,
            real_envs=min(64, args.real_steps // args.iterations),
            model_steps=args.model_steps,
            imagined_steps_per_iteration=args.imagined_steps,
            imagined_envs=512,
            simulator=simulator,
            eval_seeds=2,
            eval_episodes=2,
        )
        lines = learn_in_imagination(f"{args.out}/{simulator}", opponent=args.opponent, cfg=cfg)
        for line in lines:
            print(
                f"{simulator:>7}: {line['real_steps']:>7,} real steps, {line['imagined_steps']:>9,} imagined: "
                f"real-env return {line['return_mean']:.2f} ± {line['return_ci95']:.2f}"
            )


if __name__ == "__main__":
    main()
