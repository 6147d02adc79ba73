"""Opponents that switch policy (T4 of the notes): memoryless vs history-aware opponent models, the switch
detector, discrete vs continuous goal inference, and planning against `switching` opponents.

    python benchmarks/opponent_switching.py --model runs/wm/checkpoint.pt --out runs/switching.json

player_1 plays `switching` (greedy, selfish, random; a new one every 10 steps) against a random player_0;
every model sees player_0's view. Opponent models train on 1,024 episodes and are scored on 256 others
against the opponent's true action distribution. With --model, the random-shooting planner then plays
against `switching` opponents with the world model and (a) its opponent head refit to this data
(memoryless) or (b) the types model with the switch filter; 5 seeds x 4 episodes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import gridmarl
from gridmarl.opponents import Opponents
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel
from gridmarl_wm.opponent_model import fit_observation_heads
from gridmarl_wm.planning import ExactSimulator, LearnedSimulator, RandomShooting, play
from gridmarl_wm.plots import plot_switch_recovery
from gridmarl_wm.switching import OpponentNet, TypeFilterSimulator, episodes, fit, predict_episodes, scores

MODELS = {
    "memoryless": ("memoryless", None),
    "recurrent (GRU)": ("recurrent", None),
    "recurrent + discrete goal": ("recurrent", "discrete"),
    "recurrent + continuous goal": ("recurrent", "continuous"),
    "types + switch filter": ("types", None),
}
SINCE = (0, 1, 2, 3, 5, 9)


def detector_stats(detected: np.ndarray, ep) -> dict[str, float]:
    """Delay from each true switch to the first detection before the next switch; false alarms: detections
    more than 5 steps after the last true switch (or before any), per 100 steps."""
    switched = ep.switched
    delays, missed = [], 0
    E, T = switched.shape
    for e in range(E):
        times = [*np.flatnonzero(switched[e]).tolist(), T]
        for a, b in itertools.pairwise(times):
            hits = np.flatnonzero(detected[e, a:b])
            if len(hits):
                delays.append(int(hits[0]))
            else:
                missed += 1
    since = ep.steps_since_switch
    first_switch = switched.cumsum(1) > 0
    false = detected & ((since > 5) | ~first_switch)
    n = len(delays) + missed
    return {
        "switches": n,
        "detected_within_5": float(np.mean(np.array(delays) <= 5) * len(delays) / n) if n else float("nan"),
        "median_delay": float(np.median(delays)) if delays else float("nan"),
        "false_alarms_per_100_steps": float(100 * false.sum() / false.size),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a world-model checkpoint, for the planning rows")
    p.add_argument("--fit-steps", type=int, default=1500)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot", default=None, help="write the TV-after-a-switch curves as a PNG here")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("command:", " ".join([sys.executable.split("/")[-1], *sys.argv]))
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}")
    game = gridmarl.make_config()
    spec = ["random", "switching"]
    names = Opponents(gridmarl.GridCore(game), None, spec).names
    start = time.perf_counter()
    train_data = collect(game, CollectConfig(steps=400, num_envs=128, policy=tuple(spec), seed=0))
    train = episodes(train_data, names)
    test = episodes(collect(game, CollectConfig(steps=200, num_envs=64, policy=tuple(spec), seed=1)), names)
    pool = np.unique(train.policy)
    pool_names = [names[i] for i in pool]
    report: dict = {"types": pool_names, "train_episodes": len(train.obs), "test_episodes": len(test.obs)}
    since = test.steps_since_switch
    scripted = np.isin(test.policy, [names.index(n) for n in ("greedy", "selfish")])
    rows, nets = {}, {}
    for label, (kind, goal) in MODELS.items():
        torch.manual_seed(0)
        net = OpponentNet(game.obs_shape, kind, goal, n_types=len(pool))
        fit(net, train, np.searchsorted(pool, train.policy), steps=args.fit_steps)
        nets[label] = net
        probs, goals, detected = predict_episodes(net, test)
        s = scores(probs, test)
        row = {
            "tv": float(s["tv"].mean()),
            "nll": float(s["nll"].mean()),
            "accuracy_scripted": float(s["accuracy"][scripted].mean()),
            "tv_by_steps_since_switch": {k: float(s["tv"][since == k].mean()) for k in range(10)},
            "accuracy_by_steps_since_switch": {
                k: float(s["accuracy"][(since == k) & scripted].mean()) for k in SINCE
            },
        }
        if goals is not None:
            has = test.goal < game.n_cells
            row["goal_accuracy"] = float((goals == test.goal)[has].mean())
            row["goal_accuracy_incl_none"] = float((goals == test.goal).mean())
        if detected is not None:
            row["detector"] = detector_stats(detected, test)
        rows[label] = row
        print(f"[{time.perf_counter() - start:6.0f}s] {label}: {json.dumps(row)}", flush=True)
    report["models"] = rows
    if args.plot:
        curves = {k: list(r["tv_by_steps_since_switch"].values()) for k, r in rows.items()}
        plot_switch_recovery(curves, args.plot)

    if args.model:
        wm = WorldModel.load(args.model)
        seeds = list(range(args.seeds))
        memoryless = fit_observation_heads(wm, train_data, steps=1000, agent=0)
        sims = {
            "exact simulator + true opponent": ExactSimulator(game, "switching", seed=0),
            "learned, memoryless opponent head": LearnedSimulator(memoryless, seed=0),
            "learned, types + switch filter": TypeFilterSimulator(wm, nets["types + switch filter"], seed=0),
        }
        planning = {}
        for name, sim in sims.items():
            res = play(RandomShooting(seed=0), sim, "switching", seeds, args.episodes, game)
            planning[name] = res.as_dict()
            print(f"[{time.perf_counter() - start:6.0f}s] planning, {name}: {res.mean:.2f} ± {res.ci95:.2f}")
        report["planning_vs_switching"] = planning
    report["seconds"] = time.perf_counter() - start
    print(markdown(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def markdown(report: dict) -> str:
    lines = [
        "| opponent model | TV to true | NLL | top-1 in support (greedy/selfish steps) | TV at "
        + " / ".join(f"{k}" for k in SINCE)
        + " steps since a switch |",
        "|---|---:|---:|---:|---|",
    ]
    for label, r in report["models"].items():
        by = " / ".join(f"{r['tv_by_steps_since_switch'][k]:.3f}" for k in SINCE)
        lines.append(f"| {label} | {r['tv']:.3f} | {r['nll']:.3f} | {r['accuracy_scripted']:.3f} | {by} |")
    lines += [
        "",
        "| goal | goal accuracy (steps with a target) | next-action TV | top-1 in support |",
        "|---|---:|---:|---:|",
    ]
    for label in ("recurrent (GRU)", "recurrent + discrete goal", "recurrent + continuous goal"):
        r = report["models"][label]
        g = f"{r['goal_accuracy']:.3f}" if "goal_accuracy" in r else "(none)"
        lines.append(f"| {label} | {g} | {r['tv']:.3f} | {r['accuracy_scripted']:.3f} |")
    det = report["models"]["types + switch filter"].get("detector")
    if det:
        lines += [
            "",
            f"Switch detector: {det['switches']} switches, {100 * det['detected_within_5']:.1f}% detected within 5 "
            f"steps, median delay {det['median_delay']:.0f} steps, {det['false_alarms_per_100_steps']:.2f} false "
            "alarms per 100 steps.",
        ]
    if "planning_vs_switching" in report:
        lines += [
            "",
            "| planning against switching (random shooting) | return (mean ± 95% CI) |",
            "|---|---:|",
        ]
        for name, r in report["planning_vs_switching"].items():
            lines.append(f"| {name} | {r['mean']:.2f} ± {r['ci95']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
