"""The world model on games whose rules differ from GridMARL's (``tests/variant_games.py``): coins that
sometimes vanish when picked, a wall that opens. Each variant's transitions train a model the same way the
real game's do; the model is then measured exhaustively against the variant's exact distribution, with
its learned constraints and without, beside a model trained on the real game (which has learned that coins
are kept and walls fixed, and so cannot fit the variant).

    python benchmarks/wm_variant_games.py                     # 3x3 games, prints the table
    python benchmarks/wm_variant_games.py --record            # and writes it into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from recording import provenance, record

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from variant_games import VARIANTS, build_table, sample_transitions, variant_tv

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel
from gridmarl_wm.model.tokens import CHANNEL_NAMES
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for


def train(game, data, steps: int, batch_size: int, seed: int, device: str) -> tuple[WorldModel, float]:
    torch.manual_seed(seed)
    model = WorldModel(model_config_for(game, data))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, seed=seed, device=device, log_every=steps)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        Trainer(model, data, game, cfg, out).run(progress=False)
    return model.cpu().eval(), time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--height", type=int, default=3)
    parser.add_argument("--width", type=int, default=3)
    parser.add_argument(
        "--q", type=float, default=0.3, help="chance that a picked coin vanishes / the wall opens"
    )
    parser.add_argument("--transitions", type=int, default=200_000, help="training transitions per game")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--starts", type=int, default=None, help="measure on this many random starts (all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    game = gridmarl.make_config(height=args.height, width=args.width)
    real_models: dict = {}  # a model of each real game (with the wall, for opening_wall), trained once

    def real_model(real_game):
        if real_game not in real_models:
            steps = max(1, args.transitions // 1024)
            real_data = collect(real_game, CollectConfig(steps=steps, num_envs=512, seed=args.seed))
            real_models[real_game] = train(
                real_game, real_data, args.steps, args.batch_size, args.seed, args.device
            )
        return real_models[real_game][0]

    rows = []
    for name in VARIANTS:
        table = build_table(name, game, q=args.q)
        data = sample_transitions(table, args.transitions, seed=args.seed)
        variant_game = table.game  # the opening wall's game has the wall
        model, seconds = train(variant_game, data, args.steps, args.batch_size, args.seed, args.device)
        learned = model.cfg.structure
        figures = {}
        real = real_model(variant_game)
        for label, m, on in (("with", model, True), ("without", model, False), ("real", real, True)):
            with m.constraints(on):
                tv = variant_tv(m, table, starts=args.starts, seed=args.seed)
            figures[label] = tv
        changed = [
            f"counts change: {', '.join(n for n, k in zip(CHANNEL_NAMES, learned.counts_kept, strict=True) if not k)}",
            f"changes: {', '.join(n for n, k in zip(CHANNEL_NAMES, learned.static, strict=True) if not k)}",
        ]
        rows.append(
            f"| {name} (q = {args.q}) | {len(figures['with']):,} of {table.n_transitions:,} | {figures['with'].mean():.4f} "
            f"(p99 {np.quantile(figures['with'], 0.99):.3f}) | {figures['without'].mean():.4f} | "
            f"{figures['real'].mean():.4f} | {'; '.join(changed)} | {seconds:.0f} s |"
        )
        print(rows[-1], flush=True)
    body = "\n".join(
        [
            provenance(
                f"{args.height}x{args.width} games, two players, one coin each; {args.transitions:,} training "
                f"transitions per game (random starts and joint actions), default model, {args.steps:,} steps "
                f"of batch {args.batch_size} on {args.device}; TV over "
                + ("every start" if args.starts is None else f"{args.starts:,} random starts")
                + " x every joint action. A shared machine: times are indicative only."
            ),
            "",
            "| variant | transitions measured (of all) | TV, learned constraints on | TV, off | TV of a model of the real "
            "game | what the learned structure lets change (channels) | training |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "The real game's model (of the same grid, with the wall for opening_wall) trained on "
            f"{args.transitions:,} transitions of random play for {args.steps:,} steps too.",
        ]
    )
    print(body)
    if args.record:
        record("wm_variant_games", body, title="World model on variant games")


if __name__ == "__main__":
    main()
