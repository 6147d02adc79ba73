"""Random play: one episode of GridMARL-v0 (or another registered id) against greedy opponents.

python examples/random_play.py                 # the board as text, before and after
python examples/random_play.py --out last.png  # the last frame as a PNG instead
python examples/random_play.py --env GridMARL-8x8-4P-Partial-v0 --steps 7 --out docs/frame_8x8_4p.png
"""

import argparse

import gymnasium as gym

import gridmarl  # noqa: F401  (registers GridMARL-v0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="GridMARL-v0", help="a registered id, e.g. GridMARL-Walls3P-v0")
    parser.add_argument("--out", default=None, help="write the last frame as a PNG here")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    render_mode = "rgb_array" if args.out else "ansi"
    env = gym.make(args.env, opponent="greedy", render_mode=render_mode, max_steps=args.steps)
    obs, info = env.reset(seed=args.seed)
    env.action_space.seed(args.seed)
    if not args.out:
        print(env.render(), "\n")

    total, truncated = 0.0, False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward

    if args.out:
        import pygame

        frame = env.render()  # (H * 48, W * 48, 3) uint8
        pygame.image.save(pygame.surfarray.make_surface(frame.swapaxes(0, 1)), args.out)
        print(f"wrote {args.out}")
    else:
        print(env.render())
    print(
        f"return of the ego (random) over {args.steps} steps: {total:+.0f}; rewards of the last step: {info['rewards']}"
    )


if __name__ == "__main__":
    main()
