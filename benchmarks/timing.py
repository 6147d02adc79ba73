"""One definition of imagined and real steps per second, shared by the benchmarks that report them.

An imagined step is one call of ``ImaginedSimulator.step`` per game: the others' actions from the opponent
head, then a sampled next observation and reward. A real step is one step of the ``GridMARL-v0`` vector env
(numpy, random opponents). :func:`rates` times several such runs round-robin, one of each per round, so that
runs compared in one table see the same state of the machine (on a shared machine the speed of the same
code drifts over minutes); each figure is the median of its rounds. :func:`round_robin` does the same for
any measure, such as a planner's decisions per second.

Benchmarks run as ``python benchmarks/NAME.py``, so they import this module as ``timing``.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Hashable

import numpy as np
import torch

import gridmarl
from gridmarl_wm.model.mixture_decoder import fresh_tensors
from gridmarl_wm.simulation.imagine import ImaginedSimulator

Run = tuple[Callable[[], None], int]  # a run and the steps it makes


def round_robin(
    measures: dict[Hashable, Callable[[], float]],
    rounds: int,
    before: dict[Hashable, Callable[[], None]] | None = None,
) -> dict[Hashable, float]:
    """The median of ``rounds`` values of every measure; each round calls each measure once, in turn.
    ``before`` maps a measure's name to what runs right before each of its calls, outside it (such as a
    switch of the allocator)."""
    before = before or {}
    values: dict[Hashable, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            before.get(name, lambda: None)()
            values[name].append(measure())
    return {name: statistics.median(v) for name, v in values.items()}


def rates(
    runs: dict[str, Run],
    repeats: int,
    sync: Callable[[], None] = lambda: None,
    before: dict[str, Callable[[], None]] | None = None,
) -> dict[str, float]:
    """Steps per second of every run, the median of ``repeats`` rounds (:func:`round_robin`, ``before``
    as it takes it: untimed), after one untimed warm-up round."""
    before = before or {}
    for name, (fn, _) in runs.items():
        before.get(name, lambda: None)()
        fn()

    def timed(fn: Callable[[], None], work: int) -> Callable[[], float]:
        def measure() -> float:
            sync()
            start = time.perf_counter()
            fn()
            sync()
            return work / (time.perf_counter() - start)

        return measure

    return round_robin({name: timed(fn, work) for name, (fn, work) in runs.items()}, repeats, before)


def imagined_run(
    model,
    game,
    batch: int,
    steps: int,
    device: str,
    amp: str = "none",
    scratch: bool = True,
    compile: bool = False,
) -> Run:
    """``steps`` imagined steps of ``batch`` games started from real first observations, with random own
    actions; ``amp="bf16"`` runs under bf16 autocast on CUDA; without ``scratch`` the step allocates fresh
    tensors where it would reuse its buffers (``gridmarl_wm.model.mixture_decoder.fresh_tensors``); ``compile``
    steps through ``torch.compile`` (compiled by :func:`rates`' warm-up round, which is not timed)."""
    core = gridmarl.GridCore(game)
    state = core.reset(np.random.default_rng(0).random((batch, game.n_agents + game.n_coins)))
    obs0 = torch.as_tensor(core.observe(state, (0,))[:, 0], device=device)
    actions = torch.randint(0, 5, (steps, batch), generator=torch.Generator().manual_seed(0)).to(device)
    sim = ImaginedSimulator(model, generator=torch.Generator(device=device).manual_seed(0), compile=compile)
    cuda = torch.device(device).type == "cuda"
    bf16 = amp == "bf16" and cuda

    def run() -> None:
        obs = obs0
        with (
            torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext(),
            contextlib.nullcontext() if scratch else fresh_tensors(),
        ):
            for k in range(steps):
                obs, _, _ = sim.step(obs, actions[k])

    return run, batch * steps


def real_run(game_kwargs: dict, batch: int, steps: int = 50) -> Run:
    """``steps`` steps of the real vector env of ``batch`` games (random own actions and opponents)."""
    import gymnasium as gym

    venv = gym.make_vec("GridMARL-v0", num_envs=batch, vectorization_mode="vector_entry_point", **game_kwargs)
    venv.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, 5, (steps, batch))

    def run() -> None:
        for a in acts:
            venv.step(a)

    return run, batch * steps


def device_sync(device: str) -> Callable[[], None]:
    """What waits for a device's queued work before a clock is read (nothing on a CPU)."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
