"""The mixture decoder (with and without its cell scorer) against the pointer decoder (issue "fast
imagination"): the same data and training budget, then fidelity against the exact rules, imagined steps per
second beside the real vector env, how they scale with the grid and the number of objects, and the planners
on each model.

    python benchmarks/fast_decoder.py train --decoder pointer --steps 3000 --out runs/fast
    python benchmarks/fast_decoder.py train --decoder mixture --steps 3000 --out runs/fast
    python benchmarks/fast_decoder.py train --decoder mixture-no-scorer --steps 3000 --out runs/fast
    python benchmarks/fast_decoder.py train --decoder mixture-narrow --steps 3000 --out runs/fast
    python benchmarks/fast_decoder.py train --decoder mixture-narrow-scorer8 --steps 3000 --out runs/fast
    python benchmarks/fast_decoder.py speed --out runs/fast          # every checkpoint, and the scaling
    python benchmarks/fast_decoder.py planners --out runs/fast       # decisions/s (round-robin) and the gap
    python benchmarks/fast_decoder.py gap --out runs/fast            # the gap on 200 paired games
    python benchmarks/fast_decoder.py record --out runs/fast         # the tables into RESULTS.md

Each stage writes its figures as JSON into --out, so that every stage stays a few minutes long on 2 CPU
cores; ``record`` writes the tables (block ``fast_decoder``) from them. ``train`` measures fidelity as
``gridmarl-wm eval`` does: exhaustive TV, deterministic and reward accuracy over every reachable state x
joint action (or ``--sample-states`` of them), and open-loop prediction with the true actions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recording import provenance, record
from timing import device_sync, imagined_run, rates, real_run, round_robin

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.evaluate import exhaustive_metrics, open_loop
from gridmarl_wm.io import atomic_write_text
from gridmarl_wm.model import WorldModel
from gridmarl_wm.planning import (
    CEM,
    MCTS,
    ExactSimulator,
    LearnedSimulator,
    RandomShooting,
    paired_gap,
    play,
    play_paired,
)
from gridmarl_wm.simulation.allocator import require_retained_memory
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for

# The decoders as the issue compares them, each with the trunk that suits it; the mixture decoder with its
# cell scorer (the default) and without it (what the scorer buys), and with half the default width of the
# trunk's output and the heads (d_model 64: about 60% of the default's multiply-adds per imagined step).
DECODERS = {
    "pointer": {"decoder": "pointer", "trunk": "conv"},
    "mixture": {"decoder": "mixture", "trunk": "mlp", "fusion": "film", "mixture_scorer": 16},
    "mixture-no-scorer": {"decoder": "mixture", "trunk": "mlp", "fusion": "film", "mixture_scorer": 0},
    "mixture-narrow": {
        "decoder": "mixture",
        "trunk": "mlp",
        "fusion": "film",
        "mixture_scorer": 16,
        "d_model": 64,
    },
    "mixture-narrow-scorer8": {  # mixture-narrow with a cell scorer of 8 units instead of 16
        "decoder": "mixture",
        "trunk": "mlp",
        "fusion": "film",
        "mixture_scorer": 8,
        "d_model": 64,
    },
    "mixture-small": {  # mixture-narrow with half its trunk's hidden units and half the per-channel layers
        "decoder": "mixture",
        "trunk": "mlp",
        "fusion": "film",
        "mixture_scorer": 16,
        "d_model": 64,
        "trunk_hidden": 128,
        "mixture_hidden": 32,
    },
}
# The games of the scaling table: (name, game kwargs).
GAMES = [
    ("default 4x4, 2 players", {}),
    ("walled 5x6, 3 players, 2 coins each", {"layout": gridmarl.config.WALLED_LAYOUT, "n_agents": 3,
                                             "coins_per_agent": 2}),
    ("8x8, 4 players, view 3", {"height": 8, "width": 8, "n_agents": 4, "view_size": 3}),
    ("8x8, 4 players, full view", {"height": 8, "width": 8, "n_agents": 4}),
]  # fmt: skip


def _write(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(row, indent=2) + "\n")


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def cmd_train(args) -> None:
    torch.set_num_threads(args.threads)
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=2000, num_envs=512, seed=args.seed))
    torch.manual_seed(args.seed)
    model = WorldModel(model_config_for(game, data, **DECODERS[args.decoder]))
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        log_every=500,
        checkpoint_every=1000,
    )
    name = args.name or args.decoder
    run_dir = Path(args.out) / name
    trainer = Trainer(model, data, game, cfg, run_dir)
    if args.resume and trainer.checkpoint_path.exists():
        trainer.resume()
    start = time.perf_counter()
    last = trainer.run(progress=False)
    train_s = time.perf_counter() - start
    print(f"{args.decoder}: trained {args.steps} steps in {train_s:.0f} s, obs NLL {last.get('obs_nll')}")
    start = time.perf_counter()
    exhaustive = exhaustive_metrics(model, game, sample_states=args.sample_states, seed=args.seed)
    exhaustive.pop("tv")
    eval_s = time.perf_counter() - start
    loop = open_loop(model, game, episodes=256, horizon=20, seed=args.seed)
    row = {
        "name": name,
        "decoder": args.decoder,
        "config": DECODERS[args.decoder],
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "train_seconds": train_s,
        "train_samples_per_s": args.steps * args.batch_size / train_s,
        "resumed": bool(args.resume),
        "final_obs_nll": last.get("obs_nll"),
        "exhaustive": exhaustive,
        "exhaustive_seconds": eval_s,
        "open_loop": loop,
        "provenance": provenance(),
    }
    print(json.dumps({k: v for k, v in row.items() if k != "open_loop"}, indent=1))
    _write(Path(args.out) / f"{name}.json", row)


def _allocator(args) -> bool:
    """Ask malloc to keep freed memory (``--retain-memory``) before anything is timed; whether it did."""
    if args.retain_memory:
        require_retained_memory()
    return bool(args.retain_memory)


def cmd_speed(args) -> None:
    torch.set_num_threads(args.threads)
    retained = _allocator(args)
    out = Path(args.out)
    game = gridmarl.make_config()
    sync = device_sync(args.device)
    runs = {}
    for name in DECODERS:
        path = out / name / "checkpoint.pt"
        if not path.exists():
            print(f"no {path}: train it first (skipped)")
            continue
        model = WorldModel.load(path, map_location=args.device).eval()
        for batch in args.batches:
            what = f"{name} decoder (trained), batch {batch:,}"
            runs[what] = imagined_run(model, game, batch, args.steps, args.device, args.amp)
    runs["real vector env, N=4,096, random opponents"] = real_run({}, 4096)
    rows = [{"what": what, "per_s": rate} for what, rate in rates(runs, args.repeats, sync).items()]
    print(*rows, sep="\n", flush=True)
    scaling = []
    for title, kwargs in GAMES:
        g = gridmarl.make_config(**kwargs)
        data = collect(g, CollectConfig(steps=20, num_envs=64, seed=0))
        entry = {"game": title, "cells": g.obs_shape[1] * g.obs_shape[2], "objects": None}
        entry["objects"] = int(np.asarray(data.obs[:1]).sum())
        runs = {}
        for name, spec in DECODERS.items():
            torch.manual_seed(0)
            cfg = model_config_for(g, data, **spec)
            if name == "pointer":
                entry["tokens"] = cfg.layout.length
            model = WorldModel(cfg).to(args.device).eval()
            model.game = g
            runs[name] = imagined_run(model, g, args.scaling_batch, args.steps, args.device)
        runs["real"] = real_run(kwargs, args.scaling_batch)
        entry.update(rates(runs, args.repeats, sync))
        scaling.append(entry)
        print(entry, flush=True)
    _write(
        out / f"speed_{args.device.split(':')[0]}.json",
        {
            "rows": rows,
            "scaling": scaling,
            "batch": args.scaling_batch,
            "retained_memory": retained,
            "provenance": provenance(),
        },
    )


PLANNERS = (("random shooting", RandomShooting), ("CEM", CEM), ("MCTS", MCTS))


def _fitted(out: Path, names: list[str], game) -> dict[str, WorldModel]:
    """Each trained decoder's model in ``out``, its opponent and value heads refit on random play (what the
    planners plan against); a decoder not trained yet is left out."""
    from gridmarl_wm.opponents.refit import fit_observation_heads

    data = collect(game, CollectConfig(steps=400, num_envs=64, policy=("random", "random"), seed=100))
    fitted = {}
    for name in names:
        path = out / name / "checkpoint.pt"
        if path.exists():
            fitted[name] = fit_observation_heads(WorldModel.load(path), data, steps=1000, agent=0)
        else:
            print(f"no {path}: train it first (skipped)")
    return fitted


def _simulators(game, fitted: dict[str, WorldModel]) -> dict[str, Callable[[], Any]]:
    """A fresh simulator of each kind (seeded generators, so every play starts alike): the exact one with
    the true (random) opponent, and each fitted decoder's."""
    sims: dict[str, Callable[[], Any]] = {"exact": lambda: ExactSimulator(game, "random", seed=0)}
    return sims | {name: (lambda m=m: LearnedSimulator(m, seed=0)) for name, m in fitted.items()}


