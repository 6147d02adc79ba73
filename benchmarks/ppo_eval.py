"""Trained PPO agents in the real env, beside the scripted greedy ego and CEM on the exact simulator.

    python benchmarks/ppo_eval.py --train runs/ppo_eval --seeds 0 1 2 3 4 --parallel 14   # train (slow)
    python benchmarks/ppo_eval.py --policies runs/ppo_eval --record                        # evaluate, record

Training: for every opponent (random, greedy, switching) and every training seed, ``gridmarl-wm learn
--opponent OPP --seed S`` with its defaults; and self-play (``--opponent self --moa``) per seed.
Evaluation (DESIGN section 4, "Learning agents"): return per 50-step episode of player_0 in the real env,
on the same games for every row (game seeds 1000·s + e, 5 seeds × ``--episodes`` episodes, as the
planners' benchmarks use): each trained policy against the opponent it trained with, the scripted greedy
ego, and CEM planning in the exact simulator with the true opponent (64 samples × 8 steps × 4 iterations,
discount 0.8). Intervals are 95% t intervals over the 5 game seeds (for the policies, of each game seed's
mean over the training seeds; each training seed's own mean is listed). Self-play: coins
picked per episode, share of own-colour pick-ups, steals and total welfare, beside two scripted greedy
players.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import provenance, record

OPPONENTS = ("random", "greedy", "switching")


def train_one(job: tuple[str, int, str, int | None, list[str]]) -> str:
    opponent, seed, root, core, extra = job
    out = Path(root) / f"{opponent}_seed{seed}"
    cmd = [sys.executable, "-m", "gridmarl_wm.cli", "learn", "--opponent", opponent, "--seed", str(seed),
           "--out", str(out), "--no-progress", "--threads", "1", "--eval-episodes", "0", *extra]  # fmt: skip
    if opponent == "self":
        cmd.append("--moa")
    pre = ["taskset", "-c", str(core)] if core is not None else []
    start = time.perf_counter()
    subprocess.run(pre + cmd, check=True, capture_output=True, text=True)
    return f"{out.name}: {time.perf_counter() - start:.0f} s"


def scripted_self_play(games: int = 64) -> dict[str, float]:
    """Two scripted greedy players, the same statistics as :func:`self_play_stats`."""
    from gridmarl.core import GridCore
    from gridmarl.opponents import Opponents
    from gridmarl_wm.agents import NativeGames

    env = NativeGames(None, games, opponent="self", seed=0)
    env.reset()
    core = GridCore(env.config)
    drivers = Opponents(core, None, "greedy")
    drivers.reset(games, None, np.zeros((games, 0)))
    rng = np.random.default_rng(0)
    picks = np.zeros((games, 2, 2))
    welfare = np.zeros(games)
    for _ in range(env.config.max_steps):
        actions = drivers.act(env.groups[0].state, rng.random((games, drivers.n_step_draws)))
        res = env.step(actions)
        picks += res.pickups
        welfare += res.rewards.sum(1)
    coins = picks.sum((1, 2))
    own = np.trace(picks, axis1=1, axis2=2)
    return {"coins": coins.mean(), "own_share": own.sum() / coins.sum(), "steals": (coins - own).mean(),
            "welfare": welfare.mean(), "return_per_player": welfare.mean() / 2}  # fmt: skip


def evaluate(root: Path, episodes: int, game_seeds: tuple[int, ...]) -> str:
    import torch

    from gridmarl_wm import load_policy
    from gridmarl_wm.agents.evaluate import mean_ci, policy_returns, self_play_stats
    from gridmarl_wm.planning import CEM, ExactSimulator, ScriptedEgo, play

    torch.set_num_threads(2)
    lines = [
        "| opponent | trained PPO policy (training seeds: each one's mean) | scripted greedy ego | "
        "CEM, exact simulator + true opponent | training |",
        "|---|---:|---:|---:|---:|",
    ]
    for opp in OPPONENTS:
        runs = sorted(root.glob(f"{opp}_seed*/policy.pt"))
        if not runs:
            continue
        results = [policy_returns(load_policy(p), opp, game_seeds, episodes) for p in runs]
        by_game_seed = np.mean([r.seed_means for r in results], axis=0)  # (game seeds,)
        m, h = mean_ci(by_game_seed)
        per_training_seed = ", ".join(f"{r.mean:.2f}" for r in results)
        greedy = play(ScriptedEgo("greedy", seed=0), None, opp, game_seeds, episodes)
        cem = play(CEM(seed=0), ExactSimulator(None, opp, seed=0), opp, game_seeds, episodes)
        secs = [
            json.loads(p.with_name("metrics.jsonl").read_text().splitlines()[-1])["elapsed"] for p in runs
        ]
        lines.append(
            f"| {opp} | {m:.2f} ± {h:.2f} ({len(runs)}: {per_training_seed}) | {greedy.mean:.2f} ± {greedy.ci95:.2f} | "
            f"{cem.mean:.2f} ± {cem.ci95:.2f} | {np.median(secs):.0f} s (median) |"
        )
        print(lines[-1], flush=True)
    self_runs = sorted(root.glob("self_seed*/policy.pt"))
    if self_runs:
        keys = ("coins", "own_share", "steals", "welfare")
        stats = [self_play_stats(load_policy(p), games=256, seed=1) for p in self_runs]
        scripted = scripted_self_play(256)
        lines += ["", "Self-play, per 50-step episode (256 games per policy; mean ± 95% t interval over training seeds):",
                  "", "| players | coins picked | own-colour share | steals | total welfare |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        cells = [
            f"{mean_ci([s[k] for s in stats])[0]:.2f} ± {mean_ci([s[k] for s in stats])[1]:.2f}" for k in keys
        ]
        lines.append(
            f"| both players the self-play PPO policy with MOA ({len(stats)} seeds) | "
            + " | ".join(cells)
            + " |"
        )
        lines.append(
            "| both players scripted greedy | " + " | ".join(f"{scripted[k]:.2f}" for k in keys) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default=None, help="train the policies into this folder")
    p.add_argument("--policies", default=None, help="evaluate the policies in this folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training seeds")
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--only", nargs="+", default=None, help="train only these (random greedy switching self)")
    p.add_argument("--pin", action="store_true", help="pin each training run to one core")
    p.add_argument("--learn-args", default="", help="extra arguments for gridmarl-wm learn")
    p.add_argument("--episodes", type=int, default=20, help="per game seed (5 game seeds)")
    p.add_argument("--note", default="")
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    if args.train:
        cores = sorted(os.sched_getaffinity(0)) if args.pin else [None]
        only = args.only or [*OPPONENTS, "self"]
        jobs = [(o, s, args.train) for o in only for s in args.seeds]
        jobs = [(o, s, r, cores[i % len(cores)], args.learn_args.split()) for i, (o, s, r) in enumerate(jobs)]
        with ProcessPoolExecutor(max(1, args.parallel)) as pool:
            for line in pool.map(train_one, jobs):
                print(line, flush=True)
        Path(args.train, "provenance.txt").write_text(provenance(args.note))
    if args.policies:
        root = Path(args.policies)
        table = evaluate(root, args.episodes, (0, 1, 2, 3, 4))
        trained = root / "provenance.txt"
        body = "\n".join([
            "Training:" if trained.exists() else "", trained.read_text() if trained.exists() else "",
            "Evaluation:", provenance(args.note), "", table,
        ]).strip()  # fmt: skip
        print(body)
        if args.record:
            record("ppo_eval", body, title="Agents that learn: returns in the real env")


if __name__ == "__main__":
    main()
