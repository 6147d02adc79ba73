"""The main job: collect -> train -> evaluate -> plan on the default game, with a report.

``gridmarl-wm demo --out DIR`` writes ``DIR/model.pt`` (loadable with ``WorldModel.load``),
``DIR/report.json`` (every metric computed), ``DIR/report.md`` (the same as tables, also printed) and
the plots (``losses.png``, ``tv_histogram.png``, ``open_loop.png``, ``predictions.png``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridmarl import make_config
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.evaluate import evaluation_report
from gridmarl_wm.io import atomic_copy, atomic_write_text
from gridmarl_wm.model import WorldModel
from gridmarl_wm.opponents.refit import fit_observation_heads
from gridmarl_wm.planning import (
    CEM,
    MCTS,
    ExactSimulator,
    LearnedSimulator,
    RandomShooting,
    ScriptedEgo,
    ci95,
    paired_gap,
    play,
    play_paired,
)
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for, plot_losses


@dataclass(frozen=True)
class DemoConfig:
    """Budgets of the main job. The defaults aim at 15 minutes on two CPU cores (the time of the recorded
    run is in the README). MCTS plans with its own defaults (256 simulations, horizon 6); CEM with 64
    samples x 6 steps x 3 iterations (its default is 8 steps x 4 iterations, 1.8 times the simulator
    steps); random shooting with 256 sequences of 4 steps discounted by 0.6. At its default horizon 6 and
    discount 0.8 the best of 256 random sequences is too often one that a lucky respawn flatters, and it
    does not beat the greedy ego against greedy opponents even in the exact simulator; shorter and more
    discounted, it does, at two thirds of the simulator steps. The world model is the mixture decoder with
    its cell scorer on an MLP trunk (``decoder``, ``trunk``, ``fusion``: as ``gridmarl-wm train`` takes
    them); it trains 3,500 steps (about three and a half minutes), so that 200 paired games per opponent
    fit in the time left."""

    collect_steps: int = 2000
    collect_envs: int = 512
    decoder: str = "mixture"  # the world model: mixture decoder with its cell scorer, MLP trunk with FiLM
    trunk: str = "mlp"
    fusion: str = "film"
    train_steps: int = 3500
    batch_size: int = 512
    sample_states: int | None = 8000  # of the 47,040 reachable states, drawn at random; None: all of them
    open_loop_episodes: int = 256
    opponents: tuple[str, ...] = ("random", "greedy")
    head_steps: int = 600  # refitting the opponent and value heads to each opponent
    seeds: int = 100  # x episodes: the paired games per opponent (200: gap intervals near ±0.05)
    episodes: int = 2
    shooting_sequences: int = 256
    shooting_horizon: int = 4  # random shooting's best sequence of 256 is a lucky draw more often at 6
    shooting_discount: float = 0.6
    cem_samples: int = 64
    cem_iterations: int = 3
    mcts_simulations: int = 256
    horizon: int = 6
    cem_horizon: int = 6
    device: str = "cpu"
    seed: int = 0
    smoke_test: bool = False  # set by quick(): the report says its figures are not measurements

    @staticmethod
    def quick(**overrides: Any) -> DemoConfig:
        """A smoke-test budget: under a minute on two CPU cores."""
        small = DemoConfig(
            collect_steps=40,
            collect_envs=64,
            train_steps=150,
            batch_size=256,
            sample_states=300,
            open_loop_episodes=16,
            head_steps=50,
            seeds=2,
            shooting_sequences=16,
            cem_samples=8,
            cem_iterations=2,
            mcts_simulations=16,
            horizon=3,
            cem_horizon=3,
            shooting_horizon=3,
            smoke_test=True,
        )
        return replace(small, **overrides)


def planners(cfg: DemoConfig) -> dict[str, Callable[[], Any]]:
    """The planners the demo runs, with its budgets: name -> a maker of a fresh planner (each run of a
    paired comparison starts from the same planner seed)."""
    h = cfg.horizon
    return {
        "random shooting": lambda: RandomShooting(
            cfg.shooting_sequences, cfg.shooting_horizon, gamma=cfg.shooting_discount, seed=cfg.seed
        ),
        "CEM": lambda: CEM(cfg.cem_samples, cfg.cem_horizon, iterations=cfg.cem_iterations, seed=cfg.seed),
        "MCTS": lambda: MCTS(cfg.mcts_simulations, h, parallel=min(32, cfg.mcts_simulations), seed=cfg.seed),
    }


def _stage(name: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.1f}s] {name}", flush=True)


def run_demo(out: str | Path, cfg: DemoConfig = DemoConfig(), progress: bool = True) -> dict[str, Any]:
    """Run the whole pipeline into ``out``; returns the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    game = make_config()
    report: dict[str, Any] = {"demo_config": asdict(cfg)}

    _stage(f"collecting {cfg.collect_steps} steps x {cfg.collect_envs} games of random play", start)
    data = collect(game, CollectConfig(steps=cfg.collect_steps, num_envs=cfg.collect_envs, seed=cfg.seed))
    report["data"] = {"transitions": len(data)}

    _stage(f"training the world model: {cfg.train_steps} steps of batch {cfg.batch_size}", start)
    model = WorldModel(model_config_for(game, data, decoder=cfg.decoder, trunk=cfg.trunk, fusion=cfg.fusion))
    report["model"] = {
        "decoder": cfg.decoder, "trunk": cfg.trunk, "fusion": cfg.fusion,
        "cell_scorer": model.cfg.mixture_scorer if cfg.decoder == "mixture" else None,
        "parameters": sum(p.numel() for p in model.parameters()),
    }  # fmt: skip
    train_cfg = TrainConfig(
        steps=cfg.train_steps, batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device
    )
    trainer = Trainer(model, data, game, train_cfg, out / "training")
    last = trainer.run(progress=progress)
    atomic_copy(trainer.checkpoint_path, out / "model.pt")
    plot_losses(out / "training" / "metrics.jsonl", out / "losses.png")
    report["training"] = {k: v for k, v in last.items() if isinstance(v, int | float)}
    model = WorldModel.load(out / "model.pt", map_location=cfg.device)

    _stage("evaluating against the exact rules", start)
    report |= evaluation_report(
        model, game, plots=out, sample_states=cfg.sample_states, seed=cfg.seed,
        open_loop_episodes=cfg.open_loop_episodes,
    )  # fmt: skip

    report["planning"] = plan_all(model, game, cfg, start)
    report["seconds"] = time.perf_counter() - start
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    text = report_markdown(report)
    atomic_write_text(out / "report.md", text)
    print(text)
    _stage(f"done: {out / 'model.pt'}, {out / 'report.json'}, {out / 'report.md'}", start)
    return report


