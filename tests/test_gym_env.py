"""Gymnasium conformance and behaviour of GridMARL-v0 and its registered variants."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import gridmarl
from gridmarl.opponents import OPPONENT_CHOICES


@pytest.mark.parametrize("opponent", OPPONENT_CHOICES)
def test_check_env(preset, opponent):
    env_id, _ = preset
    check_env(gym.make(env_id, opponent=opponent, render_mode="rgb_array").unwrapped, skip_render_check=False)


def test_registered_variants_have_their_config():
    assert gym.make("GridMARL-v0").unwrapped.config == gridmarl.make_config()
    cfg = gym.make("GridMARL-Walls3P-v0").unwrapped.config
    assert (cfg.n_agents, cfg.coins_per_agent, cfg.height != cfg.width, len(cfg.walls) > 0) == (
        3,
        2,
        True,
        True,
    )
    cfg = gym.make("GridMARL-8x8-4P-Partial-v0").unwrapped.config
    assert (cfg.height, cfg.width, cfg.n_agents, cfg.view_size) == (8, 8, 4, 3)
    assert gym.make("GridMARL-v0", height=5, width=7).observation_space.shape == (5, 5, 7)


def test_info_contents(preset):
    env = gym.make(preset[0], opponent="greedy")
    obs, info = env.reset(seed=0)
    n = env.unwrapped.config.n_agents
    assert info.keys() == {"opponent_policies", "opponent_policy_ids", "t"} and info["t"] == 0
    assert info["opponent_policies"] == ["greedy"] * (n - 1)
    assert info["opponent_policy_ids"].dtype == np.int64 and info["opponent_policy_ids"].tolist() == [1] * (
        n - 1
    )
    obs, reward, terminated, truncated, info = env.step(0)
    assert info.keys() == {"opponent_actions", "rewards", "opponent_policies", "opponent_policy_ids", "t"}
    assert info["t"] == 1
    assert info["opponent_actions"].dtype == np.int64 and info["opponent_actions"].shape == (n - 1,)
    assert info["rewards"].shape == (n,) and reward == info["rewards"][0]
    assert info["opponent_policies"] == ["greedy"] * (n - 1)
    assert terminated is False and truncated is False


def test_info_rewards_match_exact_rules():
    """The opponents' logged actions, with the ego's, reproduce the step under the exact rules."""
    env = gym.make("GridMARL-Walls3P-v0", opponent=["selfish", "random"]).unwrapped
    env.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(100):
        before = env.get_state()
        a = int(rng.integers(5))
        _, reward, _, trunc, info = env.step(a)
        joint = np.insert(info["opponent_actions"], env.ego, a)
        dist = gridmarl.transition_distribution(env.config, before, joint)
        after = env.get_state()
        assert np.array_equal(dist.states.agents[0], after["agents"])
        assert np.array_equal(dist.rewards[0], info["rewards"])
        if trunc:
            env.reset()


def test_ego_other_than_player_0():
    env = gym.make("GridMARL-v0", ego=1, opponent="stay").unwrapped
    obs, _ = env.reset(seed=0)
    snap = env.get_state()
    r, c = divmod(int(snap["agents"][1]), 4)
    assert obs[0, r, c] == 1
    _, _, _, _, info = env.step(0)
    assert info["opponent_actions"].tolist() == [0]
    with pytest.raises(ValueError, match="ego"):
        gym.make("GridMARL-v0", ego=2)


def test_same_seed_same_trajectory_with_every_opponent_kind():
    kinds = ["switching", "greedy", "selfish"]
    runs = []
    for _ in range(2):
        env = gym.make("GridMARL-8x8-4P-Partial-v0", opponent=kinds, switch_every=4)
        obs, _ = env.reset(seed=42)
        trace = [obs]
        for t in range(120):
            obs, r, _, trunc, info = env.step(t % 5)
            trace += [obs, r, info["opponent_actions"], info["opponent_policies"]]
            if trunc:
                obs, _ = env.reset()
        runs.append(trace)
    for x, y in zip(*runs, strict=True):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_truncation_and_reset_needed():
    env = gym.make("GridMARL-v0", max_steps=5).unwrapped
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    with pytest.raises(gridmarl.ResetNeeded, match=r"call reset\(\)"):
        env.step(0)
    fresh = gym.make("GridMARL-v0")
    with pytest.raises(gym.error.ResetNeeded, match="reset"):
        fresh.step(0)
    with pytest.raises(gridmarl.ResetNeeded, match="reset"):
        fresh.unwrapped.step(0)


def test_get_set_state_branches_exactly():
    """From one snapshot and one generator state, two branches are identical (what planners rely on)."""
    env = gym.make("GridMARL-v0", opponent="switching", switch_every=3).unwrapped
    env.reset(seed=2)
    for _ in range(7):
        env.step(1)
    snap = env.get_state()
    rng_state = env.np_random.bit_generator.state
    first = [env.step(a)[:2] for a in (1, 2, 3, 4, 0, 1)]
    env.set_state(snap)
    env.np_random.bit_generator.state = rng_state
    second = [env.step(a)[:2] for a in (1, 2, 3, 4, 0, 1)]
    for (o1, r1), (o2, r2) in zip(first, second, strict=True):
        assert r1 == r2 and np.array_equal(o1, o2)


def test_pickle_continues_identically():
    env = gym.make("GridMARL-Walls3P-v0", opponent="greedy")
    env.reset(seed=4)
    clone = pickle.loads(pickle.dumps(env))
    for t in range(30):
        a = env.step(t % 5)
        b = clone.step(t % 5)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec_sync_async(mode):
    venv = gym.make_vec("GridMARL-v0", num_envs=2, vectorization_mode=mode, opponent="greedy")
    obs, info = venv.reset(seed=0)
    assert obs.shape == (2, 5, 4, 4)
    for _ in range(55):  # across the autoreset at max_steps=50
        obs, rew, term, trunc, info = venv.step(np.array([1, 2]))
    assert obs.shape == (2, 5, 4, 4) and rew.shape == (2,)
    assert info["opponent_actions"].shape == (2, 1)
    venv.close()


def test_reset_from_state_option():
    env = gym.make("GridMARL-v0").unwrapped
    obs, _ = env.reset(seed=0, options={"state": {"agents": [5, 6], "coins": [0, 15], "t": 0}})
    assert obs[0, 1, 1] == 1 and obs[1, 1, 2] == 1 and obs[2, 0, 0] == 1 and obs[3, 3, 3] == 1
    with pytest.raises(ValueError, match="coins"):
        env.set_state({"agents": [5, 6], "coins": [5, 15], "t": 0})


@pytest.mark.parametrize(
    "make",
    [
        lambda: gym.make("GridMARL-Partial-v0", render_mode="human"),
        lambda: gridmarl.parallel_env(render_mode="human"),
    ],
)
def test_human_mode_opens_draws_and_closes_headless(make):
    """SDL's dummy video driver (set in conftest) gives a real pygame window without a display."""
    pygame = pytest.importorskip("pygame")
    env = make()
    env.reset(seed=0)
    surface = pygame.display.get_surface()
    assert surface is not None and surface.get_size() == (4 * 48, 4 * 48)
    assert len(np.unique(pygame.surfarray.array3d(surface).reshape(-1, 3), axis=0)) > 3
    env.step(0) if isinstance(env, gym.Env) else env.step({"player_0": 0, "player_1": 0})
    env.close()
    assert pygame.display.get_surface() is None
    env.close()  # closing twice is harmless
