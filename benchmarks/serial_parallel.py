"""Serial vs parallel data collection and batch size: do the training curves coincide?

    python benchmarks/serial_parallel.py --out docs/serial_parallel.png --record

The same number of transitions of random play is collected once with 128 games at a time (parallel) and
once with one game (serial); a world model trains on each at two batch sizes, same seed and steps. The
script prints the data's per-episode return and the final losses as tables, plots the loss curves (log
scale) and, with --record, writes the tables into benchmarks/RESULTS.md (block ``serial_parallel``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from recording import provenance, record

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.io import atomic_write
from gridmarl_wm.model import WorldModel
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for


def episode_returns(data) -> np.ndarray:
    mine = data.agent == 0
    ep = data.episode[mine]
    return np.bincount(ep, weights=data.reward[mine])[np.unique(ep)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    p.add_argument("--transitions", type=int, default=51_200, help="game steps collected each way")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="docs/serial_parallel.png")
    p.add_argument("--record", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("command:", " ".join([sys.executable.split("/")[-1], *sys.argv]))
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}")
    game = gridmarl.make_config()
    data = {
        "parallel (128 games)": collect(
            game, CollectConfig(steps=args.transitions // 128, num_envs=128, seed=0)
        ),
        "serial (1 game)": collect(game, CollectConfig(steps=args.transitions, num_envs=1, seed=0)),
    }
    lines = [
        "| data | transitions | episodes | player_0's return per episode (mean ± sd) |",
        "|---|---:|---:|---:|",
    ]
    for name, d in data.items():
        r = episode_returns(d)
        print(f"{name}: {len(d):,} transitions, player_0's return per episode {r.mean():.3f} ± {r.std():.3f}")
        lines.append(f"| {name} | {len(d):,} | {len(r):,} | {r.mean():.3f} ± {r.std():.3f} |")
    lines += ["", "| data, batch | final obs NLL | final reward loss |", "|---|---:|---:|"]
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, d in data.items():
            for bs in args.batches:
                torch.manual_seed(0)
                model = WorldModel(model_config_for(game, d))
                run = Path(tmp) / f"{name[:6]}_{bs}"
                cfg = TrainConfig(
                    steps=args.steps, batch_size=bs, seed=0, log_every=25, checkpoint_every=args.steps
                )
                last = Trainer(model, d, game, cfg, run).run(progress=False)
                rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
                curves[f"{name}, batch {bs}"] = rows
                print(
                    f"{name}, batch {bs}: final obs NLL {last['obs_nll']:.4f}, reward loss {last['reward']:.5f}"
                )
                lines.append(f"| {name}, batch {bs} | {last['obs_nll']:.4f} | {last['reward']:.5f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    styles = ["-", "--"]
    for i, (label, rows) in enumerate(curves.items()):
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes, ("obs_nll", "reward"), strict=True):
            ax.plot(steps, [r[key] for r in rows], styles[i // len(args.batches)], label=label, lw=1.3)
    for ax, title in zip(axes, ("next-observation NLL (nats)", "reward loss"), strict=True):
        ax.set(yscale="log", xlabel="training step", title=title)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle("Serial and parallel collection train alike (solid: parallel, dashed: serial)", fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda f: fig.savefig(f, format="png"))
    print(f"wrote {args.out}")
    table = "\n".join(lines)
    print(table)
    if args.record:
        note = f"{args.steps} training steps per run, seed 0; the loss curves are in `{args.out}`."
        record("serial_parallel", provenance(note) + "\n\n" + table, title="Serial vs parallel collection")


if __name__ == "__main__":
    main()
