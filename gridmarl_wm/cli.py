"""``gridmarl-wm``: collect data, train a world model, evaluate it against the exact rules, plan with it.

gridmarl-wm collect --out runs/data.npz [--env GridMARL-v0] [--game n_agents=3 ...] [--steps 2000]
gridmarl-wm train --data runs/data.npz --out runs/wm [--variant direct] [--steps 11000] [--device cpu]
gridmarl-wm eval --model runs/wm/checkpoint.pt [--sample-states 4000] [--out runs/wm/eval.json]
gridmarl-wm demo --out runs/demo [--quick]       # all of it, then planning, with a report
gridmarl-wm view --model runs/demo/model.pt      # real and imagined play side by side (see view --help)
gridmarl-wm learn --opponent greedy --out runs/ppo  # train an agent with PPO (see learn --help)
gridmarl-wm learn-in-imagination --opponent greedy --out runs/imagined  # PPO inside the learned simulator
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gridmarl.config import PRESETS, make_config
from gridmarl_wm.io import atomic_write_text
from gridmarl_wm.simulation.allocator import RETAIN_HELP


def _game_from_args(args: argparse.Namespace):
    if args.env not in PRESETS:
        raise SystemExit(f"--env must be one of {list(PRESETS)}, got {args.env!r}")
    kwargs: dict[str, Any] = dict(PRESETS[args.env])
    for item in args.game or []:
        if "=" not in item:
            raise SystemExit(f"--game takes key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return make_config(**kwargs)


def _add_game_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="GridMARL-v0", help=f"a registered game: {', '.join(PRESETS)}")
    p.add_argument(
        "--game", action="append", metavar="KEY=VALUE", help="override a game argument (repeatable)"
    )


def cmd_collect(args: argparse.Namespace) -> None:
    from gridmarl.opponents import Opponents
    from gridmarl_wm.data import CollectConfig, collect, save

    game = _game_from_args(args)
    policy = tuple(args.policy.split(",")) if "," in args.policy else args.policy
    cfg = CollectConfig(
        steps=args.steps,
        num_envs=args.num_envs,
        policy=policy,
        switch_every=args.switch_every,
        seed=args.seed,
    )
    start = time.perf_counter()
    data = collect(game, cfg)
    from gridmarl import GridCore

    names = Opponents(GridCore(game), None, list(policy) if isinstance(policy, tuple) else policy).names
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save(args.out, data, game, cfg, names)
    print(f"collected {len(data):,} transitions in {time.perf_counter() - start:.1f}s -> {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from gridmarl_wm.data import load
    from gridmarl_wm.model import WorldModel
    from gridmarl_wm.training.distributed import end_process_group
    from gridmarl_wm.training.losses import LossWeights
    from gridmarl_wm.training.trainer import (
        TrainConfig,
        Trainer,
        architecture_defaults,
        env_threads,
        model_config_for,
        plot_losses,
    )

    env_threads()
    device = args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one process per device
        import torch.distributed as dist

        on_gpu = device.startswith("cuda")
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
        if on_gpu:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
    data, meta = load(args.data)
    game = meta["game"]
    weights = LossWeights(reward=args.reward_weight, value=args.value_weight, opponent=args.opponent_weight)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=device,
        time_budget=args.time_budget,
        weights=weights,
    )
    torch.manual_seed(args.seed)
    architecture = {
        "variant": args.variant,
        "agent_id": args.agent_id,
        "mixture_scorer": args.mixture_scorer,
        "d_model": args.d_model,
    }
    architecture |= architecture_defaults(args.variant, args.decoder, args.trunk, args.fusion)
    constraints = not args.no_constraints
    model = WorldModel(model_config_for(game, data, constraints=constraints, **architecture))
    trainer = Trainer(model, data, game, cfg, args.out, extra_config={"data": str(args.data)})
    if args.resume:
        trainer.resume()
        print(f"resumed at step {trainer.step}")
    last = trainer.run(progress=not args.no_progress)
    rank, checkpoint_path = trainer.rank, trainer.checkpoint_path
    if trainer.world > 1:
        del trainer, model  # dropped before the group goes (see end_process_group)
        end_process_group()
    if rank != 0:
        return
    plot_losses(Path(args.out) / "metrics.jsonl", Path(args.out) / "losses.png")
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in last.items()}))
    print(f"checkpoint: {checkpoint_path}; loss plot: {Path(args.out) / 'losses.png'}")


def cmd_eval(args: argparse.Namespace) -> None:
    from gridmarl_wm.evaluate import evaluation_report
    from gridmarl_wm.model import WorldModel
    from gridmarl_wm.training.trainer import env_threads

    env_threads()
    model = WorldModel.load(args.model, map_location=args.device)
    if args.no_constraints:
        model.set_constraints(False)
    start = time.perf_counter()
    report: dict[str, Any] = {"model": str(args.model)}
    report |= evaluation_report(
        model,
        model.game,
        plots=Path(args.plots) if args.plots else None,
        sample_states=args.sample_states,
        seed=args.seed,
        policy=args.policy,
        with_open_loop=not args.no_open_loop,
    )
    report["seconds"] = time.perf_counter() - start
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


def cmd_demo(args: argparse.Namespace) -> None:
    from gridmarl_wm.demo import DemoConfig, run_demo
    from gridmarl_wm.simulation import allocator
    from gridmarl_wm.training.trainer import env_threads

    if args.retain_memory:
        allocator.require_retained_memory()
    env_threads()
    overrides: dict[str, Any] = {"device": args.device, "seed": args.seed}
    if args.train_steps is not None:
        overrides["train_steps"] = args.train_steps
    cfg = DemoConfig.quick(**overrides) if args.quick else DemoConfig(**overrides)
    run_demo(args.out, cfg, progress=not args.no_progress)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridmarl-wm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="collect every player's transitions")
    _add_game_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=2000, help="steps per game")
    p.add_argument("--num-envs", type=int, default=512, help="games at once (1: serial)")
    p.add_argument("--policy", default="random", help="every player's policy, or a comma-separated list")
    p.add_argument("--switch-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="train a world model on collected data")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--variant", default="direct", choices=["direct", "latent", "vq", "autoencoder"])
    p.add_argument(
        "--fusion", default=None, choices=["concat", "film"],
        help="how the joint action enters (default: film with the mlp trunk, concat otherwise)",
    )  # fmt: skip
    p.add_argument(
        "--decoder", default=None, choices=["pointer", "mixture"],
        help="pointer: token by token; mixture: channel by channel (fast, see gridmarl_wm.model.mixture_decoder). "
        "Default: mixture for the direct variant (the main job's model), pointer for the others",
    )  # fmt: skip
    p.add_argument(
        "--mixture-scorer", type=int, default=16,
        help="--decoder mixture: width of its cell scorer, shared by every cell (0: none)",
    )  # fmt: skip
    p.add_argument(
        "--d-model", type=int, default=128,
        help="width of the heads, of the mlp and local trunks' output and of the pointer decoder's state "
        "(64: fewer multiply-adds per imagined step)",
    )  # fmt: skip
    p.add_argument(
        "--trunk",
        default=None,
        choices=["conv", "mlp", "local"],
        help="mlp and local need --decoder mixture (default: mlp with the mixture decoder, conv otherwise)",
    )
    p.add_argument("--agent-id", action="store_true", help="give the opponent head the player index")
    defaults = __import__("gridmarl_wm.training.trainer", fromlist=["TrainConfig"]).TrainConfig()
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--reward-weight", type=float, default=1.0)
    p.add_argument("--value-weight", type=float, default=0.1)
    p.add_argument("--opponent-weight", type=float, default=0.1)
    p.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument(
        "--no-constraints",
        action="store_true",
        help="train without the constraints learned from the data (they are still stored)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="exhaustive TV, deterministic and reward accuracy (full-view games)")
    p.add_argument("--model", required=True)
    p.add_argument("--sample-states", type=int, default=None, help="a random subset of reachable states")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--policy", default="random", help="the others' policy in held-out and open-loop data")
    p.add_argument("--no-open-loop", action="store_true")
    p.add_argument(
        "--no-constraints",
        action="store_true",
        help="decode without the model's learned constraints (the exhaustive check is reported both ways)",
    )
    p.add_argument(
        "--plots", default=None, help="write tv_histogram.png, open_loop.png, predictions.png here"
    )
    p.add_argument("--out", default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "demo", help="the main job: collect, train, evaluate and plan on the default game, with a report"
    )
    p.add_argument("--out", required=True, help="writes model.pt, report.json, report.md and plots here")
    p.add_argument("--quick", action="store_true", help="a smoke-test budget (under a minute)")
    p.add_argument("--train-steps", type=int, default=None, help="override the training steps")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retain-memory", action="store_true", help=RETAIN_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)
    sub.add_parser("view", help="real and imagined play side by side (options: gridmarl-wm view --help)")
    from gridmarl_wm.agents.cli import add_imagination_parser, add_learn_parser

    add_learn_parser(sub, _add_game_args)
    add_imagination_parser(sub, _add_game_args)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["view"]:  # the viewer has its own options: gridmarl-wm view --help
        from gridmarl_wm.viewing.viewer import main_view

        rc = main_view(argv[1:])
        if rc:
            raise SystemExit(rc)
        return
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"gridmarl-wm {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