def cmd_planners(args) -> None:
    torch.set_num_threads(args.threads)
    retained = _allocator(args)
    out = Path(args.out)
    game = gridmarl.make_config()
    seeds = list(range(args.seeds))
    fitted = _fitted(out, args.decoders, game)
    sims = _simulators(game, fitted)

    def measure(make, name: str, plays: dict):
        """A play's decisions per second, keeping the simulator's first play (its returns are the same
        games and seeds in every round)."""

        def run() -> float:
            result = play(make(seed=0), sims[name](), "random", seeds, args.episodes, game)
            plays.setdefault(name, result)
            return result.decisions_per_s

        return run

    rows = []
    for planner_name, make in PLANNERS:
        plays = {}
        # every simulator plays in each round in turn, so that the decoders' rates see the same machine
        per_s = round_robin({name: measure(make, name, plays) for name in sims}, args.rounds)
        exact = plays["exact"]
        for name in fitted:
            learned = plays[name]
            gap = paired_gap(learned, exact)  # the same games and planner seed
            rows.append({
                "decoder": name, "planner": planner_name, "decisions_per_s": per_s[name],
                "exact_decisions_per_s": per_s["exact"], "return": learned.mean,
                "exact_return": exact.mean, "gap": gap,
            })  # fmt: skip
            print(rows[-1], flush=True)
    _write(out / "planners.json", {"rows": rows, "seeds": seeds, "episodes": args.episodes,
                                   "rounds": args.rounds, "retained_memory": retained,
                                   "provenance": provenance()})  # fmt: skip


