"""The model gap (DESIGN section 4): each planner's real-env return when it plans with the learned simulator,
against the same planner with the exact simulator and the true opponent policy, and with the exact simulator
and the learned opponent model; plus the scripted greedy policy playing the ego, and a temperature sweep.

    gridmarl-wm collect --out runs/data.npz && gridmarl-wm train --data runs/data.npz --out runs/wm
    python benchmarks/model_gap.py --model runs/wm/checkpoint.pt --out runs/model_gap.json

Before planning against an opponent, the model's opponent and value heads are refit on player_0's view of
64 x 400 steps of play against it (``fit_observation_heads``); the transition model stays as trained.
Every simulator of a row plays the same games (game seeds) with a fresh planner of the same seed
(:func:`gridmarl_wm.planning.play_paired`). The gap is :func:`gridmarl_wm.planning.model_gap`: the ratio of
the mean real-env returns (learned / exact), with a 95% delta-method interval over the paired games. Prints markdown tables, writes every
figure as JSON to --out and, with --record, the tables into benchmarks/RESULTS.md (block ``model_gap``,
or ``model_gap_history`` with --history-only).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from recording import provenance, record

import gridmarl
from gridmarl.opponents import Opponents
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.io import atomic_write_text
from gridmarl_wm.model import WorldModel
from gridmarl_wm.opponents.refit import fit_observation_heads
from gridmarl_wm.opponents.switching import OpponentNet, TypeFilterSimulator, episodes, fit_types_em
from gridmarl_wm.planning import (
    CEM,
    MCTS,
    ExactSimulator,
    LearnedSimulator,
    RandomShooting,
    ScriptedEgo,
    paired_gap,
    play,
    play_paired,
)
from gridmarl_wm.simulation.imagine import ImaginedEnv


def planners(seed: int) -> dict:
    return {"random shooting": RandomShooting(seed=seed), "CEM": CEM(seed=seed), "MCTS": MCTS(seed=seed)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--opponents", nargs="+", default=["random", "greedy", "switching"])
    p.add_argument("--planners", nargs="+", default=["random shooting", "CEM", "MCTS"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=4, help="episodes per seed")
    p.add_argument("--temperatures", type=float, nargs="*", default=[0.0, 0.5, 1.0, 2.0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--history",
        action="store_true",
        help="against switching opponents, also plan with the types model and its switch filter",
    )
    p.add_argument("--history-only", action="store_true", help="only those rows (and no sweep)")
    p.add_argument(
        "--n-types",
        type=int,
        default=3,
        help="types of the unlabelled types model with --history, the one thing it is told (default 3: the "
        "number of policies a switching opponent switches among)",
    )
    p.add_argument("--out", default=None)
    p.add_argument("--record", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("command:", " ".join([sys.executable.split("/")[-1], *sys.argv]))
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, device {args.device}"
    )
    model = WorldModel.load(args.model, map_location=args.device)
    game = model.game
    seeds = list(range(args.seeds))
    report: dict = {"model": args.model, "seeds": seeds, "episodes": args.episodes, "opponents": {}}
    start = time.perf_counter()
    fitted_models = {}
    for opp in args.opponents:
        data = collect(game, CollectConfig(steps=400, num_envs=64, policy=("random", opp), seed=100))
        fitted = fit_observation_heads(model, data, steps=1000, agent=0)
        fitted_models[opp] = fitted
        row: dict = {}
        greedy = play(ScriptedEgo("greedy", game, seed=0), None, opp, seeds, args.episodes, game)
        row["greedy ego"] = greedy.as_dict()
        print(f"[{time.perf_counter() - start:7.1f}s] {opp}: greedy ego {greedy.mean:.2f}", flush=True)
        types_net = None
        if (args.history or args.history_only) and opp == "switching":
            types_net = fit_types_model(game, data, args.n_types)
        for name in args.planners:
            runs = {"exact + true opponent": ExactSimulator(game, opp, seed=0)}
            if not args.history_only:
                runs["exact + learned opponent"] = ExactSimulator(game, opponent_model=fitted, seed=0)
                runs["learned"] = LearnedSimulator(fitted, seed=0)
            if types_net is not None:
                runs["learned, types (unlabelled EM) + switch filter"] = TypeFilterSimulator(
                    model, types_net, seed=0
                )
            res = play_paired(lambda n=name: planners(0)[n], runs, opp, seeds, args.episodes, game)
            base = res["exact + true opponent"]
            row[name] = {k: r.as_dict() for k, r in res.items()}
            for key, label in (
                ("learned", "gap"),
                ("exact + learned opponent", "gap_opponent_only"),
                ("learned, types (unlabelled EM) + switch filter", "gap_types_filter"),
            ):
                if key in res:
                    row[name][label] = paired_gap(res[key], base)
            print(
                f"[{time.perf_counter() - start:7.1f}s] {opp} / {name}: "
                + ", ".join(f"{k} {r.mean:.2f}" for k, r in res.items()),
                flush=True,
            )
        report["opponents"][opp] = row

    sweep = []
    opp = args.opponents[0]
    for temp in [] if args.history_only else args.temperatures:
        fitted = fitted_models[opp]
        real = play(RandomShooting(seed=0), LearnedSimulator(fitted, temperature=temp, seed=0), opp, seeds,
                    args.episodes, game)  # fmt: skip
        imagined = play(
            RandomShooting(seed=0),
            LearnedSimulator(fitted, temperature=temp, seed=0),
            opp,
            seeds,
            args.episodes,
            game,
            make_env=lambda f=fitted, t=temp: ImaginedEnv(f, temperature=t),
        )
        sweep.append({"temperature": temp, "real": real.as_dict(), "imagined": imagined.as_dict()})
        print(f"temperature {temp}: imagined {imagined.mean:.2f}, real {real.mean:.2f}", flush=True)
    report["temperature_sweep"] = {"opponent": opp, "planner": "random shooting", "rows": sweep}
    report["seconds"] = time.perf_counter() - start
    table = markdown(report)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    if args.record:
        note = (
            f"{len(seeds)} seeds x {args.episodes} episodes per row; opponent heads refit on 64 x 400 steps; "
            f"{report['seconds']:.0f} s in all."
        )
        key = "model_gap_history" if args.history_only else "model_gap"
        record(key, provenance(note) + "\n\n" + table, title="Model gap")


def fit_types_model(game, data, n_types: int = 3) -> OpponentNet:
    """The unlabelled types opponent model of ``benchmarks/opponent_switching.py`` (``n_types`` types, the
    one thing it is told, and their switch hazard fit by EM, no policy labels), on player_0's view of
    ``data`` (collected in whole episodes)."""
    names = Opponents(gridmarl.GridCore(game), None, ["random", "switching"]).names
    ep = episodes(data, names, game=game)
    torch.manual_seed(0)
    net = OpponentNet(game.obs_shape, "types", n_types=n_types)
    fit_types_em(net, ep, rounds=10, steps_per_round=150)
    return net


def _ci(r: dict) -> str:
    return f"{r['mean']:.2f} ± {r['ci95']:.2f}"


def markdown(report: dict) -> str:
    lines = [
        "| opponent | planner | exact sim + true opponent | exact sim + learned opponent | learned sim | "
        "gap (mean learned / mean exact, over the paired games) | decisions/s (learned) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for opp, row in report["opponents"].items():
        lines.append(f"| {opp} | greedy policy as ego (no planning) | {_ci(row['greedy ego'])} | | | | |")
        for name, r in row.items():
            if name == "greedy ego":
                continue
            if "learned" in r:
                g, h = r["gap"]
                lines.append(
                    f"| {opp} | {name} | {_ci(r['exact + true opponent'])} | "
                    f"{_ci(r['exact + learned opponent'])} | {_ci(r['learned'])} | {g:.3f} ± {h:.3f} | "
                    f"{r['learned']['decisions_per_s']:.0f} |"
                )
            if "gap_types_filter" in r:
                g, h = r["gap_types_filter"]
                f = r["learned, types (unlabelled EM) + switch filter"]
                lines.append(
                    f"| {opp} | {name}, learned with types (unlabelled EM) + switch filter | {_ci(r['exact + true opponent'])} | | "
                    f"{_ci(f)} | {g:.3f} ± {h:.3f} | {f['decisions_per_s']:.0f} |"
                )
    sw = report["temperature_sweep"]
    if not sw["rows"]:
        return "\n".join(lines)
    lines += [
        "",
        f"Temperature sweep ({sw['planner']}, {sw['opponent']} opponents): return in imagination (an "
        "ImaginedEnv at that temperature) and in the real env, planning with the learned simulator at that "
        "temperature.",
        "",
        "| temperature | return in imagination | real return |",
        "|---:|---:|---:|",
    ]
    for row in sw["rows"]:
        lines.append(f"| {row['temperature']:g} | {_ci(row['imagined'])} | {_ci(row['real'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    gridmarl.make_config()  # registers the envs
    main()
