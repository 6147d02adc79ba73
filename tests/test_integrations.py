"""The clients people use work on the envs without a wrapper of their own."""

import gymnasium as gym
import numpy as np
import pytest
import torch


def _mean_return(env, policy, episodes, seed):
    total = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            total += r
            done = term or trunc
    return total / episodes


def test_stable_baselines3_ppo_learns():
    """PPO with MlpPolicy on GridMARL-v0 as gym.make gives it; after 20k steps it collects well over one and a half times the coins
    than a uniformly random player against the same opponent."""
    sb3 = pytest.importorskip("stable_baselines3")
    torch.set_num_threads(1)
    env = gym.make("GridMARL-v0", opponent="stay")
    model = sb3.PPO("MlpPolicy", env, seed=0, n_steps=512, batch_size=128, learning_rate=1e-3, ent_coef=0.01)
    model.learn(20_000)
    rng = np.random.default_rng(0)
    random_return = _mean_return(env, lambda obs: int(rng.integers(5)), 20, seed=100)
    ppo_return = _mean_return(env, lambda obs: int(model.predict(obs, deterministic=True)[0]), 20, seed=100)
    assert ppo_return > 1.5 * random_return + 1, (ppo_return, random_return)
