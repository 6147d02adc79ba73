"""``gridmarl-wm learn``: train an agent with PPO and write ``OUT/policy.pt``, ``metrics.jsonl``, plots.

gridmarl-wm learn --opponent greedy --out runs/ppo                # player_0 against greedy opponents
gridmarl-wm learn --opponent self --algorithm mappo --moa --out runs/mappo   # every player learns
gridmarl-wm learn --out runs/ppo --resume                         # continue exactly where it stopped
torchrun --nproc-per-node 2 -m gridmarl_wm.cli learn ...          # data-parallel, same result as one process
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from gridmarl_wm.agents.ppo import PRECISIONS, PPOConfig
from gridmarl_wm.simulation.allocator import RETAIN_HELP

_PPO_FLAGS = (
    "total_steps", "rollout_steps", "epochs", "minibatch_size", "lr", "lr_final", "gamma", "gae_lambda",
    "clip", "value_coef", "entropy_coef", "moa_coef", "goal_coef", "max_grad_norm", "seed", "log_every",
    "checkpoint_every", "time_budget", "precision",
)  # fmt: skip


_RUN_FLAGS = ("opponent", "algorithm", "num_envs", "groups", "switch_every")
_POLICY_FLAGS = ("hidden", "layers", "history", "player_id", "moa", "moa_agent_id", "goal")


def _saved_settings(path: Path, args: argparse.Namespace, game: Any, settings: dict[str, Any]):
    """With ``--resume``: the run's saved game and settings; a flag given with another value is refused."""
    from gridmarl_wm.agents.checkpoint import read_policy_file
    from gridmarl_wm.model.checkpoint import game_from_dict

    data = read_policy_file(path)
    saved = {**data["ppo_config"], **data["meta"], **data["policy_config"]}
    saved["groups"] = data["meta"].get("groups")
    parser_defaults = vars(_defaults_parser().parse_args(["--out", "x"]))
    for name, value in settings.items():
        if name in saved and value != parser_defaults[name] and value != saved[name]:
            flag = "--steps" if name == "total_steps" else "--" + name.replace("_", "-")
            raise ValueError(
                f"{flag} {value!r} does not match the run in {path} ({saved[name]!r}); drop it to resume"
            )
        if name in saved:
            settings[name] = saved[name]
    settings["algorithm"] = data["meta"]["algorithm"]
    stored = game_from_dict(data["game"])
    if (args.env != "GridMARL-v0" or args.game) and game != stored:
        raise ValueError(
            f"--env/--game give {game}, but the run in {path} plays {stored}; drop them to resume"
        )
    return stored, settings


