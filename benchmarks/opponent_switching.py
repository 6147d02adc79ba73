"""Opponents that switch policy (T4 of the notes): memoryless vs history-aware opponent models, the switch
detector, discrete vs continuous goal inference, each learned from unlabelled play and, as a reference, from
the simulator's privileged labels; and planning against `switching` opponents.

    python benchmarks/opponent_switching.py --model runs/wm/checkpoint.pt --out runs/switching.json --record
    python benchmarks/opponent_switching.py --train-steps 200 --fit-steps 600 --record   # a smaller run

player_1 plays `switching` (greedy, selfish, random; a new one every 10 steps) against a random player_0;
every model sees player_0's view. Opponent models train on --train-steps x 128 games of play (400: 1,024
episodes) and are scored on 256 other episodes against the opponent's true action distribution (used only
for scoring). What each model learns from:

- unlabelled (what the observer sees): the memoryless and recurrent models; goal heads trained on the cell
  where the opponent next picks up a coin (``hindsight_goals``); the types model and its switch hazard fit
  by EM over a hidden-Markov mixture of policies (``fit_types_em``). The one thing it is told is the number
  of types, --n-types (default: the number of policies the opponent switches among, 3);
- labelled (privileged, from the simulator): goal heads trained on the coin the scripted policy chases
  (``goal_labels``), and the types model trained on the policy id the simulator reports at every step
  (its hazard from the labels' switch rate).

The switch detector is scored at every --thresholds value. With --model, the random-shooting planner then
plays against `switching` opponents with the world model and (a) its opponent head refit to this data
(memoryless) or (b) each types model with its switch filter; --seeds x --episodes games. --record writes
the tables into benchmarks/RESULTS.md (block ``opponent_switching``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from recording import provenance, record

import gridmarl
from gridmarl.opponents import Opponents
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.io import atomic_write_text
from gridmarl_wm.model import WorldModel
from gridmarl_wm.opponents.refit import fit_observation_heads
from gridmarl_wm.opponents.switching import (
    OpponentNet,
    TypeFilterSimulator,
    episodes,
    fit,
    fit_types_em,
    hindsight_goals,
    predict_episodes,
    scores,
)
from gridmarl_wm.planning import ExactSimulator, LearnedSimulator, RandomShooting, play
from gridmarl_wm.viewing.plots import plot_switch_recovery

#: label -> (kind, goal, what it learns from: None (unlabelled play), "hindsight", "labels" or "em")
MODELS = {
    "memoryless": ("memoryless", None, None),
    "recurrent (GRU)": ("recurrent", None, None),
    "recurrent + discrete goal, unlabelled (next pick-up)": ("recurrent", "discrete", "hindsight"),
    "recurrent + continuous goal, unlabelled (next pick-up)": ("recurrent", "continuous", "hindsight"),
    "recurrent + discrete goal, labelled (policy's target)": ("recurrent", "discrete", "labels"),
    "recurrent + continuous goal, labelled (policy's target)": ("recurrent", "continuous", "labels"),
    "types + switch filter, unlabelled (EM, hazard learned)": ("types", None, "em"),
    "types + switch filter, labelled (simulator's policy ids)": ("types", None, "labels"),
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
        "detected_within_5": sum(d <= 5 for d in delays) / n if n else float("nan"),
        "median_delay": float(np.median(delays)) if delays else float("nan"),
        "false_alarms_per_100_steps": float(100 * false.sum() / false.size),
    }


def train_model(
    label: str, game, train, pool, fit_steps: int, em_rounds: int, em_types: int | None = None
) -> tuple[OpponentNet, dict]:
    """One opponent model of :data:`MODELS`, trained on the episodes ``train``. The EM types model has
    ``em_types`` types (default: as many as ``pool``, the policies the opponent switches among); the
    labelled one has one per policy of ``pool``, as its labels say."""
    kind, goal, source = MODELS[label]
    torch.manual_seed(0)
    n_types = em_types if source == "em" and em_types is not None else len(pool)
    net = OpponentNet(game.obs_shape, kind, goal, n_types=n_types)
    info: dict = {}
    if source == "em":
        history = fit_types_em(net, train, rounds=em_rounds, steps_per_round=max(1, fit_steps // em_rounds))
        info["em"] = history
    elif source == "labels" and kind == "types":
        fit(net, train, np.searchsorted(pool, train.policy), steps=fit_steps)
    elif source == "hindsight":
        fit(net, dataclasses.replace(train, goal=hindsight_goals(train)), steps=fit_steps)
    else:  # the policy's target as the goal label, or no goal at all
        fit(net, train, steps=fit_steps)
    if kind == "types":
        info["hazard"] = net.hazard
    return net, info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a world-model checkpoint, for the planning rows")
    p.add_argument("--train-steps", type=int, default=400, help="steps of 128 games of training play")
    p.add_argument("--fit-steps", type=int, default=1500, help="gradient steps per opponent model")
    p.add_argument("--em-rounds", type=int, default=10, help="EM rounds of the unlabelled types model")
    p.add_argument(
        "--n-types",
        type=int,
        default=None,
        help="types of the unlabelled (EM) types model, the one thing it is told (default: the number of "
        "policies the opponent switches among, 3)",
    )
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.9, 0.6], help="switch detector's")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), metavar="MODEL")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot", default=None, help="write the TV-after-a-switch curves as a PNG here")
    p.add_argument("--out", default=None)
    p.add_argument("--record", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = p.parse_args()
    if args.n_types is not None and args.n_types < 1:
        p.error(f"--n-types must be >= 1, got {args.n_types}")
    torch.set_num_threads(args.threads)
    print("command:", " ".join([sys.executable.split("/")[-1], *sys.argv]))
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}")
    game = gridmarl.make_config()
    spec = ["random", "switching"]
    names = Opponents(gridmarl.GridCore(game), None, spec).names
    start = time.perf_counter()
    train_cfg = CollectConfig(steps=args.train_steps, num_envs=128, policy=tuple(spec), seed=0)
    train_data = collect(game, train_cfg)
    train = episodes(train_data, names, game=game)
    test = episodes(
        collect(game, CollectConfig(steps=200, num_envs=64, policy=tuple(spec), seed=1)), names, game=game
    )
    pool = np.unique(train.policy)
    em_types = args.n_types or len(pool)
    report: dict = {
        "types": [names[i] for i in pool],
        "train_episodes": len(train.obs),
        "test_episodes": len(test.obs),
        "fit_steps": args.fit_steps,
        "em_rounds": args.em_rounds,
        "em_n_types": em_types,
        "thresholds": args.thresholds,
    }
    since = test.steps_since_switch
    scripted = np.isin(test.policy, [names.index(n) for n in ("greedy", "selfish")])
    rows, nets = {}, {}
    for label in args.models:
        net, info = train_model(label, game, train, pool, args.fit_steps, args.em_rounds, em_types)
        nets[label] = net
        probs, goals, _ = predict_episodes(net, test)
        s = scores(probs, test)
        row = {
            **info,
            "tv": float(s["tv"].mean()),
            "nll": float(s["nll"].mean()),
            "accuracy_scripted": float(s["accuracy"][scripted].mean()),
            "tv_by_steps_since_switch": {k: float(s["tv"][since == k].mean()) for k in range(10)},
            "accuracy_by_steps_since_switch": {
                k: float(s["accuracy"][(since == k) & scripted].mean()) for k in SINCE
            },
        }
        if goals is not None:  # scored against the policy's target, whatever the model learned from
            has = test.goal < game.n_cells
            row["goal_accuracy"] = float((goals == test.goal)[has].mean())
            row["goal_accuracy_incl_none"] = float((goals == test.goal).mean())
        if net.kind == "types":
            row["detector"] = {
                str(th): detector_stats(predict_episodes(net, test, threshold=th)[2], test)
                for th in args.thresholds
            }
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
        }
        for label, net in nets.items():
            if net.kind == "types":
                sims[f"learned, {label}"] = TypeFilterSimulator(wm, net, seed=0)
        planning = {}
        for name, sim in sims.items():
            res = play(RandomShooting(seed=0), sim, "switching", seeds, args.episodes, game)
            planning[name] = res.as_dict()
            print(f"[{time.perf_counter() - start:6.0f}s] planning, {name}: {res.mean:.2f} ± {res.ci95:.2f}")
        report["planning_vs_switching"] = {"seeds": args.seeds, "episodes": args.episodes, "rows": planning}
    report["seconds"] = time.perf_counter() - start
    table = markdown(report)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    if args.record:
        note = (
            f"Size: {report['train_episodes']:,} training episodes ({args.train_steps} steps x 128 games), "
            f"{report['test_episodes']} test episodes, {args.fit_steps} gradient steps per model (batch 64 "
            f"episodes; the EM model: {args.em_rounds} rounds sharing them); {report['seconds']:.0f} s in all. "
            f"The unlabelled (EM) types model is given the number of types, {em_types} (--n-types"
            f"{'' if args.n_types else '; the default: the number of policies the opponent switches among'}), "
            "the one thing it is told; it learns the types and the switch hazard from play."
        )
        record("opponent_switching", provenance(note) + "\n\n" + table, title="Opponents that switch policy")


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
    goal_rows = [(k, r) for k, r in report["models"].items() if "goal_accuracy" in r]
    if goal_rows:
        lines += [
            "",
            "| goal model | goal accuracy vs the policy's target (steps with one) | next-action TV | top-1 in support |",
            "|---|---:|---:|---:|",
        ]
        for label, r in goal_rows:
            lines.append(
                f"| {label} | {r['goal_accuracy']:.3f} | {r['tv']:.3f} | {r['accuracy_scripted']:.3f} |"
            )
    det_rows = [(k, r) for k, r in report["models"].items() if "detector" in r]
    if det_rows:
        lines += [
            "",
            "| switch detector | hazard | threshold | switches | detected within 5 steps | median delay | "
            "false alarms per 100 steps |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, r in det_rows:
            for th, d in r["detector"].items():
                lines.append(
                    f"| {label} | {r['hazard']:.3f} | {th} | {d['switches']} | {100 * d['detected_within_5']:.1f}% | "
                    f"{d['median_delay']:.0f} | {d['false_alarms_per_100_steps']:.2f} |"
                )
    if "planning_vs_switching" in report:
        plan = report["planning_vs_switching"]
        lines += [
            "",
            f"| planning against switching (random shooting, {plan['seeds']} seeds x {plan['episodes']} episodes) "
            "| return (mean ± 95% CI) |",
            "|---|---:|",
        ]
        for name, r in plan["rows"].items():
            lines.append(f"| {name} | {r['mean']:.2f} ± {r['ci95']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
