"""Environment throughput: steps per second of every gridmarl env, and of other environments if installed.

    python benchmarks/env_throughput.py            # print the table
    python benchmarks/env_throughput.py --record   # and write it into benchmarks/RESULTS.md

Each figure is the median of ``--repeats`` timed runs after a warm-up. Vector figures count env-steps
(games advanced), i.e. num_envs per call. Actions are drawn in advance so that only the env is timed.
Other environments (MiniGrid, lbforaging, MPE2 simple_spread) are measured the same way when their packages
are importable (``pip install minigrid lbforaging mpe2``), so the comparison is made on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from recording import provenance, record

import gridmarl


def median_rate(run: Callable[[int], None], steps: int, repeats: int, per_call: int = 1) -> float:
    """Median steps/s of ``run(steps)`` over ``repeats`` runs, after one warm-up run."""
    run(max(1, steps // 10))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        rates.append(steps * per_call / (time.perf_counter() - start))
    return statistics.median(rates)


def parallel_env_runner(**kwargs) -> Callable[[int], None]:
    env = gridmarl.parallel_env(**kwargs)
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, 5, (4096, env.config.n_agents)).tolist()
    agents = env.possible_agents

    def run(steps: int) -> None:
        for i in range(steps):
            if not env.agents:
                env.reset()
            env.step(dict(zip(agents, acts[i % 4096], strict=True)))

    return run


def gym_env_runner(env: gym.Env) -> Callable[[int], None]:
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, env.action_space.n, 4096).tolist()

    def run(steps: int) -> None:
        for i in range(steps):
            if env.step(acts[i % 4096])[3]:
                env.reset()

    return run


def vector_runner(num_envs: int, **kwargs) -> Callable[[int], None]:
    venv = gym.make_vec("GridMARL-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    venv.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, 5, (64, num_envs))

    def run(steps: int) -> None:
        for i in range(steps):
            venv.step(acts[i % 64])

    return run


def other_envs(repeats: int) -> list[tuple[str, float]]:
    rows = []
    try:
        import minigrid  # noqa: F401

        env = gym.make("MiniGrid-Empty-8x8-v0")
        rows.append(
            ("MiniGrid-Empty-8x8-v0 (gym.make)", median_rate(_terminating_runner(env), 20_000, repeats))
        )
    except ImportError:
        pass
    try:
        import lbforaging  # noqa: F401

        env = gym.make("Foraging-8x8-2p-2f-v3")
        env.reset(seed=0)
        spaces = env.action_space

        def run_lbf(steps: int) -> None:
            for _ in range(steps):
                _, _, done, trunc, _ = env.step(spaces.sample())
                if done or trunc:
                    env.reset()

        rows.append(("lbforaging Foraging-8x8-2p-2f-v3", median_rate(run_lbf, 20_000, repeats)))
    except (ImportError, gym.error.Error):
        pass
    try:
        from mpe2 import simple_spread_v3

        env = simple_spread_v3.parallel_env()
        env.reset(seed=0)

        def run_mpe(steps: int) -> None:
            for _ in range(steps):
                if not env.agents:
                    env.reset()
                env.step({a: env.action_space(a).sample() for a in env.agents})

        rows.append(("MPE2 simple_spread_v3 (parallel)", median_rate(run_mpe, 5_000, repeats)))
    except ImportError:
        pass
    return rows


def _terminating_runner(env: gym.Env) -> Callable[[int], None]:
    env.reset(seed=0)
    n = env.action_space.n
    acts = np.random.default_rng(0).integers(0, n, 4096).tolist()

    def run(steps: int) -> None:
        for i in range(steps):
            _, _, term, trunc, _ = env.step(acts[i % 4096])
            if term or trunc:
                env.reset()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    parser.add_argument("--no-others", action="store_true", help="skip other environments")
    args = parser.parse_args()

    rows: list[tuple[str, float]] = []
    rows.append(
        ("gridmarl ParallelEnv, default game", median_rate(parallel_env_runner(), 50_000, args.repeats))
    )
    rows.append(
        (
            "gridmarl ParallelEnv, 8x8 4 players view 3",
            median_rate(
                parallel_env_runner(height=8, width=8, n_agents=4, view_size=3), 30_000, args.repeats
            ),
        )
    )
    for opponent in ("random", "greedy"):
        env = gym.make("GridMARL-v0", opponent=opponent)
        rows.append(
            (
                f"gridmarl gym.make('GridMARL-v0', opponent='{opponent}')",
                median_rate(gym_env_runner(env), 30_000, args.repeats),
            )
        )
        rows.append(
            (
                f"gridmarl GridMARLEnv (unwrapped), opponent='{opponent}'",
                median_rate(gym_env_runner(env.unwrapped), 30_000, args.repeats),
            )
        )
    for n in (1024, 4096, 16384):
        rows.append(
            (
                f"gridmarl vector env N={n}, random opponents",
                median_rate(vector_runner(n), max(20, 400_000 // n * 4), args.repeats, per_call=n),
            )
        )
    rows.append(
        (
            "gridmarl vector env N=4096, greedy opponents",
            median_rate(vector_runner(4096, opponent="greedy"), 100, args.repeats, per_call=4096),
        )
    )
    if not args.no_others:
        rows += other_envs(args.repeats)

    import pettingzoo  # noqa: F401  (its version goes into the record)

    header = [
        provenance(f"Median of {args.repeats} runs."),
        "",
        "| env | steps/s |",
        "|---|---:|",
    ]
    table = "\n".join(header + [f"| {name} | {rate:,.0f} |" for name, rate in rows])
    print(table)
    if args.record:
        record("env_throughput", table, title="Environment throughput")


if __name__ == "__main__":
    main()