def plan_all(model: WorldModel, game, cfg: DemoConfig, start: float) -> dict[str, Any]:
    """Every planner against every opponent on paired games: planning with the learned simulator and with
    the exact one (the rules and the true opponent policy), and the scripted greedy policy playing the ego,
    all on the same games (game seeds) with the same planner seeds."""
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    results: dict[str, Any] = {}
    for opp in cfg.opponents:
        _stage(f"planning against {opp!r} opponents", start)
        # the opponent model learns how these opponents play, from player_0's view of 64 games
        vs = collect(game, CollectConfig(steps=200, num_envs=64, policy=("random", opp), seed=cfg.seed + 2))
        fitted = fit_observation_heads(model, vs, steps=cfg.head_steps, agent=0, seed=cfg.seed)
        greedy = play(ScriptedEgo("greedy", game, seed=cfg.seed), None, opp, seeds, cfg.episodes, game)
        row: dict[str, Any] = {"greedy ego (no planning)": greedy.as_dict()}
        for name, make in planners(cfg).items():
            runs = play_paired(
                make,
                {"learned": LearnedSimulator(fitted, seed=cfg.seed), "exact": ExactSimulator(game, opp, seed=cfg.seed)},
                opp,
                seeds,
                cfg.episodes,
                game,
            )  # fmt: skip
            learned, exact = runs["learned"], runs["exact"]
            gap, gap_ci95 = paired_gap(learned, exact)
            row[name] = {
                "learned": learned.as_dict() | {"vs_greedy": _difference(learned, greedy)},
                "exact": exact.as_dict() | {"vs_greedy": _difference(exact, greedy)},
                "gap": gap,
                "gap_ci95": gap_ci95,
            }
        results[opp] = row
    return results