def cmd_gap(args) -> None:
    """The model gap with the planners' default budgets on enough paired games to say whether it is at
    least 0.95: each planner plays ``seeds x episodes`` real games against a random opponent once with the
    exact simulator and once with each decoder's (:func:`~gridmarl_wm.planning.play_paired`)."""
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    game = gridmarl.make_config()
    seeds = list(range(args.seeds))
    fitted = _fitted(out, args.decoders, game)
    if not fitted:
        raise SystemExit(f"no trained decoder among {args.decoders} in {out}: run the train stage first")
    rows = []
    start = time.perf_counter()
    for planner_name, make in PLANNERS:
        sims = {name: make_sim() for name, make_sim in _simulators(game, fitted).items()}
        plays = play_paired(lambda make=make: make(seed=0), sims, "random", seeds, args.episodes, game)
        exact = plays["exact"]
        for name in fitted:
            learned = plays[name]
            rows.append({
                "decoder": name, "planner": planner_name, "return": learned.mean, "exact_return": exact.mean,
                "gap": paired_gap(learned, exact), "decisions_per_s": learned.decisions_per_s,
            })  # fmt: skip
            print(rows[-1], flush=True)
    _write(out / "gap.json", {"rows": rows, "seeds": seeds, "episodes": args.episodes,
                              "seconds": time.perf_counter() - start, "provenance": provenance()})  # fmt: skip