def _set_threads(torch: Any, threads: int | None) -> None:
    """torch's thread count: ``threads``, or the cores this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    torch.set_num_threads(threads or usable)


def _defaults_parser() -> argparse.ArgumentParser:
    from gridmarl_wm.cli import _add_game_args

    sub = argparse.ArgumentParser().add_subparsers()
    add_learn_parser(sub, _add_game_args)
    return sub.choices["learn"]


def add_learn_parser(sub: Any, add_game_args: Any) -> None:
    """Add the ``learn`` subcommand to ``gridmarl-wm``'s subparsers."""
    p = sub.add_parser(
        "learn", help="train an agent with PPO (one ego vs opponents, or every player: --opponent self)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_game_args(p)
    p.add_argument("--out", required=True, help="writes policy.pt, metrics.jsonl, returns.png, eval.json")
    p.add_argument(
        "--opponent", default="random",
        help="random, greedy, selfish, stay, switching, a comma-separated list (one per opponent), a "
        "policy.pt (or its folder), or 'self': every player learns with shared parameters",
    )  # fmt: skip
    p.add_argument(
        "--algorithm", default="ppo", help="ppo (each learner's own value) or mappo (central critic)"
    )
    p.add_argument("--num-envs", type=int, default=1024, help="games at once, over all processes")
    p.add_argument("--groups", type=int, default=None, help="generator groups (default: one per process)")
    p.add_argument("--switch-every", type=int, default=10)
    defaults = PPOConfig()
    for name in _PPO_FLAGS:
        value = getattr(defaults, name)
        flag = "--steps" if name == "total_steps" else "--" + name.replace("_", "-")
        if isinstance(value, str):
            choices = PRECISIONS if name == "precision" else None
            p.add_argument(flag, dest=name, default=value, choices=choices, help=f"default {value}")
            continue
        kind = float if isinstance(value, float) or value is None else int
        p.add_argument(flag, dest=name, type=kind, default=value, help=f"default {value}")
    p.add_argument("--hidden", type=int, default=256, help="width of the policy/value trunk")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--history", type=int, default=1, help="observations stacked as the input")
    p.add_argument("--player-id", action="store_true", help="the player's index as an input")
    p.add_argument("--moa", action="store_true", help="a model of the others' actions, fed to the policy")
    p.add_argument("--moa-agent-id", action="store_true", help="give the MOA the agent's index")
    p.add_argument("--goal", default=None, help="infer the others' goals: discrete or continuous")
    p.add_argument("--eval-episodes", type=int, default=4, help="per seed (5 seeds) after training; 0: none")
    p.add_argument("--device", default="cpu", help="where the network learns (the games run on the CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable cores)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/policy.pt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_learn)


def cmd_learn(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from gridmarl_wm.agents.learn import make_trainer
    from gridmarl_wm.agents.plots import plot_learning
    from gridmarl_wm.cli import _game_from_args
    from gridmarl_wm.training.distributed import end_process_group

    _set_threads(torch, args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: one process per share of games
        if args.device != "cpu":
            raise ValueError(f"--device {args.device}: data-parallel training runs on CPU processes (gloo)")
        dist.init_process_group(backend="gloo")
    out = Path(args.out)
    if (out / "policy.pt").exists() and not args.resume:
        raise ValueError(
            f"--out {out} already holds policy.pt: pass --resume to continue it, or another --out"
        )
    settings = {name: getattr(args, name) for name in (*_PPO_FLAGS, *_RUN_FLAGS, *_POLICY_FLAGS)}
    game = _game_from_args(args)
    if args.resume:
        game, settings = _saved_settings(out / "policy.pt", args, game, settings)
    known = {f.name for f in fields(PPOConfig)}
    ppo = PPOConfig(**{k: settings[k] for k in _PPO_FLAGS if k in known})
    trainer = make_trainer(
        out, game=game, ppo=ppo, device=args.device, **{k: settings[k] for k in (*_RUN_FLAGS, *_POLICY_FLAGS)}
    )
    if args.resume:
        trainer.resume()
        print(f"resumed at iteration {trainer.iteration} ({trainer.env_steps:,} env steps)")
    last = trainer.run(progress=not args.no_progress)
    rank, checkpoint_path, elapsed = trainer.rank, trainer.checkpoint_path, trainer.elapsed
    if trainer.world > 1:
        del trainer  # dropped before the group goes (see end_process_group)
        end_process_group()
    if rank != 0:
        return
    try:
        plot_learning(out / "metrics.jsonl", out / "returns.png")
    except ValueError as err:  # too short a run to finish an episode
        print(f"no learning-curve plot: {err}")
    if last:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()}))
    print(f"policy: {checkpoint_path}; metrics: {out / 'metrics.jsonl'}")
    opponent_spec = settings["opponent"]
    if args.eval_episodes > 0 and opponent_spec != "self":
        from gridmarl_wm.agents.checkpoint import load_policy
        from gridmarl_wm.agents.evaluate import policy_returns
        from gridmarl_wm.agents.learn import resolve_opponent

        policy = load_policy(checkpoint_path, game=game)
        opponent = resolve_opponent(opponent_spec, game)
        result = policy_returns(
            policy, opponent, episodes=args.eval_episodes, game=game, switch_every=args.switch_every
        )
        report = {"opponent": opponent_spec, **result.as_dict(), "train_seconds": elapsed}
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        print(
            f"real-env return per episode against {opponent_spec}: {result.mean:.2f} ± {result.ci95:.2f} "
            f"(5 seeds × {args.eval_episodes} episodes, 95% t interval); trained {elapsed:.0f} s"
        )


def add_imagination_parser(sub: Any, add_game_args: Any) -> None:
    """Add the ``learn-in-imagination`` subcommand to ``gridmarl-wm``'s subparsers."""
    from gridmarl_wm.agents.imagination import SIMULATORS, ImaginationConfig

    p = sub.add_parser(
        "learn-in-imagination",
        help="train an agent inside the learned simulator, counting every real step (see --help)",
        description=(
            "Collect real play with the current policy, fit the world model to all the real data so far, "
            "train the policy with PPO on imagined games started from real observations; repeat. Writes "
            "OUT/policy.pt, OUT/imagination.jsonl (real steps, imagined steps and the real-env return after "
            "every outer iteration), OUT/imagination.json and the model's runs in OUT/model. "
            "--simulator exact runs the same loop in the rules with the true opponents (the control)."
        ),
    )  # fmt: skip
    add_game_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--opponent", default="greedy", help="player_0's opponents, as for learn")
    p.add_argument("--simulator", default="learned", choices=list(SIMULATORS))
    for f in fields(ImaginationConfig):  # every budget and the seed: ints
        if f.name != "simulator":
            p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=int, default=f.default,
                           help=f"default {f.default}")  # fmt: skip
    p.add_argument(
        "--model",
        default="{}",
        help="WorldModelConfig fields as JSON; a decoder, trunk or fusion left out is the main job's "
        'model\'s (the mixture decoder on an MLP trunk with FiLM), e.g. \'{"decoder": "pointer"}\'',
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the usable cores)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    p.add_argument(
        "--compile",
        action="store_true",
        help="step the imagined games through torch.compile (the learned simulator, mixture decoder)",
    )
    p.add_argument(
        "--retain-memory",
        action="store_true",
        help=RETAIN_HELP,
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_learn_in_imagination)


def cmd_learn_in_imagination(args: argparse.Namespace) -> None:
    import torch

    from gridmarl_wm.agents.imagination import STATE_FILE, ImaginationConfig, learn_in_imagination
    from gridmarl_wm.cli import _game_from_args
    from gridmarl_wm.simulation import allocator

    _set_threads(torch, args.threads)
    if args.retain_memory:
        allocator.require_retained_memory()
    try:
        overrides = json.loads(args.model)
    except json.JSONDecodeError:
        overrides = None
    if not isinstance(overrides, dict):
        raise ValueError(f"--model must be a JSON object of WorldModelConfig fields, got {args.model!r}")
    cfg = ImaginationConfig(**{f.name: getattr(args, f.name) for f in fields(ImaginationConfig)})
    out = Path(args.out)
    if (out / STATE_FILE).exists() and not args.resume:
        raise ValueError(f"--out {out} already holds a run: pass --resume to continue it, or another --out")
    lines = learn_in_imagination(
        out, game=_game_from_args(args), opponent=args.opponent, cfg=cfg, model_overrides=overrides,
        progress=not args.no_progress, resume=args.resume, compile=args.compile,
    )  # fmt: skip
    for line in lines:
        print(
            f"{line['real_steps']:>9,} real steps, {line['imagined_steps']:>11,} imagined: real-env return "
            f"{line['return_mean']:.2f} ± {line['return_ci95']:.2f}"
        )
    print(f"policy: {out / 'policy.pt'}; per iteration: {out / 'imagination.jsonl'}")