def _difference(planner, greedy) -> dict[str, float]:
    """The planner's return minus the greedy ego's on the same games: mean and 95% t half-width over the
    games."""
    d = planner.returns.ravel() - greedy.returns.ravel()
    return {"mean": float(d.mean()), "ci95": ci95(d)}


def _findings(plan: dict[str, Any], width: float = 0.05) -> list[str]:
    """What the planning table does not settle, in words."""
    wide, straddle, below, not_better = [], [], [], []
    most_games = 0
    for opp, row in plan.items():
        for name, r in row.items():
            if "learned" not in r:
                continue
            g, h = r["gap"], r.get("gap_ci95", float("nan"))
            if not h <= width:
                wide.append(f"{name} vs {opp} (±{h:.3f})")
                games = len(np.ravel(r["learned"]["returns"]))
                if h == h:
                    most_games = max(most_games, math.ceil(games * (h / width) ** 2))
            if h == h and g - h <= 1 <= g + h:
                straddle.append(f"{name} vs {opp}")
            elif h == h and g + h < 1:
                below.append(f"{name} vs {opp} ({g:.3f} ± {h:.3f})")
            for sim in ("learned", "exact"):
                d = r[sim]["vs_greedy"]
                if not d["mean"] - d["ci95"] > 0:
                    not_better.append(
                        f"{name} with the {sim} simulator vs {opp} ({d['mean']:+.2f} ± {d['ci95']:.2f})"
                    )
    lines = []
    if wide:
        lines.append(
            f"- Gap intervals wider than ±{width}: {', '.join(wide)}. Each game is one pair, and the "
            "learned and exact runs of a game part ways at the first decision where the two simulators' "
            "samples lead the planner to a different action, so the pairs share the game's start and little "
            f"else. An interval shrinks as 1 / sqrt(games): ±{width} would take about {most_games:,} games "
            "per opponent at the widest."
        )
    if straddle:
        lines.append(
            f"- Gaps whose interval contains 1 (no measurable difference between planning in the learned "
            f"and in the exact simulator): {', '.join(straddle)}."
        )
    if below:
        lines.append(
            f"- Gaps whose interval lies below 1 (planning in the learned simulator measurably worse than in "
            f"the exact one): {', '.join(below)}."
        )
    if not_better:
        lines.append(
            "- Not shown to beat the scripted greedy ego (the paired difference in return on the same games "
            f"is not above 0 at 95%): {'; '.join(not_better)}."
        )
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """The report's headline figures as markdown tables."""
    lines = ["# gridmarl-wm demo report", ""]
    if report.get("demo_config", {}).get("smoke_test"):
        lines += [
            "**`--quick`: a smoke test of the pipeline at a tiny budget. Its figures are not measurements.**",
            "",
        ]
    ex = report.get("exhaustive")
    if ex:
        every = ex["n_states"] == 47_040
        both = report.get("exhaustive_both_ways")
        rows = (
            [("with", both["with_constraints"]), ("without", both["without_constraints"])]
            if both
            else [("on" if report.get("constraints") else "none applied", ex)]
        )
        m = report.get("model")
        if m:
            scorer = f", cell scorer {m['cell_scorer']}" if m.get("cell_scorer") else ""
            lines += [
                f"World model: {m['decoder']} decoder{scorer}, {m['trunk']} trunk ({m['fusion']}), "
                f"{m['parameters']:,} parameters, trained {report['demo_config']['train_steps']:,} steps.",
                "",
            ]
        lines += [
            f"Exhaustive check over {ex['n_transitions']:,} transitions ({ex['n_states']:,} "
            + ("reachable states, all of them" if every else "reachable states drawn at random")
            + " x 25 joint actions; `gridmarl-wm eval` measures every state), "
            + (
                "with and without the constraints the model learned from its data:"
                if both
                else "as the model decodes:"
            ),
            "",
            "| learned constraints | TV mean | TV p99 | TV max | deterministic acc. | reward acc. | reward MAE |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for label, r in rows:
            lines.append(
                f"| {label} | {r['tv_mean']:.4f} | {r['tv_p99']:.4f} | {r['tv_max']:.3f} | "
                f"{100 * r['det_acc']:.2f}% | {100 * r['reward_acc']:.2f}% | {r['reward_mae']:.4f} |"
            )
        lines.append("")
    opp = report.get("opponent_model")
    if opp:
        lines += [
            f"Opponent head on held-out random play: top-1 accuracy {opp['opponent_top1']:.3f}, "
            f"NLL {opp['opponent_nll']:.3f}, TV to the true policy {opp['opponent_tv_to_true']:.4f}.",
            "",
        ]
    ol = report.get("open_loop")
    if ol:
        pm = ol["true_opponent_actions"]["position_match"]
        lines += [
            "Open loop (true actions), agent positions exact at h = 1 / 10 / 20: "
            + " / ".join(f"{pm[h - 1]:.3f}" for h in (1, 10, 20) if h <= len(pm)),
            "",
        ]
    plan = report.get("planning")
    if plan:
        cfg = report.get("demo_config", {})
        games = cfg.get("seeds", 0) * cfg.get("episodes", 0)
        lines += [
            f"Real-env return per 50-step episode over {games} paired games per opponent (mean ± 95% t "
            "interval over the games): each planner plans with the learned simulator and with the exact one "
            "(the rules and the true opponent policy) on the same games with the same planner seed, and the "
            "scripted greedy policy plays the ego on the same games. Gap = mean learned return / mean exact "
            "return (gridmarl_wm.planning.model_gap) ± its 95% delta-method interval over the paired games; "
            "vs greedy = the return minus the greedy ego's on the same games.",
            "",
            _budgets(cfg),
            "",
            "| opponent | planner | learned | exact | gap | vs greedy (learned) | vs greedy (exact) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for opp_name, row in plan.items():
            for name, r in row.items():
                if "learned" not in r:
                    lines.append(f"| {opp_name} | {name} | {_ci(r)} | | | | |")
                    continue
                lines.append(
                    f"| {opp_name} | {name} | {_ci(r['learned'])} | {_ci(r['exact'])} | "
                    f"{_ci({'mean': r['gap'], 'ci95': r.get('gap_ci95', float('nan'))}, 3)} | "
                    f"{_ci(r['learned']['vs_greedy'], signed=True)} | {_ci(r['exact']['vs_greedy'], signed=True)} |"
                )
        lines.append("")
        findings = _findings(plan)
        if findings:
            lines += ["What this table does not settle:", "", *findings, ""]
    if "seconds" in report:
        lines += [f"Total time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def _budgets(cfg: dict[str, Any]) -> str:
    """The planners' budgets, from a report's ``demo_config``."""
    # reports from before random shooting had its own horizon and discount: it used these
    horizon = cfg.get("shooting_horizon", cfg["horizon"])
    discount = cfg.get("shooting_discount", RandomShooting.gamma)
    return (
        f"Budgets per decision: random shooting {cfg['shooting_sequences']} sequences x {horizon} steps "
        f"(discount {discount}); CEM {cfg['cem_samples']} samples x {cfg['cem_horizon']} steps x "
        f"{cfg['cem_iterations']} iterations; MCTS {cfg['mcts_simulations']} simulations, horizon "
        f"{cfg['horizon']}."
    )


def _ci(r: dict[str, Any], digits: int = 2, signed: bool = False) -> str:
    ci = r["ci95"]
    mean = f"{r['mean']:+.{digits}f}" if signed else f"{r['mean']:.{digits}f}"
    return mean + ("" if ci != ci else f" ± {ci:.{digits}f}")