def _origin(provenance: str) -> str:
    """A stage's command and code version, from the provenance its JSON holds."""
    lines = provenance.splitlines()
    return f"{lines[0]}; {lines[2]}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def cmd_record(args) -> None:
    out = Path(args.out)
    lines = [
        provenance("Figures written by the stages' runs; each stage's own command and code version below.")
    ]
    fid = [r for r in (_read(f) for f in sorted(out.glob("*.json"))) if r and "exhaustive" in r]
    if fid:
        lines += ["", "| decoder | trunk | parameters | steps x batch | training (2 CPU cores) | TV mean | TV p99 | "
                  "TV max | det. acc. | reward acc. | open loop: positions exact h = 1 / 10 / 20 | cum. reward "
                  "error h = 20 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]  # fmt: skip
        for r in fid:
            e, pos = r["exhaustive"], r["open_loop"]["position_match"]
            trunk = r["config"]["trunk"] + (f" ({r['config']['fusion']})" if "fusion" in r["config"] else "")
            lines.append(
                f"| {r.get('name', r['decoder'])} | {trunk} | {r['parameters']:,} | {r['steps']:,} x {r['batch_size']} | "
                f"{r['train_seconds']:.0f} s ({r['train_samples_per_s']:,.0f} samples/s) | {e['tv_mean']:.4f} | "
                f"{e['tv_p99']:.4f} | {e['tv_max']:.3f} | {_pct(e['det_acc'])} | {_pct(e['reward_acc'])} | "
                f"{pos[0]:.3f} / {pos[9]:.3f} / {pos[19]:.3f} | {r['open_loop']['reward_error'][19]:.3f} |"
            )
        n = {r["exhaustive"]["n_states"] for r in fid}
        lines.append(f"\nTV over {', '.join(f'{x:,}' for x in n)} reachable states x 25 joint actions.")
        for r in fid:
            lines.append(f"\n`{r.get('name', r['decoder'])}` run: {_origin(r['provenance'])}")
    speed = _read(out / "speed_cpu.json")
    if speed:
        lines += ["", "Imagined steps per second (one `ImaginedSimulator.step`: the opponent head, then a sampled "
                  "next observation and reward), the median of repeated rounds, each of which times every row in "
                  "turn (the real vector env too; `benchmarks/timing.py`)"
                  + (", with malloc keeping freed memory (`--retain-memory`)" if speed.get("retained_memory") else "")
                  + ":",
                  "", "| what | steps/s |", "|---|---:|"]  # fmt: skip
        lines += [f"| {r['what']} | {r['per_s']:,.0f} |" for r in speed["rows"]]
        names = [n for n in DECODERS if n in speed["scaling"][0]]
        lines += ["", f"Scaling (untrained models of the same sizes: the same computation), batch {speed['batch']:,}:",
                  "", "| game | cells | objects in an observation (walls too) | pointer tokens | "
                  + " | ".join(f"{n} steps/s" for n in names) + " | real env steps/s |",
                  "|---|---:|---:|---:|" + "---:|" * (len(names) + 1)]  # fmt: skip
        for s in speed["scaling"]:
            lines.append(f"| {s['game']} | {s['cells']} | {s['objects']} | {s['tokens']} | "
                         + " | ".join(f"{s[n]:,.0f}" for n in names) + f" | {s['real']:,.0f} |")  # fmt: skip
        lines.append(f"\nSpeed run: {_origin(speed['provenance'])}")
    plan = _read(out / "planners.json")
    if plan:
        lines += ["", f"Planners with their default budgets against a random opponent, "
                  f"{len(plan['seeds']) * plan['episodes']} games in lockstep ({len(plan['seeds'])} seeds x {plan['episodes']}); "
                  + (f"decisions/s are medians of {plan['rounds']} rounds, each playing every simulator in turn; "
                     if "rounds" in plan else "")
                  + ("malloc kept freed memory (`--retain-memory`); " if plan.get("retained_memory") else "")
                  + "the gap is learned / exact return, ± its 95% half-width:", "",
                  "| decoder | planner | decisions/s (learned) | decisions/s (exact) | return learned / exact | "
                  "model gap |", "|---|---|---:|---:|---:|---|"]  # fmt: skip
        for r in plan["rows"]:
            g = r["gap"]
            gap = f"{g[0]:.3f} ± {g[1]:.3f}"
            lines.append(f"| {r['decoder']} | {r['planner']} | {r['decisions_per_s']:,.1f} | "
                         f"{r['exact_decisions_per_s']:,.1f} | {r['return']:.2f} / {r['exact_return']:.2f} | {gap} |")  # fmt: skip
        lines.append(f"\nPlanner run: {_origin(plan['provenance'])}")
    gap = _read(out / "gap.json")
    if gap:
        n = len(gap["seeds"]) * gap["episodes"]
        lines += ["", f"The model gap with the planners' default budgets against a random opponent, {n} paired "
                  f"games ({len(gap['seeds'])} seeds x {gap['episodes']}, all in lockstep): each planner plays "
                  "every game once with the exact simulator and once with the decoder's; the gap is learned / "
                  "exact return, ± its 95% half-width over the paired games:", "",
                  "| decoder | planner | return learned / exact | model gap | at least 0.95 (settled: the interval "
                  "excludes 0.95) |",
                  "|---|---|---:|---|---|"]  # fmt: skip
        for r in gap["rows"]:
            g, h = r["gap"]
            verdict = ("yes" if g >= 0.95 else "no") + (", settled" if abs(g - 0.95) > h else ", not settled")
            lines.append(f"| {r['decoder']} | {r['planner']} | {r['return']:.2f} / {r['exact_return']:.2f} | "
                         f"{g:.3f} ± {h:.3f} | {verdict} |")  # fmt: skip
        lines.append(f"\nGap run ({gap['seconds']:.0f} s): {_origin(gap['provenance'])}")
    if args.note:
        lines += ["", args.note]
    record(
        "fast_decoder",
        "\n".join(lines),
        title="Fast imagination: the mixture decoder beside the pointer decoder",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True)
    t = sub.add_parser("train")
    t.add_argument("--decoder", choices=list(DECODERS), required=True)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch-size", type=int, default=512)
    t.add_argument("--sample-states", type=int, default=None, help="a random subset of reachable states")
    t.add_argument("--resume", action="store_true", help="continue OUT/NAME/checkpoint.pt")
    t.add_argument("--name", default=None, help="the run's name in OUT (default: the decoder's)")
    s = sub.add_parser("speed")
    s.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    s.add_argument("--scaling-batch", type=int, default=4096)
    s.add_argument("--steps", type=int, default=10, help="imagined steps per timed run")
    s.add_argument("--repeats", type=int, default=5)
    s.add_argument("--amp", choices=["none", "bf16"], default="none")
    pl = sub.add_parser("planners")
    pl.add_argument("--seeds", type=int, default=3)
    pl.add_argument("--episodes", type=int, default=4)
    pl.add_argument("--decoders", nargs="+", choices=list(DECODERS), default=list(DECODERS))
    pl.add_argument(
        "--rounds", type=int, default=3, help="rounds of every simulator playing in turn (the median rate)"
    )
    for q in (s, pl):
        q.add_argument(
            "--retain-memory",
            action="store_true",
            help="time with glibc's malloc keeping freed memory (gridmarl_wm.simulation.allocator.retain_freed_memory)",
        )
    gp = sub.add_parser("gap")
    gp.add_argument("--seeds", type=int, default=20)
    gp.add_argument("--episodes", type=int, default=10, help="games per seed (all seeds' in lockstep)")
    gp.add_argument(
        "--decoders", nargs="+", default=["mixture-narrow"], help="trained runs in --out (train's --name)"
    )
    r = sub.add_parser("record")
    r.add_argument("--note", default="", help="a line under the tables (what the figures mean)")
    for q in (t, s, pl, gp, r):
        q.add_argument("--out", required=True)
        q.add_argument("--device", default="cpu")
        q.add_argument("--threads", type=int, default=2)
        q.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("command:", " ".join([sys.executable.split("/")[-1], *sys.argv]), flush=True)
    stages = {
        "train": cmd_train,
        "speed": cmd_speed,
        "planners": cmd_planners,
        "gap": cmd_gap,
        "record": cmd_record,
    }
    stages[args.stage](args)


if __name__ == "__main__":
    main()
