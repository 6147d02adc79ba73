"""Imagined steps per second of the batched learned simulator, against the real vector env on the same
machine, and decisions per second of each planner.

    python benchmarks/imagined_throughput.py --model runs/wm/checkpoint.pt --device cpu --record
    python benchmarks/imagined_throughput.py --model runs/wm/checkpoint.pt --device cuda \
        --batches 4096 65536 262144 --amp both --record
    python benchmarks/imagined_throughput.py --train-steps 300   # trains a small model first

One imagined step is one call of ``ImaginedSimulator.step`` per game: the others' actions from the opponent
head, then a sampled next observation and reward. The model is a trained checkpoint (``--model``), or one
trained here for ``--train-steps`` steps on random play; with ``--untrained`` a default-sized untrained model
is timed instead, and every figure says so (its samples are not the trained model's: how many objects a
sampled observation holds changes the decoder's work). ``--amp both`` times fp32 and bf16 autocast in the
same run. Figures are medians of ``--repeats`` timed runs; --record writes the table into
benchmarks/RESULTS.md (block ``imagined_throughput_cpu`` or ``imagined_throughput_cuda``).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from recording import provenance, record

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel
from gridmarl_wm.planning import CEM, MCTS, ExactSimulator, LearnedSimulator, RandomShooting, play
from gridmarl_wm.train import TrainConfig, Trainer, model_config_for


def timed(fn, repeats: int, work: int) -> float:
    """Median of ``repeats`` runs of ``fn`` in units of ``work`` per second."""
    fn()  # warm-up
    rates = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        rates.append(work / (time.perf_counter() - t))
    return statistics.median(rates)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    p.add_argument("--steps", type=int, default=10, help="imagined steps per timed run")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--amp", choices=["none", "bf16", "both"], default="none", help="autocast on CUDA")
    p.add_argument(
        "--train-steps", type=int, default=0, help="without --model: train a model this long first"
    )
    p.add_argument("--untrained", action="store_true", help="time an untrained model (labelled as such)")
    p.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    p.add_argument("--busy", action="store_true", help="note in the record that the machine was shared")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-planners", action="store_true")
    p.add_argument("--planner-games", type=int, default=4, help="real games played in lockstep per planner")
    args = p.parse_args()
    if sum([args.model is not None, args.train_steps > 0, args.untrained]) != 1:
        p.error("give exactly one of --model PATH, --train-steps N (> 0) or --untrained")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print("command:", " ".join([sys.executable.split("/")[-1], *sys.argv]))
    dev_name = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    )
    print(f"torch {torch.__version__}, python {platform.python_version()}, device {args.device} ({dev_name})")
    game = gridmarl.make_config()
    data = collect(game, CollectConfig(steps=20, num_envs=64, seed=0))
    if args.model:
        model = WorldModel.load(args.model, map_location=args.device)
        what = f"the trained model {args.model}"
    elif args.train_steps:
        model = train_small(game, args.train_steps, args.device)
        what = f"a model trained here for {args.train_steps} steps of batch 256 on random play"
    else:
        model = WorldModel(model_config_for(game, data)).to(args.device).eval()
        model.game = game
        what = "an UNTRAINED default-sized model (figures not those of a trained model)"
    print(f"timing {what}")
    label = "" if not args.untrained else " [untrained model]"
    cuda = args.device.startswith("cuda")
    precisions = {"none": ["fp32"], "bf16": ["bf16"], "both": ["fp32", "bf16"]}[args.amp]
    if not cuda:
        precisions = ["fp32"]
    rows = []
    core = gridmarl.GridCore(game)
    for B, precision in [(B, prec) for prec in precisions for B in args.batches]:
        amp = (
            torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        )
        sim = LearnedSimulator(model, seed=0)
        state = core.reset(np.random.default_rng(0).random((B, game.n_agents + game.n_coins)))
        obs0 = torch.as_tensor(core.observe(state, (0,))[:, 0], device=args.device)
        actions = torch.randint(0, 5, (args.steps, B), device=args.device)

        def run(sim=sim, obs0=obs0, actions=actions, amp=amp):
            obs = obs0
            with amp:
                for k in range(args.steps):
                    obs, _, _ = sim.step(obs, actions[k])

        rate = timed(run, args.repeats, B * args.steps)
        rows.append(
            (f"imagined, batch {B:,}" + (" (bf16 autocast)" if precision == "bf16" else "") + label, rate)
        )
        print(f"{rows[-1][0]}: {rate:,.0f} imagined steps/s", flush=True)
    for N in (4096,):
        venv = gym.make_vec("GridMARL-v0", num_envs=N, vectorization_mode="vector_entry_point")
        venv.reset(seed=0)
        acts = np.random.default_rng(0).integers(0, 5, (100, N))

        def real(venv=venv, acts=acts):
            for a in acts:
                venv.step(a)

        rate = timed(real, args.repeats, 100 * N)
        rows.append((f"real vector env, N={N:,}, random opponents (numpy, CPU)", rate))
        print(f"{rows[-1][0]}: {rate:,.0f} steps/s", flush=True)
    if not args.no_planners:
        for name, planner in [("random shooting", RandomShooting()), ("CEM", CEM()), ("MCTS", MCTS())]:
            for sim_name, sim in [
                ("exact", ExactSimulator(game, "random")),
                ("learned", LearnedSimulator(model, seed=0)),
            ]:
                res = play(planner, sim, "random", seeds=[0], episodes=args.planner_games, game=game)
                row = f"{name}, {sim_name} simulator, {args.planner_games} games in lockstep (decisions)"
                rows.append((row + (label if sim_name == "learned" else ""), res.decisions_per_s))
                print(f"{rows[-1][0]}: {res.decisions_per_s:,.0f} decisions/s", flush=True)
    table = "\n".join(["| what | per second |", "|---|---:|", *(f"| {n} | {r:,.0f} |" for n, r in rows)])
    print()
    print(table)
    if args.record:
        note = (
            f"Timed {what}; medians of {args.repeats} runs of {args.steps} imagined steps"
            + ("; the machine was shared with other jobs while timing" if args.busy else "")
            + "."
        )
        key = "imagined_throughput_cuda" if cuda else "imagined_throughput_cpu"
        record(key, provenance(note) + "\n\n" + table, title="Imagined-step throughput")


def train_small(game, steps: int, device: str) -> WorldModel:
    """A default-sized model trained for ``steps`` steps of batch 256 on random play (in a temporary folder)."""
    import tempfile

    data = collect(game, CollectConfig(steps=400, num_envs=128, seed=0))
    torch.manual_seed(0)
    model = WorldModel(model_config_for(game, data))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(steps=steps, batch_size=256, device=device, log_every=max(1, steps // 5))
        Trainer(model, data, game, cfg, tmp).run(progress=False)
    model.game = game
    return model.eval()


if __name__ == "__main__":
    main()
