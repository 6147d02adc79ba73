"""Keyboard play: you are player_0 of GridMARL-v0 (or another registered id) in a pygame window.

    python examples/keyboard_play.py                            # arrows move, space stays
    python examples/keyboard_play.py --env GridMARL-Walls3P-v0 --opponent greedy
    python examples/keyboard_play.py --gif episode.gif          # also save the episode as an animation
    python examples/keyboard_play.py --script 41230 --gif a.gif # no keyboard: play these actions, then stop

Keys: arrows = move, space = stay, r = reset (a new episode), q or Esc = quit.
Actions in --script: 0 stay, 1 up, 2 down, 3 left, 4 right.

Under the board the window shows the step, your last reward and return, and what the opponents just did.
--gif saves the episode being played when you quit (or when the script ends); .mp4 works too if imageio and
imageio-ffmpeg are installed. With --script no key is read, so it also runs headless (SDL_VIDEODRIVER=dummy).
"""

import argparse

import gymnasium as gym
import pygame

import gridmarl  # noqa: F401  (registers GridMARL-v0)
from gridmarl import ACTION_NAMES
from gridmarl.animation import save_animation

KEYS = {pygame.K_SPACE: 0, pygame.K_UP: 1, pygame.K_DOWN: 2, pygame.K_LEFT: 3, pygame.K_RIGHT: 4}
STATUS_PX = 48  # height of the status text under the board
MIN_WIDTH_PX = 360  # a small board gets a wider window, so the text fits


def show(screen, font, frame, lines):
    """Draw the board (an RGB array from env.render()) and up to two lines of text under it."""
    screen.fill((255, 255, 255))
    screen.blit(pygame.surfarray.make_surface(frame.swapaxes(0, 1)), (0, 0))  # surfarray is (x, y)
    for i, line in enumerate(lines):
        screen.blit(font.render(line, True, (20, 20, 20)), (6, frame.shape[0] + 6 + 20 * i))
    pygame.display.flip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="GridMARL-v0", help="a registered id, e.g. GridMARL-Walls3P-v0")
    parser.add_argument("--opponent", default="random", help="random, greedy, selfish, stay or switching")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--script", default=None, help="play these action digits instead of reading keys")
    parser.add_argument("--gif", default=None, help="save the episode here (.gif or .mp4)")
    parser.add_argument("--fps", type=float, default=4, help="speed of --script playback and of the --gif")
    args = parser.parse_args()
    if args.script is not None and set(args.script) - set("01234"):
        parser.error(f"--script must hold only the digits 0-4, got {args.script!r}")

    env = gym.make(args.env, opponent=args.opponent, render_mode="rgb_array")
    opponents = [f"player_{i}" for i in range(env.unwrapped.config.n_agents) if i != env.unwrapped.ego]
    pygame.display.init()
    pygame.font.init()
    pygame.display.set_caption(f"gridmarl: {args.env}")
    font = pygame.font.Font(None, 22)
    clock = pygame.time.Clock()

    def new_episode(seed=None):
        env.reset(seed=seed)
        frame = env.render()
        screen = pygame.display.set_mode((max(frame.shape[1], MIN_WIDTH_PX), frame.shape[0] + STATUS_PX))
        show(screen, font, frame, ["arrows move, space stays", "r resets, q quits"])
        return screen, [frame], 0.0, False

    screen, frames, total, done = new_episode(args.seed)
    script = list(args.script) if args.script is not None else None
    while True:
        # 1. Get the next action: from the script, or wait for a key.
        if script is not None:
            clock.tick(args.fps)  # let each scripted step show for 1 / fps seconds
            if not script or done:
                break
            action = int(script.pop(0))
        else:
            event = pygame.event.wait()
            if event.type == pygame.QUIT:
                break
            if event.type != pygame.KEYDOWN:
                continue
            if event.key in (pygame.K_q, pygame.K_ESCAPE):
                break
            if event.key == pygame.K_r:
                screen, frames, total, done = new_episode()
                continue
            if event.key not in KEYS or done:
                continue
            action = KEYS[event.key]

        # 2. Step the game and show what happened.
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
        frames.append(env.render())
        moves = ", ".join(f"{p} {ACTION_NAMES[a]}" for p, a in zip(opponents, info["opponent_actions"]))
        lines = [f"t={len(frames) - 1}  you: {ACTION_NAMES[action]}  reward {reward:+g}  return {total:+g}"]
        lines.append("episode over: r resets, q quits" if done else moves)
        print(lines[0], "|", moves, "| episode over" if done else "")
        show(screen, font, frames[-1], lines)

    pygame.quit()
    env.close()
    if args.gif:
        save_animation(frames, args.gif, fps=args.fps)
        print(f"wrote {args.gif} ({len(frames)} frames)")


if __name__ == "__main__":
    main()
