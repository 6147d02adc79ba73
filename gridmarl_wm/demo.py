"""The main job: collect -> train -> evaluate -> plan on the default game, with a report.

``gridmarl-wm demo --out DIR`` writes ``DIR/model.pt`` (loadable with ``WorldModel.load``),
``DIR/report.json`` (every metric computed), ``DIR/report.md`` (the same as tables, also printed) and
the plots (``losses.png``, ``tv_histogram.png``, ``open_loop.png``, ``predictions.png``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from gridmarl import make_config
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.evaluate import evaluation_report
from gridmarl_wm.io import atomic_copy, atomic_write_text
from gridmarl_wm.model import WorldModel
from gridmarl_wm.opponent_model import fit_observation_heads
from gridmarl_wm.planning import (
    CEM,
    MCTS,
    ExactSimulator,
    LearnedSimulator,
    RandomShooting,
    ScriptedEgo,
    model_gap,
    play,
)
from gridmarl_wm.train import TrainConfig, Trainer, model_config_for, plot_losses


@dataclass(frozen=True)
class DemoConfig:
    """Budgets of the main job (the defaults take about 12 minutes on two CPU cores)."""

    collect_steps: int = 2000
    collect_envs: int = 512
    train_steps: int = 6000
    batch_size: int = 512
    sample_states: int | None = None  # None: every reachable state
    open_loop_episodes: int = 256
    opponents: tuple[str, ...] = ("random", "greedy", "switching")
    head_steps: int = 600  # refitting the opponent and value heads to each opponent
    seeds: int = 5
    episodes: int = 2
    shooting_sequences: int = 64
    cem_samples: int = 32
    mcts_simulations: int = 64
    horizon: int = 6
    device: str = "cpu"
    seed: int = 0

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
            mcts_simulations=16,
            horizon=3,
        )
        return replace(small, **overrides)


def planners(cfg: DemoConfig) -> dict[str, Any]:
    """The planners the demo runs, with its budgets."""
    h = cfg.horizon
    return {
        "random shooting": RandomShooting(cfg.shooting_sequences, h, seed=cfg.seed),
        "CEM": CEM(cfg.cem_samples, h, iterations=3, seed=cfg.seed),
        "MCTS": MCTS(cfg.mcts_simulations, h, parallel=min(16, cfg.mcts_simulations), seed=cfg.seed),
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
    model = WorldModel(model_config_for(game, data))
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
    """Every planner against every opponent, planning in the learned and in the exact simulator."""
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    results: dict[str, Any] = {}
    for opp in cfg.opponents:
        _stage(f"planning against {opp!r} opponents", start)
        # the opponent model learns how these opponents play, from player_0's view of 64 games
        vs = collect(game, CollectConfig(steps=200, num_envs=64, policy=("random", opp), seed=cfg.seed + 2))
        fitted = fit_observation_heads(model, vs, steps=cfg.head_steps, agent=0, seed=cfg.seed)
        row: dict[str, Any] = {
            "greedy ego (no planning)": play(
                ScriptedEgo("greedy", game, seed=cfg.seed), None, opp, seeds, cfg.episodes, game
            ).as_dict()
        }
        for name, planner in planners(cfg).items():
            learned = play(planner, LearnedSimulator(fitted, seed=cfg.seed), opp, seeds, cfg.episodes, game)
            exact = play(planner, ExactSimulator(game, opp, seed=cfg.seed), opp, seeds, cfg.episodes, game)
            gap, gap_ci95 = model_gap(learned.seed_means, exact.seed_means)
            row[name] = {
                "learned": learned.as_dict(),
                "exact": exact.as_dict(),
                "gap": gap,
                "gap_ci95": gap_ci95,
            }
        results[opp] = row
    return results


def report_markdown(report: dict[str, Any]) -> str:
    """The report's headline figures as markdown tables."""
    lines = ["# gridmarl-wm demo report", ""]
    ex = report.get("exhaustive")
    if ex:
        lines += [
            f"Exhaustive check over {ex['n_transitions']:,} transitions ({ex['n_states']:,} states x 25 joint "
            "actions):",
            "",
            "| TV mean | TV p99 | TV max | deterministic acc. | reward acc. | reward MAE |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {ex['tv_mean']:.4f} | {ex['tv_p99']:.4f} | {ex['tv_max']:.3f} | "
            f"{100 * ex['det_acc']:.2f}% | {100 * ex['reward_acc']:.2f}% | "
            f"{ex['reward_mae']:.4f} |",
            "",
        ]
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
        lines += [
            "Real-env return per episode (mean ± 95% CI over seeds), planning with the learned simulator and "
            "with the exact one (true opponent policy); gap = mean learned return / mean exact return "
            "(gridmarl_wm.planning.model_gap, ± its 95% delta-method interval over seeds):",
            "",
            "| opponent | planner | learned | exact | gap |",
            "|---|---|---:|---:|---:|",
        ]
        for opp_name, row in plan.items():
            for name, r in row.items():
                if "learned" not in r:
                    lines.append(f"| {opp_name} | {name} | {_ci(r)} | | |")
                    continue
                lines.append(
                    f"| {opp_name} | {name} | {_ci(r['learned'])} | {_ci(r['exact'])} | "
                    f"{_ci({'mean': r['gap'], 'ci95': r.get('gap_ci95', float('nan'))})} |"
                )
        lines.append("")
    if "seconds" in report:
        lines += [f"Total time: {report['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def _ci(r: dict[str, Any]) -> str:
    ci = r["ci95"]
    return f"{r['mean']:.2f}" + ("" if ci != ci else f" ± {ci:.2f}")
