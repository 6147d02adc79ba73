"""World-model variants on the default game: train each with the same data and budget, then measure it
exhaustively against the exact rules (the notes' T1 table), plus training throughput.

    python benchmarks/wm_variants.py --steps 10000 --device cpu                 # one variant after another
    python benchmarks/wm_variants.py --steps 10000 --device cuda --parallel 8   # all at once on one GPU
    python benchmarks/wm_variants.py --throughput-only --device cuda

    python benchmarks/wm_variants.py --steps 3000 --seeds 0 1 2 3 4 --parallel 2 --threads 1 \
        --sample-states 4000 --variants "latent/concat" "latent/concat, no reward head" \
        --record wm_reward_head_ablation                                       # the 5-seed ablation
    python benchmarks/wm_variants.py --from-json runs/wm_variants/results.json  # re-aggregate, no training

Prints a markdown table of every run and, with several seeds, one row per variant aggregated over the seeds
(mean ± 95% Student-t interval); writes every figure as JSON to --out/results.json and, with --record KEY,
the tables into benchmarks/RESULTS.md under that key.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from recording import provenance, record

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.evaluate import exhaustive_metrics, exhaustive_metrics_both_ways
from gridmarl_wm.io import atomic_write_text
from gridmarl_wm.model import WorldModel
from gridmarl_wm.planning import ci95
from gridmarl_wm.training.losses import LossWeights
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for

VARIANTS = {
    "direct/concat": {"variant": "direct", "fusion": "concat"},
    "direct/film": {"variant": "direct", "fusion": "film"},
    "latent/concat": {"variant": "latent", "fusion": "concat"},
    "latent/film": {"variant": "latent", "fusion": "film"},
    "latent/concat, no reward head": {"variant": "latent", "fusion": "concat", "_reward_weight": 0.0},
    "vq/concat": {"variant": "vq", "fusion": "concat"},
    "direct/concat, agent id": {"variant": "direct", "fusion": "concat", "agent_id": True},
}


def run_variant(
    name: str,
    steps: int,
    batch_size: int,
    device: str,
    seed: int,
    runs: str,
    threads: int,
    sample_states: int | None,
) -> dict:
    torch.set_num_threads(threads)
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=2000, num_envs=512, seed=0))
    spec = dict(VARIANTS[name])
    reward_weight = spec.pop("_reward_weight", 1.0)
    torch.manual_seed(seed)
    model = WorldModel(model_config_for(game, data, **spec))
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        device=device,
        log_every=500,
        checkpoint_every=steps,
        weights=LossWeights(reward=reward_weight),
    )
    run_dir = Path(runs) / (name.replace("/", "-").replace(", ", "_").replace(" ", "-") + f"_seed{seed}")
    trainer = Trainer(model, data, game, cfg, run_dir)
    start = time.perf_counter()
    last = trainer.run(progress=False)
    train_s = time.perf_counter() - start
    without = None
    if model.can_constrain:  # with and without the learned constraints, in one pass
        report, without = exhaustive_metrics_both_ways(model, game, sample_states=sample_states, seed=seed)
        without.pop("tv")
    else:
        report = exhaustive_metrics(model, game, sample_states=sample_states, seed=seed)
    report.pop("tv")
    row = {
        "variant": name,
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "device": device,
        "train_seconds": train_s,
        "samples_per_s": steps * batch_size / train_s,
        "final_obs_nll": last.get("obs_nll"),
        **report,
        "without_constraints": without,
    }
    if model.cfg.variant == "vq":
        row["vq_codes_used"] = last.get("vq_codes_used")
    print(json.dumps(row), flush=True)
    return row


def throughput(device: str, batch_sizes: list[int], steps: int = 50, repeats: int = 5) -> list[dict]:
    """Training samples/s of the default model: median of ``repeats`` timed runs of ``steps`` steps."""
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=200, num_envs=512, seed=0))
    rows = []
    for bs in batch_sizes:
        torch.manual_seed(0)
        model = WorldModel(model_config_for(game, data))
        trainer = Trainer(
            model, data, game, TrainConfig(steps=10**9, batch_size=bs, device=device), "/tmp/wm_tp"
        )
        rates = []
        for r in range(repeats + 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            trainer.run(progress=False, stop_at=trainer.step + steps)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if r:  # the first run warms up
                rates.append(steps * bs / (time.perf_counter() - t))
        rows.append({"batch_size": bs, "device": device, "samples_per_s": statistics.median(rates)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--parallel", type=int, default=1, help="variants trained at once (processes)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--sample-states", type=int, default=None, help="evaluate on a random subset")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--throughput-batches", type=int, nargs="+", default=[512, 4096])
    parser.add_argument("--out", default="runs/wm_variants", help="results.json goes here")
    parser.add_argument("--runs", default=None, help="checkpoints and metrics of each run (default: --out)")
    parser.add_argument("--record", metavar="KEY", default=None, help="write the tables into RESULTS.md")
    parser.add_argument(
        "--from-json", default=None, help="aggregate the runs of a results.json written before (no training)"
    )
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        tables = run_table(result["variants"]) + "\n\n" + aggregate_table(result["variants"])
        print(tables)
        if args.record:
            note = f"Aggregated from {args.from_json}, written by: `{result['command']}`"
            record(args.record, provenance(note) + "\n\n" + tables, title="World-model variants")
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    header = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()}, torch {torch.__version__}, "
        + (
            torch.cuda.get_device_name()
            if args.device.startswith("cuda")
            else f"{torch.get_num_threads()} threads"
        ),
    }
    result = {**header, "throughput": throughput(args.device, args.throughput_batches)}
    for row in result["throughput"]:
        print(
            f"training throughput, batch {row['batch_size']} on {row['device']}: {row['samples_per_s']:,.0f} samples/s"
        )
    if not args.throughput_only:
        jobs = [(v, s) for v in args.variants for s in args.seeds]
        runs = args.runs or args.out
        call = [
            (v, args.steps, args.batch_size, args.device, s, runs, args.threads, args.sample_states)
            for v, s in jobs
        ]
        if args.parallel > 1:
            import multiprocessing as mp

            with ProcessPoolExecutor(args.parallel, mp_context=mp.get_context("spawn")) as pool:
                rows = list(pool.map(run_variant, *zip(*call, strict=True)))
        else:
            rows = [run_variant(*c) for c in call]
        result["variants"] = rows
    tables = "\n".join(
        f"Training throughput, batch {row['batch_size']} on {row['device']}: {row['samples_per_s']:,.0f} "
        "samples/s (median of 5 runs of 50 steps)."
        for row in result["throughput"]
    )
    if "variants" in result:
        tables += "\n\n" + run_table(result["variants"])
        if len(args.seeds) > 1:
            tables += "\n\n" + aggregate_table(result["variants"])
    print(tables)
    atomic_write_text(Path(args.out) / "results.json", json.dumps(result, indent=2, default=float))
    if args.record:
        note = (
            f"{args.parallel} run(s) at once with {args.threads} torch thread(s) each: the training seconds "
            "are not single-run figures when several share the machine."
        )
        record(args.record, provenance(note) + "\n\n" + tables, title="World-model variants")


def run_table(rows: list[dict]) -> str:
    """One markdown row per run."""
    lines = [
        "| variant | seed | TV mean | TV p99 | TV max | det. acc. | reward acc. | reward MAE | final NLL | "
        "train s | without the learned constraints: TV mean / p99 / det. acc. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        w = r.get("without_constraints")
        off = "" if not w else f"{w['tv_mean']:.4f} / {w['tv_p99']:.4f} / {100 * w['det_acc']:.2f}%"
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['tv_mean']:.4f} | {r['tv_p99']:.4f} | {r['tv_max']:.3f} | "
            f"{100 * r['det_acc']:.2f}% | {100 * r['reward_acc']:.2f}% | {r['reward_mae']:.4f} | "
            f"{r['final_obs_nll']:.4f} | {r['train_seconds']:.0f} | {off} |"
        )
    return "\n".join(lines)


AGGREGATED = ("tv_mean", "tv_p99", "tv_max", "det_acc", "reward_acc", "final_obs_nll")


def aggregate_table(rows: list[dict]) -> str:
    """One markdown row per variant: each measure's mean over the seeds ± the half-width of its 95%
    Student-t interval, and the per-seed TV means."""
    by_variant: dict[str, list[dict]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r)
    lines = [
        "| variant | seeds | " + " | ".join(AGGREGATED) + " | TV mean per seed |",
        "|---|---:|" + "---:|" * len(AGGREGATED) + "---|",
    ]
    for name, runs in by_variant.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        cells = []
        for key in AGGREGATED:
            values = np.array([r[key] for r in runs], dtype=np.float64)
            cells.append(f"{values.mean():.4g} ± {ci95(values):.2g}")
        per_seed = ", ".join(f"{r['tv_mean']:.5f}" for r in runs)
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {per_seed} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
