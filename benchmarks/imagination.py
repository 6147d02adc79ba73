"""Learning in imagination against model-free PPO: return in the real env against real env steps.

    python benchmarks/imagination.py                      # greedy opponents, 5 seeds, print the table
    python benchmarks/imagination.py --record             # and write it into RESULTS.md and the README
    python benchmarks/imagination.py --opponents random switching --record   # a block and plot of their own

For every opponent and seed: model-free PPO (the ``learn`` defaults but 256 games, so that small budgets hold
several updates) evaluated after ``--budgets`` real steps; learning in imagination with the learned world
model (:func:`gridmarl_wm.agents.imagination.learn_in_imagination`) evaluated after every outer iteration; and
the same loop with the rules and the true opponents in place of the model (the control that splits any
shortfall: learned / exact is the model's share); and between them the learned model with the true opponents
acting on the state each imagined observation shows (``simulator="learned-dynamics"``), which splits the
model's share into its dynamics' (learned dynamics / exact) and its opponent model's (learned / learned
dynamics). Every return is the real-env return per 50-step episode over 5 game seeds × 4 episodes, averaged
over the seeds of training with a 95% t-interval. Sample efficiency (DESIGN section 4): the real steps a
method needs to reach 90% of model-free PPO's final return; learning in imagination counts every real step it
used, the model's data included, never imagined ones.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from recording import provenance, record

from gridmarl import PRESETS, make_config
from gridmarl_wm.agents import PPOConfig, make_trainer
from gridmarl_wm.agents.checkpoint import LoadedPolicy
from gridmarl_wm.agents.evaluate import policy_returns
from gridmarl_wm.agents.imagination import STATE_FILE, ImaginationConfig, learn_in_imagination
from gridmarl_wm.planning import ci95
from gridmarl_wm.training.trainer import with_architecture_defaults

ROOT = Path(__file__).resolve().parent.parent


def model_free(
    out: Path, game, opponent: str, seed: int, budgets: list[int], num_envs: int
) -> list[tuple[int, float]]:
    """(real steps, real return) of model-free PPO after each budget."""
    trainer = make_trainer(
        out, game, opponent=opponent, num_envs=num_envs, ppo=PPOConfig(total_steps=max(budgets), seed=seed)
    )
    points = []
    for b in budgets:
        trainer.run(progress=False, stop_at=max(1, math.ceil(b / trainer.steps_per_iter)))
        policy = LoadedPolicy(trainer.net, trainer.env.config, seed=seed)
        points.append((trainer.env_steps, policy_returns(policy, opponent, range(5), 4, game=game).mean))
    return points


def imagination(
    out: Path, game, opponent: str, seed: int, args: argparse.Namespace, simulator: str
) -> tuple[list[tuple[int, float]], float, bool]:
    """(real steps, real return) after each outer iteration, the run's own seconds (over all its sittings)
    and whether it was continued from --out (with --resume; a finished run is read back)."""
    cfg = ImaginationConfig(
        real_steps=args.imagined_real_steps, real_steps_per_iteration=args.real_steps_per_iteration,
        model_steps=args.model_steps, imagined_steps_per_iteration=args.imagined_steps_per_iteration,
        horizon=args.horizon, simulator=simulator, seed=seed,
    )  # fmt: skip
    resume = args.resume and (out / STATE_FILE).exists()  # a run that was interrupted goes on
    lines = learn_in_imagination(
        out, game, opponent=opponent, cfg=cfg, model_overrides=json.loads(args.model), resume=resume
    )
    points = [(line["real_steps"], line["return_mean"]) for line in lines]
    return points, float(lines[-1]["seconds"]), resume


def below_before(points: np.ndarray, returns: np.ndarray, reached: float) -> float:
    """The last evaluated real-step count before ``reached`` (model-free PPO's first point at the target):
    the target was reached after it, so a method that needs N real steps needs at least that / N times
    fewer (0 if there is none)."""
    earlier = points[points < reached]
    return float(earlier[-1]) if len(earlier) else 0.0


def steps_to(points: np.ndarray, returns: np.ndarray, target: float) -> float:
    """The first real-step count whose mean return reaches ``target`` (inf if none)."""
    hit = np.flatnonzero(returns.mean(0) >= target)
    return float(points[hit[0]]) if len(hit) else math.inf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="GridMARL-v0", choices=list(PRESETS), help="the game")
    p.add_argument("--opponents", nargs="+", default=["greedy"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument(
        "--budgets", type=int, nargs="+",
        default=[25_000, 50_000, 100_000, 250_000, 300_000, 350_000, 400_000, 500_000, 600_000, 800_000, 1_000_000],
    )  # fmt: skip
    p.add_argument("--num-envs", type=int, default=256, help="model-free PPO's games")
    p.add_argument(
        "--imagined-real-steps", type=int, default=50_000, help="real steps of learning in imagination"
    )
    p.add_argument("--real-steps-per-iteration", type=int, default=10_000)
    p.add_argument("--model-steps", type=int, default=500)
    p.add_argument("--imagined-steps-per-iteration", type=int, default=200_000)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument(
        "--model",
        default="{}",
        help="WorldModelConfig fields as JSON; a decoder, trunk or fusion left out is the main job's "
        'model\'s (the mixture decoder on an MLP trunk with FiLM), e.g. \'{"decoder": "pointer"}\'',
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="default: runs/<the block's name>")
    p.add_argument(
        "--png", default=None, help="default: docs/imagination.png for greedy opponents alone, "
        "docs/imagination_<opponents>.png otherwise"
    )  # fmt: skip
    p.add_argument("--record", action="store_true")
    p.add_argument(
        "--resume", action="store_true", help="continue the imagination runs an interrupted run left in --out"
    )
    args = p.parse_args()
    # greedy opponents alone are the comparison the README quotes; other sets get blocks and plots of their own
    block = "imagination" if args.opponents == ["greedy"] else "imagination_" + "_".join(args.opponents)
    if args.env != "GridMARL-v0":
        block += "_" + args.env.removeprefix("GridMARL-").removesuffix("-v0")
    args.png = args.png or str(ROOT / "docs" / f"{block}.png")
    args.out = args.out or f"runs/{block}"
    torch.set_num_threads(args.threads)
    game = make_config(PRESETS[args.env])
    model = with_architecture_defaults(json.loads(args.model))
    out = Path(args.out)
    start = time.perf_counter()
    rows, curves = [], {}
    run_seconds, n_resumed = 0.0, 0  # the imagination runs' own time; how many were continued from --out
    for opp in args.opponents:
        methods = {"model-free PPO": None, "imagination, learned model": "learned"}
        # the controls play the true opponents on the state an observation shows: a two-player full view
        if opp != "switching" and game.n_agents == 2 and game.view_size is None:
            methods["imagination, learned dynamics + true opponents"] = "learned-dynamics"
            methods["imagination, exact simulator"] = "exact"
        results: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, sim in methods.items():
            per_seed = []
            for seed in range(args.seeds):
                run_dir = out / opp / name.replace(" ", "_").replace(",", "") / f"seed{seed}"
                if sim is None:
                    per_seed.append(model_free(run_dir, game, opp, seed, args.budgets, args.num_envs))
                else:
                    points, seconds, resumed = imagination(run_dir, game, opp, seed, args, sim)
                    per_seed.append(points)
                    run_seconds += seconds
                    n_resumed += resumed
                print(
                    f"{opp} {name} seed {seed}: {per_seed[-1]} ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
            steps = np.array([s for s, _ in per_seed[0]], dtype=np.float64)
            results[name] = (steps, np.array([[r for _, r in run] for run in per_seed]))
        curves[opp] = results
        final = results["model-free PPO"][1][:, -1].mean()
        # 90% of a final return at or below 0 lies above it: the measure is undefined there ("not reached")
        target = 0.9 * final if final > 0 else math.inf
        mf_steps = steps_to(*results["model-free PPO"], target)
        mf_below = below_before(*results["model-free PPO"], mf_steps)
        for name, (steps, returns) in results.items():
            need = steps_to(steps, returns, target)
            ratio = ""
            if name != "model-free PPO" and not (math.isinf(need) or math.isinf(mf_steps)):
                ratio = f"{mf_steps / need:.1f}×" + (
                    f" (at least {mf_below / need:.1f}×)" if mf_below else ""
                )
            elif name == "model-free PPO":
                ratio = "1.0×"
            rows.append(
                f"| {opp} | {name} | " + " / ".join(f"{int(s):,}" for s in steps) + " | "
                + " / ".join(f"{m:.1f}" for m in returns.mean(0)) + f" | {returns[:, -1].mean():.2f} ± "
                f"{ci95(returns[:, -1]):.2f} | " + ("not reached" if math.isinf(need) else f"{int(need):,}")
                + f" | {ratio} |"
            )  # fmt: skip
        if "imagination, exact simulator" in results:
            last = {name: r[1][:, -1].mean() for name, r in results.items()}
            learned, exact = last["imagination, learned model"], last["imagination, exact simulator"]
            dynamics = last["imagination, learned dynamics + true opponents"]
            for what, ratio in (
                ("learned / exact at the last point (the model's share)", learned / exact),
                ("learned dynamics + true opponents / exact (its dynamics' share)", dynamics / exact),
                (
                    "learned / learned dynamics + true opponents (its opponent model's share)",
                    learned / dynamics,
                ),
            ):
                rows.append(f"| {opp} | {what} | | | {ratio:.3f} | | |")
    plot(curves, args.png, args.env)
    table = "\n".join(
        [
            provenance(
                f"{args.env}; {args.seeds} seeds; real-env return per {game.max_steps}-step episode (5 game seeds × 4 episodes per point), mean "
                f"over training seeds; imagination: {args.imagined_real_steps:,} real steps in outer iterations of "
                f"{args.real_steps_per_iteration:,}, {args.model_steps} model steps and "
                f"{args.imagined_steps_per_iteration:,} imagined steps (horizon {args.horizon}) each; model "
                f"{json.dumps(model)}. Wall time {time.perf_counter() - start:.0f} s"
                + (
                    f" (this sitting; {n_resumed} imagination runs were continued or read back from "
                    f"{args.out} with --resume). The imagination runs took {run_seconds:.0f} s in all."
                    if n_resumed
                    else f"; the imagination runs {run_seconds:.0f} s of it."
                )
            ),
            "",
            "| opponent | method | real steps | return at each | final return | real steps to 90% of model-free final | fewer real steps than model-free |",
            "|---|---|---|---|---:|---:|---:|",
            *rows,
        ]
    )
    print(table)
    if args.record:
        record(
            block, table, title=f"Learning in imagination ({args.env}, {', '.join(args.opponents)} opponents)"
        )


def plot(curves: dict, png: str, env: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (opp, results) in zip(axes[0], curves.items(), strict=True):
        for name, (steps, returns) in results.items():
            mean = returns.mean(0)
            half = (
                np.array([ci95(returns[:, i]) for i in range(returns.shape[1])])
                if len(returns) > 1
                else 0 * mean
            )
            ax.plot(steps, mean, marker="o", label=name)
            ax.fill_between(steps, mean - half, mean + half, alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("real env steps")
        ax.set_ylabel("real-env return per episode")
        ax.set_title(f"{env}\nagainst {opp} opponents (95% t-intervals)", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
