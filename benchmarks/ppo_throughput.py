"""PPO training throughput, end to end (rollout + update), beside Stable-Baselines3's PPO on GridMARL-v0.

    python benchmarks/ppo_throughput.py --threads 2 --record

Env-steps per second count game steps: a step of one game counts once whatever the number of players.
Each row is the median of ``--repeats`` timed runs of ``--iterations`` PPO iterations (rollout and update)
after one untimed warm-up iteration, with the ``gridmarl-wm learn`` defaults unless the row says
otherwise. SB3's PPO runs on ``gym.make("GridMARL-v0")`` in its own vector env (``make_vec_env``, 8 envs,
its default hyper-parameters but 2 epochs, batch 512) in the same run. The GPU rows are measured only
when torch sees a GPU (the games stay on the CPU; the network learns on the GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import code_version, provenance, record

import gridmarl  # noqa: F401
from gridmarl_wm.agents import PPOConfig, make_trainer


def ours(label: str, repeats: int, iterations: int, device: str = "cpu", **kw) -> dict:
    policy = {k: kw.pop(k) for k in ("moa", "goal", "hidden") if k in kw}
    ppo_kw = {k: kw.pop(k) for k in list(kw) if k in PPOConfig.__dataclass_fields__}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(
            tmp, ppo=PPOConfig(total_steps=10**12, **ppo_kw), device=device, **kw, **policy
        )
        trainer.update(trainer.rollout())  # warm-up
        rates, rollout_share = [], []
        for _ in range(repeats):
            t_roll = 0.0
            start = time.perf_counter()
            for _ in range(iterations):
                t0 = time.perf_counter()
                batch = trainer.rollout()
                t_roll += time.perf_counter() - t0
                trainer.update(batch)
            if device != "cpu":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            rates.append(iterations * trainer.steps_per_iter / seconds)
            rollout_share.append(t_roll / seconds)
    row = {
        "what": label,
        "steps_per_s": statistics.median(rates),
        "rollout_share": statistics.median(rollout_share),
    }
    print(f"{label}: {row['steps_per_s']:,.0f} env-steps/s (rollout {row['rollout_share']:.0%} of the time)")
    return row


def sb3(repeats: int, steps: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("GridMARL-v0", n_envs=8, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=512, n_epochs=2, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=2048)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.learn(total_timesteps=steps, reset_num_timesteps=False)
        rates.append(steps / (time.perf_counter() - start))
    row = {"what": "Stable-Baselines3 PPO, MlpPolicy, 8 envs (DummyVecEnv), n_steps 256, batch 512, 2 epochs",
           "steps_per_s": statistics.median(rates), "rollout_share": None}  # fmt: skip
    print(f"{row['what']}: {row['steps_per_s']:,.0f} env-steps/s")
    return row


def render(rows: list[dict], note: str) -> str:
    lines = [provenance(note), "", "| what | device | env-steps/s | rollout share |", "|---|---|---:|---:|"]
    for r in rows:
        share = "" if r.get("rollout_share") is None else f"{r['rollout_share']:.0%}"
        value = "not measured (no GPU)" if r["steps_per_s"] is None else f"{r['steps_per_s']:,.0f}"
        lines.append(f"| {r['what']} | {r.get('device', 'CPU')} | {value} | {share} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--sb3-steps", type=int, default=8192)
    p.add_argument("--note", default="", help="a line of context for the record (e.g. a busy machine)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    p.add_argument("--from-log", default=None, help="record the table an earlier run of this script printed")
    p.add_argument("--key", default="ppo_throughput", help="the RESULTS.md block to write")
    args = p.parse_args()
    if args.from_log:
        text = Path(args.from_log).read_text()
        body = text[text.index("Command: `python benchmarks/ppo_throughput.py") :].strip()
        body += (
            f"\n\n(Recorded from the log of that run by `python benchmarks/ppo_throughput.py --from-log` at code"
            f" version {code_version()}.) {args.note}".rstrip()
        )
        print(body)
        if args.record:
            record(args.key, body, title=f"PPO training throughput ({args.key})")
        return
    torch.set_num_threads(args.threads)
    R, K = args.repeats, args.iterations
    rows = [
        ours("ours, `learn` defaults: player_0 vs random (1,024 games × 32 steps, 2 epochs of minibatch 8,192, "
             "a 256-wide 2-layer MLP)", R, K,
             opponent="random"),
        ours("ours, `learn` defaults but `--precision fp32` (no bfloat16 autocast), vs random", R, K,
             opponent="random", precision="fp32"),
        ours("ours, `learn --opponent greedy` defaults", R, K, opponent="greedy"),
        ours("ours, self-play (both players learn, shared parameters)", R, K, opponent="self"),
        ours("ours, self-play with MOA", R, K, opponent="self", moa=True),
        ours("ours, MAPPO self-play with MOA", R, K, opponent="self", moa=True, algorithm="mappo"),
    ]  # fmt: skip
    for r in rows:
        r["device"] = f"CPU, {args.threads} threads"
    base = rows[0]["steps_per_s"]
    sb = sb3(R, args.sb3_steps)
    sb["device"] = f"CPU, {args.threads} threads"
    rows.append(sb)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        for n in (1024, 8192):
            row = ours(f"ours, vs random, {n:,} games, minibatch {8 * n:,}", R, K, device="cuda", opponent="random",
                       num_envs=n, minibatch_size=8 * n)  # fmt: skip
            row["device"] = f"{name} (games on the CPU, {args.threads} threads)"
            rows.append(row)
    else:
        rows.append({"what": "ours on a GPU", "device": "GPU", "steps_per_s": None, "rollout_share": None})
    note = (
        f"Median of {R} timed runs of {K} PPO iterations each (rollout + update). Ours is "
        f"{base / sb['steps_per_s']:,.0f}× SB3's PPO here. {args.note}"
    ).strip()
    body = render(rows, note)
    print(body)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "note": note}, indent=2))
    if args.record:
        record(args.key, body, title="PPO training throughput")


if __name__ == "__main__":
    main()
