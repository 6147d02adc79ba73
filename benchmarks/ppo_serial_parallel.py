"""Parallel vs serial PPO at equal rollout size: does parallel training stall (the notes' "reward stalls at
about 4")?

    python benchmarks/ppo_serial_parallel.py --parallel 14 --json runs/serial_parallel.json   # measure
    python benchmarks/ppo_serial_parallel.py --from-json runs/serial_parallel.json --record   # plot, record

The notes' setting: both players learn (self-play, shared parameters) with a model of the other's actions
(MOA), rollouts of 4,000 transitions = games × 2 players × steps, so 1 game × 2,000 steps (serial), 4 × 500
(the notes' parallel setting) and 16 × 125, with episodes of 500 steps (``max_steps=500``: the notes' 500
is the episode length) and minibatches of 512 and 800; every other hyper-parameter the same. Each run
trains ``--steps`` game steps; the return per player per 500-step episode is averaged in bins of game
steps; curves and the table give the mean over seeds with 95% t intervals.

Besides the correct runs, three variants test candidate causes of a stall that only parallel runs show:
no bootstrap at the 500-step truncation, and GAE computed on a rollout whose time and game axes are
swapped (a layout bug that is harmless with one game and mixes games' trajectories with several).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import code_version, provenance, record

from gridmarl_wm.planning import ci95

ROLLOUT = 4000


def swapped_axes_gae(gae):
    """A layout bug: the (T, B) rollout is read as if it were stored (B, T) before GAE, and written back
    the same way. With B = 2 learners of one game the players' streams mix; with several games, games do."""

    def wrong(rewards, values, dones, last_value, gamma, lam):
        T, B = rewards.shape

        def garble(x):
            return x.T.reshape(T, B)

        def ungarble(x):
            return x.reshape(B, T).T

        adv, _ = gae(garble(rewards), garble(values), garble(dones), last_value, gamma, lam)
        adv = ungarble(adv)
        return adv, adv + values

    return wrong


def one_run(spec: dict) -> dict:
    import torch

    if spec.get("core") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["core"]})
    torch.set_num_threads(1)
    from gridmarl_wm.agents import PPOConfig, make_trainer
    from gridmarl_wm.agents import ppo as ppo_module

    if spec["variant"] == "swapped axes in GAE":
        ppo_module.gae = swapped_axes_gae(ppo_module.gae)
    n = spec["games"]
    cfg = PPOConfig(
        total_steps=spec["steps"], rollout_steps=ROLLOUT // (2 * n), epochs=4, minibatch_size=spec["minibatch"],
        lr=1e-3, lr_final=1e-3, gamma=0.99, gae_lambda=0.95, entropy_coef=0.01, seed=spec["seed"],
        log_every=1, checkpoint_every=10**9, bootstrap_truncation=spec["variant"] != "no truncation bootstrap",
    )  # fmt: skip
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(
            tmp, game={"max_steps": 500}, opponent="self", num_envs=n, ppo=cfg, moa=True, hidden=64
        )
        trainer.run(progress=False)
        rows = [json.loads(line) for line in Path(tmp, "metrics.jsonl").read_text().splitlines()]
    curve = [(r["env_steps"], r["episode_return"], r["episodes"]) for r in rows if "episode_return" in r]
    return {
        **spec,
        "curve": curve,
        "seconds": time.perf_counter() - start,
        "moa_accuracy": rows[-1].get("moa_accuracy"),
    }


def binned(curve: list, edges: np.ndarray) -> np.ndarray:
    """Episode-weighted mean return in each bin of game steps (NaN where no episode ended)."""
    out = np.full(len(edges) - 1, np.nan)
    steps = np.array([c[0] for c in curve])
    ret = np.array([c[1] for c in curve])
    eps = np.array([c[2] for c in curve])
    for i in range(len(edges) - 1):
        m = (steps > edges[i]) & (steps <= edges[i + 1])
        if m.any():
            out[i] = (ret[m] * eps[m]).sum() / eps[m].sum()
    return out


def ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and 95% t half-width of the finite ``values`` (the project's one interval, ``planning.ci95``)."""
    v = values[np.isfinite(values)]
    return (float(v.mean()) if len(v) else float("nan")), ci95(v)


def label(r: dict) -> str:
    setting = {
        1: "serial: 1 game × 2,000 steps",
        4: "parallel: 4 games × 500 steps",
        16: "16 games × 125 steps",
    }
    games = setting.get(r["games"], f"{r['games']} games")
    text = f"{games}, minibatch {r['minibatch']}"
    return text if r["variant"] == "correct" else f"{text}, {r['variant']}"


def report(runs: list[dict], out_png: Path, steps: int, bins: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    edges = np.linspace(0, steps, bins + 1)
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(label(r), []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=120, sharey=True)
    lines = ["| setting | seeds | return, first 10% of training | return, last 20% | seconds per run |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    mids = (edges[1:] + edges[:-1]) / 2
    for name, rs in groups.items():
        curves = np.stack([binned(r["curve"], edges) for r in rs])  # (seeds, bins)
        mean = np.nanmean(curves, axis=0)
        half = np.array([ci(curves[:, i])[1] for i in range(bins)])
        ax = axes[0] if rs[0]["variant"] == "correct" else axes[1]
        (line,) = ax.plot(mids, mean, label=f"{name} ({len(rs)} seeds)", lw=1.3)
        ax.fill_between(mids, mean - half, mean + half, color=line.get_color(), alpha=0.15)
        early = ci(np.nanmean(curves[:, : max(1, bins // 10)], axis=1))
        late = ci(np.nanmean(curves[:, -max(1, bins // 5) :], axis=1))
        secs = np.median([r["seconds"] for r in rs])
        lines.append(
            f"| {name} | {len(rs)} | {early[0]:.1f} ± {early[1]:.1f} | {late[0]:.1f} ± {late[1]:.1f} | {secs:.0f} |"
        )
    if any(r["variant"] != "correct" for r in runs):
        ref = [g for g in groups if "4 games" in g and "512" in g and "," not in g.split("512", 1)[1]]
        for name in ref:
            rs = groups[name]
            curves = np.stack([binned(r["curve"], edges) for r in rs])
            axes[1].plot(mids, np.nanmean(curves, axis=0), "k--", lw=1, label=f"{name} (correct)")
    for ax, title in zip(
        axes, ("same algorithm, serial and parallel", "candidate causes of a stall"), strict=True
    ):
        ax.set(xlabel="game steps (each counts 2 transitions)", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, frameon=False)
    axes[0].set_ylabel("return per player per 500-step episode")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300_000, help="game steps per run")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--games", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--minibatches", type=int, nargs="+", default=[512, 800])
    p.add_argument("--no-variants", action="store_true", help="skip the candidate-cause variants")
    p.add_argument("--parallel", type=int, default=1, help="runs at once (one core each)")
    p.add_argument("--pin", action="store_true", help="pin each run to one core (when runs <= cores)")
    p.add_argument("--bins", type=int, default=20)
    p.add_argument("--json", default=None, help="write every run's curve here")
    p.add_argument("--from-json", default=None, help="report runs measured before (by this script)")
    p.add_argument("--out", default="docs/ppo_serial_parallel.png")
    p.add_argument("--note", default="", help="a line of context for the record")
    p.add_argument("--record", action="store_true")
    args = p.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        runs, measured = data["runs"], data["provenance"]
        steps = data["steps"]
    else:
        specs = [{"games": n, "minibatch": mb, "seed": s, "variant": "correct", "steps": args.steps}
                 for n in args.games for mb in args.minibatches for s in range(args.seeds)]  # fmt: skip
        if not args.no_variants:
            for variant, games in (
                ("no truncation bootstrap", 4),
                ("swapped axes in GAE", 4),
                ("swapped axes in GAE", 1),
            ):
                specs += [{"games": games, "minibatch": 512, "seed": s, "variant": variant, "steps": args.steps}
                          for s in range(args.seeds)]  # fmt: skip
        specs.sort(key=lambda s: -ROLLOUT // s["games"])  # the slow serial runs first
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None]
        for i, s in enumerate(specs):
            s["core"] = cores[i % len(cores)] if args.pin else None
        start = time.perf_counter()
        if args.parallel > 1:
            with ProcessPoolExecutor(args.parallel) as pool:
                runs = list(pool.map(one_run, specs))
        else:
            runs = [one_run(s) for s in specs]
        measured = provenance(
            f"{len(runs)} runs in {time.perf_counter() - start:.0f} s, {args.parallel} at a time."
        )
        steps = args.steps
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"runs": runs, "provenance": measured, "steps": steps}))
    table = report(runs, Path(args.out), steps, args.bins)
    body = "\n".join([
        "Measured:" if args.from_json else "", measured,
        f"Reported from that run's JSON by `python benchmarks/ppo_serial_parallel.py --from-json ...` at code "
        f"version {code_version()}." if args.from_json else "",
        args.note,
        f"{steps:,} game steps per run; rollouts of 4,000 transitions; 4 epochs; lr 1e-3; gamma 0.99; lambda "
        "0.95; self-play with MOA; episodes of 500 steps. Mean ± 95% t interval over seeds; the curves are in "
        f"`{args.out}`.", "", table,
    ]).strip()  # fmt: skip
    print(body)
    if args.record:
        record("ppo_serial_parallel", body, title="PPO: parallel vs serial at equal rollout size")


if __name__ == "__main__":
    main()
