"""The coin game in TorchRL, unmodified: ``GymEnv`` by id with a PPO update, the native vector env, and
the PettingZoo parallel env through TorchRL's own wrapper.

    python examples/torchrl_ppo_collect.py                    # a few PPO batches, then the other two
    python examples/torchrl_ppo_collect.py --frames 20000     # longer

1. ``GymEnv("GridMARL-v0")`` with a ``Collector``; each batch goes through TorchRL's ``GAE`` and
   ``ClipPPOLoss`` and one Adam step (a few seconds: it shows the pieces fit, not a trained player).
2. ``GymWrapper`` around the native vector env. TorchRL takes Gymnasium vector envs in the ``SAME_STEP``
   or ``DISABLED`` autoreset modes only; in ``SAME_STEP`` it reads the whole ``info`` into tensors, so the
   policy names are left out (``policy_names_in_info=False``; their ids stay).
3. ``PettingZooWrapper`` around ``gridmarl.parallel_env()``: both players in one group, one rollout.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import GymEnv, GymWrapper
from torchrl.envs.libs.pettingzoo import PettingZooWrapper
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

import gridmarl


def ppo_on_gym_env(frames: int, frames_per_batch: int, seed: int) -> dict[str, float]:
    """PPO pieces of TorchRL on ``GymEnv("GridMARL-v0")``; returns what the batches saw."""
    env = GymEnv("GridMARL-v0", opponent="greedy", categorical_action_encoding=True)
    env.set_seed(seed)
    obs_size = 5 * 4 * 4
    actor_net = nn.Sequential(nn.Flatten(-3), nn.Linear(obs_size, 64), nn.Tanh(), nn.Linear(64, 5))
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=torch.distributions.Categorical,
        spec=env.action_spec,
        return_log_prob=True,
    )
    critic = ValueOperator(
        nn.Sequential(nn.Flatten(-3), nn.Linear(obs_size, 64), nn.Tanh(), nn.Linear(64, 1)),
        in_keys=["observation"],
    )
    advantage = GAE(gamma=0.95, lmbda=0.9, value_network=critic)
    loss = ClipPPOLoss(actor, critic, entropy_coeff=0.01)
    optim = torch.optim.Adam(loss.parameters(), lr=3e-4)
    collector = Collector(
        env,
        actor,
        frames_per_batch=frames_per_batch,
        total_frames=frames,
        auto_register_policy_transforms=False,  # a feed-forward policy needs none
    )
    seen, rewards, losses = 0, 0.0, []
    for batch in collector:
        advantage(batch)
        terms = loss(batch.reshape(-1))
        total = terms["loss_objective"] + terms["loss_critic"] + terms["loss_entropy"]
        optim.zero_grad()
        total.backward()
        optim.step()
        seen += batch.numel()
        rewards += float(batch["next", "reward"].sum())
        losses.append(float(total.detach()))
    collector.shutdown()
    return {"frames": seen, "reward_per_step": rewards / max(seen, 1), "last_loss": losses[-1]}


def native_vector_env(num_envs: int, steps: int, seed: int) -> dict[str, dict[str, float]]:
    """Random rollouts of the native vector env in both autoreset modes TorchRL accepts."""
    out = {}
    for mode in (gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.DISABLED):
        venv = gym.make_vec(
            "GridMARL-v0",
            num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode=mode,
            policy_names_in_info=False,
            max_steps=10,
        )
        env = GymWrapper(venv, categorical_action_encoding=True)
        env.set_seed(seed)
        data = env.rollout(steps, break_when_any_done=False)  # (num_envs, steps)
        out[mode.name] = {
            "frames": data.numel(),
            "episodes_ended": int(data["next", "done"].sum()),
            "reward_per_step": float(data["next", "reward"].mean()),
        }
    return out


def pettingzoo_parallel_env(steps: int, seed: int) -> dict[str, float]:
    """One random rollout of both players through TorchRL's PettingZoo wrapper."""
    env = PettingZooWrapper(gridmarl.parallel_env(max_steps=10), seed=seed)
    data = env.rollout(steps, break_when_any_done=False)
    group = next(iter(env.group_map))  # "player": both players stacked on one axis
    rewards = data["next", group, "reward"]  # (steps, n_agents, 1)
    return {
        "frames": data.numel(),
        "players": rewards.shape[1],
        **{f"return of {name}": float(rewards[:, i].sum()) for i, name in enumerate(env.group_map[group])},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=2048, help="PPO frames in total")
    parser.add_argument("--frames-per-batch", type=int, default=256)
    parser.add_argument("--num-envs", type=int, default=8, help="games of the native vector env")
    parser.add_argument("--steps", type=int, default=25, help="steps of the vector and PettingZoo rollouts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    results = {
        "gym_env_ppo": ppo_on_gym_env(args.frames, args.frames_per_batch, args.seed),
        "native_vector_env": native_vector_env(args.num_envs, args.steps, args.seed),
        "pettingzoo_parallel_env": pettingzoo_parallel_env(args.steps, args.seed),
    }
    for part, figures in results.items():
        print(part, figures)
    return results


if __name__ == "__main__":
    main()
