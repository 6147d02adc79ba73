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
same run (the compiled rows too); ``--compile`` adds rows for the step and the planners through
``torch.compile`` (compiled before the timed rounds; the note gives the first steps' time, compiling
included). Figures are medians of
``--repeats`` rounds, each timing every batch and the real env in turn (``benchmarks/timing.py``), and of
``--planner-rounds`` rounds, each playing every planner's games on every simulator in turn.
``--retain-memory`` times every row twice in each round: under glibc's starting malloc thresholds, then
with malloc asked to keep freed memory (``gridmarl_wm.simulation.allocator``); --record
writes the table into benchmarks/RESULTS.md (block ``imagined_throughput_cpu`` or
``imagined_throughput_cuda``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import torch
from recording import provenance, record
from timing import device_sync, imagined_run, rates, real_run, round_robin

import gridmarl
from gridmarl_wm.data import CollectConfig, collect
from gridmarl_wm.model import WorldModel
from gridmarl_wm.planning import CEM, MCTS, ExactSimulator, LearnedSimulator, RandomShooting, play
from gridmarl_wm.simulation.allocator import can_retain_freed_memory, retain_freed_memory, return_freed_memory
from gridmarl_wm.training.trainer import TrainConfig, Trainer, model_config_for

RETAINED = " (freed memory retained)"


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
    p.add_argument("--planner-seeds", type=int, default=3, help="seeds of real games per planner")
    p.add_argument("--planner-episodes", type=int, default=4, help="real games per seed (all in lockstep)")
    p.add_argument(
        "--planner-rounds", type=int, default=3, help="rounds of every planner on every simulator (median)"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time the step and the planners through torch.compile (rows that say so)",
    )
    p.add_argument(
        "--retain-memory",
        action="store_true",
        help="time every row twice in each round: under glibc's starting malloc thresholds, then after "
        "gridmarl_wm.simulation.allocator.retain_freed_memory() (rows that say so)",
    )
    args = p.parse_args()
    if sum([args.model is not None, args.train_steps > 0, args.untrained]) != 1:
        p.error("give exactly one of --model PATH, --train-steps N (> 0) or --untrained")
    if args.retain_memory and not can_retain_freed_memory():
        p.error("--retain-memory needs glibc's malloc (Linux); this C library has no such switch")
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
    amps = {"none": ["none"], "bf16": ["bf16"], "both": ["none", "bf16"]}[args.amp] if cuda else ["none"]
    rows = []
    runs = {}

    def add_step_rows(compile: bool) -> None:  # every batch under every autocast setting asked for
        for amp in amps:
            for B in args.batches:
                name = (
                    f"imagined, batch {B:,}"
                    + (", torch.compile" if compile else "")
                    + (" (bf16 autocast)" if amp == "bf16" else "")
                    + label
                )
                runs[name] = imagined_run(model, game, B, args.steps, args.device, amp, compile=compile)

    add_step_rows(compile=False)
    if not cuda:  # what the step's reused buffers buy, in the same rounds
        B = max(args.batches)
        runs[f"imagined, batch {B:,}, fresh tensors instead of reused buffers{label}"] = imagined_run(
            model, game, B, args.steps, args.device, scratch=False
        )
    compiled_note = ""
    if args.compile:  # compiled here, before the timed rounds
        start = time.perf_counter()
        warm = LearnedSimulator(model, seed=0, compile=True)
        roots, actions = warm.roots(None, data.obs[:2]), torch.zeros(2, dtype=torch.long)
        warm.step(roots, actions)  # the others' actions from the model's head
        warm.step(roots, actions, actions[:, None])  # and given (MCTS gives them)
        first = time.perf_counter() - start
        compiled_note = f"; torch.compile took {first:.1f} s over the first two steps (compiling)" + (
            ", in fp32 (the bf16 autocast graphs compile in the untimed warm-up round)"
            if "bf16" in amps
            else ""
        )
        print(f"first two compiled steps: {first:.1f} s", flush=True)
        add_step_rows(compile=True)
    N = 4096
    runs[f"real vector env, N={N:,}, random opponents (numpy, CPU)"] = real_run({}, N)

    # with --retain-memory every row runs twice in each round: under glibc's starting thresholds, then with
    # freed memory retained (the switch is made, untimed, before each run, so both see the same state of the
    # machine; return_freed_memory also hands back what is held then, so no run pays for that)
    modes = {"": return_freed_memory, RETAINED: retain_freed_memory} if args.retain_memory else {"": None}

    timed = {name + m: (fn, work) for name, (fn, work) in runs.items() for m in modes}
    switches = {name + m: switch for name in runs for m, switch in modes.items() if switch is not None}
    for name, rate in rates(timed, args.repeats, device_sync(args.device), before=switches).items():
        rows.append((name, rate))
        print(f"{name}: {rate:,.0f} steps/s", flush=True)
    if not args.no_planners:
        seeds = list(range(args.planner_seeds))
        games = len(seeds) * args.planner_episodes
        sims = {
            "exact": lambda: ExactSimulator(game, "random", seed=0),
            "learned": lambda: LearnedSimulator(model, seed=0),
        }
        if args.compile:
            sims["learned, torch.compile"] = lambda: LearnedSimulator(model, seed=0, compile=True)

        def decisions_per_s(make_planner, make_sim) -> Callable[[], float]:
            def measure() -> float:  # a fresh planner and simulator at every call: the same games and seeds
                planner, sim = make_planner(seed=0), make_sim()
                return play(planner, sim, "random", seeds, args.planner_episodes, game).decisions_per_s

            return measure

        planner_switches = {
            (sim, m): switch for sim in sims for m, switch in modes.items() if switch is not None
        }
        for name, make in [("random shooting", RandomShooting), ("CEM", CEM), ("MCTS", MCTS)]:
            measures = {
                (sim, m): decisions_per_s(make, make_sim) for sim, make_sim in sims.items() for m in modes
            }
            for (sim_name, m), rate in round_robin(measures, args.planner_rounds, planner_switches).items():
                row = f"{name}, {sim_name} simulator, {games} games in lockstep (decisions)"
                rows.append((row + (label if sim_name != "exact" else "") + m, rate))
                print(f"{rows[-1][0]}: {rows[-1][1]:,.0f} decisions/s", flush=True)
    table = "\n".join(["| what | per second |", "|---|---:|", *(f"| {n} | {r:,.0f} |" for n, r in rows)])
    print()
    print(table)
    if args.record:
        note = (
            f"Timed {what}; medians of {args.repeats} rounds, each timing every row in turn, of {args.steps} imagined steps"
            + compiled_note
            + (
                f"; every row ran twice in each round, first under glibc's starting malloc thresholds held "
                f"fixed (gridmarl_wm.simulation.allocator.return_freed_memory), then, in the rows that say{RETAINED}, with "
                "malloc keeping freed memory for reuse (retain_freed_memory), each switch made before the "
                "run's clock starts"
                if args.retain_memory
                else ""
            )
            + (
                ""
                if args.no_planners
                else f"; planners: medians of {args.planner_rounds} rounds, each playing every simulator in turn"
            )
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
